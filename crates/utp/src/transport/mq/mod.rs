//! `mq://NAME`: POSIX message queues, one UTP frame per message, with priorities.
//!
//! # Queues
//!
//! - The listener creates the **accept queue** `/utp.NAME` (mode 0600) and
//!   holds an exclusive `flock` on it while it lives; it unlinks it when
//!   closed or dropped. A queue left by a crashed server has no lock holder:
//!   a new listener replaces it, a client reports "no server".
//! - Each client creates its **own pair**, `/utp.NAME.ID.c2s` and
//!   `/utp.NAME.ID.s2c` (0600; ID is `PID-N`), and sends `utp-mq1 ID` to the
//!   accept queue. The server opens the pair and answers on `s2c` with an ACK
//!   frame (sequence 0, payload `utp-mq1 accepted`); then both names are unlinked, so
//!   nothing is left in `/dev/mqueue` even if either process crashes later.
//!   So any number of clients can talk to one server at once, each on its
//!   own queues.
//!
//! # Frames, priorities and limits
//!
//! One message carries one whole UTP frame (header and payload). An empty
//! message means "goodbye" (the peer's next receive reports
//! [`Error::PeerGone`]). Each side holds an exclusive `flock` on the queue it
//! sends on; the other side tests that lock while it waits, so a peer that
//! crashed is noticed within [`LIVENESS_CHECK`] too.
//!
//! Messages carry a priority: the kernel delivers the highest priority
//! first, in order within one priority. [`MqChannel::send_with_priority`]
//! chooses it per frame; `?priority=N` sets the default for plain sends
//! (0 otherwise); [`MqChannel::last_priority`] tells what a received frame had.
//! `?depth=N` sets how many messages each of a client's queues holds
//! (default [`DEFAULT_DEPTH`]).
//!
//! The kernel caps a queue's message size at `/proc/sys/fs/mqueue/msgsize_max`
//! (8,192 bytes by default) and its depth at `/proc/sys/fs/mqueue/msg_max`
//! (10); see [`limits`]. A client sizes its queues to
//! `min(32 + max_payload, msgsize_max)` bytes, so **payloads are limited to
//! 8,160 bytes by default**; a larger one is refused with [`Error::TooLarge`]
//! naming the limit. Each user may also lock only `RLIMIT_MSGQUEUE` bytes of
//! queues (800 KiB by default): about twelve concurrent clients at the default
//! sizes; a client that finds no room waits for it within its connect timeout. Timeouts use `mq_timedsend` / `mq_timedreceive`.

mod sys;

use crate::channel::{Channel, Deadline, Listener, Options, PeerInfo};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::{self, Frame, HEADER_LEN, Stamper, flags as frame_flags, message_type};
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
/// Default depth of a client's queues (`?depth=N` changes it; capped at `msg_max`).
///
/// Small on purpose: the kernel charges `depth × message size` per queue
/// against the user's `RLIMIT_MSGQUEUE` (800 KiB by default), so at 4 × 8 KiB
/// about twelve clients fit at once; request/response traffic never has more
/// than one message in flight anyway.
pub const DEFAULT_DEPTH: usize = 4;
/// Depth of the accept queue.
const ACCEPT_DEPTH: usize = 10;
/// Message size of the accept queue.
const ACCEPT_MESSAGE_SIZE: usize = 256;
const HELLO: &str = "utp-mq1 ";
const ACCEPTED: &[u8] = b"utp-mq1 accepted";
const TRANSPORT: &str = "mq (one frame per message: the queue's message size, capped by \
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
        Errno::ACCESS => Error::Denied(format!("message queue {queue}: permission denied")),
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

/// Whether someone holds an exclusive lock on the queue behind `fd`.
fn held_by_peer(fd: &OwnedFd) -> bool {
    match try_lock(fd, FlockOperation::NonBlockingLockShared) {
        Ok(true) => {
            let _ = rustix::fs::flock(fd, FlockOperation::Unlock);
            false
        }
        _ => true,
    }
}

