//! The server's half of the handshake: one thread, non-blocking sockets,
//! every pending handshake a small state machine (`docs/shm-layout.md` 2.5).
//!
//! A connecting client is checked (`SO_PEERCRED` against the listener's
//! [`PeerPolicy`]) before anything is read from it; a refused one gets an
//! ERROR frame and is closed, with no region and no slot. Pending
//! handshakes are bounded ([`MAX_PENDING`] in all, [`MAX_PENDING_PER_UID`]
//! per uid) and each has a deadline of [`HANDSHAKE_TIMEOUT`], so silent
//! clients cost a descriptor and a few hundred bytes for at most that
//! long. When the table is full, a handshake older than [`EVICT_AGE`] is
//! closed to make room (an honest client finishes in well under that);
//! while all are younger, new connections wait in the kernel's backlog. So
//! silent clients never keep an honest one out for long.

use super::handshake::{HANDSHAKE_TIMEOUT, MAX_CLIENT_CAPACITY, Settings, peer_creds};
use super::layout::{self, Control};
use super::link::{ShmLink, Side};
use super::region::{Location, Region};
use super::rendezvous::{self, Attach};
use crate::ProtocolReason;
use crate::channel::PeerInfo;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::frame::{self, HEADER_LEN, message_type};
use crate::identity::PeerPolicy;
use crossbeam_channel::Sender;
use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Most handshakes in progress at once; a new connection beyond this
/// closes the oldest pending one.
pub const MAX_PENDING: usize = 256;
/// Most handshakes in progress from one uid.
pub const MAX_PENDING_PER_UID: usize = 64;
/// A pending handshake this old may be closed to make room for a new one.
pub const EVICT_AGE: Duration = Duration::from_millis(50);
/// How often the acceptor looks at the closing flag while idle.
const SLICE: Duration = Duration::from_millis(20);
/// How many random names a file link tries before giving up.
const NAME_ATTEMPTS: usize = 8;

static NEXT_LINK: AtomicU32 = AtomicU32::new(1);

/// What a handshake needs to know.
#[derive(Debug)]
pub(super) struct Config {
    pub(super) endpoint: Endpoint,
    pub(super) settings: Settings,
    pub(super) max_payload: usize,
    pub(super) policy: PeerPolicy,
    /// Reported by each link's readiness (servers close idle links).
    pub(super) idle_timeout: Option<Duration>,
}

struct Pending {
    stream: UnixStream,
    peer: PeerInfo,
    uid: u32,
    started: Instant,
    deadline: Instant,
    /// The frame being read (at most a header and MAX_HANDSHAKE_PAYLOAD).
    buf: Vec<u8>,
    /// Set once LINK_ATTACH is sent: the link waits for LINK_READY.
    link: Option<ShmLink>,
}

enum Step {
    Continue,
    Ready,
    Drop,
}

/// Runs until `closing` is set: accepts, checks and completes handshakes,
/// and queues finished links on `tx`.
pub(super) fn run(
    socket: &UnixListener,
    closing: &AtomicBool,
    config: &Config,
    tx: &Sender<ShmLink>,
    bell: &crate::wake::Doorbell,
) {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut pending: Vec<Pending> = Vec::new();
    while !closing.load(Ordering::Acquire) {
        let now = Instant::now();
        pending.retain(|p| p.deadline > now);
        // Full of young handshakes: leave new connections in the backlog
        // until the oldest may be evicted.
        let throttled = (pending.len() >= MAX_PENDING)
            .then(|| (pending[0].started + EVICT_AGE).saturating_duration_since(now))
            .filter(|d| !d.is_zero());
        let wait = pending
            .iter()
            .map(|p| p.deadline.saturating_duration_since(now))
            .chain(throttled)
            .min()
            .unwrap_or(SLICE)
            .min(SLICE);
        let ready: Vec<bool> = {
            let mut fds = Vec::with_capacity(pending.len() + 1);
            let listen_events = if throttled.is_some() {
                PollFlags::empty()
            } else {
                PollFlags::IN
            };
            fds.push(PollFd::new(socket, listen_events));
            for p in &pending {
                fds.push(PollFd::new(&p.stream, PollFlags::IN));
            }
            let ts = rustix::time::Timespec {
                tv_sec: wait.as_secs() as i64,
                tv_nsec: wait.subsec_nanos() as i64,
            };
            match poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => std::thread::sleep(SLICE),
            }
            fds.iter().map(|f| !f.revents().is_empty()).collect()
        };
        // Existing handshakes first: an accept below may evict one.
        let mut i = 0;
        let mut keep = Vec::with_capacity(pending.len());
        for mut p in pending.drain(..) {
            i += 1;
            if !ready[i] {
                keep.push(p);
                continue;
            }
            match step(&mut p, config) {
                Step::Continue => keep.push(p),
                Step::Drop => {}
                Step::Ready => {
                    let queued = p.link.take().map(|link| tx.try_send(link).is_ok());
                    if queued == Some(true) {
                        bell.ring();
                    }
                    if queued == Some(false) {
                        log::warn!(
                            "{}: {} links wait for accept(); dropping a new one",
                            config.endpoint.address,
                            super::listener::BACKLOG
                        );
                    }
                }
            }
        }
        pending = keep;
        if ready[0] {
            accept_all(socket, config, &mut pending);
        }
    }
}

