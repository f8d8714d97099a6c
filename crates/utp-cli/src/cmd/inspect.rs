//! `utp inspect URL`: a shared-memory endpoint's listener and links.

use crate::exit::{CmdResult, Exit};
use serde_json::json;
use utp::shm::inspect::{self, LinkState};

/// Arguments of `utp inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Endpoint to inspect: shm://NAME, sysv://KEY or file:///PATH.
    url: String,
    /// Print the state as one JSON object (exit codes unchanged).
    #[arg(long)]
    json: bool,
}

fn link_json(link: &LinkState) -> serde_json::Value {
    let side = |s: &utp::shm::inspect::SideState| {
        json!({
            "pid": s.pid,
            "alive": s.alive,
            "state": s.state,
            "frames_sent": s.messages,
            "bytes_sent": s.bytes,
            "heartbeats": s.heartbeats,
            "heartbeat_age_s": s.heartbeat_age.map(|a| a.as_secs_f64()),
        })
    };
    let ring = |r: &utp::shm::inspect::RingState| json!({"capacity": r.capacity, "used": r.used, "head": r.head, "tail": r.tail});
    json!({
        "link_id": link.link_id,
        "location": link.location,
        "server": side(&link.sides[0]),
        "client": side(&link.sides[1]),
        "ring_server_to_client": ring(&link.rings[0]),
        "ring_client_to_server": ring(&link.rings[1]),
        "keyed_stamps": link.keyed_stamps,
    })
}

fn cell_json(url: &str, cell: &utp::seqlock::inspect::CellState) -> serde_json::Value {
    json!({
        "url": url,
        "kind": "seqlock",
        "location": cell.location,
        "value_size": cell.value_size,
        "type_tag": cell.tag,
        "sequence": cell.sequence,
        "publishes": cell.sequence / 2,
        "consistent": cell.sequence & 1 == 0,
        "writer_pid": (cell.writer_pid != 0).then_some(cell.writer_pid),
        "writer_alive": cell.writer_alive,
        "last_update_age_s": cell.update_age.map(|a| a.as_secs_f64()),
        "signal_subscribers": cell.signal_subscribers,
    })
}

fn show_link(link: &LinkState) {
    let stamps = if link.keyed_stamps {
        "keyed stamps"
    } else {
        "plain stamps, line starts zeroed"
    };
    println!("  link {} ({}), {stamps}", link.link_id, link.location);
    for (i, who) in ["server", "client"].iter().enumerate() {
        let s = &link.sides[i];
        let age = s
            .heartbeat_age
            .map(|a| format!("{:.1} s ago", a.as_secs_f64()))
            .unwrap_or_else(|| "never".into());
        println!(
            "    {who}: pid {} ({}), {}, sent {} frames / {} bytes as of heartbeat #{} {age}",
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
        if args.json {
            println!("{}", cell_json(&args.url, &cell));
            return if cell.writer_alive {
                Ok(())
            } else {
                Err(Exit::Failed(1))
            };
        }
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
    if args.json {
        let links: Vec<serde_json::Value> = state
            .links
            .iter()
            .map(|(location, link)| match link {
                Ok(link) => link_json(link),
                Err(e) => json!({"location": location.to_string(), "error": e.to_string()}),
            })
            .collect();
        println!(
            "{}",
            json!({
                "url": state.url,
                "kind": "shm-endpoint",
                "listening": state.listening,
                "socket": format!("@{}", state.socket),
                "links": links,
            })
        );
        return if state.listening {
            Ok(())
        } else {
            Err(Exit::Failed(1))
        };
    }
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
