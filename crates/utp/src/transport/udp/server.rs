//! The server end: a listener socket read by a reader thread, and a
//! channel per client, which reads a socket of its own.
//!
//! The reader thread (`demux.rs`) reads the listener's socket: the first
//! valid frame from a new source starts a conversation, for which it opens
//! a socket connected to that client (`own.rs`); from then on the client's
//! datagrams arrive on that socket, which the channel reads and answers on
//! directly, as a plain connected socket would. Where no such socket can be
//! had (out of descriptors), the conversation is served as all were before:
//! the reader thread queues its frames (an unbounded, block-allocated queue
//! capped at [`QUEUE_DEPTH`] frames) and rings a doorbell (an eventfd
//! written only once the receiver has said it waits on it, see
//! `wake::Doorbell`) that makes the channel pollable
//! ([`Channel::readiness`]). Either way `service::Server` serves
//! conversations without a thread each. At most `MAX_CONVERSATIONS`
//! (4096) exist at once; a new source beyond that replaces the
//! conversation heard from least recently. Invalid datagrams are counted
//! ([`UdpListener::invalid_datagrams`]) and logged at most once a second.

use super::batch::{self, Refusal, Route};
use super::demux::MAX_CONVERSATIONS;
use super::*;
use crate::GoneReason;
use crate::channel::Readiness;
use crate::halves::{Guarded, RecvHalf, Role, SendHalf};
use crate::transport::queue;
use crate::wake::Doorbell;
use rustix::net::addr::SocketAddrArg;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// A receive with no deadline sleeps in `recv` (one system call), bounded
/// by the socket's timeout of [`IDLE_EXPIRY`], while the client was heard
/// from at most this long ago; later it polls for exactly what is left,
/// so a silent client expires within this much of [`IDLE_EXPIRY`].
const SLEEP_SLACK: Duration = Duration::from_secs(1);

/// What a conversation's channel and the listener's reader thread share.
#[derive(Debug)]
pub(super) struct Ties {
    /// Cleared when the channel (both halves, if split) is gone, or when
    /// it heard the client's goodbye on its own socket: the client's next
    /// frame starts a new conversation.
    pub(super) alive: AtomicBool,
    /// Set by the reader thread before it ends the conversation (its
    /// table was full, or the listener closed).
    pub(super) evicted: AtomicBool,
    /// When the client was last heard from, in milliseconds since the
    /// listener started: the reader thread forgets the least recent first.
    pub(super) heard_ms: AtomicU64,
    /// A conversation without a socket of its own: readable after a
    /// `try_recv` found nothing, once a frame is queued or the reader
    /// thread forgot the conversation. (With one, its socket is readable
    /// instead, and no eventfd is spent.)
    pub(super) bell: Option<Doorbell>,
}

impl Ties {
    /// A conversation heard from at `heard`, a time after the listener's
    /// `epoch`.
    pub(super) fn new(epoch: Instant, heard: Instant, with_bell: bool) -> Result<Self> {
        let ties = Ties {
            alive: AtomicBool::new(true),
            evicted: AtomicBool::new(false),
            heard_ms: AtomicU64::new(0),
            bell: with_bell.then(Doorbell::new).transpose()?,
        };
        ties.note_heard(epoch, heard);
        Ok(ties)
    }

    /// Notes that the client was heard from at `at` (see `heard_ms`).
    pub(super) fn note_heard(&self, epoch: Instant, at: Instant) {
        let ms = at.saturating_duration_since(epoch).as_millis() as u64;
        self.heard_ms.store(ms, Ordering::Relaxed);
    }
}

