//! Connecting and accepting: the accept queue, each client's queue pair,
//! and the `utp-mq1` handshake.

use super::*;

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
            Ok((header, reason)) if header.message_type == message_type::ERROR => {
                Err(Error::Denied(String::from_utf8_lossy(reason).into_owned()))
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
    policy: PeerPolicy,
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
            let (uid, gid) = queue_owner(fd, queue)?;
            if let Err(refused) = self.policy.check_client(&url, uid, gid, None) {
                // Tell the client why (best effort), then forget it.
                let header = frame::Header::new(message_type::ERROR, frame_flags::CHECKSUM, 0, 0);
                let text = match &refused {
                    Error::Denied(text) => text.clone(),
                    other => other.to_string(),
                };
                let reason = frame::encode_to_vec(&header, text.as_bytes());
                let _ = sys::timed_send(tx.as_fd(), &reason, 0, Duration::ZERO);
                return Err(refused);
            }
        }
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