fn accept_all(socket: &UnixListener, config: &Config, pending: &mut Vec<Pending>) {
    let url = config.endpoint.address.to_string();
    loop {
        if pending.len() >= MAX_PENDING {
            if pending[0].started.elapsed() < EVICT_AGE {
                return; // all young: the rest waits in the backlog
            }
            log::debug!("{url}: {MAX_PENDING} handshakes pending; closing the oldest");
            pending.remove(0);
        }
        let stream = match socket.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                log::warn!("{url}: accept failed: {e}");
                std::thread::sleep(SLICE);
                return;
            }
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        let peer = peer_creds(&stream, &url);
        let (Some(uid), Some(gid)) = (peer.uid, peer.gid) else {
            continue;
        };
        if let Err(e) = config.policy.check_client(&url, uid, gid, peer.pid) {
            log::info!("{e}");
            refuse(&stream, &e.to_string());
            continue;
        }
        if pending.iter().filter(|p| p.uid == uid).count() >= MAX_PENDING_PER_UID
            && let Some(oldest) = pending.iter().position(|p| p.uid == uid)
            && pending[oldest].started.elapsed() >= EVICT_AGE
        {
            log::debug!("{url}: too many handshakes from uid {uid}; closing the oldest");
            pending.remove(oldest);
        }
        let now = Instant::now();
        pending.push(Pending {
            stream,
            peer,
            uid,
            started: now,
            deadline: now + HANDSHAKE_TIMEOUT,
            buf: Vec::new(),
            link: None,
        });
    }
}

/// Best effort: one ERROR frame, then the caller drops the connection.
fn refuse(stream: &UnixStream, text: &str) {
    let _ = rendezvous::send_frame(stream, message_type::ERROR, text.as_bytes(), None);
}

/// Reads what is there; when a whole frame has arrived, acts on it.
fn step(p: &mut Pending, config: &Config) -> Step {
    loop {
        let need = if p.buf.len() < HEADER_LEN {
            HEADER_LEN
        } else {
            match frame::decode_header(&p.buf[..HEADER_LEN], rendezvous::MAX_HANDSHAKE_PAYLOAD) {
                Ok(h) => h.frame_len(),
                Err(e) => {
                    refuse(&p.stream, &format!("bad handshake frame: {e}"));
                    return Step::Drop;
                }
            }
        };
        if p.buf.len() == need {
            break;
        }
        let mut chunk = [0u8; 512];
        let want = (need - p.buf.len()).min(chunk.len());
        match (&p.stream).read(&mut chunk[..want]) {
            Ok(0) => return Step::Drop,
            Ok(n) => p.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Step::Continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Step::Drop,
        }
    }
    let bytes = std::mem::take(&mut p.buf);
    match p.link.as_mut() {
        None => match attach(p, &bytes, config) {
            Ok(link) => {
                p.link = Some(link);
                Step::Continue
            }
            Err(e) => {
                log::info!("{}: handshake failed: {e}", config.endpoint.address);
                Step::Drop
            }
        },
        Some(link) => match rendezvous::check_frame(&bytes, message_type::LINK_READY) {
            Ok(_) => {
                link.learn_peer();
                Step::Ready
            }
            Err(_) => Step::Drop,
        },
    }
}