/// The server's end of one client's conversation.
#[derive(Debug)]
pub struct UdpServerChannel {
    /// The listener's socket: sends, where the conversation has no socket
    /// of its own.
    listener: Arc<UdpSocket>,
    /// The conversation's own socket, connected to the client.
    own: Option<Arc<UdpSocket>>,
    local: SocketAddr,
    client: SocketAddr,
    /// Frames the reader thread took for this conversation: the first, and
    /// those that reached the listener before `own` was connected (or every
    /// frame, without `own`).
    rx: Receiver<Message>,
    stamper: Stamper,
    /// The sequence number of the client's latest frame: the goodbye names
    /// it, so a later client on the same port knows it is not meant for it.
    last_received: u64,
    /// The outgoing datagram, reused.
    out: Vec<u8>,
    max_payload: usize,
    closed: bool,
    /// Why the conversation ended, once its own socket said so (a goodbye,
    /// or the reader thread ending it): every later receive says it again.
    ended: Option<GoneReason>,
    last_heard: Instant,
    /// The listener's start, for `Ties::heard_ms`.
    epoch: Instant,
    ties: Arc<Ties>,
    invalid: Arc<InvalidDatagrams>,
    /// Whole, or one half of a split channel: the halves' shared guard
    /// clears `ties.alive` when both are gone.
    role: Role,
    /// Split halves: the receive half's `last_received`, which the send
    /// half's goodbye names.
    heard_sequence: Option<Arc<AtomicU64>>,
}

/// What the halves of a split conversation share: its ties, whose `alive`
/// is cleared when both halves are gone, and its queue, kept open so that
/// a dropped receive half alone does not end the conversation (the reader
/// thread would take the client's next frame for a new one). The queue is
/// bounded by the reader ([`QUEUE_DEPTH`]).
#[derive(Debug)]
struct Conversation {
    ties: Arc<Ties>,
    _queue: Receiver<Message>,
}

impl Drop for Conversation {
    fn drop(&mut self) {
        self.ties.alive.store(false, Ordering::Relaxed);
    }
}

