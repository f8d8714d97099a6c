//! `mq://NAME`: POSIX message queues, one UTP frame per message, with priorities.
//!
//! # Queues
//!
//! - The listener creates the **accept queue** `/utp.NAME` (mode 0600) and
//!   holds an exclusive `flock` on it while it lives; it unlinks it when
//!   closed or dropped. A queue left by a crashed server has no lock holder:
//!   a new listener replaces it, a client reports "no server".
//! - Each client creates its **own pair**, `/utp.NAME.ID.c2s` and
//!   `/utp.NAME.ID.s2c` (0600, `O_EXCL`; ID is the pid and 64 random bits in
//!   hex, so nobody can pre-create the next client's names; a name that
//!   exists anyway is skipped with a log line and another drawn), and sends
//!   `utp-mq1 ID` to the accept queue. The server opens the pair, refuses it
//!   unless both queues are this user's and private (0600) and the client
//!   still holds its sending queue locked (it did not die after asking),
//!   and answers on `s2c` with an ACK
//!   frame (sequence 0, payload `utp-mq1 accepted`); then both names are unlinked, so
//!   nothing is left in `/dev/mqueue` even if either process crashes later.
//!   So any number of clients can talk to one server at once, each on its
//!   own queues.
//!
//! # Identity
//!
//! A message-queue descriptor is a file on the mqueue filesystem, so `fstat`
//! on it gives the queue's owner. Both ends check it against their
//! [`PeerPolicy`] (own uid and root by default; `?allow_uid=` /
//! `?allow_gid=` widen it):
//!
//! - a client refuses an accept queue created by a uid it does not trust
//!   ("mq://NAME is served by uid 65534, not by you"), before it creates
//!   anything;
//! - the server refuses a client whose queue pair is owned by a uid it does
//!   not trust, and tells it so in an ERROR frame on the client's queue.
//!
//! The accept queue is 0600, so by default only the server's own uid (and
//! root) can even send a hello. A listener with `allow_uid` / `allow_gid`
//! makes it writable by others (0622) so the users it admits can ask; whom
//! it serves is still decided by the owner of each client's queues. A
//! client's queues are 0600: a server of another uid can open them only if
//! it runs as root.
//!
//! # Frames, priorities and limits
//!
//! One message carries one whole UTP frame (header and payload). An empty
//! message means "goodbye" (the peer's next receive reports
//! [`Error::PeerGone`]). Each side holds an exclusive `flock` on the queue it
//! sends on; the other side tests that lock whenever a wait slice passes
//! empty (before reporting a timeout, too), so a peer that crashed is
//! noticed within [`LIVENESS_CHECK`], and a server releases a dead client's
//! queues (and its share of `RLIMIT_MSGQUEUE`) at once.
//!
//! Messages carry a priority: the kernel delivers the highest priority
//! first, in order within one priority. [`MqChannel::send_with_priority`]
//! chooses it per frame; `?priority=N` sets the default for plain sends
//! (0 otherwise); [`MqChannel::last_priority`] tells what a received frame had.
//! `?depth=N` sets how many messages each of a client's queues holds
//! (default: sized for the message, see [`default_depth`]).
//!
//! The kernel caps a queue's message size at `/proc/sys/fs/mqueue/msgsize_max`
//! (8,192 bytes by default) and its depth at `/proc/sys/fs/mqueue/msg_max`
//! (10); see [`limits`]. A client sizes its queues to
//! `min(32 + max_payload, msgsize_max)` bytes, so **payloads are limited to
//! 8,160 bytes by default**; a larger one is refused with [`Error::TooLarge`]
//! naming the limit. Each user may also lock only `RLIMIT_MSGQUEUE` bytes of
//! queues (800 KiB by default): about twelve concurrent clients at the default
//! sizes; a client that finds no room waits for it within its connect timeout. Timeouts use `mq_timedsend` / `mq_timedreceive`.

mod channel;
mod handshake;
mod sys;

pub use channel::MqChannel;
pub use handshake::{MqListener, connect, inject_raw, listen};

use crate::DeniedReason;
use crate::channel::{Channel, Deadline, Listener, Options, PeerInfo};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::{
    self, Frame, FrameRef, HEADER_LEN, Stamper, flags as frame_flags, message_type,
};
use crate::identity::PeerPolicy;
use rustix::fs::FlockOperation;
use rustix::io::Errno;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use sys::Attr;

