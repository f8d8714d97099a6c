//! `utp ls`: every live utp endpoint on this machine, of every transport
//! it can discover, like `ss -l` for utp:
//!
//! - servers of processes that keep counters (`utp::stats`): any transport;
//! - shared-memory rendezvous sockets (in the per-user socket directories),
//!   memfd links (through /proc), seqlock cells;
//! - Unix sockets (files and abstract names), TCP and UDP ports and FIFOs
//!   held by utp processes (those with a counters region, or named `utp`),
//!   from /proc;
//! - POSIX message queues named `utp.*` in /dev/mqueue (when it is mounted);
//! - pub/sub publishers (`utp::pubsub`), with their subscribers.

use crate::escape::for_terminal;
use crate::exit::CmdResult;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use utp::procnet;
use utp::stats::Kind;

/// Arguments of `utp ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON array of endpoints.
    #[arg(long)]
    json: bool,
}

/// One endpoint or object.
#[derive(Debug, Default)]
struct Row {
    transport: String,
    url: String,
    uid: Option<u32>,
    pid: Option<u32>,
    clients: Option<usize>,
    detail: String,
}

fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?;
            let id: u32 = f.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

fn proc_uid(pid: u32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

fn normalize(url: &str) -> String {
    utp::Endpoint::parse(url).map_or_else(|_| url.to_string(), |e| e.address.to_string())
}

fn scheme(url: &str) -> String {
    url.split(':').next().unwrap_or("?").to_string()
}

fn collect() -> (Vec<Row>, Vec<String>) {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut listed: BTreeSet<String> = BTreeSet::new();
    let mut utp_pids: BTreeSet<u32> = BTreeSet::new();

    // 1. Servers that keep counters: every transport, with their clients.
    for process in utp::stats::read_all() {
        utp_pids.insert(process.pid);
        let mut clients: HashMap<usize, usize> = HashMap::new();
        for b in &process.blocks {
            if let (Kind::Accepted, Some(parent)) = (b.kind, b.parent) {
                *clients.entry(parent).or_default() += 1;
            }
        }
        for b in process.blocks.iter().filter(|b| b.kind == Kind::Listener) {
            listed.insert(normalize(&b.label));
            rows.push(Row {
                transport: scheme(&b.label),
                url: b.label.clone(),
                uid: Some(process.uid),
                pid: Some(process.pid),
                clients: Some(clients.get(&b.index).copied().unwrap_or(0)),
                detail: "server".into(),
            });
        }
    }
    let fds = procnet::fd_targets();
    for &(pid, _) in &fds {
        if procnet::command(pid).as_deref() == Some("utp") {
            utp_pids.insert(pid);
        }
    }
    let holders = procnet::socket_holders();
    let holder_of = |inode: u64| -> Option<u32> {
        holders
            .get(&inode)
            .and_then(|pids| pids.iter().min().copied())
    };

    // 2. Unix sockets: shm rendezvous names, and sockets of utp processes.
    // Shared-memory listeners: their sockets in the per-user directories
    // (utp::runtime_dir), socket path -> URL.
    let shm_entries = utp::shm::inspect::list();
    let shm_listeners: HashMap<&str, &str> = shm_entries
        .iter()
        .filter(|e| e.kind == "listener" && !e.detail.is_empty())
        .map(|e| (e.name.as_str(), e.detail.as_str()))
        .collect();
    let unix = procnet::unix_sockets();
    for s in unix.iter().filter(|s| s.listening) {
        let pid = holder_of(s.inode);
        let (url, detail) = match shm_listeners.get(s.path.as_str()) {
            Some(url) => (url.to_string(), format!("rendezvous socket {}", s.path)),
            None if pid.is_some_and(|p| utp_pids.contains(&p)) => {
                (format!("unix://{}", s.path), "listening socket".to_string())
            }
            None => continue,
        };
        if !listed.insert(normalize(&url)) {
            // Already listed from its counters: say where it listens.
            if let Some(row) = rows
                .iter_mut()
                .find(|r| normalize(&r.url) == normalize(&url))
            {
                row.detail = format!("server, {detail}");
            }
            continue;
        }
        let clients = if url.starts_with("unix:") {
            Some(
                unix.iter()
                    .filter(|c| c.connected && c.path == s.path)
                    .count(),
            )
        } else {
            None
        };
        rows.push(Row {
            transport: scheme(&url),
            url,
            uid: pid.and_then(proc_uid),
            pid,
            clients,
            detail,
        });
    }

    // 3. TCP and UDP ports of utp processes.
    for proto in ["tcp", "udp"] {
        let sockets = procnet::inet_sockets(proto);
        for s in &sockets {
            let listening = if proto == "tcp" {
                s.state == procnet::TCP_LISTEN
            } else {
                s.remote.port() == 0
            };
            let Some(pid) = holder_of(s.inode) else {
                continue;
            };
            if !listening || !utp_pids.contains(&pid) {
                continue;
            }
            let url = format!("{proto}://{}", s.local);
            if !listed.insert(normalize(&url)) {
                continue;
            }
            let clients = (proto == "tcp").then(|| {
                sockets
                    .iter()
                    .filter(|c| {
                        c.state == procnet::TCP_ESTABLISHED && c.local.port() == s.local.port()
                    })
                    .count()
            });
            rows.push(Row {
                transport: proto.into(),
                url,
                uid: Some(s.uid),
                pid: Some(pid),
                clients,
                detail: format!("{proto} socket"),
            });
        }
    }

    // 4. FIFO pairs held open by utp processes.
    for (pid, target) in &fds {
        let Some(base) = target.strip_suffix(".req") else {
            continue;
        };
        if !utp_pids.contains(pid)
            || !std::fs::metadata(target).is_ok_and(|m| m.file_type().is_fifo())
        {
            continue;
        }
        let url = format!("fifo://{base}");
        if listed.insert(normalize(&url)) {
            rows.push(Row {
                transport: "fifo".into(),
                url,
                uid: proc_uid(*pid),
                pid: Some(*pid),
                clients: None,
                detail: format!("{target} and {base}.resp"),
            });
        }
    }

    // 5. Message queues.
    if std::path::Path::new("/dev/mqueue").is_dir()
        && std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(1) == Some("/dev/mqueue"))
        })
    {
        let mut queues: Vec<_> = std::fs::read_dir("/dev/mqueue")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("utp."))
            .collect();
        queues.sort_by_key(|e| e.file_name());
        for q in queues {
            let name = q.file_name().to_string_lossy().into_owned();
            rows.push(Row {
                transport: "mq".into(),
                url: format!("/dev/mqueue/{name}"),
                uid: q.metadata().ok().map(|m| m.uid()),
                pid: None,
                clients: None,
                detail: "message queue".into(),
            });
        }
    } else {
        notes.push(
            "mq:// queues are not listed: /dev/mqueue is not mounted here (servers that keep \
             counters are listed above all the same); to mount it: \
             sudo mkdir -p /dev/mqueue && sudo mount -t mqueue none /dev/mqueue"
                .into(),
        );
    }

    // 6. Shared-memory link regions and seqlock cells.
    for e in shm_entries.iter().cloned() {
        if e.kind == "listener" && shm_listeners.contains_key(e.name.as_str()) {
            continue; // rendezvous sockets are listed above, with their holder
        }
        let mode = e
            .mode
            .map_or_else(String::new, |m| format!("mode {m:04o}, "));
        let size = e.size.map_or_else(String::new, |s| format!("{s} bytes, "));
        rows.push(Row {
            transport: e.kind.into(),
            url: e.name,
            uid: e.uid,
            pid: None,
            clients: None,
            detail: format!("{mode}{size}{}", e.detail),
        });
    }
    for (url, state) in utp::seqlock::inspect::list_cells() {
        let (pid, detail) = match state {
            Ok(c) => (
                (c.writer_pid != 0).then_some(c.writer_pid),
                format!(
                    "seqlock cell, {} bytes, sequence {}, writer {}",
                    c.value_size,
                    c.sequence,
                    match (c.writer_pid, c.writer_alive) {
                        (0, _) => "none",
                        (_, true) => "alive",
                        (_, false) => "dead",
                    }
                ),
            ),
            Err(e) => (None, format!("seqlock cell, unreadable: {e}")),
        };
        rows.push(Row {
            transport: "seqlock".into(),
            uid: pid.and_then(proc_uid),
            url,
            pid,
            clients: None,
            detail,
        });
    }
    for (url, report) in utp::pubsub::list() {
        let (pid, clients, detail) = match report {
            Ok(r) => (
                Some(r.publisher_pid),
                Some(r.subscribers.len()),
                format!(
                    "pub/sub publisher, {} slots of {} bytes, {} published",
                    r.slots, r.slot_size, r.published
                ),
            ),
            Err(e) => (
                None,
                None,
                format!("pub/sub socket, no publisher answers (stale): {e}"),
            ),
        };
        rows.push(Row {
            transport: "pubsub".into(),
            uid: pid.and_then(proc_uid),
            url,
            pid,
            clients,
            detail,
        });
    }
    (rows, notes)
}

