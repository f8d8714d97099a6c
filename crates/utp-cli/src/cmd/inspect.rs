//! `utp inspect URL`: a shared-memory endpoint's listener and links.

use crate::exit::{CmdResult, Exit};
use utp::shm::inspect::{self, LinkState};

/// Arguments of `utp inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Endpoint to inspect: shm://NAME, sysv://KEY or file:///PATH.
    url: String,
    /// Print a pub/sub publisher's report as JSON.
    #[arg(long)]
    json: bool,
}

fn show_link(link: &LinkState) {
    println!("  link {} ({})", link.link_id, link.location);
    for (i, who) in ["server", "client"].iter().enumerate() {
        let s = &link.sides[i];
        let age = s
            .heartbeat_age
            .map(|a| format!("{:.1} s ago", a.as_secs_f64()))
            .unwrap_or_else(|| "never".into());
        println!(
            "    {who}: pid {} ({}), {}, sent {} frames / {} bytes, heartbeat #{} {age}",
            s.pid,
            if s.alive { "alive" } else { "dead" },
            s.state,
            s.messages,
            s.bytes,
            s.heartbeats
        );
    }
    for (i, dir) in ["server -> client", "client -> server"].iter().enumerate() {
        let r = &link.rings[i];
        println!(
            "    ring {i} ({dir}): {} of {} bytes in use (head {}, tail {})",
            r.used, r.capacity, r.head, r.tail
        );
    }
}

/// Prints the endpoint's state; exit 1 if nothing listens there (or, for a
/// seqlock cell, if no live writer holds it).
pub fn run(args: Args) -> CmdResult {
    if let Ok(cell) = utp::seqlock::inspect::cell_state(&args.url) {
        return super::inspect_cell::show(&args.url, &cell);
    }
    if let Ok(report) = utp::pubsub::inspect(&args.url) {
        return super::inspect_pubsub::show(&args.url, &report, args.json);
    }
    let endpoint = utp::Endpoint::parse(&args.url)?;
    if !matches!(
        endpoint.address,
        utp::endpoint::Address::Shm(_)
            | utp::endpoint::Address::SysV(_)
            | utp::endpoint::Address::File(_)
    ) {
        return Err(Exit::Error(format!(
            "inspect supports shm://, sysv:// and file:/// endpoints, not {}",
            endpoint.address.scheme()
        )));
    }
    let state = inspect::endpoint_state(&endpoint)?;
    println!(
        "{}: {} (socket {})",
        state.url,
        if state.listening {
            "listening"
        } else {
            "no server"
        },
        state.socket
    );
    if state.links.is_empty() {
        println!("  no links");
    }
    for (location, link) in &state.links {
        match link {
            Ok(link) => show_link(link),
            Err(e) => println!("  {location}: unreadable: {e}"),
        }
    }
    if state.listening {
        Ok(())
    } else {
        Err(Exit::Failed(1))
    }
}
