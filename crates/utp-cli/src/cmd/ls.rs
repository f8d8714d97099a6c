//! `utp ls`: utp endpoints on this machine, like `ls /dev/shm` or `ipcs`.

use crate::exit::CmdResult;

/// Arguments of `utp ls`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints one line per listener socket and per link region.
pub fn run(_args: Args) -> CmdResult {
    let entries = utp::shm::inspect::list();
    if entries.is_empty() {
        println!("no utp endpoints");
    }
    for e in entries {
        let mode = e
            .mode
            .map(|m| format!("{m:04o}"))
            .unwrap_or_else(|| "-".into());
        let uid = e.uid.map(|u| u.to_string()).unwrap_or_else(|| "-".into());
        let size = e.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:<9} {mode:>5} {uid:>6} {size:>9}  {}  {}",
            e.kind, e.name, e.detail
        );
    }
    Ok(())
}
