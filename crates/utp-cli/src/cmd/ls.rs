//! `utp ls`: utp endpoints on this machine, like `ls /dev/shm` or `ipcs`:
//! listeners, link regions, seqlock cells and pub/sub publishers.

use crate::exit::CmdResult;

/// Arguments of `utp ls`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints one line per listener socket and per link region.
pub fn run(_args: Args) -> CmdResult {
    let entries = utp::shm::inspect::list();
    let cells = utp::seqlock::inspect::list_cells();
    let publishers = utp::pubsub::list();
    if entries.is_empty() && cells.is_empty() && publishers.is_empty() {
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
    for (url, state) in cells {
        match state {
            Ok(c) => println!(
                "seqlock   {url}  {} bytes, sequence {}, writer {}",
                c.value_size,
                c.sequence,
                match (c.writer_pid, c.writer_alive) {
                    (0, _) => "none".to_string(),
                    (pid, alive) => format!("pid {pid} ({})", if alive { "alive" } else { "dead" }),
                }
            ),
            Err(e) => println!("seqlock   {url}  unreadable: {e}"),
        }
    }
    for (url, report) in publishers {
        match report {
            Ok(r) => println!(
                "pubsub    {url}  publisher pid {}, {} slots of {} bytes, {} published, {} subscriber(s)",
                r.publisher_pid,
                r.slots,
                r.slot_size,
                r.published,
                r.subscribers.len()
            ),
            Err(e) => println!("pubsub    {url}  no publisher answers (stale socket): {e}"),
        }
    }
    Ok(())
}
