//! The server end: one socket, a reader thread demultiplexing datagrams by
//! source address, and a channel per client.
//!
//! Per-source state is lazy and small: a conversation is a table entry, an
//! unbounded (block-allocated, so empty until used) queue capped at
//! [`QUEUE_DEPTH`] frames, and a doorbell (an eventfd the reader thread
//! writes only once the channel's receiver has said it waits on it, see
//! `wake::Doorbell`) that makes the channel pollable
//! ([`Channel::readiness`]), so `service::Server` serves conversations
//! without a thread each, while a thread blocked in `recv` makes no
//! eventfd call per datagram. At most [`MAX_CONVERSATIONS`] exist at once;
//! a new source beyond that replaces the conversation heard from least
//! recently.
//! Invalid datagrams are counted ([`UdpListener::invalid_datagrams`]) and
//! logged at most once a second.

use super::*;
use crate::GoneReason;
use crate::channel::Readiness;
use crate::halves::{Guarded, RecvHalf, Role, SendHalf};
use crate::transport::queue;
use crate::wake::Doorbell;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

type Message = (Header, Vec<u8>);

/// The server's end of one client's conversation.
#[derive(Debug)]
pub struct UdpServerChannel {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    client: SocketAddr,
    rx: Receiver<Message>,
    stamper: Stamper,
    /// The sequence number of the client's latest frame: the goodbye names
    /// it, so a later client on the same port knows it is not meant for it.
    last_received: u64,
    /// The outgoing datagram, reused.
    out: Vec<u8>,
    closed: bool,
    last_heard: std::time::Instant,
    /// Cleared on drop, so the reader thread can forget this client.
    alive: Arc<AtomicBool>,
    /// Readable after a `try_recv` found nothing, once a frame is queued or
    /// the reader thread forgot us.
    bell: Arc<Doorbell>,
    /// Whole, or one half of a split channel: the halves' shared guard
    /// clears `alive` when both are gone.
    role: Role,
    /// Split halves: the receive half's `last_received`, which the send
    /// half's goodbye names.
    heard_sequence: Option<Arc<AtomicU64>>,
}

/// What the halves of a split conversation share: its `alive` flag,
/// cleared when both halves are gone, and its queue, kept open so that a
/// dropped receive half alone does not end the conversation (the reader
/// thread would take the client's next frame for a new one). The queue is
/// bounded by the reader ([`QUEUE_DEPTH`]).
#[derive(Debug)]
struct Conversation {
    alive: Arc<AtomicBool>,
    _queue: Receiver<Message>,
}

impl Drop for Conversation {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
    }
}

impl UdpServerChannel {
    /// The error once the reader thread has dropped this conversation.
    fn gone(&self) -> Error {
        Error::peer_gone(
            GoneReason::Closed,
            format!(
                "udp client {} said goodbye (or the listener closed)",
                self.client
            ),
        )
    }

    /// Ends a conversation silent for [`IDLE_EXPIRY`], without a goodbye:
    /// the client may just be quiet.
    fn expire(&mut self) -> Error {
        self.closed = true;
        Error::peer_gone(
            GoneReason::Evicted,
            format!(
                "udp client {} silent for {IDLE_EXPIRY:?}; conversation expired",
                self.client
            ),
        )
    }

    /// A frame taken from the queue, into `frame`.
    fn took(&mut self, frame: &mut Frame, header: Header, payload: Vec<u8>) {
        self.last_heard = std::time::Instant::now();
        self.last_received = header.sequence;
        if let Some(heard) = &self.heard_sequence {
            heard.store(header.sequence, Ordering::Relaxed);
        }
        frame.header = header;
        *frame.payload_mut() = payload;
    }

    fn send_frame(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: Option<u64>,
    ) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        let limit = payload_limit(&self.client);
        message::encode(
            &mut self.stamper,
            message_type,
            flags,
            payload,
            answers,
            limit,
            TRANSPORT,
            &mut self.out,
        )?;
        loop {
            return match self.socket.send_to(&self.out, self.client) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => Err(Error::io(format!("send to udp client {}", self.client), e)),
            };
        }
    }
}