/// Prints a table with a header (or JSON); notes about what could not be
/// looked at go to stderr.
pub fn run(args: Args) -> CmdResult {
    let (rows, notes) = collect();
    if args.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "transport": r.transport,
                    "url": r.url,
                    "uid": r.uid,
                    "owner": r.uid.map(user_name),
                    "pid": r.pid,
                    "clients": r.clients,
                    "detail": r.detail,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else if rows.is_empty() {
        println!("no utp endpoints");
    } else {
        let cells: Vec<[String; 6]> = rows
            .iter()
            .map(|r| {
                [
                    // Names and details come from whoever created the
                    // object (another user, too): escape them.
                    r.transport.clone(),
                    for_terminal(&r.url, false).to_string(),
                    r.uid.map_or_else(|| "-".into(), user_name),
                    r.pid.map_or_else(|| "-".into(), |p| p.to_string()),
                    r.clients.map_or_else(|| "-".into(), |c| c.to_string()),
                    for_terminal(&r.detail, false).to_string(),
                ]
            })
            .collect();
        let header = ["TRANSPORT", "URL", "OWNER", "PID", "CLIENTS", "DETAIL"];
        let mut width = header.map(str::len);
        for row in &cells {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |row: [&str; 6]| {
            format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                w0 = width[0],
                w1 = width[1],
                w2 = width[2],
                w3 = width[3],
                w4 = width[4],
            )
        };
        println!("{}", line(header).trim_end());
        for row in &cells {
            println!("{}", line(row.each_ref().map(String::as_str)).trim_end());
        }
    }
    for note in notes {
        eprintln!("note: {note}");
    }
    Ok(())
}