/// One end of a conversation over a pair of message queues.
#[derive(Debug)]
pub struct MqChannel {
    /// Sends here; this end holds an exclusive flock on it while open.
    tx: Option<OwnedFd>,
    /// Receives here; the peer holds the flock on it.
    rx: OwnedFd,
    label: String,
    stamper: Stamper,
    message_size: usize,
    max_payload: usize,
    default_priority: u32,
    last_priority: u32,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl MqChannel {
    fn new(
        tx: OwnedFd,
        rx: OwnedFd,
        label: String,
        max_payload: usize,
        priority: u32,
    ) -> Result<Self> {
        let message_size = sys::attr(tx.as_fd())
            .map_err(|e| Error::io(format!("read the attributes of {label}"), e))?
            .message_size;
        let rx_size = sys::attr(rx.as_fd())
            .map_err(|e| Error::io(format!("read the attributes of {label}"), e))?
            .message_size;
        Ok(MqChannel {
            tx: Some(tx),
            rx,
            label,
            stamper: Stamper::default(),
            message_size,
            max_payload: max_payload.min(rx_size.saturating_sub(HEADER_LEN)),
            default_priority: priority,
            last_priority: 0,
            out: Vec::with_capacity(message_size),
            buf: vec![0; rx_size],
        })
    }

    /// Largest payload this channel can send (the queue's message size minus the header).
    pub fn max_send_payload(&self) -> usize {
        self.message_size - HEADER_LEN
    }

    /// Priority of the most recently received frame.
    pub fn last_priority(&self) -> u32 {
        self.last_priority
    }

    /// Sends one frame with `priority` (0 ..= 32,767; higher is received first).
    pub fn send_with_priority(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        priority: u32,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if priority >= PRIORITY_LIMIT {
            return Err(Error::Protocol(format!(
                "message priority {priority} is out of range (0..{PRIORITY_LIMIT})"
            )));
        }
        let limit = self.max_send_payload();
        if payload.len() > limit {
            return Err(Error::TooLarge {
                len: payload.len(),
                limit,
                transport: TRANSPORT,
            });
        }
        let mut head = [0u8; HEADER_LEN];
        self.stamper.stamp(message_type, flags, payload, &mut head);
        self.out.clear();
        self.out.extend_from_slice(&head);
        self.out.extend_from_slice(payload);
        let tx = self.tx.as_ref().ok_or(Error::Closed)?;
        let deadline = Deadline::after(timeout);
        loop {
            let slice = deadline
                .remaining()
                .map_or(LIVENESS_CHECK, |d| d.min(LIVENESS_CHECK));
            match sys::timed_send(tx.as_fd(), &self.out, priority, slice) {
                Ok(()) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(Errno::TIMEDOUT) => {
                    if deadline.remaining().is_some_and(|d| d.is_zero()) {
                        return Err(Error::Timeout {
                            waiting_for: "room in the message queue (the peer is not reading)",
                            after: timeout.unwrap_or_default(),
                        });
                    }
                    if !held_by_peer(&self.rx) {
                        return Err(self.gone());
                    }
                }
                Err(Errno::MSGSIZE) => {
                    return Err(Error::TooLarge {
                        len: payload.len(),
                        limit,
                        transport: TRANSPORT,
                    });
                }
                Err(e) => return Err(Error::io(format!("send on {}", self.label), e)),
            }
        }
    }

    /// Sends `bytes` as one message as they are, bypassing framing. For
    /// robustness tests: the receiver must log and drop what is not a frame.
    #[doc(hidden)]
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let tx = self.tx.as_ref().ok_or(Error::Closed)?;
        sys::timed_send(tx.as_fd(), bytes, 0, Duration::from_secs(1))
            .map_err(|e| Error::io(format!("send on {}", self.label), e))
    }

    fn gone(&self) -> Error {
        Error::PeerGone(format!(
            "the peer of {} closed its queues or exited",
            self.label
        ))
    }

    /// Takes one message if it arrives within `wait`: `Ok(None)` on timeout.
    fn receive(&mut self, wait: Duration) -> Result<Option<usize>> {
        loop {
            return match sys::timed_receive(self.rx.as_fd(), &mut self.buf, wait) {
                Ok((n, priority)) => {
                    self.last_priority = priority;
                    Ok(Some(n))
                }
                Err(Errno::INTR) => continue,
                Err(Errno::TIMEDOUT) => Ok(None),
                Err(e) => Err(Error::io(format!("receive on {}", self.label), e)),
            };
        }
    }
}