impl Channel for UdpServerChannel {
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        _timeout: Option<Duration>,
    ) -> Result<()> {
        self.send_frame(message_type, flags, payload, None)
    }

    fn reply_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: u64,
        _timeout: Option<Duration>,
    ) -> Result<()> {
        self.send_frame(message_type, flags, payload, Some(answers))
    }

    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        let deadline = Deadline::after(timeout);
        let (header, payload) = loop {
            let idle_left = IDLE_EXPIRY.saturating_sub(self.last_heard.elapsed());
            let wait = deadline.remaining().map_or(idle_left, |d| d.min(idle_left));
            match self.rx.recv_timeout(wait) {
                Ok(message) => break message,
                Err(RecvTimeoutError::Disconnected) => return Err(self.gone()),
                Err(RecvTimeoutError::Timeout) if self.last_heard.elapsed() >= IDLE_EXPIRY => {
                    return Err(self.expire());
                }
                Err(RecvTimeoutError::Timeout) => {
                    if deadline.remaining().is_some_and(|d| d.is_zero()) {
                        return Err(Error::Timeout {
                            waiting_for: "a datagram from the client (it may have been lost)",
                            after: timeout.unwrap_or_default(),
                        });
                    }
                }
            }
        };
        self.took(frame, header, payload);
        Ok(())
    }

    fn try_recv(&mut self, frame: &mut Frame) -> Result<bool> {
        if self.closed {
            return Err(Error::Closed);
        }
        // Nothing queued arms the doorbell: the reader thread rings it for
        // the next frame (the contract of `readiness`).
        match queue::try_take(&self.rx, &self.bell, || self.gone())? {
            Some((header, payload)) => {
                self.took(frame, header, payload);
                Ok(true)
            }
            None if self.last_heard.elapsed() >= IDLE_EXPIRY => Err(self.expire()),
            None => Ok(false),
        }
    }

    fn close(&mut self) -> Result<()> {
        if !self.closed && self.role != Role::Receiver {
            let last_received = match &self.heard_sequence {
                Some(heard) => heard.load(Ordering::Relaxed),
                None => self.last_received,
            };
            // Best effort: a lost goodbye leaves the client to its deadline.
            let _ = self.send_frame(
                message_type::GOODBYE,
                flags::CHECKSUM,
                &[],
                Some(last_received),
            );
        }
        self.closed = true;
        Ok(())
    }

    // The socket is shared already; the send half sends to the client and
    // says goodbye when dropped, the receive half takes the frames the
    // reader thread hands over. The reader forgets the client when both
    // halves are gone.
    fn split(mut self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        let heard = Arc::new(AtomicU64::new(self.last_received));
        let sender = UdpServerChannel {
            socket: self.socket.clone(),
            local: self.local,
            client: self.client,
            rx: crossbeam_channel::never(),
            stamper: std::mem::take(&mut self.stamper),
            last_received: self.last_received,
            out: std::mem::take(&mut self.out),
            closed: self.closed,
            last_heard: self.last_heard,
            alive: self.alive.clone(),
            bell: self.bell.clone(),
            role: Role::Sender,
            heard_sequence: Some(heard.clone()),
        };
        self.role = Role::Receiver;
        self.heard_sequence = Some(heard);
        let alive = Arc::new(Conversation {
            alive: self.alive.clone(),
            _queue: self.rx.clone(),
        });
        Ok(crate::halves::halves(
            Guarded {
                inner: sender,
                _guard: alive.clone(),
            },
            Guarded {
                inner: *self,
                _guard: alive,
            },
        ))
    }

    fn into_any(self: Box<Self>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(self)
    }

    fn as_any(&self) -> Option<&(dyn std::any::Any + Send)> {
        Some(self)
    }

    fn peer(&self) -> PeerInfo {
        PeerInfo {
            address: Some(self.client.to_string()),
            ..PeerInfo::default()
        }
    }

    fn sent_sequence(&self) -> Option<u64> {
        self.stamper.last_sent()
    }

    fn readiness(&self) -> Option<Readiness<'_>> {
        Some(Readiness {
            fd: self.bell.fd(),
            frame_deadline: None,
            idle_timeout: Some(IDLE_EXPIRY),
        })
    }
}

impl Drop for UdpServerChannel {
    fn drop(&mut self) {
        let _ = self.close();
        if self.role == Role::Whole {
            self.alive.store(false, Ordering::Relaxed);
        }
        log::trace!(
            "udp://{}: conversation with {} ended",
            self.local,
            self.client
        );
    }
}