/// Handles LINK_HELLO: creates the region and sends LINK_ATTACH. Every
/// failure the client could act on is sent to it as an ERROR frame.
fn attach(p: &mut Pending, bytes: &[u8], config: &Config) -> Result<ShmLink> {
    let fail = |p: &Pending, e: Error| {
        refuse(&p.stream, &e.to_string());
        Err(e)
    };
    let hello = match frame::decode(bytes, rendezvous::MAX_HANDSHAKE_PAYLOAD) {
        Ok((h, payload)) if h.message_type == message_type::LINK_HELLO => {
            if payload.len() < 16 {
                return fail(
                    p,
                    Error::protocol(
                        ProtocolReason::Corrupt,
                        format!("LINK_HELLO of {} bytes, expected 16", payload.len()),
                    ),
                );
            }
            let version = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
            if version != layout::LAYOUT_VERSION {
                return fail(
                    p,
                    Error::protocol(
                        ProtocolReason::Version,
                        rendezvous::version_mismatch(version),
                    ),
                );
            }
            rendezvous::Hello::decode(payload)?
        }
        Ok((h, _)) => {
            return fail(
                p,
                Error::protocol(
                    ProtocolReason::Unexpected,
                    format!(
                        "expected LINK_HELLO (0x20), got frame type 0x{:02x}",
                        h.message_type
                    ),
                ),
            );
        }
        Err(e) => return fail(p, e.into()),
    };
    // A client may ask for other rings, up to the larger of the server's
    // own size and MAX_CLIENT_CAPACITY.
    let own = config.settings.capacity;
    let capacity = match usize::try_from(hello.capacity).unwrap_or(0) {
        c if layout::valid_capacity(c) && c <= own.max(MAX_CLIENT_CAPACITY) => c,
        _ => own,
    };
    let len = layout::region_len(capacity).ok_or(Error::Full)?;
    let id = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
    let region = match create_region(config, id, len) {
        Ok(r) => r,
        Err(e) => return fail(p, e),
    };
    let base = NonNull::new(region.as_ptr()).ok_or(Error::Closed)?;
    // SAFETY: the region maps `len` = DATA_OFFSET + 2*capacity bytes, page
    // aligned; `control` is dropped at the end of this statement, before the
    // region moves into the link.
    unsafe { Control::new(base) }.init(len, capacity, id);
    let attach = Attach {
        location: region.location().clone(),
        region_len: len as u64,
        capacity: capacity as u64,
        link_id: id,
        features: (hello.features & rendezvous::FEATURE_WAKE_BYTES) as u16,
    };
    let notice = p
        .stream
        .try_clone()
        .map_err(|e| Error::io("dup link socket", e))?;
    let mut link = ShmLink::new(
        region,
        Side::Server,
        Some(notice),
        config.settings.wait,
        config.max_payload,
        p.peer.clone(),
        config.endpoint.address.to_string(),
    )?;
    link.set_idle_timeout(config.idle_timeout);
    if attach.features != 0 {
        link.enable_events();
    }
    rendezvous::send_frame(
        &p.stream,
        message_type::LINK_ATTACH,
        &attach.encode(),
        link.region().memfd(),
    )?;
    Ok(link)
}

/// A new region for link `id`; for a file, a fresh random name, retried
/// (and logged) if someone created that name first.
fn create_region(config: &Config, id: u32, len: usize) -> Result<Region> {
    let address = &config.endpoint.address;
    for _ in 0..NAME_ATTEMPTS {
        let location = rendezvous::link_location(address, std::process::id(), id);
        match Region::create(location.clone(), len) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = match &location {
                    Location::File(p) => std::fs::symlink_metadata(p)
                        .map(|m| {
                            use std::os::unix::fs::MetadataExt;
                            format!("uid {}", m.uid())
                        })
                        .unwrap_or_else(|_| "unknown".into()),
                    _ => "unknown".into(),
                };
                log::warn!(
                    "{address}: link name {location} already exists (owner {owner}); \
                     someone pre-created it; trying another random name"
                );
            }
            other => return other,
        }
    }
    Err(Error::InUse {
        endpoint: address.to_string(),
        hint: Some(format!(
            "{NAME_ATTEMPTS} random link names were all taken; is someone creating them?"
        )),
    })
}
