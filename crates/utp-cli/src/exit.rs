//! How a subcommand ends when it does not succeed.

/// A subcommand's failure: a reported error (exit 2), or a result that is a
/// failure in itself, already printed (exit with the given code).
#[derive(Debug)]
pub enum Exit {
    /// A calculator `ERR` or an invalid frame: already printed; exit with this code.
    Failed(i32),
    /// Something went wrong; printed as `utp: error: ...`, exit 2.
    Error(String),
}

impl From<utp::Error> for Exit {
    fn from(error: utp::Error) -> Self {
        Exit::Error(error.to_string())
    }
}

impl From<std::io::Error> for Exit {
    fn from(error: std::io::Error) -> Self {
        Exit::Error(error.to_string())
    }
}

/// Result of a subcommand.
pub type CmdResult = Result<(), Exit>;