impl UdpServerChannel {
    /// The reader thread's doorbell, without handing it out (tests).
    #[cfg(test)]
    pub(super) fn doorbell_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.ties.bell.as_ref().map(Doorbell::fd)
    }

    /// A new conversation with `client` (built by the reader thread).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        listener: Arc<UdpSocket>,
        own: Option<Arc<UdpSocket>>,
        local: SocketAddr,
        client: SocketAddr,
        rx: Receiver<Message>,
        first_sequence: u64,
        ties: Arc<Ties>,
        epoch: Instant,
        max_payload: usize,
        invalid: Arc<InvalidDatagrams>,
    ) -> Self {
        UdpServerChannel {
            listener,
            own,
            local,
            client,
            rx,
            stamper: Stamper::default(),
            last_received: first_sequence,
            out: Vec::new(),
            max_payload,
            closed: false,
            ended: None,
            last_heard: Instant::now(),
            epoch,
            ties,
            invalid,
            role: Role::Whole,
            heard_sequence: None,
        }
    }

    /// A conversation `accept` never handed out: dropped without a
    /// goodbye (its own socket, if any, closes with it).
    pub(super) fn never_accepted(mut self) {
        self.closed = true;
    }

    /// The error once the conversation is over: the client said goodbye,
    /// or the reader thread ended it (the listener closed, or it made room
    /// for a new client).
    fn gone(&self) -> Error {
        let reason = self.ended.unwrap_or_else(|| self.end_reason());
        if reason == GoneReason::Evicted {
            return Error::peer_gone(
                GoneReason::Evicted,
                format!(
                    "udp conversation with {} ended by the listener (closed, or full: the \
                     client had been heard from least recently)",
                    self.client
                ),
            );
        }
        Error::peer_gone(
            GoneReason::Closed,
            format!("udp client {} said goodbye", self.client),
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

    /// Notes a frame from the client, whose header is `header`.
    fn heard(&mut self, header: &Header) {
        self.last_heard = Instant::now();
        if self.own.is_some() {
            self.ties.note_heard(self.epoch, self.last_heard);
        }
        self.last_received = header.sequence;
        if let Some(heard) = &self.heard_sequence {
            heard.store(header.sequence, Ordering::Relaxed);
        }
    }

    /// A frame taken from the queue, into `frame`.
    fn took(&mut self, frame: &mut Frame, header: Header, payload: Vec<u8>) {
        self.heard(&header);
        frame.header = header;
        *frame.payload_mut() = payload;
    }

    /// The conversation's own socket read end-of-file: the client's
    /// goodbye, or the reader thread ending the conversation. Every later
    /// receive reports it. The socket stays connected to the client until
    /// the channel is dropped; then the client's next frame reaches the
    /// listener and starts a new conversation.
    fn goodbye(&mut self) -> Error {
        self.ended = Some(self.end_reason());
        self.ties.alive.store(false, Ordering::Relaxed);
        self.gone()
    }

    /// Why the conversation is ending now: evicted if the reader thread
    /// said so, else the client's goodbye.
    fn end_reason(&self) -> GoneReason {
        if self.ties.evicted.load(Ordering::Acquire) {
            GoneReason::Evicted
        } else {
            GoneReason::Closed
        }
    }

    /// A receive from the conversation's own socket (the queue first).
    fn recv_own(
        &mut self,
        own: &Arc<UdpSocket>,
        frame: &mut Frame,
        timeout: Option<Duration>,
    ) -> Result<()> {
        // Not ended: both callers look first.
        let deadline = Deadline::after(timeout);
        loop {
            if let Ok((header, payload)) = self.rx.try_recv() {
                self.took(frame, header, payload);
                return Ok(());
            }
            let idle_left = IDLE_EXPIRY.saturating_sub(self.last_heard.elapsed());
            if idle_left.is_zero() {
                return Err(self.expire());
            }
            let sleep = timeout.is_none() && idle_left + SLEEP_SLACK >= IDLE_EXPIRY;
            match receive(own, sleep, self.max_payload, frame) {
                // Only an empty datagram (the client's goodbye) or the end
                // of the socket (the reader thread ended it) reads 0 bytes.
                Ok(Received::Nothing) => return Err(self.goodbye()),
                Ok(Received::Frame) => {
                    let header = frame.header;
                    self.heard(&header);
                    return Ok(());
                }
                Ok(Received::Invalid(len, error)) => self.invalid.dropped(len, self.client, error),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // An ICMP error for an earlier reply: the client's port was
                // closed then; it may be open again.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                // The socket's timeout (IDLE_EXPIRY) ran out: look again.
                Err(e) if sleep && e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let left = deadline.remaining();
                    if left.is_some_and(|d| d.is_zero()) {
                        return Err(Error::Timeout {
                            waiting_for: "a datagram from the client (it may have been lost)",
                            after: timeout.unwrap_or_default(),
                        });
                    }
                    let wait = left.map_or(idle_left, |d| d.min(idle_left));
                    // Past `wait` the loop decides: the caller's deadline or
                    // the client's silence.
                    let _ = wait_ready(
                        &**own,
                        Ready::Read,
                        Deadline::after(Some(wait)),
                        "a datagram from the client",
                        Some(wait),
                    );
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("receive from udp client {}", self.client),
                        e,
                    ));
                }
            }
        }
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
        let (mut sender, route) = ServerSender::with_route(self.client, &self.own, &self.listener);
        batch::send_one(&mut sender, || route.send(&self.out))
    }
}

/// A server's send: its sockets sleep in the send when there is no room,
/// and should one report no room all the same, the send waits for it
/// rather than leave frames unsent; an ICMP error for an earlier reply is
/// passed over.
struct ServerSender<'a> {
    client: SocketAddr,
    /// The socket the datagrams go from: the conversation's own, else the
    /// listener's.
    socket: std::os::fd::BorrowedFd<'a>,
}

impl<'a> ServerSender<'a> {
    /// The sender of a conversation with `client`, and the route its
    /// datagrams take: from the conversation's own socket, connected to
    /// the client, else from the listener's, each addressed to the client.
    /// The server's sockets sleep in the send (no `DONTWAIT`).
    fn with_route(
        client: SocketAddr,
        own: &'a Option<Arc<UdpSocket>>,
        listener: &'a UdpSocket,
    ) -> (Self, Route<'a>) {
        let (socket, to) = match own {
            Some(own) => (own.as_fd(), None),
            None => (listener.as_fd(), Some(client.as_any())),
        };
        let route = Route {
            socket,
            to,
            limit: payload_limit(&client),
            flags: rustix::net::SendFlags::empty(),
        };
        (ServerSender { client, socket }, route)
    }
}

