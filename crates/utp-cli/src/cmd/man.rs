//! `utp man`: the man page, generated from the command-line definition.

use crate::exit::CmdResult;

/// Arguments of `utp man`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints utp(1) as roff: `utp man | man -l -`, or
/// `utp man > /usr/local/share/man/man1/utp.1`.
pub fn run(_args: Args) -> CmdResult {
    let page = clap_mangen::Man::new(crate::command());
    page.render(&mut std::io::stdout())?;
    Ok(())
}
