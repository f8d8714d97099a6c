//! [`FifoChannel`] and the client's side of the hand-off protocol.

use super::slot::SessionSlot;
use super::*;
use crate::GoneReason;
use crate::halves::{Guarded, RecvHalf, SendHalf};
use std::os::fd::{AsFd, BorrowedFd};

/// Either end of a FIFO conversation.
#[derive(Debug)]
pub struct FifoChannel {
    pub(super) inner: StreamChannel,
    /// Client side: the `flock`ed descriptor that keeps other clients out.
    pub(super) lock: Option<OwnedFd>,
    /// Server side: freed when this session ends, letting the next client in.
    pub(super) busy: Option<Arc<SessionSlot>>,
    /// Client side: whether the server has sent anything yet. Until it has,
    /// end-of-file on `PATH.resp` only means its session has not started.
    pub(super) heard: bool,
    /// Whether this is the client's end (its receive half too, which holds
    /// no lock: the halves share it, see `split`).
    pub(super) client: bool,
}

impl FifoChannel {
    /// The framing in use (server side: decided by the client's first bytes).
    pub fn framing(&self) -> Framing {
        self.inner.framing()
    }

    /// Client side: waits until the server's first bytes arrive. Before the
    /// session starts, `PATH.resp` may have no writer, which a read reports
    /// as end-of-file and poll as a hang-up: neither means the server left.
    fn wait_for_session(&self, deadline: Deadline, timeout: Option<Duration>) -> Result<()> {
        let StreamIo::Pair { read, .. } = self.inner.io() else {
            return Ok(());
        };
        loop {
            let slice = deadline.remaining().map_or(RETRY, |d| d.min(RETRY));
            let wait = Timespec {
                tv_sec: 0,
                tv_nsec: i64::from(slice.subsec_nanos()),
            };
            let mut fds = [PollFd::new(read, PollFlags::IN)];
            match poll(&mut fds, Some(&wait)) {
                Ok(n) if n > 0 && fds[0].revents().contains(PollFlags::IN) => return Ok(()),
                Ok(n) if n > 0 => {
                    // Hang-up only: not started yet, or started and over.
                    if self.server_took_request_and_left() {
                        return Err(Error::peer_gone(
                            GoneReason::Died,
                            format!(
                                "{}: the server took the request and closed its end without answering (it died or ended the session)",
                                self.inner.peer().address.unwrap_or_default()
                            ),
                        ));
                    }
                    std::thread::sleep(slice)
                }
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::io("poll the response FIFO", e)),
            }
            if deadline.remaining().is_some_and(|d| d.is_zero()) {
                return Err(Error::Timeout {
                    waiting_for: "the FIFO server to answer",
                    after: timeout.unwrap_or_default(),
                });
            }
        }
    }

    /// Client side, while `PATH.resp` has no writer: whether the server has
    /// already been there. A server opens `PATH.resp` for writing before it
    /// reads a request, so if everything we wrote to `PATH.req` has been
    /// read (our lock descriptor reads the same pipe and never consumes),
    /// a writer came and went: the session is over, not yet to start.
    fn server_took_request_and_left(&self) -> bool {
        let Some(lock) = &self.lock else {
            return false;
        };
        self.inner.sent_sequence().is_some()
            && rustix::io::ioctl_fionread(lock).is_ok_and(|unread| unread == 0)
    }

    /// Client side: waits until the server has closed its end, discarding
    /// anything it still sends, so the next client starts on a clean pair.
    fn drain_until_server_closes(&mut self) {
        let StreamIo::Pair { read, .. } = self.inner.io() else {
            return;
        };
        drain_until_closed(read.as_fd());
    }
}

