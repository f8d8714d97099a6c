//! `utp ls`: utp endpoints on this machine, like `ls /dev/shm` or `ipcs`:
//! listeners, link regions and seqlock cells.

use crate::escape::for_terminal;
use crate::exit::CmdResult;

/// Arguments of `utp ls`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints one line per listener socket and per link region.
pub fn run(_args: Args) -> CmdResult {
    let entries = utp::shm::inspect::list();
    let cells = utp::seqlock::inspect::list_cells();
    if entries.is_empty() && cells.is_empty() {
        println!("no utp endpoints");
    }
    for e in entries {
        let mode = e
            .mode
            .map(|m| format!("{m:04o}"))
            .unwrap_or_else(|| "-".into());
        let uid = e.uid.map(|u| u.to_string()).unwrap_or_else(|| "-".into());
        let size = e.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        // Names are chosen by whoever created them (another user, too).
        println!(
            "{:<9} {mode:>5} {uid:>6} {size:>9}  {}  {}",
            e.kind,
            for_terminal(&e.name, false),
            for_terminal(&e.detail, false)
        );
    }
    for (url, state) in cells {
        match state {
            Ok(c) => println!(
                "seqlock   {}  {} bytes, sequence {}, writer {}",
                for_terminal(&url, false),
                c.value_size,
                c.sequence,
                match (c.writer_pid, c.writer_alive) {
                    (0, _) => "none".to_string(),
                    (pid, alive) => format!("pid {pid} ({})", if alive { "alive" } else { "dead" }),
                }
            ),
            Err(e) => println!(
                "seqlock   {}  unreadable: {}",
                for_terminal(&url, false),
                for_terminal(&e.to_string(), false)
            ),
        }
    }
    Ok(())
}
