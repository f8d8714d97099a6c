//! `utp inspect URL` for a seqlock cell: writer, sequence, last update.

use crate::exit::{CmdResult, Exit};
use utp::seqlock::inspect::CellState;

/// Prints the cell's state; exit 1 if no live writer holds it.
pub fn show(url: &str, cell: &CellState) -> CmdResult {
    println!("{url}: seqlock cell ({})", cell.location);
    println!(
        "  value: {} bytes, type tag 0x{:016x}",
        cell.value_size, cell.tag
    );
    let writer = match (cell.writer_pid, cell.writer_alive) {
        (0, _) => "none".to_string(),
        (pid, true) => format!("pid {pid} (alive)"),
        (pid, false) => format!("pid {pid} (dead)"),
    };
    println!("  writer: {writer}");
    let state = if cell.sequence & 1 == 0 {
        "consistent".to_string()
    } else if cell.writer_alive {
        "write in progress".to_string()
    } else {
        "TORN: the writer died mid-write; readers refuse it until a new writer publishes"
            .to_string()
    };
    println!(
        "  sequence: {} ({} publishes, {state})",
        cell.sequence,
        cell.sequence / 2
    );
    let age = cell
        .update_age
        .map(|a| format!("{:.3} s ago", a.as_secs_f64()))
        .unwrap_or_else(|| "never".into());
    println!("  last update: {age}");
    if !cell.signal_subscribers.is_empty() {
        let pids: Vec<String> = cell
            .signal_subscribers
            .iter()
            .map(|p| p.to_string())
            .collect();
        println!("  SIGUSR1 subscribers: pids {}", pids.join(", "));
    }
    if cell.writer_alive {
        Ok(())
    } else {
        Err(Exit::Failed(1))
    }
}