/// Reads `read` until its writer closes it (or [`CLOSE_GRACE`] passes),
/// discarding what arrives.
fn drain_until_closed(read: BorrowedFd<'_>) {
    // Receives may have made the descriptor blocking; this wait has a deadline.
    let _ = rustix::io::ioctl_fionbio(read, true);
    let deadline = Deadline::after(Some(CLOSE_GRACE));
    let mut scratch = [0u8; 4096];
    loop {
        match rustix::io::read(read, &mut scratch) {
            Ok(0) => return,
            Ok(_) | Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => {
                let left = deadline.remaining().unwrap_or_default();
                if left.is_zero() {
                    return;
                }
                let timeout = Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                };
                let mut fds = [PollFd::new(&read, PollFlags::IN)];
                if !matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

impl FifoChannel {
    /// Whether a receive can read the stream as it is, after a client has
    /// waited (within `timeout`) for its session to start. Once the session
    /// has started the peer's write end is open, so end-of-file means it
    /// left, and an untimed receive is one blocking read() (no poll, no
    /// clock); a timed one polls anyway.
    fn reads_directly(&mut self, timeout: Option<Duration>) -> Result<bool> {
        if !self.heard && self.client {
            self.wait_for_session(Deadline::after(timeout), timeout)?;
            self.heard = true;
        }
        Ok(timeout.is_some() || self.heard)
    }
}

impl Channel for FifoChannel {
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.inner
            .send_timeout(message_type, flags, payload, timeout)
    }

    fn send_batch(&mut self, message_type: u8, flags: u16, payloads: &[&[u8]]) -> Result<()> {
        self.inner.send_batch(message_type, flags, payloads)
    }

    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        if self.reads_directly(timeout)? {
            return self.inner.recv_timeout(frame, timeout);
        }
        // Before the session, a FIFO read with no writer yet returns end-of-file at
        // once, while poll() waits for the writer: go through poll.
        loop {
            match self.inner.recv_timeout(frame, Some(FOREVER_SLICE)) {
                Err(Error::Timeout { .. }) => continue,
                other => return other,
            }
        }
    }

    fn recv_ref<'a>(
        &'a mut self,
        spare: &'a mut Frame,
        timeout: Option<Duration>,
    ) -> Result<FrameRef<'a>> {
        if self.reads_directly(timeout)? {
            return self.inner.recv_ref(spare, timeout);
        }
        // Before the session, an untimed receive waits in slices (see
        // `recv_timeout`); the frame that ends the wait comes through `spare`.
        self.recv_timeout(spare, None)?;
        Ok(spare.as_frame_ref())
    }

    fn try_recv_ref<'a>(&'a mut self, spare: &'a mut Frame) -> Result<Option<FrameRef<'a>>> {
        crate::channel::lent_now(self.recv_ref(spare, Some(Duration::ZERO)))
    }

    fn close(&mut self) -> Result<()> {
        // Server: closing PATH.resp ends the session (see `SessionSlot::end`).
        let closed = match self.busy.take() {
            Some(busy) => busy.end(|| self.inner.close()),
            None => self.inner.close(),
        };
        if self.lock.is_some() {
            self.drain_until_server_closes();
            self.lock = None;
        }
        closed
    }

    fn peer(&self) -> PeerInfo {
        self.inner.peer()
    }

    fn sent_sequence(&self) -> Option<u64> {
        self.inner.sent_sequence()
    }

    fn try_send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<bool> {
        // The stream's own: a frame that fits only in part is never cut.
        self.inner.try_send(message_type, flags, payload)
    }

    fn try_send_batch(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> Result<usize> {
        self.inner.try_send_batch(message_type, flags, payloads)
    }

    fn try_flush(&mut self) -> Result<bool> {
        self.inner.try_flush()
    }

    fn reply_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: u64,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.inner
            .reply_timeout(message_type, flags, payload, answers, timeout)
    }

    fn readiness(&self) -> Option<crate::channel::Readiness<'_>> {
        // A server session: its request FIFO; a client: its response FIFO
        // (readable on a reply, hung up when the server's session ends).
        self.inner.readiness()
    }

    // The halves share the session: the client's lock (released after the
    // server has closed its end) or the server's hold on `PATH.resp` and
    // its busy flag. So the session ends when both halves are gone; the
    // client's send half alone still ends its direction (the server reads
    // end-of-file), the server's does not (the next client would get in).
    fn split(mut self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        let sender = self.inner.split_off_sender()?;
        let dup = |fd: BorrowedFd<'_>| {
            rustix::io::fcntl_dupfd_cloexec(fd, 0)
                .map_err(|e| Error::io("duplicate a FIFO descriptor", e))
        };
        let session = match (self.lock.take(), self.busy.take()) {
            (Some(lock), _) => {
                let StreamIo::Pair { read, .. } = self.inner.io() else {
                    unreachable!("FIFO channels are built on pairs")
                };
                FifoSession {
                    drain: Some(dup(read.as_fd())?),
                    lock: Some(lock),
                    hold: None,
                    busy: None,
                }
            }
            (None, busy) => FifoSession {
                drain: None,
                lock: None,
                hold: Some(dup(sender.io().write_fd()?)?),
                busy,
            },
        };
        let session = Arc::new(session);
        let sender = FifoChannel {
            inner: sender,
            lock: None,
            busy: None,
            heard: true,
            client: false,
        };
        Ok(crate::halves::halves(
            Guarded {
                inner: sender,
                _guard: session.clone(),
            },
            Guarded {
                inner: *self,
                _guard: session,
            },
        ))
    }

    fn into_any(self: Box<Self>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(self)
    }

    fn as_any(&self) -> Option<&(dyn std::any::Any + Send)> {
        Some(self)
    }
}