impl Channel for MqChannel {
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        let priority = self.default_priority;
        self.send_with_priority(message_type, flags, payload, priority, timeout)
    }

    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        if self.tx.is_none() {
            return Err(Error::Closed);
        }
        let deadline = Deadline::after(timeout);
        loop {
            let slice = deadline
                .remaining()
                .map_or(LIVENESS_CHECK, |d| d.min(LIVENESS_CHECK));
            let received = match self.receive(slice)? {
                Some(n) => n,
                None if deadline.remaining().is_some_and(|d| d.is_zero()) => {
                    return Err(Error::Timeout {
                        waiting_for: "a message from the peer",
                        after: timeout.unwrap_or_default(),
                    });
                }
                None if held_by_peer(&self.rx) => continue,
                // The peer is gone; deliver what it sent before leaving.
                None => match self.receive(Duration::ZERO)? {
                    Some(n) => n,
                    None => return Err(self.gone()),
                },
            };
            if received == 0 {
                return Err(Error::PeerGone(format!(
                    "the peer of {} said goodbye",
                    self.label
                )));
            }
            // An invalid frame spoils only itself (message boundaries hold),
            // but it is still reported: the protocol makes it fatal for the
            // connection, and the server closes it.
            let (header, payload) = frame::decode(&self.buf[..received], self.max_payload)?;
            frame.set(header, payload);
            return Ok(());
        }
    }

    fn close(&mut self) -> Result<()> {
        if let Some(tx) = self.tx.take() {
            // Priority 0: the goodbye must not overtake frames sent before it.
            let _ = sys::timed_send(tx.as_fd(), &[], 0, Duration::ZERO);
        }
        Ok(())
    }

    fn peer(&self) -> PeerInfo {
        PeerInfo {
            address: Some(self.label.clone()),
            ..PeerInfo::default()
        }
    }
}

impl Drop for MqChannel {
    fn drop(&mut self) {
        let _ = self.close();
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

/// Unlinks a queue name, ignoring one that is already gone.
fn remove(queue: &str) {
    match sys::unlink(queue) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => log::warn!("cannot remove message queue {queue}: {e}"),
    }
}

static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);

/// Connects to an `mq://` server: creates this client's queue pair and asks to be accepted.
pub fn connect(endpoint: &Endpoint, options: &Options) -> Result<MqChannel> {
    let name = mq_name(endpoint);
    let url = endpoint.address.to_string();
    let accept_queue = queue_name(name, "");
    let accept = sys::open(&accept_queue, libc::O_WRONLY | libc::O_NONBLOCK, 0, None).map_err(
        |e| match e {
            Errno::NOENT => Error::NotFound {
                endpoint: url.clone(),
                reason: format!(
                    "message queue {accept_queue} does not exist (is the server running?)"
                ),
            },
            e => open_error(&accept_queue, e),
        },
    )?;
    if !held_by_peer(&accept) {
        return Err(Error::NotFound {
            endpoint: url,
            reason: format!("no server holds {accept_queue}: it was left by a server that exited"),
        });
    }
    let limits = limits();
    let depth = endpoint
        .param_number("depth")?
        .map_or(DEFAULT_DEPTH, |d| d as usize);
    let attr = Attr {
        max_messages: depth.min(limits.msg_max).max(1),
        message_size: (HEADER_LEN + options.max_payload).min(limits.msgsize_max),
    };
    let id = format!(
        "{}-{}",
        std::process::id(),
        NEXT_CLIENT.fetch_add(1, Ordering::Relaxed)
    );
    let c2s_name = queue_name(name, &format!("{id}.c2s"));
    let s2c_name = queue_name(name, &format!("{id}.s2c"));
    let deadline = Deadline::after(Some(options.connect_timeout));
    // Out of queue space (RLIMIT_MSGQUEUE) is usually temporary: other
    // clients leave. Wait for room within the connect timeout.
    let create = |queue: &str, flags| loop {
        match sys::open(
            queue,
            flags | libc::O_CREAT | libc::O_EXCL,
            0o600,
            Some(attr),
        ) {
            Err(Errno::MFILE | Errno::NOSPC | Errno::NOMEM)
                if deadline.remaining().is_some_and(|d| !d.is_zero()) =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other.map_err(|e| open_error(queue, e)),
        }
    };
    let result = (|| {
        let tx = create(&c2s_name, libc::O_WRONLY)?;
        if !try_lock(&tx, FlockOperation::NonBlockingLockExclusive)? {
            return Err(Error::Protocol(format!(
                "{c2s_name} is locked by someone else"
            )));
        }
        let rx = create(&s2c_name, libc::O_RDONLY)?;
        let hello = format!("{HELLO}{id}");
        let wait = options.connect_timeout;
        let deadline = Deadline::after(Some(wait));
        match sys::timed_send(accept.as_fd(), hello.as_bytes(), 0, Duration::ZERO) {
            Ok(()) => {}
            Err(Errno::AGAIN | Errno::TIMEDOUT) => {
                return Err(Error::NotFound {
                    endpoint: url.clone(),
                    reason: format!("the server's accept queue {accept_queue} is full"),
                });
            }
            Err(e) => return Err(Error::io(format!("send to {accept_queue}"), e)),
        }
        let priority = priority_option(endpoint)?;
        let mut channel = MqChannel::new(
            tx,
            rx,
            format!("{url} (client {id})"),
            options.max_payload,
            priority,
        )?;
        // The server has not locked its queue yet: wait for the accept
        // without the liveness check.
        let left = deadline.remaining().unwrap_or_default();
        let Some(n) = channel.receive(left)? else {
            return Err(Error::Timeout {
                waiting_for: "the mq server to accept (is it running and serving?)",
                after: wait,
            });
        };
        match frame::decode(&channel.buf[..n], channel.max_payload) {
            Ok((header, payload))
                if header.message_type == message_type::ACK && payload == ACCEPTED =>
            {
                Ok(channel)
            }
            Ok((header, _)) => Err(Error::Protocol(format!(
                "{url}: expected the server's accept, got a frame of type 0x{:02x}",
                header.message_type
            ))),
            Err(e) => Err(e.into()),
        }
    })();
    remove(&c2s_name);
    remove(&s2c_name);
    result
}

