//! Reading links and listing endpoints from outside, for `utp inspect`
//! and `utp ls`. Only reads: never changes a link it looks at.
//!
//! `shm://` links are anonymous memfds: they are found through the
//! processes that hold them (`/proc/PID/fd`, whose links read
//! `/memfd:utp.NAME.N (deleted)`), which needs the same uid or root.
//! Listeners are found in `/proc/net/unix` (sockets in utp's runtime
//! directories); file links by name next to their PATH.

use super::layout::{Control, SideField, state};
use super::reclaim::{link_pid, pid_alive};
use super::region::{Location, Region};
use super::rendezvous::{address_of_socket_file, connect_paths, socket_file};
use super::sync::Ordering;
use crate::ProtocolReason;
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::now_micros;
use crate::identity::PeerPolicy;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::ptr::NonNull;
use std::time::Duration;

/// One side of a link as read from its control block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideState {
    /// `EMPTY`, `READY`, `CLOSED` or `state N` for garbage.
    pub state: String,
    /// Pid the side wrote.
    pub pid: u32,
    /// Whether that pid exists.
    pub alive: bool,
    /// Heartbeat counter.
    pub heartbeats: u64,
    /// Time since the last heartbeat.
    pub heartbeat_age: Option<Duration>,
    /// Frames this side sent, as of its last heartbeat, wait or close
    /// (`docs/shm-layout.md` 3.2: at most 10 ms behind while it sends).
    pub messages: u64,
    /// Bytes of records this side sent, as of the same moment.
    pub bytes: u64,
}

/// One ring as read from its index block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingState {
    /// Data area size.
    pub capacity: u64,
    /// Read position.
    pub head: u64,
    /// Write position, as the producer last stored it: each time it has
    /// written a sixteenth of the ring, with each heartbeat, before it
    /// waits and at close.
    pub tail: u64,
    /// Bytes published and unread as far as the two words say (`tail -
    /// head`, clamped to the capacity; 0 when the reader is past the write
    /// position last stored).
    pub used: u64,
}

/// A link region's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// Where the region is.
    pub location: String,
    /// The server's link number.
    pub link_id: u32,
    /// Server (0) and client (1).
    pub sides: [SideState; 2],
    /// Ring 0 (server to client) and ring 1 (client to server).
    pub rings: [RingState; 2],
    /// Whether the ends agreed to keyed stamps (both rings have a key in
    /// the control header, `docs/shm-layout.md` 4.1); otherwise consumers
    /// zero the line starts they give back.
    pub keyed_stamps: bool,
}

/// Reads the state of the link region at `location`.
pub fn link_state(location: &Location) -> Result<LinkState> {
    let region = match location {
        Location::Memfd(proc_path) => {
            // A holder's descriptor, e.g. /proc/PID/fd/N (see memfd_links).
            let fd = rustix::fs::open(
                proc_path.as_str(),
                rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| Error::io(format!("open {proc_path}"), e))?;
            let len = rustix::fs::fstat(&fd)
                .map_err(|e| Error::io(format!("fstat {proc_path}"), e))?
                .st_size as usize;
            Region::from_memfd(fd, len, &PeerPolicy::same_user(), proc_path)?
        }
        Location::File(path) => {
            let len = std::fs::metadata(path)
                .map_err(|e| Error::io(format!("stat {location}"), e))?
                .len() as usize;
            Region::open(location.clone(), len)?
        }
        _ => {
            return Err(Error::protocol(
                ProtocolReason::Unsupported,
                "System V links are private segments; inspect them through their server",
            ));
        }
    };
    let len = region.len();
    let base = NonNull::new(region.as_ptr()).ok_or(Error::Closed)?;
    // SAFETY: `region` maps `len` page-aligned bytes and outlives `control`
    // (both locals, control declared later so dropped first); validate()
    // checks the layout fits before the ring blocks are touched.
    let control = unsafe { Control::new(base) };
    let capacity = control.validate(len)? as u64;
    let now = now_micros();
    let side = |s: usize| {
        let raw = control
            .side_u32(s, SideField::State)
            .load(Ordering::Acquire);
        let pid = control.side_u32(s, SideField::Pid).load(Ordering::Relaxed);
        let beat = control
            .side_u64(s, SideField::HeartbeatMicros)
            .load(Ordering::Relaxed);
        SideState {
            state: match raw {
                state::EMPTY => "EMPTY".into(),
                state::READY => "READY".into(),
                state::CLOSED => "CLOSED".into(),
                n => format!("state {n}"),
            },
            pid,
            alive: pid != 0 && pid_alive(pid),
            heartbeats: control
                .side_u64(s, SideField::Heartbeat)
                .load(Ordering::Relaxed),
            heartbeat_age: (beat != 0).then(|| Duration::from_micros(now.saturating_sub(beat))),
            messages: control
                .side_u64(s, SideField::Messages)
                .load(Ordering::Relaxed),
            bytes: control
                .side_u64(s, SideField::Bytes)
                .load(Ordering::Relaxed),
        }
    };
    let ring = |r: usize| {
        let (head, tail) = control.ring_indices(r).snapshot();
        RingState {
            capacity,
            head,
            tail,
            used: used(head, tail, capacity),
        }
    };
    Ok(LinkState {
        location: location.to_string(),
        link_id: control.link_id(),
        sides: [side(0), side(1)],
        rings: [ring(0), ring(1)],
        // A server writes both keys, never zero, when keyed stamps were
        // agreed, and neither otherwise.
        keyed_stamps: control.stamp_key(0) != 0 && control.stamp_key(1) != 0,
    })
}

