//! `utp completions SHELL`: a completion script for the shell.

use crate::exit::CmdResult;

/// Arguments of `utp completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell, e.g. `utp completions bash > ~/.local/share/bash-completion/completions/utp`.
    shell: clap_complete::Shell,
}

/// Prints the script to stdout.
pub fn run(args: Args) -> CmdResult {
    let mut command = crate::command();
    clap_complete::generate(args.shell, &mut command, "utp", &mut std::io::stdout());
    Ok(())
}
