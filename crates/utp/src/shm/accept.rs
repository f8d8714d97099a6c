//! The server's half of the handshake: one thread, non-blocking sockets,
//! every pending handshake a small state machine (`docs/shm-layout.md` 2.5).
//!
//! A connecting client is checked (`SO_PEERCRED` against the listener's
//! [`PeerPolicy`]) before anything is read from it; a refused one gets an
//! ERROR frame and is closed, with no region and no slot. Pending
//! handshakes are bounded ([`MAX_PENDING`] in all, [`MAX_PENDING_PER_UID`]
//! per uid) and each has a deadline of [`HANDSHAKE_TIMEOUT`], so silent
//! clients cost a descriptor and a few hundred bytes for at most that
//! long. When the table is full, a handshake that has kept us waiting for
//! its client's next frame longer than [`EVICT_AGE`] (before LINK_HELLO)
//! or [`EVICT_AGE_ATTACHED`] (after LINK_ATTACH: the client maps the
//! region) is closed to make room; while none has, new connections wait in
//! the kernel's backlog. So silent clients never keep an honest one out for
//! long.
//!
//! An honest client must never end up holding a link the server has
//! dropped: once it has sent LINK_READY it believes it is connected. So a
//! handshake is read once more before it is evicted or expires, and one
//! whose LINK_READY is there is delivered, not closed; and the age that
//! makes a handshake evictable counts only time spent waiting for the
//! client, not time the client's frame sat unread while this thread
//! created other clients' regions (a burst of a hundred clients keeps it
//! busy for tens of milliseconds).

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
/// A handshake that has waited this long for its client's LINK_HELLO may
/// be closed to make room for a new connection.
pub const EVICT_AGE: Duration = Duration::from_millis(50);
/// A handshake that has waited this long for LINK_READY after sending
/// LINK_ATTACH may be closed to make room (its client maps and prefaults
/// the region meanwhile, which takes milliseconds, more on a loaded machine).
pub const EVICT_AGE_ATTACHED: Duration = Duration::from_millis(500);
/// How long the acceptor backs off after a failed `accept` or poll.
const SLICE: Duration = Duration::from_millis(20);
/// How often the acceptor looks at the closing flag while no handshake is
/// pending. `close` wakes it at once (it shuts the socket down, see the
/// test `closing_an_idle_listener_wakes_its_acceptor_at_once`), so this is
/// only a safety net, and long: an idle server should not wake 50 times a
/// second, and on a virtual machine a thread that wakes often makes the
/// process's other wake-ups faster too, which flatters the server's own
/// figures against a baseline without such a thread.
const IDLE_SLICE: Duration = Duration::from_secs(1);
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
    /// Since when we wait for the client's next frame: accepted, or
    /// LINK_ATTACH sent. Partial frames do not reset it (a client that
    /// trickles bytes is as stalled as a silent one).
    waiting_since: Instant,
    deadline: Instant,
    /// The frame being read (at most a header and MAX_HANDSHAKE_PAYLOAD).
    buf: Vec<u8>,
    /// Set once LINK_ATTACH is sent: the link waits for LINK_READY.
    link: Option<ShmLink>,
}

impl Pending {
    /// From when it may be closed to make room for a new connection.
    fn evictable_at(&self) -> Instant {
        let age = if self.link.is_some() {
            EVICT_AGE_ATTACHED
        } else {
            EVICT_AGE
        };
        self.waiting_since + age
    }
}

enum Step {
    Continue,
    Ready,
    Drop,
}