/// What the halves of a split FIFO channel share, released when both are gone.
#[derive(Debug)]
struct FifoSession {
    /// Client: a second descriptor of `PATH.resp`, drained until the server closes.
    drain: Option<OwnedFd>,
    /// Client: the lock that keeps other clients out.
    lock: Option<OwnedFd>,
    /// Server: a second descriptor of `PATH.resp`, whose lock keeps the next client waiting.
    hold: Option<OwnedFd>,
    /// Server: freed when the session ends.
    busy: Option<Arc<SessionSlot>>,
}

impl Drop for FifoSession {
    fn drop(&mut self) {
        if let Some(read) = self.drain.take() {
            drain_until_closed(read.as_fd());
        }
        self.lock = None;
        // Server: `hold` is the last descriptor of PATH.resp's writer.
        match self.busy.take() {
            Some(busy) => busy.end(|| self.hold = None),
            None => self.hold = None,
        }
    }
}

impl Drop for FifoChannel {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Connects to a `fifo://` server (see the module docs for the protocol).
pub fn connect(endpoint: &Endpoint, options: &Options) -> Result<FifoChannel> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["fifo"])?;
    let Address::Fifo(base) = &endpoint.address else {
        unreachable!(
            "fifo::connect called with a {} endpoint",
            endpoint.address.scheme()
        );
    };
    let (req, resp) = paths(base);
    let url = endpoint.address.to_string();
    let policy = PeerPolicy::from_endpoint(endpoint)?;
    let not_found = |reason: String| Error::NotFound {
        endpoint: url.clone(),
        reason,
    };
    match lookup(&req) {
        None => {
            return Err(not_found(format!(
                "{} does not exist (is the server running?)",
                req.display()
            )));
        }
        Some(Found::Symlink) => return Err(symlink_refused(&url, &req)),
        Some(Found::Other) => return Err(not_found(format!("{} is not a FIFO", req.display()))),
        Some(Found::Fifo { uid, gid, .. }) => {
            policy.check_server(&url, &format!("the FIFO {}", req.display()), uid, gid)?;
        }
    }
    // Every descriptor is checked after opening too: the path may have
    // changed since the lstat above.
    let mut server = None;
    let mut trusted = |fd: OwnedFd, path: &Path| -> Result<OwnedFd> {
        let (uid, gid, _) = fifo_owner(&fd, path)?;
        policy.check_server(&url, &format!("the FIFO {}", path.display()), uid, gid)?;
        server = Some((uid, gid));
        Ok(fd)
    };
    let open_error = |path: &Path, what: &str, e: Errno| match e {
        Errno::LOOP => symlink_refused(&url, path),
        Errno::NOENT => Error::NotFound {
            endpoint: url.clone(),
            reason: format!("{} does not exist", path.display()),
        },
        e => Error::io(format!("open {} {what}", path.display()), e),
    };
    // Is anybody reading requests? (Dropped at once: holding a writer while
    // waiting would keep the current client's session from ending.)
    match open(&req, OFlags::WRONLY) {
        Ok(probe) => drop(trusted(probe, &req)?),
        Err(Errno::NXIO) => {
            return Err(not_found(format!(
                "nobody reads {}: the server is not running (the FIFOs are stale)",
                req.display()
            )));
        }
        Err(e) => return Err(open_error(&req, "for writing", e)),
    }
    let lock = open(&req, OFlags::RDONLY).map_err(|e| open_error(&req, "for reading", e))?;
    let lock = trusted(lock, &req)?;
    let deadline = Deadline::after(Some(options.connect_timeout));
    loop {
        match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(Errno::WOULDBLOCK | Errno::INTR) => {
                if !sleep_within(deadline) {
                    return Err(Error::Timeout {
                        waiting_for: "the FIFO pair to be free (it serves one client at a time and another client is connected)",
                        after: options.connect_timeout,
                    });
                }
            }
            Err(e) => return Err(Error::io(format!("lock {}", req.display()), e)),
        }
    }
    let read = open(&resp, OFlags::RDONLY).map_err(|e| open_error(&resp, "for reading", e))?;
    let read = trusted(read, &resp)?;
    // The server holds an exclusive lock on PATH.resp for as long as a
    // session lasts. A client that left without waiting for the server (a
    // tutorial client) may have a session still winding down: start only
    // once it is over, or our first bytes would land in it.
    loop {
        match rustix::fs::flock(&read, FlockOperation::NonBlockingLockShared) {
            Ok(()) => {
                let _ = rustix::fs::flock(&read, FlockOperation::Unlock);
                break;
            }
            Err(Errno::WOULDBLOCK | Errno::INTR) => {
                if !sleep_within(deadline) {
                    return Err(Error::Timeout {
                        waiting_for: "the previous client's FIFO session to end",
                        after: options.connect_timeout,
                    });
                }
            }
            Err(e) => return Err(Error::io(format!("lock {}", resp.display()), e)),
        }
    }
    // Whatever is still in PATH.resp was written to an earlier session
    // (say, the reason a stalled one was reset) and is nobody's answer now.
    let mut scratch = [0u8; 4096];
    let mut stale = 0;
    while let Ok(n @ 1..) = rustix::io::read(&read, &mut scratch) {
        stale += n;
    }
    if stale > 0 {
        log::debug!(
            "discarded {stale} bytes an earlier session left in {}",
            resp.display()
        );
    }
    let write = open(&req, OFlags::WRONLY).map_err(|e| open_error(&req, "for writing", e))?;
    let write = trusted(write, &req)?;
    // The size the server gives it when the session starts, known now (the
    // client's looks for the session's end are spaced by it: see
    // `stream::hangup`).
    crate::transport::pipe::grow_pipe(write.as_fd());
    let (uid, gid) = server.unzip();
    let mut inner = StreamChannel::new(
        StreamIo::Pair {
            read,
            write: Some(write),
        },
        client_framing(endpoint),
        options.max_payload,
        url.clone(),
        // The server's identity is the FIFOs' owner.
        PeerInfo {
            address: Some(url),
            uid,
            gid,
            pid: None,
        },
    )
    .with_deadlines(options)
    // A server that ends the session closes PATH.resp, while the listener
    // still reads PATH.req: our writes would go on finding room until the
    // pipe is full, and then wait for ever (see `super::slot` and
    // `stream::hangup`).
    .ending_with_read_hangup();
    // A FIFO pair is shared: a client that takes no lock may write beside
    // us. Our requests carry numbers no other client is likely to use, so a
    // reply to someone else's request is recognised and refused.
    inner.start_sequence_at(crate::frame::random_sequence_start());
    Ok(FifoChannel {
        inner,
        lock: Some(lock),
        heard: false,
        busy: None,
        client: true,
    })
}