/// Reads the shared socket and hands frames to per-client channels.
#[derive(Debug)]
pub struct UdpListener {
    local: SocketAddr,
    invalid: Arc<AtomicU64>,
    incoming: Receiver<UdpServerChannel>,
    bell: Arc<crate::wake::Doorbell>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

/// Binds a UDP socket at the endpoint and starts demultiplexing.
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<UdpListener> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["udp"])?;
    let addr = resolve(endpoint)?[0];
    let socket = UdpSocket::bind(addr).map_err(|e| match e.kind() {
        ErrorKind::AddrInUse => Error::InUse {
            endpoint: format!("udp://{addr}"),
            hint: Some(crate::procnet::in_use_hint(
                "another process has that port",
                &crate::procnet::inet_port_holders("udp", addr.port()),
            )),
        },
        _ => Error::io(format!("bind udp://{addr}"), e),
    })?;
    let local = socket
        .local_addr()
        .map_err(|e| Error::io("read the bound UDP address", e))?;
    socket
        .set_read_timeout(Some(STOP_POLL))
        .map_err(|e| Error::io("set a UDP read timeout", e))?;
    tune(&socket);
    let socket = Arc::new(socket);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, incoming) = bounded(BACKLOG);
    let bell = Arc::new(crate::wake::Doorbell::new()?);
    let invalid = Arc::new(AtomicU64::new(0));
    let reader = Demux {
        socket: socket.clone(),
        local,
        max_payload: options.max_payload,
        stop: stop.clone(),
        accept: tx,
        bell: bell.clone(),
        clients: HashMap::new(),
        by_age: BTreeMap::new(),
        next_stamp: 0,
        since_sweep: 0,
        invalid: invalid.clone(),
        invalid_logged: 0,
        last_invalid_log: None,
    };
    let reader = std::thread::Builder::new()
        .name("utp-udp-demux".into())
        .spawn(move || reader.run())
        .map_err(|e| Error::io("start the UDP reader thread", e))?;
    Ok(UdpListener {
        local,
        invalid,
        incoming,
        bell,
        stop,
        reader: Some(reader),
    })
}

/// The listener's reader thread.
struct Demux {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    max_payload: usize,
    stop: Arc<AtomicBool>,
    accept: Sender<UdpServerChannel>,
    /// Rung after a new conversation is queued (the listener's readiness).
    bell: Arc<crate::wake::Doorbell>,
    clients: HashMap<SocketAddr, Client>,
    /// Conversations by the stamp of their latest datagram, oldest first.
    by_age: BTreeMap<u64, SocketAddr>,
    next_stamp: u64,
    /// Datagrams since the last sweep of ended conversations.
    since_sweep: usize,
    /// Invalid datagrams dropped so far (shared with the listener).
    invalid: Arc<AtomicU64>,
    /// The count when the last log line about them was written.
    invalid_logged: u64,
    last_invalid_log: Option<Instant>,
}

/// The reader thread's view of one conversation.
struct Client {
    tx: Sender<Message>,
    alive: Arc<AtomicBool>,
    bell: Arc<Doorbell>,
    /// Its key in `by_age`.
    stamp: u64,
}

/// Most conversations at once; a new source beyond it replaces the one
/// heard from least recently.
pub const MAX_CONVERSATIONS: usize = 4096;
/// How often (at most) dropped invalid datagrams are logged.
const INVALID_LOG_EVERY: Duration = Duration::from_secs(1);

/// Datagrams between sweeps of the client table while busy.
const SWEEP_EVERY: usize = 1024;