/// Owns the accept queue and opens each client's queue pair.
#[derive(Debug)]
pub struct MqListener {
    name: String,
    queue: String,
    accept: Option<OwnedFd>,
    max_payload: usize,
    priority: u32,
    buf: Vec<u8>,
}

/// Creates the accept queue `/utp.NAME` (replacing a stale one, never a live one).
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<MqListener> {
    let name = mq_name(endpoint).to_string();
    let queue = queue_name(&name, "");
    let attr = Attr {
        max_messages: ACCEPT_DEPTH.min(limits().msg_max).max(1),
        message_size: ACCEPT_MESSAGE_SIZE,
    };
    let flags = libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL;
    let accept = match sys::open(&queue, flags, 0o600, Some(attr)) {
        Ok(fd) => fd,
        Err(Errno::EXIST) => {
            let existing =
                sys::open(&queue, libc::O_RDONLY, 0, None).map_err(|e| open_error(&queue, e))?;
            if held_by_peer(&existing) {
                return Err(Error::InUse {
                    endpoint: endpoint.address.to_string(),
                    hint: Some(format!("a live server holds {queue}")),
                });
            }
            log::info!("replacing stale message queue {queue}");
            drop(existing);
            remove(&queue);
            sys::open(&queue, flags, 0o600, Some(attr)).map_err(|e| open_error(&queue, e))?
        }
        Err(e) => return Err(open_error(&queue, e)),
    };
    if !try_lock(&accept, FlockOperation::NonBlockingLockExclusive)? {
        return Err(Error::InUse {
            endpoint: endpoint.address.to_string(),
            hint: Some(format!("another server locked {queue} at the same moment")),
        });
    }
    Ok(MqListener {
        name,
        queue,
        accept: Some(accept),
        max_payload: options.max_payload,
        priority: priority_option(endpoint)?,
        buf: vec![0; ACCEPT_MESSAGE_SIZE],
    })
}