impl batch::Sender for ServerSender<'_> {
    fn refused(&mut self, error: std::io::Error) -> Refusal {
        match error.kind() {
            // An ICMP error for an earlier reply, reported on this send of
            // a connected socket: this datagram was not sent.
            ErrorKind::Interrupted | ErrorKind::ConnectionRefused => Refusal::Retry,
            ErrorKind::WouldBlock => Refusal::Full,
            _ => Refusal::Fail(Error::io(
                format!("send to udp client {}", self.client),
                error,
            )),
        }
    }

    fn wait_for_room(&mut self) -> Result<bool> {
        batch::wait_for_room(self.socket, Deadline::after(None), None).map(|()| true)
    }
}

impl UdpServerChannel {
    /// [`batch::send_datagrams`] to this conversation's client: from its
    /// own socket, else from the listener's, addressed.
    fn send_datagrams(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> (usize, Result<()>) {
        if self.closed {
            return (0, Err(Error::Closed));
        }
        let (mut sender, route) = ServerSender::with_route(self.client, &self.own, &self.listener);
        let stamper = &mut self.stamper;
        batch::send_datagrams(&route, stamper, &mut sender, message_type, flags, payloads)
    }
}

/// What one receive from a conversation's own socket found.
enum Received {
    /// End-of-file: an empty datagram, or the socket's read side shut down.
    Nothing,
    /// A valid frame, now in the caller's `Frame`.
    Frame,
    /// A datagram of this many bytes that is not a valid frame.
    Invalid(usize, frame::DecodeError),
}

thread_local! {
    /// Where this thread's receives from conversations' own sockets land:
    /// one largest datagram per thread, allocated at its first receive,
    /// not one per conversation (a frame's bytes are copied into the
    /// caller's `Frame` at once).
    static DATAGRAM: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(Box::new([]));
}

/// One datagram from `own` into `frame`: sleeping in `recv` when `sleep`
/// (bounded by the socket's timeout), else without waiting.
fn receive(
    own: &UdpSocket,
    sleep: bool,
    max_payload: usize,
    frame: &mut Frame,
) -> std::io::Result<Received> {
    DATAGRAM.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.is_empty() {
            *buf = vec![0u8; MAX_DATAGRAM_V6].into_boxed_slice();
        }
        let n = recv_once(own, &mut buf, sleep)?;
        if n == 0 {
            return Ok(Received::Nothing);
        }
        Ok(match frame::decode(&buf[..n], max_payload) {
            Ok((header, payload)) => {
                frame.set(header, payload);
                Received::Frame
            }
            Err(error) => Received::Invalid(n, error),
        })
    })
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

    /// One `sendmmsg` per 32 frames (see [`Channel::send_batch`]).
    fn send_batch(&mut self, message_type: u8, flags: u16, payloads: &[&[u8]]) -> Result<()> {
        self.send_datagrams(message_type, flags, payloads).1
    }

    /// As [`send_batch`](Self::send_batch): a server's `send` waits for
    /// room in the kernel (which a full loopback socket buffer seldom
    /// needs), so the batch does too.
    fn try_send_batch(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> Result<usize> {
        batch::taken(self.send_datagrams(message_type, flags, payloads))
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
        if self.ended.is_some() {
            return Err(self.gone());
        }
        if let Some(own) = self.own.clone() {
            return self.recv_own(&own, frame, timeout);
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
        if self.ended.is_some() {
            return Err(self.gone());
        }
        if let Some(own) = self.own.clone() {
            return match self.recv_own(&own, frame, Some(Duration::ZERO)) {
                Ok(()) => Ok(true),
                Err(Error::Timeout { .. }) => Ok(false),
                Err(e) => Err(e),
            };
        }
        // Nothing queued arms the doorbell, once its descriptor has been
        // handed out: the reader thread rings it for the next frame (the
        // contract of `readiness`). A conversation that is only polled is
        // never rung (no eventfd write per datagram).
        let bell = self
            .ties
            .bell
            .as_ref()
            .expect("a conversation without its own socket has a doorbell");
        match queue::try_take(&self.rx, bell, || self.gone())? {
            Some((header, payload)) => {
                self.took(frame, header, payload);
                Ok(true)
            }
            None if self.last_heard.elapsed() >= IDLE_EXPIRY => Err(self.expire()),
            None => Ok(false),
        }
    }

    fn close(&mut self) -> Result<()> {
        if !self.closed && self.ended.is_none() && self.role != Role::Receiver {
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

    // The sockets are shared already; the send half sends to the client and
    // says goodbye when dropped, the receive half takes the frames (from
    // the conversation's own socket, or those the reader thread hands
    // over). The reader forgets the client when both halves are gone.
    fn split(mut self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        let heard = Arc::new(AtomicU64::new(self.last_received));
        let sender = UdpServerChannel {
            listener: self.listener.clone(),
            own: self.own.clone(),
            local: self.local,
            client: self.client,
            rx: crossbeam_channel::never(),
            stamper: std::mem::take(&mut self.stamper),
            last_received: self.last_received,
            out: std::mem::take(&mut self.out),
            max_payload: self.max_payload,
            closed: self.closed,
            ended: self.ended,
            last_heard: self.last_heard,
            epoch: self.epoch,
            ties: self.ties.clone(),
            invalid: self.invalid.clone(),
            role: Role::Sender,
            heard_sequence: Some(heard.clone()),
        };
        self.role = Role::Receiver;
        self.heard_sequence = Some(heard);
        let alive = Arc::new(Conversation {
            ties: self.ties.clone(),
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

    /// The conversation's own socket (readable when the client's datagram
    /// or the end of the conversation is there), else the doorbell the
    /// reader thread rings. Either way, frames queued before the channel
    /// was accepted are taken by `try_recv` first.
    fn readiness(&self) -> Option<Readiness<'_>> {
        let fd = match (&self.own, &self.ties.bell) {
            (Some(own), _) => own.as_fd(),
            (None, Some(bell)) => bell.hand_out(),
            (None, None) => unreachable!("a conversation without its own socket has a doorbell"),
        };
        Some(Readiness {
            fd,
            frame_deadline: None,
            idle_timeout: Some(IDLE_EXPIRY),
        })
    }
}

impl Drop for UdpServerChannel {
    fn drop(&mut self) {
        let _ = self.close();
        if self.role == Role::Whole {
            self.ties.alive.store(false, Ordering::Relaxed);
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
    invalid: Arc<InvalidDatagrams>,
    incoming: Receiver<UdpServerChannel>,
    bell: Arc<crate::wake::Doorbell>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

/// Binds a UDP socket at the endpoint and starts demultiplexing.
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<UdpListener> {
    listen_with(endpoint, options, Limits::default())
}

/// How a listener serves its conversations; tests narrow the defaults.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// Whether conversations may get sockets of their own (`own.rs`).
    pub(super) own_sockets: bool,
    /// Most conversations at once.
    pub(super) conversations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            own_sockets: true,
            conversations: MAX_CONVERSATIONS,
        }
    }
}

pub(super) fn listen_with(
    endpoint: &Endpoint,
    options: &Options,
    limits: Limits,
) -> Result<UdpListener> {
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
    // After binding (see `own.rs`); without it every conversation is read
    // through this socket, as before.
    let own_sockets = limits.own_sockets
        && match own::share_port(&socket, local) {
            Ok(()) => true,
            Err(e) => {
                log::debug!("udp://{local}: conversations will share the listener's socket ({e})");
                false
            }
        };
    let socket = Arc::new(socket);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, incoming) = bounded(BACKLOG);
    let bell = Arc::new(crate::wake::Doorbell::new()?);
    let invalid = Arc::new(InvalidDatagrams::new(local));
    let reader = Demux {
        socket: socket.clone(),
        local,
        max_payload: options.max_payload,
        stop: stop.clone(),
        accept: tx,
        bell: bell.clone(),
        clients: HashMap::new(),
        since_sweep: 0,
        invalid: invalid.clone(),
        epoch: Instant::now(),
        own_sockets,
        draining: false,
        max_conversations: limits.conversations,
        drain_buf: Vec::new(),
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

impl UdpListener {
    /// The address actually bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Invalid datagrams dropped so far (they are logged at most once a second).
    pub fn invalid_datagrams(&self) -> u64 {
        self.invalid.count()
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
        Some(self.bell.hand_out())
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
