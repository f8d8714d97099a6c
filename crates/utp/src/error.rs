//! The crate's error type: one enum, each variant saying what went wrong and,
//! where it helps, what to do about it.

use crate::frame::DecodeError;
use std::io;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in utp.
///
/// `Debug` prints the same sentence as `Display`, so a `main` that returns
/// `utp::Result<()>` shows `Error: shm://x is already in use ...` rather than
/// a struct dump.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint URL could not be understood.
    #[error("invalid endpoint URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Bytes from the peer were not a valid UTP frame.
    #[error("invalid frame from peer: {0}")]
    Frame(#[from] DecodeError),
    /// Nothing is listening at the endpoint.
    #[error("no server at {endpoint}: {reason}")]
    NotFound {
        /// The endpoint that was tried.
        endpoint: String,
        /// What the operating system said.
        reason: String,
    },
    /// Another live server already listens at the endpoint.
    #[error("{endpoint} is already in use by a running server{}", show_hint(.hint))]
    InUse {
        /// The endpoint.
        endpoint: String,
        /// Who holds it, when known.
        hint: Option<String>,
    },
    /// The peer closed the channel or died.
    #[error("peer gone: {0}")]
    PeerGone(String),
    /// A blocking call did not complete in time.
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        /// What the call was waiting for.
        waiting_for: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// A non-blocking send found no room; nothing was sent.
    #[error("no room to send right now (the peer is not keeping up); retry or use a blocking send")]
    Full,
    /// The payload is larger than this transport or channel can carry.
    #[error("payload of {len} bytes is too large for {transport} (limit {limit} bytes)")]
    TooLarge {
        /// Payload length that was offered.
        len: usize,
        /// The transport's limit.
        limit: usize,
        /// Which transport.
        transport: &'static str,
    },
    /// The peer broke the protocol in a way that is not a frame error.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer (or a shared region) is not trusted by policy.
    #[error("permission denied: {0}")]
    Denied(String),
    /// A payload did not decode as the type the receiver expected (see
    /// [`crate::typed`]); the frame was consumed and the channel is usable.
    #[error("payload is not a valid {type_name}: {reason}")]
    Decode {
        /// The Rust type that was expected.
        type_name: &'static str,
        /// What did not fit.
        reason: String,
    },
    /// The channel was closed locally.
    #[error("channel is closed")]
    Closed,
    /// A pub/sub subscriber was reading a message in place when the
    /// publisher overwrote it; the message counts as lost.
    #[error("the publisher overwrote this message while it was being read (counted as lost)")]
    Overwritten,
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What utp was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn show_hint(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
}

impl Error {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Whether this error means the peer is gone (closed, reset or dead).
    pub fn is_peer_gone(&self) -> bool {
        matches!(self, Error::PeerGone(_))
    }

    /// Whether this error is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }
}

/// Lets utp calls sit inside functions that return `std::io::Result`, with
/// the kind a caller of the standard library would expect; the utp error is
/// kept inside (as the `io::Error`'s inner error) with its message.
///
/// ```
/// fn ping(url: &str) -> std::io::Result<()> {
///     let _channel = utp::connect(url)?;
///     Ok(())
/// }
/// let err = ping("unix:///nonexistent/utp-doc.sock").unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// ```
impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match &err {
            Error::BadUrl { .. } | Error::TooLarge { .. } => io::ErrorKind::InvalidInput,
            Error::Frame(_) | Error::Protocol(_) | Error::Decode { .. } => {
                io::ErrorKind::InvalidData
            }
            Error::NotFound { .. } => io::ErrorKind::NotFound,
            Error::InUse { .. } => io::ErrorKind::AddrInUse,
            Error::PeerGone(_) => io::ErrorKind::BrokenPipe,
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::Full => io::ErrorKind::WouldBlock,
            Error::Overwritten => io::ErrorKind::Interrupted,
            Error::Denied(_) => io::ErrorKind::PermissionDenied,
            Error::Closed => io::ErrorKind::NotConnected,
            Error::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod io_conversion_tests {
    use super::*;

    #[test]
    fn kinds_follow_the_meaning_and_the_message_survives() {
        let cases = [
            (Error::PeerGone("closed".into()), io::ErrorKind::BrokenPipe),
            (
                Error::Timeout {
                    waiting_for: "a frame",
                    after: Duration::from_secs(1),
                },
                io::ErrorKind::TimedOut,
            ),
            (Error::Full, io::ErrorKind::WouldBlock),
            (
                Error::Denied("uid 7".into()),
                io::ErrorKind::PermissionDenied,
            ),
            (Error::Closed, io::ErrorKind::NotConnected),
            (
                Error::io("bind /x", io::Error::from(io::ErrorKind::AddrNotAvailable)),
                io::ErrorKind::AddrNotAvailable,
            ),
        ];
        for (err, kind) in cases {
            let text = err.to_string();
            let converted = io::Error::from(err);
            assert_eq!(converted.kind(), kind, "{text}");
            assert_eq!(converted.to_string(), text);
            assert!(converted.get_ref().unwrap().is::<Error>());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_says_what_it_was_waiting_for() {
        let e = Error::Timeout {
            waiting_for: "a frame from the peer",
            after: Duration::from_secs(1),
        };
        assert_eq!(
            e.to_string(),
            "timed out after 1s waiting for a frame from the peer"
        );
    }

    #[test]
    fn debug_is_the_sentence_not_a_struct_dump() {
        // What `fn main() -> utp::Result<()>` prints after "Error: ".
        let e = Error::InUse {
            endpoint: "shm://calc".into(),
            hint: Some("held by pid 1234".into()),
        };
        assert_eq!(
            format!("{e:?}"),
            "shm://calc is already in use by a running server (held by pid 1234)"
        );
        let e = Error::InUse {
            endpoint: "tcp://127.0.0.1:80".into(),
            hint: None,
        };
        assert_eq!(
            format!("{e:?}"),
            "tcp://127.0.0.1:80 is already in use by a running server"
        );
    }
}