/// Bytes in use as far as a ring's two words say: `tail - head`, at most
/// the capacity. The producer stores `tail` now and then (every sixteenth
/// of the ring, with heartbeats, at close), so the consumer may have read
/// past the position last stored: nothing is in use then.
fn used(head: u64, tail: u64, capacity: u64) -> u64 {
    match tail.wrapping_sub(head) {
        n if n > 1 << 62 => 0,
        n => n.min(capacity),
    }
}

/// What `utp inspect URL` shows for a shared-memory endpoint.
#[derive(Debug)]
pub struct EndpointState {
    /// The endpoint.
    pub url: String,
    /// Whether a server listens (its socket is bound and listening).
    pub listening: bool,
    /// The socket path (the first candidate that listens, else the first).
    pub socket: String,
    /// Live (or stale) links of this endpoint with their state.
    pub links: Vec<(Location, Result<LinkState>)>,
}

/// Inspects a shared-memory endpoint: is a server listening, and its links.
pub fn endpoint_state(endpoint: &Endpoint) -> Result<EndpointState> {
    let candidates = connect_paths(&endpoint.address, &[])?;
    let bound = listening_sockets();
    let socket = candidates
        .iter()
        .map(|(p, _, _)| p.display().to_string())
        .find(|p| bound.contains(p))
        .or_else(|| candidates.first().map(|(p, _, _)| p.display().to_string()))
        .unwrap_or_default();
    let listening = bound.contains(&socket);
    let links = link_locations(&endpoint.address)
        .into_iter()
        .map(|loc| {
            let state = link_state(&loc);
            (loc, state)
        })
        .collect();
    Ok(EndpointState {
        url: endpoint.address.to_string(),
        listening,
        socket,
        links,
    })
}

/// A memfd link found in a process's descriptor table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemfdLink {
    /// The memfd's name: `utp.NAME.N`.
    pub name: String,
    /// `/proc/PID/fd/N` of the first holder found (open it to read the link).
    pub path: String,
    /// Pids holding it (server and client), ascending.
    pub pids: Vec<u32>,
    /// Size in bytes.
    pub size: u64,
    /// Owner uid.
    pub uid: u32,
}

/// Every utp memfd link this process may see (`/proc/*/fd`: its own uid's
/// processes, or all as root), one entry per memfd, optionally only those
/// of `shm://NAME`.
pub fn memfd_links(name: Option<&str>) -> Vec<MemfdLink> {
    let prefix = name.map(|n| format!("utp.{n}."));
    let mut found: Vec<(u64, u64, MemfdLink)> = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for proc_entry in procs.flatten() {
        let Some(pid) = proc_entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            let Some(rest) = target.strip_prefix("/memfd:utp.") else {
                continue;
            };
            let memfd_name = format!("utp.{}", rest.trim_end_matches(" (deleted)"));
            if prefix.as_ref().is_some_and(|p| {
                !memfd_name
                    .strip_prefix(p.as_str())
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            }) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(fd.path()) else {
                continue;
            };
            let key = (meta.dev(), meta.ino());
            match found.iter_mut().find(|(d, i, _)| (*d, *i) == key) {
                Some((_, _, link)) => {
                    if !link.pids.contains(&pid) {
                        link.pids.push(pid);
                    }
                }
                None => found.push((
                    key.0,
                    key.1,
                    MemfdLink {
                        name: memfd_name,
                        path: fd.path().display().to_string(),
                        pids: vec![pid],
                        size: meta.len(),
                        uid: meta.uid(),
                    },
                )),
            }
        }
    }
    let mut out: Vec<MemfdLink> = found.into_iter().map(|(_, _, l)| l).collect();
    for l in &mut out {
        l.pids.sort_unstable();
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.path.cmp(&b.path)));
    out
}

