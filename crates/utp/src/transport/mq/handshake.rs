//! Connecting and accepting: the accept queue, each client's queue pair,
//! and the `utp-mq1` handshake.

use super::*;
use crate::{DeniedReason, GoneReason, ProtocolReason};

static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);
/// Names tried for a client's queue pair before giving up.
const NAME_ATTEMPTS: usize = 8;

/// A fresh client id: the pid and 64 random bits, so another user cannot
/// guess (and pre-create) the next client's queue names.
pub(super) fn client_id() -> String {
    let mut bytes = [0u8; 8];
    let random = match rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()) {
        Ok(8) => u64::from_le_bytes(bytes),
        _ => {
            crate::frame::now_micros() ^ NEXT_CLIENT.fetch_add(1, Ordering::Relaxed).rotate_left(32)
        }
    };
    format!("{}-{random:016x}", std::process::id())
}

/// Checks that a client's queue is private (no group or other access), so
/// no third process could have written into it. Who owns it is the
/// [`PeerPolicy`]'s question, asked separately.
pub(super) fn check_private(fd: &OwnedFd, queue: &str) -> Result<()> {
    let stat = rustix::fs::fstat(fd).map_err(|e| Error::io(format!("inspect {queue}"), e))?;
    if stat.st_mode & 0o077 != 0 {
        return Err(Error::denied(
            DeniedReason::Unsafe,
            format!(
                "message queue {queue} has mode {:04o}, not 0600: other users could write into it, \
             so someone else made or changed it",
                stat.st_mode & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Connects to an `mq://` server: creates this client's queue pair and asks to be accepted.
pub fn connect(endpoint: &Endpoint, options: &Options) -> Result<MqChannel> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["mq"])?;
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
    // Before anything is created or sent: is the server someone we trust?
    let (owner_uid, owner_gid) = queue_owner(&accept, &accept_queue)?;
    PeerPolicy::from_endpoint(endpoint)?.check_server(
        &url,
        &format!("its accept queue {accept_queue}"),
        owner_uid,
        owner_gid,
    )?;
    if !held_by_peer(&accept) {
        return Err(Error::NotFound {
            endpoint: url,
            reason: format!("no server holds {accept_queue}: it was left by a server that exited"),
        });
    }
    let limits = limits();
    let message_size = message_size(options.max_payload, &limits);
    let depth = endpoint
        .param_number("depth")?
        .map_or_else(|| default_depth(message_size, &limits), |d| d as usize);
    let attr = Attr {
        max_messages: depth.min(limits.msg_max).max(1),
        message_size,
    };
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
    // A name someone else already took (EEXIST) is skipped: another one is
    // drawn, with a log line, a few times at most.
    let mut pair = None;
    for attempt in 1..=NAME_ATTEMPTS {
        let id = client_id();
        let c2s_name = queue_name(name, &format!("{id}.c2s"));
        let s2c_name = queue_name(name, &format!("{id}.s2c"));
        let tx = match create(&c2s_name, libc::O_WRONLY) {
            Ok(tx) => tx,
            Err(Error::Io { source, .. })
                if source.raw_os_error() == Some(libc::EEXIST) && attempt < NAME_ATTEMPTS =>
            {
                log::warn!(
                    "message queue {c2s_name} already exists (not ours); trying another name"
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        match create(&s2c_name, libc::O_RDONLY) {
            Ok(rx) => {
                pair = Some((id, c2s_name, s2c_name, tx, rx));
                break;
            }
            Err(Error::Io { source, .. })
                if source.raw_os_error() == Some(libc::EEXIST) && attempt < NAME_ATTEMPTS =>
            {
                log::warn!(
                    "message queue {s2c_name} already exists (not ours); trying another name"
                );
                remove(&c2s_name);
            }
            Err(e) => {
                remove(&c2s_name);
                return Err(e);
            }
        }
    }
    let Some((id, c2s_name, s2c_name, tx, rx)) = pair else {
        return Err(Error::protocol(
            ProtocolReason::Unexpected,
            format!("could not create a private queue pair for {url} in {NAME_ATTEMPTS} attempts"),
        ));
    };
    let result = (|| {
        if !try_lock(&tx, FlockOperation::NonBlockingLockExclusive)? {
            return Err(Error::protocol(
                ProtocolReason::Unexpected,
                format!("{c2s_name} is locked by someone else"),
            ));
        }
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
        let n = loop {
            let left = deadline.remaining().unwrap_or_default();
            match channel.receive(left)? {
                Some(n) => break n,
                // A signal cut the wait short: again, with what is left.
                None if deadline.remaining().is_some_and(|d| !d.is_zero()) => {}
                None => {
                    return Err(Error::Timeout {
                        waiting_for: "the mq server to accept (is it running and serving?)",
                        after: wait,
                    });
                }
            }
        };
        match frame::decode(&channel.buf[..n], channel.max_payload) {
            Ok((header, payload))
                if header.message_type == message_type::ACK && payload == ACCEPTED =>
            {
                Ok(channel)
            }
            Ok((header, reason)) if header.message_type == message_type::ERROR => {
                Err(Error::denied(
                    DeniedReason::Refused,
                    String::from_utf8_lossy(reason).into_owned(),
                ))
            }
            Ok((header, _)) => Err(Error::protocol(
                ProtocolReason::Unexpected,
                format!(
                    "{url}: expected the server's accept, got a frame of type 0x{:02x}",
                    header.message_type
                ),
            )),
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
    idle_timeout: Option<Duration>,
    priority: u32,
    policy: PeerPolicy,
    buf: Vec<u8>,
}

/// Creates the accept queue `/utp.NAME` (replacing a stale one, never a live one).
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<MqListener> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["mq"])?;
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
    let policy = PeerPolicy::from_endpoint(endpoint)?;
    if policy.is_widened() {
        // Others may send a hello; each client's queue owner is still checked.
        rustix::fs::fchmod(&accept, rustix::fs::Mode::from_raw_mode(0o622))
            .map_err(|e| Error::io(format!("let other users write to {queue}"), e))?;
    }
    Ok(MqListener {
        name,
        queue,
        accept: Some(accept),
        max_payload: options.max_payload,
        idle_timeout: options.idle_timeout,
        priority: priority_option(endpoint)?,
        policy,
        buf: vec![0; ACCEPT_MESSAGE_SIZE],
    })
}

impl MqListener {
    /// The accept queue's descriptor, while listening.
    #[cfg(test)]
    pub(super) fn accept_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.accept.as_ref().map(|fd| fd.as_fd())
    }

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
        let url = format!("mq://{}", self.name);
        for (fd, queue) in [(&rx, &c2s_name), (&tx, &s2c_name)] {
            check_private(fd, queue)?;
            let (uid, gid) = queue_owner(fd, queue)?;
            if let Err(refused) = self.policy.check_client(&url, uid, gid, None) {
                // Tell the client why (best effort), then forget it.
                let header = frame::Header::new(message_type::ERROR, frame_flags::CHECKSUM, 0, 0);
                let text = match &refused {
                    Error::Denied { detail: text, .. } => text.clone(),
                    other => other.to_string(),
                };
                let reason = frame::encode_to_vec(&header, text.as_bytes());
                let _ = sys::timed_send(tx.as_fd(), &reason, 0, Duration::ZERO);
                return Err(refused);
            }
        }
        // The client holds its sending queue locked while it lives: a client
        // that died after asking (or a hello without a client) is not admitted.
        if !held_by_peer(&rx) {
            return Err(Error::peer_gone(
                GoneReason::Died,
                format!("client {id} is gone (nobody holds {c2s_name}); its queues are removed"),
            ));
        }
        if !try_lock(&tx, FlockOperation::NonBlockingLockExclusive)? {
            return Err(Error::protocol(
                ProtocolReason::Unexpected,
                format!("{s2c_name} is locked by someone else"),
            ));
        }
        let label = format!("mq://{} (client {id})", self.name);
        let mut channel = MqChannel::new(tx, rx, label, self.max_payload, self.priority)?;
        channel.set_idle_timeout(self.idle_timeout);
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
    !id.is_empty()
        && id.len() <= 40
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-')
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

    /// The accept queue: readable when a client's hello is waiting
    /// (`try_accept` admits it, or drops it if it is invalid or its client gone).
    fn readiness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.accept.as_ref().map(|fd| fd.as_fd())
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
#[doc(hidden)]
pub fn inject_raw(name: &str, bytes: &[u8]) -> Result<()> {
    let queue = queue_name(name, "");
    let fd = sys::open(&queue, libc::O_WRONLY, 0, None).map_err(|e| open_error(&queue, e))?;
    sys::timed_send(fd.as_fd(), bytes, 0, Duration::from_secs(1))
        .map_err(|e| Error::io(format!("send to {queue}"), e))
}