/// How often a waiting side checks that its peer is still alive.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(100);
/// Priorities must be below this (Linux's `MQ_PRIO_MAX`).
pub const PRIORITY_LIMIT: u32 = 32_768;
/// Smallest default depth of a client's queues (`?depth=N` sets any depth,
/// capped at `msg_max`).
///
/// The default is sized for the message: as deep as [`DEFAULT_QUEUE_BYTES`]
/// allows, at least this, at most `msg_max` (see [`default_depth`]).
pub const DEFAULT_DEPTH: usize = 4;
/// Bytes of messages a client's queue may hold by default: what the kernel
/// charges per queue against the user's `RLIMIT_MSGQUEUE` (800 KiB by
/// default), so at the default 8 KiB messages (4 deep) about twelve clients
/// fit at once, and clients with smaller messages get deeper queues for the
/// same charge. A deeper queue lets a streaming sender run further ahead,
/// so each wake-up of the receiver moves more messages.
pub const DEFAULT_QUEUE_BYTES: usize = 32 * 1024;

/// The depth a client gives its queues when the URL has no `?depth=`: as
/// many `message_size`-byte messages as [`DEFAULT_QUEUE_BYTES`] holds, at
/// least [`DEFAULT_DEPTH`], at most `msg_max`.
pub fn default_depth(message_size: usize, limits: &MqLimits) -> usize {
    (DEFAULT_QUEUE_BYTES / message_size.max(1))
        .max(DEFAULT_DEPTH)
        .min(limits.msg_max)
        .max(1)
}

/// The size of each message of a new client's queues: one frame of up to
/// `max_payload` bytes, capped by `msgsize_max`.
pub fn message_size(max_payload: usize, limits: &MqLimits) -> usize {
    (HEADER_LEN + max_payload).min(limits.msgsize_max)
}

/// Depth of the accept queue.
const ACCEPT_DEPTH: usize = 10;
/// Message size of the accept queue.
const ACCEPT_MESSAGE_SIZE: usize = 256;
const HELLO: &str = "utp-mq1 ";
const ACCEPTED: &[u8] = b"utp-mq1 accepted";
const TRANSPORT: &str = "mq (one frame per message: the queue's message size, set from the \
                         max_payload option (?max_payload=N) and capped by \
                         /proc/sys/fs/mqueue/msgsize_max, includes the 32-byte header)";

/// The system's message-queue limits, from `/proc/sys/fs/mqueue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MqLimits {
    /// Most messages an unprivileged process may give a queue (`msg_max`).
    pub msg_max: usize,
    /// Largest message size an unprivileged process may give a queue (`msgsize_max`).
    pub msgsize_max: usize,
    /// Most queues on the system (`queues_max`).
    pub queues_max: usize,
}

/// Reads [`MqLimits`]; Linux's defaults where a file cannot be read.
pub fn limits() -> MqLimits {
    let read = |file: &str, default: usize| {
        std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{file}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(default)
    };
    MqLimits {
        msg_max: read("msg_max", 10),
        msgsize_max: read("msgsize_max", 8192),
        queues_max: read("queues_max", 256),
    }
}

/// The largest payload a new `mq://` client can use with these options.
pub fn max_payload(options: &Options) -> usize {
    (limits().msgsize_max.saturating_sub(HEADER_LEN)).min(options.max_payload)
}

fn queue_name(name: &str, suffix: &str) -> String {
    if suffix.is_empty() {
        format!("/utp.{name}")
    } else {
        format!("/utp.{name}.{suffix}")
    }
}

fn open_error(queue: &str, e: Errno) -> Error {
    match e {
        Errno::ACCESS => Error::denied(
            DeniedReason::Unsafe,
            format!("message queue {queue}: permission denied"),
        ),
        Errno::MFILE | Errno::NFILE | Errno::NOSPC | Errno::NOMEM => Error::io(
            format!(
                "create message queue {queue} (out of queue space: each user may lock \
                 RLIMIT_MSGQUEUE bytes, 800 KiB by default, and the system allows \
                 /proc/sys/fs/mqueue/queues_max queues)"
            ),
            e,
        ),
        Errno::INVAL => Error::io(
            format!(
                "create message queue {queue} (size above /proc/sys/fs/mqueue limits {:?})",
                limits()
            ),
            e,
        ),
        e => Error::io(format!("open message queue {queue}"), e),
    }
}

fn try_lock(fd: &OwnedFd, op: FlockOperation) -> Result<bool> {
    match rustix::fs::flock(fd, op) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(Error::io("flock a message queue", e)),
    }
}