/// The pending handshakes and where finished links go.
struct Handshakes<'a> {
    config: &'a Config,
    tx: &'a Sender<ShmLink>,
    bell: &'a crate::wake::Doorbell,
    pending: Vec<Pending>,
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
    let mut table = Handshakes {
        config,
        tx,
        bell,
        pending: Vec::new(),
    };
    while !closing.load(Ordering::Acquire) {
        let now = Instant::now();
        table.expire(now);
        // Full, and nobody has kept us waiting long enough to be evicted:
        // leave new connections in the backlog until someone has.
        let throttled = (table.pending.len() >= MAX_PENDING)
            .then(|| table.pending.iter().map(Pending::evictable_at).min())
            .flatten()
            .map(|at| at.saturating_duration_since(now))
            .filter(|d| !d.is_zero());
        let wait = table
            .pending
            .iter()
            .map(|p| p.deadline.saturating_duration_since(now))
            .chain(throttled)
            .min()
            .unwrap_or(IDLE_SLICE)
            .min(IDLE_SLICE);
        let ready: Vec<bool> = {
            let mut fds = Vec::with_capacity(table.pending.len() + 1);
            let listen_events = if throttled.is_some() {
                PollFlags::empty()
            } else {
                PollFlags::IN
            };
            fds.push(PollFd::new(socket, listen_events));
            // While `accept` has a full queue, LINK_READY stays unread (the
            // link could not be queued); the deadline still applies.
            let queue_full = tx.is_full();
            for p in &table.pending {
                let events = if queue_full && p.link.is_some() {
                    PollFlags::empty()
                } else {
                    PollFlags::IN
                };
                fds.push(PollFd::new(&p.stream, events));
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
        let mut keep = Vec::with_capacity(table.pending.len());
        for (p, ready) in std::mem::take(&mut table.pending)
            .into_iter()
            .zip(&ready[1..])
        {
            if !ready {
                keep.push(p);
            } else if let Some(p) = table.advance(p) {
                keep.push(p);
            }
        }
        table.pending = keep;
        if ready[0] {
            table.accept_all(socket);
        }
    }
}

impl Handshakes<'_> {
    /// Reads what `p`'s client sent and acts on it; the handshake back if
    /// it goes on.
    fn advance(&self, mut p: Pending) -> Option<Pending> {
        match step(&mut p, self.config) {
            Step::Continue => Some(p),
            Step::Drop => None,
            Step::Ready => {
                if let Some(link) = p.link.take() {
                    self.deliver(link);
                }
                None
            }
        }
    }

    /// Queues a finished link for `accept`.
    fn deliver(&self, link: ShmLink) {
        if self.tx.try_send(link).is_ok() {
            self.bell.ring();
        } else {
            log::warn!(
                "{}: {} links wait for accept(); dropping a new one",
                self.config.endpoint.address,
                super::listener::BACKLOG
            );
        }
    }

    /// Closes handshakes past their deadline; one whose LINK_READY has
    /// arrived meanwhile is delivered instead (its client believes it is
    /// connected).
    fn expire(&mut self, now: Instant) {
        if self.pending.iter().all(|p| p.deadline > now) {
            return;
        }
        for p in std::mem::take(&mut self.pending) {
            if p.deadline > now {
                self.pending.push(p);
            } else if p.link.is_some() {
                // Delivered if finished; closed either way.
                let _ = self.advance(p);
            }
        }
    }

    /// Makes room by closing the handshake (of `uid`, if given) that has
    /// waited longest for its client, if it has waited long enough: read
    /// first, so one whose frame is there goes on (or is delivered)
    /// instead. False if nobody could be closed.
    fn make_room(&mut self, uid: Option<u32>) -> bool {
        loop {
            let now = Instant::now();
            let Some(victim) = self
                .pending
                .iter()
                .enumerate()
                .filter(|(_, p)| uid.is_none_or(|uid| p.uid == uid))
                .filter(|(_, p)| p.evictable_at() <= now)
                .min_by_key(|(_, p)| p.waiting_since)
                .map(|(i, _)| i)
            else {
                return false;
            };
            let p = self.pending.remove(victim);
            match self.advance(p) {
                // Finished, or closed for a bad frame: room made.
                None => return true,
                Some(p) if p.evictable_at() <= Instant::now() => {
                    log::debug!(
                        "{}: closing a handshake that kept us waiting {:?} to make room",
                        self.config.endpoint.address,
                        now.saturating_duration_since(p.waiting_since)
                    );
                    return true;
                }
                // It had sent its next frame: it goes on; look again.
                Some(p) => self.pending.push(p),
            }
        }
    }

    fn accept_all(&mut self, socket: &UnixListener) {
        let url = self.config.endpoint.address.to_string();
        loop {
            if self.pending.len() >= MAX_PENDING && !self.make_room(None) {
                return; // nobody to evict: the rest waits in the backlog
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
            if let Err(e) = self.config.policy.check_client(&url, uid, gid, peer.pid) {
                log::info!("{e}");
                refuse(&stream, &e.to_string());
                continue;
            }
            // One uid may not fill the table with stalled handshakes; its
            // new connection goes on regardless (MAX_PENDING bounds all).
            if self.pending.iter().filter(|p| p.uid == uid).count() >= MAX_PENDING_PER_UID
                && self.make_room(Some(uid))
            {
                log::debug!("{url}: too many handshakes from uid {uid}; closed a stalled one");
            }
            let now = Instant::now();
            self.pending.push(Pending {
                stream,
                peer,
                uid,
                waiting_since: now,
                deadline: now + HANDSHAKE_TIMEOUT,
                buf: Vec::new(),
                link: None,
            });
        }
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
                p.waiting_since = Instant::now();
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
    let features = hello.features & rendezvous::FEATURES;
    // Fresh keys per link, from the kernel: nothing a sender of payload
    // bytes can learn or predict (`docs/shm-layout.md` 4.1).
    let stamp_keys = if features & rendezvous::FEATURE_KEYED_STAMPS != 0 {
        [rendezvous::stamp_key(), rendezvous::stamp_key()]
    } else {
        [0, 0]
    };
    // SAFETY: the region maps `len` = DATA_OFFSET + 2*capacity bytes, page
    // aligned; `control` is dropped at the end of this statement, before the
    // region moves into the link.
    unsafe { Control::new(base) }.init(len, capacity, id, stamp_keys);
    let attach = Attach {
        location: region.location().clone(),
        region_len: len as u64,
        capacity: capacity as u64,
        link_id: id,
        features: features as u16,
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
    link.enable_features(u32::from(attach.features));
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

#[cfg(test)]
mod tests {
    //! The eviction rules, driven by hand over socket pairs: the server's
    //! end sits in the table, the test plays the client.
    use super::*;
    use crate::shm::rendezvous::{
        FEATURE_KEYED_STAMPS, FEATURE_PIECES, FEATURE_WAKE_BYTES, FEATURES, Hello,
    };

    struct Table {
        config: Config,
        tx: Sender<ShmLink>,
        rx: crossbeam_channel::Receiver<ShmLink>,
        bell: crate::wake::Doorbell,
        pending: Vec<Pending>,
    }

    impl Table {
        fn new() -> Table {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let endpoint = Endpoint::parse(&format!(
                "shm://utp-evict-{}-{n}?ring=64K",
                std::process::id()
            ))
            .unwrap();
            let (tx, rx) = crossbeam_channel::bounded(4);
            Table {
                config: Config {
                    settings: super::super::handshake::settings(&endpoint).unwrap(),
                    policy: PeerPolicy::from_endpoint(&endpoint).unwrap(),
                    endpoint,
                    max_payload: frame::DEFAULT_MAX_PAYLOAD,
                    idle_timeout: None,
                },
                tx,
                rx,
                bell: crate::wake::Doorbell::new().unwrap(),
                pending: Vec::new(),
            }
        }

        /// Runs `f` on the table as the acceptor thread would.
        fn with<R>(&mut self, f: impl FnOnce(&mut Handshakes<'_>) -> R) -> R {
            let mut table = Handshakes {
                config: &self.config,
                tx: &self.tx,
                bell: &self.bell,
                pending: std::mem::take(&mut self.pending),
            };
            let result = f(&mut table);
            self.pending = table.pending;
            result
        }

        /// A connection accepted `waited` ago; the client's end.
        fn connect(&mut self, waited: Duration) -> UnixStream {
            let (server, client) = UnixStream::pair().unwrap();
            server.set_nonblocking(true).unwrap();
            let since = Instant::now() - waited;
            let me = rustix::process::getuid().as_raw();
            self.pending.push(Pending {
                stream: server,
                peer: PeerInfo::default(),
                uid: me,
                waiting_since: since,
                deadline: since + HANDSHAKE_TIMEOUT,
                buf: Vec::new(),
                link: None,
            });
            client
        }
    }

    fn hello(client: &UnixStream) {
        hello_with(client, FEATURE_WAKE_BYTES);
    }

    fn hello_with(client: &UnixStream, features: u32) {
        let hello = Hello {
            capacity: 0,
            features,
        };
        rendezvous::send_frame(client, message_type::LINK_HELLO, &hello.encode(), None).unwrap();
    }

    /// The server agrees to the features of the client's offer it knows,
    /// and its end of the link uses what was agreed: a client that reads
    /// rings itself and offers only wake-up bytes (Python's) is never sent
    /// a record in pieces nor a keyed stamp, and finds no key in the
    /// region; one that agreed to keyed stamps finds two fresh keys there,
    /// the ones the server's ends use.
    #[test]
    fn the_server_agrees_to_the_offered_features_it_knows() {
        let offers = [
            (FEATURES, FEATURES),
            (FEATURE_WAKE_BYTES, FEATURE_WAKE_BYTES),
            (FEATURE_PIECES, FEATURE_PIECES),
            (FEATURE_KEYED_STAMPS, FEATURE_KEYED_STAMPS),
            (0, 0),
            (FEATURES | 0x8000_0000, FEATURES),
        ];
        for (offered, agreed) in offers {
            let mut t = Table::new();
            let client = t.connect(Duration::ZERO);
            hello_with(&client, offered);
            let p = t.pending.pop().unwrap();
            let p = t.with(|h| h.advance(p)).expect("waits for LINK_READY");
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let (payload, _fds) =
                rendezvous::recv_frame(&client, message_type::LINK_ATTACH).unwrap();
            let attach = rendezvous::Attach::decode(&payload).unwrap();
            assert_eq!(u32::from(attach.features), agreed, "offered {offered:#x}");
            let link = p.link.as_ref().expect("the server's end");
            let pieces = agreed & FEATURE_PIECES != 0;
            assert_eq!(link.tx.pieces(), pieces, "offered {offered:#x}");
            assert_eq!(link.rx.pieces(), pieces, "offered {offered:#x}");
            let base = NonNull::new(link.region().as_ptr()).unwrap();
            // SAFETY: the link's region is mapped and initialised; the
            // control value lives only in this statement.
            let keys = [0, 1].map(|r| unsafe { Control::new(base) }.stamp_key(r));
            if agreed & FEATURE_KEYED_STAMPS != 0 {
                assert!(
                    keys[0] != 0 && keys[1] != 0 && keys[0] != keys[1],
                    "{keys:x?}"
                );
                assert_eq!(
                    link.tx.stamp_key(),
                    Some(keys[0]),
                    "the server writes ring 0"
                );
                assert_eq!(link.rx.stamp_key(), Some(keys[1]), "and reads ring 1");
            } else {
                assert_eq!(keys, [0, 0], "offered {offered:#x}");
                assert_eq!((link.tx.stamp_key(), link.rx.stamp_key()), (None, None));
            }
        }
    }

    /// Takes the server's LINK_ATTACH (and the memfd with it).
    fn take_attach(client: &UnixStream) {
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        rendezvous::recv_frame(client, message_type::LINK_ATTACH).unwrap();
    }

    /// The acceptor sleeps a whole `IDLE_SLICE` while nothing is pending;
    /// closing the listener must wake it, not wait for the slice to end.
    #[test]
    fn closing_an_idle_listener_wakes_its_acceptor_at_once() {
        let url = format!("shm://utp-idle-close-{}", std::process::id());
        let mut listener = crate::listen(&url).unwrap();
        // Let the acceptor reach its idle wait.
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        listener.close().unwrap();
        let took = started.elapsed();
        assert!(took < IDLE_SLICE / 2, "close took {took:?}");
    }

    #[test]
    fn a_silent_handshake_is_evicted_once_it_kept_us_waiting_long_enough() {
        let mut t = Table::new();
        let _young = t.connect(EVICT_AGE / 2);
        assert!(!t.with(|h| h.make_room(None)), "evicted a young handshake");
        let _stalled = t.connect(EVICT_AGE * 2);
        assert!(t.with(|h| h.make_room(None)));
        assert_eq!(t.pending.len(), 1);
        assert!(t.pending[0].waiting_since > Instant::now() - EVICT_AGE);
    }

    #[test]
    fn a_handshake_whose_hello_sat_unread_goes_on_instead_of_being_evicted() {
        let mut t = Table::new();
        let client = t.connect(EVICT_AGE * 2);
        hello(&client);
        // Its HELLO is there: it is read, the region made, and it now
        // waits for LINK_READY, young again.
        assert!(!t.with(|h| h.make_room(None)));
        assert_eq!(t.pending.len(), 1);
        assert!(t.pending[0].link.is_some());
        take_attach(&client);
    }

    #[test]
    fn a_client_mapping_its_region_is_given_longer_than_a_silent_one() {
        let mut t = Table::new();
        let client = t.connect(Duration::ZERO);
        hello(&client);
        let p = t.pending.pop().unwrap();
        let p = t.with(|h| h.advance(p)).expect("waits for LINK_READY");
        t.pending.push(p);
        take_attach(&client);
        // Older than EVICT_AGE but younger than EVICT_AGE_ATTACHED.
        t.pending[0].waiting_since = Instant::now() - EVICT_AGE * 4;
        assert!(!t.with(|h| h.make_room(None)));
        t.pending[0].waiting_since = Instant::now() - EVICT_AGE_ATTACHED;
        assert!(t.with(|h| h.make_room(None)));
        assert!(t.pending.is_empty());
        assert!(t.rx.is_empty(), "an evicted link was delivered");
    }

    #[test]
    fn a_link_whose_ready_arrived_is_delivered_not_evicted_or_expired() {
        for expire in [false, true] {
            let mut t = Table::new();
            let client = t.connect(Duration::ZERO);
            hello(&client);
            let p = t.pending.pop().unwrap();
            let mut p = t.with(|h| h.advance(p)).unwrap();
            take_attach(&client);
            rendezvous::send_frame(&client, message_type::LINK_READY, &[], None).unwrap();
            // The acceptor did not get to it before it was due.
            p.waiting_since = Instant::now() - EVICT_AGE_ATTACHED * 2;
            p.deadline = Instant::now() - Duration::from_millis(1);
            t.pending.push(p);
            if expire {
                t.with(|h| h.expire(Instant::now()));
            } else {
                assert!(t.with(|h| h.make_room(None)));
            }
            assert!(t.pending.is_empty());
            assert_eq!(
                t.rx.len(),
                1,
                "the finished link was dropped (expire: {expire})"
            );
        }
    }
}