impl Demux {
    fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM_V6];
        while !self.stop.load(Ordering::SeqCst) {
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    self.dispatch(&buf[..n], from);
                    self.since_sweep += 1;
                    if self.since_sweep >= SWEEP_EVERY {
                        self.sweep();
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    self.sweep();
                }
                // ICMP errors for earlier replies to clients that are gone.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    log::warn!("udp://{}: receive failed: {e}", self.local);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// Forgets conversations whose channel the server has dropped.
    fn sweep(&mut self) {
        self.since_sweep = 0;
        let by_age = &mut self.by_age;
        self.clients.retain(|_, c| {
            let alive = c.alive.load(Ordering::Relaxed);
            if !alive {
                by_age.remove(&c.stamp);
            }
            alive
        });
        self.log_invalid(None);
    }

    /// Forgets one conversation; its channel's next receive reports PeerGone.
    fn forget(&mut self, from: &SocketAddr) {
        if let Some(client) = self.clients.remove(from) {
            self.by_age.remove(&client.stamp);
            drop(client.tx);
            // Whether or not its receiver waits on the descriptor.
            client.bell.ring_always();
        }
    }

    /// Counts an invalid datagram; logs at most one line a second.
    fn invalid_datagram(&mut self, len: usize, from: SocketAddr, error: frame::DecodeError) {
        self.invalid.fetch_add(1, Ordering::Relaxed);
        self.log_invalid(Some(format!("{len} bytes from {from}: {error}")));
    }

    /// Logs the invalid datagrams not logged yet, unless a line was written
    /// less than a second ago: one of them in detail, or their number.
    fn log_invalid(&mut self, latest: Option<String>) {
        let now = Instant::now();
        if self
            .last_invalid_log
            .is_some_and(|t| now.duration_since(t) < INVALID_LOG_EVERY)
        {
            return;
        }
        let total = self.invalid.load(Ordering::Relaxed);
        let unlogged = total - self.invalid_logged;
        match (unlogged, latest) {
            (0, _) => return,
            (1, Some(latest)) => log::warn!(
                "udp://{}: dropped an invalid datagram of {latest}",
                self.local
            ),
            (n, latest) => log::warn!(
                "udp://{}: dropped {n} invalid datagrams since the last report ({total} in all){}",
                self.local,
                latest
                    .map(|l| format!("; the latest: {l}"))
                    .unwrap_or_default()
            ),
        }
        self.invalid_logged = total;
        self.last_invalid_log = Some(now);
    }

    fn dispatch(&mut self, bytes: &[u8], from: SocketAddr) {
        if bytes.is_empty() {
            // Goodbye: dropping the sender makes the channel report PeerGone.
            self.forget(&from);
            return;
        }
        let (header, payload) = match frame::decode(bytes, self.max_payload) {
            Ok(ok) => ok,
            Err(e) => {
                self.invalid_datagram(bytes.len(), from, e);
                return;
            }
        };
        let first_sequence = header.sequence;
        let mut message = (header, payload.to_vec());
        if let Some(client) = self.clients.get_mut(&from) {
            if client.tx.len() >= QUEUE_DEPTH {
                log::debug!(
                    "udp://{}: {from} is not being served fast enough; dropped a frame",
                    self.local
                );
                return;
            }
            match client.tx.try_send(message) {
                Ok(()) => {
                    client.bell.ring();
                    self.by_age.remove(&client.stamp);
                    self.next_stamp += 1;
                    client.stamp = self.next_stamp;
                    self.by_age.insert(client.stamp, from);
                    return;
                }
                Err(TrySendError::Full(_)) => return,
                // The server closed that conversation; a new frame starts a new one.
                Err(TrySendError::Disconnected(m)) => {
                    self.forget(&from);
                    message = m;
                }
            }
        }
        if self.clients.len() >= MAX_CONVERSATIONS {
            self.sweep();
        }
        if self.clients.len() >= MAX_CONVERSATIONS {
            if let Some((_, oldest)) = self.by_age.first_key_value() {
                let oldest = *oldest;
                log::debug!(
                    "udp://{}: {MAX_CONVERSATIONS} conversations: forgetting {oldest}, heard from least recently",
                    self.local
                );
                self.forget(&oldest);
            }
        }
        // The channel's first `try_recv` takes the frame queued below (the
        // service layer drains a new channel before it waits on it).
        let bell = match Doorbell::new() {
            Ok(bell) => Arc::new(bell),
            Err(e) => {
                log::warn!(
                    "udp://{}: cannot start a conversation with {from}: {e}",
                    self.local
                );
                return;
            }
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let _ = tx.try_send(message);
        let channel = UdpServerChannel {
            socket: self.socket.clone(),
            local: self.local,
            client: from,
            rx,
            stamper: Stamper::default(),
            last_received: first_sequence,
            out: Vec::new(),
            closed: false,
            last_heard: std::time::Instant::now(),
            alive: Arc::new(AtomicBool::new(true)),
            bell: bell.clone(),
            role: Role::Whole,
            heard_sequence: None,
        };
        let alive = channel.alive.clone();
        match self.accept.try_send(channel) {
            Ok(()) => {
                self.bell.ring();
                self.next_stamp += 1;
                let stamp = self.next_stamp;
                self.by_age.insert(stamp, from);
                self.clients.insert(
                    from,
                    Client {
                        tx,
                        alive,
                        bell,
                        stamp,
                    },
                );
            }
            Err(TrySendError::Full(mut refused)) => {
                log::warn!(
                    "udp://{}: too many clients waiting for accept; ignored {from}",
                    self.local
                );
                refused.closed = true; // do not tell it goodbye: it was never accepted
            }
            Err(TrySendError::Disconnected(mut refused)) => refused.closed = true,
        }
    }
}

impl UdpListener {
    /// The address actually bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Invalid datagrams dropped so far (they are logged at most once a second).
    pub fn invalid_datagrams(&self) -> u64 {
        self.invalid.load(Ordering::Relaxed)
    }
}

impl Listener for UdpListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        if self.reader.is_none() {
            return Err(Error::Closed);
        }
        let channel = queue::recv(
            &self.incoming,
            timeout,
            "a datagram from a new client",
            || Error::Closed,
        )?;
        Ok(Box::new(channel))
    }

    fn try_accept(&mut self) -> Result<Option<Box<dyn Channel>>> {
        if self.reader.is_none() {
            return Err(Error::Closed);
        }
        Ok(
            queue::try_take(&self.incoming, &self.bell, || Error::Closed)?
                .map(|channel| Box::new(channel) as Box<dyn Channel>),
        )
    }

    /// An eventfd the reader thread rings when a new client's first
    /// datagram arrived.
    fn readiness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.bell.fd())
    }

    fn endpoint(&self) -> String {
        format!("udp://{}", self.local)
    }

    fn close(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        Ok(())
    }
}

impl Drop for UdpListener {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