#[cfg(test)]
thread_local! {
    /// How many times this thread asked [`held_by_peer`]: for the tests of
    /// a polling receiver, which must not ask on every poll.
    static PEER_CHECKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether someone holds an exclusive lock on the queue behind `fd`.
fn held_by_peer(fd: &OwnedFd) -> bool {
    #[cfg(test)]
    PEER_CHECKS.with(|n| n.set(n.get() + 1));
    match try_lock(fd, FlockOperation::NonBlockingLockShared) {
        Ok(true) => {
            let _ = rustix::fs::flock(fd, FlockOperation::Unlock);
            false
        }
        _ => true,
    }
}

fn priority_option(endpoint: &Endpoint) -> Result<u32> {
    match endpoint.param_number("priority")? {
        Some(p) if p < u64::from(PRIORITY_LIMIT) => Ok(p as u32),
        Some(p) => Err(Error::BadUrl {
            url: endpoint.to_string(),
            reason: format!("priority={p} is out of range (0..{PRIORITY_LIMIT})"),
        }),
        None => Ok(0),
    }
}

fn mq_name(endpoint: &Endpoint) -> &str {
    match &endpoint.address {
        Address::Mq(name) => name,
        _ => unreachable!(
            "mq transport called with a {} endpoint",
            endpoint.address.scheme()
        ),
    }
}

/// The owner (uid, gid) of the queue open at `fd`.
fn queue_owner(fd: &OwnedFd, queue: &str) -> Result<(u32, u32)> {
    let stat =
        rustix::fs::fstat(fd).map_err(|e| Error::io(format!("fstat message queue {queue}"), e))?;
    Ok((stat.st_uid, stat.st_gid))
}

/// Unlinks a queue name, ignoring one that is already gone.
fn remove(queue: &str) {
    match sys::unlink(queue) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => log::warn!("cannot remove message queue {queue}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(tag: &str) -> String {
        format!("unit-{tag}-{}", std::process::id())
    }

    /// A connected pair on a fresh name: (client, server end).
    fn pair(tag: &str) -> (MqChannel, Box<dyn Channel>) {
        let endpoint: Endpoint = format!("mq://{}", unique(tag)).parse().unwrap();
        let mut listener = listen(&endpoint, &Options::default()).unwrap();
        let server =
            std::thread::spawn(move || listener.accept_timeout(Some(Duration::from_secs(5))));
        let client = connect(&endpoint, &Options::default()).unwrap();
        (client, server.join().unwrap().unwrap())
    }

    #[test]
    fn higher_priority_is_received_first() {
        let (mut client, mut server_end) = pair("prio");
        client
            .send_with_priority(message_type::DATA, 0, b"low", 1, None)
            .unwrap();
        client
            .send_with_priority(message_type::DATA, 0, b"high", 9, None)
            .unwrap();
        let mut frame = Frame::default();
        server_end.recv(&mut frame).unwrap();
        assert_eq!(frame.payload(), b"high");
        server_end.recv(&mut frame).unwrap();
        assert_eq!(frame.payload(), b"low");
    }

    #[test]
    fn no_server_is_reported_clearly() {
        let err = crate::connect(&format!("mq://{}", unique("none"))).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
    }

    #[test]
    fn queues_are_private() {
        let endpoint: Endpoint = format!("mq://{}", unique("mode")).parse().unwrap();
        let listener = listen(&endpoint, &Options::default()).unwrap();
        let fd = listener.accept_fd().unwrap();
        let mode = rustix::fs::fstat(fd).unwrap().st_mode & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn client_ids_cannot_be_guessed() {
        let (a, b) = (handshake::client_id(), handshake::client_id());
        assert_ne!(a, b);
        let random = a.rsplit('-').next().unwrap();
        assert_eq!(random.len(), 16, "{a}");
        assert!(!a.ends_with("-1") && !a.ends_with("-2"), "{a}");
    }

    #[test]
    fn a_queue_others_could_write_is_refused() {
        let queue = format!("/utp.{}.owner", unique("owner"));
        let attr = Attr {
            max_messages: 1,
            message_size: 64,
        };
        let fd = sys::open(
            &queue,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            0o600,
            Some(attr),
        )
        .unwrap();
        remove(&queue);
        handshake::check_private(&fd, &queue).expect("0600");
        rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o666)).unwrap();
        let err = handshake::check_private(&fd, &queue).unwrap_err();
        assert!(err.to_string().contains("someone else"), "{err}");
    }

    /// Read-like system calls this thread has made (`syscr` of
    /// /proc/thread-self/io): a read of the liveness timer counts, a
    /// message-queue receive does not.
    fn reads_so_far() -> u64 {
        use std::io::Read;
        // One read of a buffer that holds the whole file, so that reading
        // the counter always adds the same number of reads.
        let mut buf = [0u8; 4096];
        let mut file = std::fs::File::open("/proc/thread-self/io").unwrap();
        let n = file.read(&mut buf).unwrap();
        let io = std::str::from_utf8(&buf[..n]).unwrap();
        let line = io.lines().find(|l| l.starts_with("syscr:")).unwrap();
        line["syscr:".len()..].trim().parse().unwrap()
    }

    #[test]
    fn a_receive_or_send_that_must_not_wait_makes_no_timed_call_on_an_empty_or_full_queue() {
        let (mut client, mut server) = pair("no-sleep");
        let mut frame = Frame::default();
        let timed_calls = || sys::TIMED_CALLS.with(|n| n.get());
        let before = timed_calls();
        for _ in 0..20 {
            assert!(!server.try_recv(&mut frame).unwrap());
        }
        assert_eq!(timed_calls() - before, 0, "receives from an empty queue");
        let mut sent = 0;
        while client.try_send(message_type::DATA, 0, b"x").unwrap() {
            sent += 1;
            assert!(sent < 100_000, "the queue never filled");
        }
        assert_eq!(timed_calls() - before, sent, "one call per message sent");
        for _ in 0..20 {
            assert!(!client.try_send(message_type::DATA, 0, b"x").unwrap());
        }
        // A timed call whose time has passed still sets up its timer (22
        // µs of kernel time each on the guest measured) before it says so.
        assert_eq!(timed_calls() - before, sent, "sends to a full queue");
        assert!(
            server.try_recv(&mut frame).unwrap(),
            "what was sent arrives"
        );
    }

    #[test]
    fn a_polling_receiver_checks_its_peer_once_per_period_not_per_poll() {
        let (_client, mut server) = pair("poll-lock");
        let mut frame = Frame::default();
        let before = PEER_CHECKS.with(|n| n.get());
        for _ in 0..200 {
            assert!(!server.try_recv(&mut frame).unwrap());
        }
        let checks = PEER_CHECKS.with(|n| n.get()) - before;
        // One when the first poll finds nothing; another only if the
        // polls outlast a period (a stalled host).
        assert!((1..=3).contains(&checks), "{checks} flocks for 200 polls");
    }

    #[test]
    fn a_polling_receiver_reads_its_timer_only_once_the_descriptor_is_out() {
        let (_client, mut server) = pair("poll-tick");
        let mut frame = Frame::default();
        // Reading the counter takes reads of its own.
        let counting = {
            let at = reads_so_far();
            reads_so_far() - at
        };
        let before = reads_so_far();
        for _ in 0..50 {
            assert!(!server.try_recv(&mut frame).unwrap());
        }
        let reads = reads_so_far() - before - counting;
        assert_eq!(reads, 0, "no event loop: no timer to reset");
        let _fd = server.readiness().unwrap().fd;
        let before = reads_so_far();
        for _ in 0..50 {
            assert!(!server.try_recv(&mut frame).unwrap());
        }
        assert_eq!(
            reads_so_far() - before - counting,
            50,
            "an event loop's tick is consumed by each poll"
        );
    }

    /// Closes `client` as a process that dies does: its lock on the
    /// queue it sends on goes, and no goodbye is sent.
    fn die_without_goodbye(mut client: MqChannel) {
        client.tx = None;
    }

    #[test]
    fn a_tick_makes_the_next_poll_check_its_peer_however_recent_the_last_check() {
        let (client, mut server) = pair("poll-tick-check");
        // Let the liveness timer expire at least once.
        std::thread::sleep(LIVENESS_CHECK + Duration::from_millis(20));
        let mut frame = Frame::default();
        assert!(!server.try_recv(&mut frame).unwrap(), "checks the peer now");
        die_without_goodbye(client);
        // An event loop takes the descriptor and finds the tick.
        let fd = server.readiness().unwrap().fd;
        assert!(crate::wake::readable(fd));
        let err = server.try_recv(&mut frame).unwrap_err();
        assert!(matches!(err, Error::PeerGone { .. }), "{err}");
    }

    #[test]
    fn a_polling_receiver_learns_its_peer_is_gone_within_a_period() {
        let (client, mut server) = pair("poll-gone");
        let mut frame = Frame::default();
        assert!(!server.try_recv(&mut frame).unwrap(), "checks the peer now");
        die_without_goodbye(client);
        let start = std::time::Instant::now();
        let err = loop {
            match server.try_recv(&mut frame) {
                Ok(false) => assert!(start.elapsed() < Duration::from_secs(2)),
                Ok(true) => panic!("no frame was sent"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::PeerGone { .. }), "{err}");
    }

    #[test]
    fn limits_are_read() {
        let l = limits();
        assert!(l.msg_max >= 1 && l.msgsize_max >= 128, "{l:?}");
    }
}