fn link_locations(address: &Address) -> Vec<Location> {
    let (dir, prefix) = match address {
        Address::Shm(name) => {
            return memfd_links(Some(name))
                .into_iter()
                .map(|l| Location::Memfd(l.path))
                .collect();
        }
        Address::File(path) => match (path.parent(), path.file_name()) {
            (Some(d), Some(f)) => (d.to_path_buf(), f.to_string_lossy().into_owned()),
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    let mut out: Vec<Location> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            link_pid(&name, &prefix)?;
            Some(Location::File(dir.join(name)))
        })
        .collect();
    out.sort_by_key(|l| l.to_string());
    out
}

/// Paths of listening Unix sockets that are utp rendezvous sockets (in a
/// utp runtime directory, named `shm.*`, `sysv.*` or `file.*`), from
/// `/proc/net/unix`.
pub fn listening_sockets() -> Vec<String> {
    let Ok(text) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    let mut out: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 = listening.
            let flags = u32::from_str_radix(cols.get(3)?, 16).ok()?;
            let path = *cols.get(7)?;
            let file = Path::new(path).file_name()?.to_str()?;
            let dir = Path::new(path).parent()?.to_str()?;
            let in_runtime_dir = dir.starts_with("/tmp/utp-") || dir.ends_with("/utp");
            (flags & 0x0001_0000 != 0 && in_runtime_dir && address_of_socket_file(file).is_some())
                .then(|| path.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One utp object on this machine, for `utp ls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `listener` (a rendezvous socket) or `shm-link` (a link region).
    pub kind: &'static str,
    /// The name as the system shows it.
    pub name: String,
    /// Owner uid, when known.
    pub uid: Option<u32>,
    /// Permission bits, when known.
    pub mode: Option<u32>,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// The URL it belongs to, and for links who holds them.
    pub detail: String,
}

/// Lists utp listeners (rendezvous sockets) and memfd link regions.
pub fn list() -> Vec<Entry> {
    let mut out: Vec<Entry> = listening_sockets()
        .into_iter()
        .map(|s| {
            let meta = std::fs::symlink_metadata(&s).ok();
            let file = Path::new(&s)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            Entry {
                kind: "listener",
                detail: address_of_socket_file(&file).unwrap_or_default(),
                uid: meta.as_ref().map(|m| m.uid()),
                mode: meta.as_ref().map(|m| m.mode() & 0o7777),
                size: None,
                name: s,
            }
        })
        .collect();
    out.extend(memfd_links(None).into_iter().map(|l| {
        let endpoint = l
            .name
            .strip_prefix("utp.")
            .and_then(|n| n.rsplit_once('.'))
            .map(|(n, _)| format!("shm://{n}"))
            .unwrap_or_default();
        let pids: Vec<String> = l.pids.iter().map(u32::to_string).collect();
        Entry {
            kind: "shm-link",
            name: format!("memfd:{}", l.name),
            uid: Some(l.uid),
            mode: None,
            size: Some(l.size),
            detail: format!("{endpoint} (held by pids {})", pids.join(", ")),
        }
    }));
    out
}

/// The socket file name `utp` uses for `url` (for tools).
pub fn socket_file_of(endpoint: &Endpoint) -> Result<String> {
    socket_file(&endpoint.address)
}

#[cfg(test)]
mod tests {
    use super::used;

    #[test]
    fn a_reader_past_the_position_last_stored_has_nothing_in_use() {
        assert_eq!(used(64, 64, 4096), 0);
        assert_eq!(used(64, 1000, 4096), 936);
        assert_eq!(
            used(2000, 1000, 4096),
            0,
            "tail stored before the reader passed it"
        );
        assert_eq!(
            used(0, 1 << 40, 4096),
            4096,
            "a word out of range is clamped"
        );
        assert_eq!(used(u64::MAX - 10, 20, 4096), 31, "positions wrap");
    }
}
