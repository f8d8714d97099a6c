//! Reading links and listing endpoints from outside, for `utp inspect`
//! and `utp ls`. Only reads: never changes a link it looks at.

use super::layout::{Control, SideField, state};
use super::reclaim::{link_pid, pid_alive};
use super::region::{Location, Region};
use super::rendezvous::socket_name;
use super::sync::Ordering;
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::now_micros;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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
    /// Frames this side sent.
    pub messages: u64,
    /// Bytes this side sent.
    pub bytes: u64,
}

/// One ring as read from its index block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingState {
    /// Data area size.
    pub capacity: u64,
    /// Read position.
    pub head: u64,
    /// Write position.
    pub tail: u64,
    /// Bytes published and unread (`tail - head`, clamped to the capacity).
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
}

/// Reads the state of the link region at `location`.
pub fn link_state(location: &Location) -> Result<LinkState> {
    let len = match location {
        Location::Posix(name) => std::fs::metadata(format!("/dev/shm{name}")),
        Location::File(path) => std::fs::metadata(path),
        Location::SysV(_) => {
            return Err(Error::Protocol(
                "System V links are private segments; inspect them through their server".into(),
            ));
        }
    }
    .map_err(|e| Error::io(format!("stat {location}"), e))?
    .len() as usize;
    let region = Region::open(location.clone(), len)?;
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
            used: tail.wrapping_sub(head).min(capacity),
        }
    };
    Ok(LinkState {
        location: location.to_string(),
        link_id: control.link_id(),
        sides: [side(0), side(1)],
        rings: [ring(0), ring(1)],
    })
}

/// What `utp inspect URL` shows for a shared-memory endpoint.
#[derive(Debug)]
pub struct EndpointState {
    /// The endpoint.
    pub url: String,
    /// Whether a server listens (its abstract socket is bound).
    pub listening: bool,
    /// The abstract socket name.
    pub socket: String,
    /// Live (or stale) links of this endpoint with their state.
    pub links: Vec<(Location, Result<LinkState>)>,
}

/// Inspects a shared-memory endpoint: is a server listening, and its links.
pub fn endpoint_state(endpoint: &Endpoint) -> Result<EndpointState> {
    let socket = socket_name(&endpoint.address)?;
    let listening = listening_sockets().contains(&socket);
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
        socket: format!("@{socket}"),
        links,
    })
}

fn link_locations(address: &Address) -> Vec<Location> {
    let (dir, prefix, posix) = match address {
        Address::Shm(name) => (PathBuf::from("/dev/shm"), format!("utp.{name}"), true),
        Address::File(path) => match (path.parent(), path.file_name()) {
            (Some(d), Some(f)) => (d.to_path_buf(), f.to_string_lossy().into_owned(), false),
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
            Some(if posix {
                Location::Posix(format!("/{name}"))
            } else {
                Location::File(dir.join(name))
            })
        })
        .collect();
    out.sort_by_key(|l| l.to_string());
    out
}

/// Names (without `@`) of listening abstract sockets starting with `utp/`,
/// from `/proc/net/unix`.
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
            let path = cols.get(7)?.strip_prefix('@')?;
            (flags & 0x0001_0000 != 0 && path.starts_with("utp/")).then(|| path.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One utp object on this machine, for `utp ls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `listener` (an abstract socket) or `shm-link` (a region in /dev/shm).
    pub kind: &'static str,
    /// The name as the system shows it.
    pub name: String,
    /// Owner uid, when known.
    pub uid: Option<u32>,
    /// Permission bits, when known.
    pub mode: Option<u32>,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// The URL it belongs to, and for links whether the server pid lives.
    pub detail: String,
}

/// Lists utp listeners (abstract sockets `@utp/...`) and link regions
/// (`/dev/shm/utp.*`).
pub fn list() -> Vec<Entry> {
    let mut out: Vec<Entry> = listening_sockets()
        .into_iter()
        .map(|s| Entry {
            kind: "listener",
            detail: url_of_socket(&s),
            name: format!("@{s}"),
            uid: None,
            mode: None,
            size: None,
        })
        .collect();
    let mut links: Vec<Entry> = std::fs::read_dir(Path::new("/dev/shm"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix("utp.")?;
            let meta = e.metadata().ok()?;
            let mut parts = rest.rsplitn(3, '.');
            let (_n, pid, endpoint) = (parts.next()?, parts.next()?, parts.next()?);
            let pid: u32 = pid.parse().ok()?;
            let alive = if pid_alive(pid) {
                "server alive"
            } else {
                "server dead: stale"
            };
            Some(Entry {
                kind: "shm-link",
                detail: format!("shm://{endpoint} (server pid {pid}, {alive})"),
                name: format!("/dev/shm/{name}"),
                uid: Some(meta.uid()),
                mode: Some(meta.mode() & 0o7777),
                size: Some(meta.len()),
            })
        })
        .collect();
    links.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(links);
    out
}

fn url_of_socket(s: &str) -> String {
    if let Some(n) = s.strip_prefix("utp/shm/") {
        format!("shm://{n}")
    } else if let Some(k) = s.strip_prefix("utp/sysv/") {
        format!("sysv://{k}")
    } else if let Some(p) = s.strip_prefix("utp/file/") {
        format!("file://{p}")
    } else {
        format!("unix://@{s}")
    }
}
