//! `utp inspect` of a pub/sub publisher: its ring, subscribers, lag and loss.

use crate::exit::CmdResult;
use utp::pubsub::Report;

/// Prints the report.
pub fn show(url: &str, report: &Report, json: bool) -> CmdResult {
    if json {
        let subs: Vec<_> = report
            .subscribers
            .iter()
            .map(|s| {
                serde_json::json!({"id": s.id, "pid": s.pid, "policy": s.policy, "joined_at": s.joined_at,
                    "cursor": s.cursor, "lag": s.lag, "received": s.received, "lost": s.lost})
            })
            .collect();
        let departed: Vec<_> = report
            .departed
            .iter()
            .map(|(id, pid, reason)| serde_json::json!({"id": id, "pid": pid, "reason": reason}))
            .collect();
        let obj = serde_json::json!({"url": url, "publisher_pid": report.publisher_pid,
            "transport": report.transport, "slots": report.slots, "slot_size": report.slot_size,
            "published": report.published, "subscribers": subs, "departed": departed});
        println!("{obj}");
        return Ok(());
    }
    println!(
        "{url}: pub/sub publisher pid {} ({}), {} messages published",
        report.publisher_pid, report.transport, report.published
    );
    if report.transport == "shm" {
        println!(
            "  ring: {} slots of {} bytes",
            report.slots, report.slot_size
        );
    } else {
        println!("  queue: {} messages per subscriber", report.slots);
    }
    println!("  {} subscriber(s)", report.subscribers.len());
    for s in &report.subscribers {
        println!(
            "    #{} pid {} {}: joined at {}, cursor {}, lag {}, received {}, lost {}",
            s.id, s.pid, s.policy, s.joined_at, s.cursor, s.lag, s.received, s.lost
        );
    }
    for (id, pid, reason) in &report.departed {
        println!("    departed #{id} pid {pid}: {reason}");
    }
    Ok(())
}