impl MqListener {
    /// Opens the queue pair of client `id` and tells it it is accepted.
    fn admit(&self, id: &str) -> Result<MqChannel> {
        let c2s_name = queue_name(&self.name, &format!("{id}.c2s"));
        let s2c_name = queue_name(&self.name, &format!("{id}.s2c"));
        let rx =
            sys::open(&c2s_name, libc::O_RDONLY, 0, None).map_err(|e| open_error(&c2s_name, e))?;
        let tx =
            sys::open(&s2c_name, libc::O_WRONLY, 0, None).map_err(|e| open_error(&s2c_name, e))?;
        remove(&c2s_name);
        remove(&s2c_name);
        if !try_lock(&tx, FlockOperation::NonBlockingLockExclusive)? {
            return Err(Error::Protocol(format!(
                "{s2c_name} is locked by someone else"
            )));
        }
        let label = format!("mq://{} (client {id})", self.name);
        let channel = MqChannel::new(tx, rx, label, self.max_payload, self.priority)?;
        // Sequence 0: a transport frame, outside the numbered conversation.
        let header = frame::Header::new(
            message_type::ACK,
            frame_flags::CHECKSUM,
            0,
            frame::now_micros(),
        );
        let accept = frame::encode_to_vec(&header, ACCEPTED);
        let sent = channel
            .tx
            .as_ref()
            .map(|tx| sys::timed_send(tx.as_fd(), &accept, 0, Duration::from_secs(1)));
        match sent {
            Some(Ok(())) => Ok(channel),
            Some(Err(e)) => Err(Error::io(format!("accept client {id}"), e)),
            None => Err(Error::Closed),
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 40 && id.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

impl Listener for MqListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        let deadline = Deadline::after(timeout);
        loop {
            let accept = self.accept.as_ref().ok_or(Error::Closed)?;
            let slice = deadline
                .remaining()
                .map_or(LIVENESS_CHECK, |d| d.min(LIVENESS_CHECK));
            let n = match sys::timed_receive(accept.as_fd(), &mut self.buf, slice) {
                Ok((n, _)) => n,
                Err(Errno::INTR) => continue,
                Err(Errno::TIMEDOUT) => {
                    if deadline.remaining().is_some_and(|d| d.is_zero()) {
                        return Err(Error::Timeout {
                            waiting_for: "a client to connect",
                            after: timeout.unwrap_or_default(),
                        });
                    }
                    continue;
                }
                Err(e) => return Err(Error::io(format!("receive on {}", self.queue), e)),
            };
            let message = String::from_utf8_lossy(&self.buf[..n]).into_owned();
            let Some(id) = message.strip_prefix(HELLO).filter(|id| valid_id(id)) else {
                log::warn!(
                    "{}: dropped an invalid connect message of {n} bytes",
                    self.queue
                );
                continue;
            };
            match self.admit(id) {
                Ok(channel) => return Ok(Box::new(channel)),
                Err(e) => log::warn!("{}: could not admit client {id}: {e}", self.queue),
            }
        }
    }

    fn endpoint(&self) -> String {
        format!("mq://{}", self.name)
    }

    fn close(&mut self) -> Result<()> {
        if self.accept.take().is_some() {
            remove(&self.queue);
        }
        Ok(())
    }
}

impl Drop for MqListener {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Sends raw bytes as one message to the accept queue of `mq://NAME`, bypassing
/// the protocol. For robustness tests: a server must log and drop them.
#[doc(hidden)]
pub fn inject_raw(name: &str, bytes: &[u8]) -> Result<()> {
    let queue = queue_name(name, "");
    let fd = sys::open(&queue, libc::O_WRONLY, 0, None).map_err(|e| open_error(&queue, e))?;
    sys::timed_send(fd.as_fd(), bytes, 0, Duration::from_secs(1))
        .map_err(|e| Error::io(format!("send to {queue}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(tag: &str) -> String {
        format!("unit-{tag}-{}", std::process::id())
    }

    #[test]
    fn higher_priority_is_received_first() {
        let name = unique("prio");
        let url = format!("mq://{name}");
        let endpoint: Endpoint = url.parse().unwrap();
        let mut listener = listen(&endpoint, &Options::default()).unwrap();
        let server =
            std::thread::spawn(move || listener.accept_timeout(Some(Duration::from_secs(5))));
        let mut client = connect(&endpoint, &Options::default()).unwrap();
        let mut server_end = server.join().unwrap().unwrap();
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
    fn limits_are_read() {
        let l = limits();
        assert!(l.msg_max >= 1 && l.msgsize_max >= 128, "{l:?}");
    }
}
