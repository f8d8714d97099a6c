//! The listener's reader thread: reads the listener's socket, starts a
//! conversation for each new source, opens its own socket (`own.rs`) and
//! hands over what arrived before that socket took over.

use super::server::{Ties, UdpServerChannel};
use super::*;
use crate::wake::Doorbell;
use std::sync::Weak;
use std::time::Instant;

/// The reader thread's state.
pub(super) struct Demux {
    pub(super) socket: Arc<UdpSocket>,
    pub(super) local: SocketAddr,
    pub(super) max_payload: usize,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) accept: Sender<UdpServerChannel>,
    /// Rung after a new conversation is queued (the listener's readiness).
    pub(super) bell: Arc<Doorbell>,
    pub(super) clients: HashMap<SocketAddr, Client>,
    /// Datagrams since the last sweep of ended conversations.
    pub(super) since_sweep: usize,
    pub(super) invalid: Arc<InvalidDatagrams>,
    /// When the listener started: conversations note when they last heard
    /// from their client in milliseconds since then.
    pub(super) epoch: Instant,
    /// Whether conversations get sockets of their own (the port's group
    /// was formed at `listen`).
    pub(super) own_sockets: bool,
    /// Whether a drain of the listener's socket is under way (a conversation
    /// it starts does not start another).
    pub(super) draining: bool,
    /// Most conversations at once ([`MAX_CONVERSATIONS`] but in tests).
    pub(super) max_conversations: usize,
    /// Where `drain` reads: allocated at the first drain and kept, not one
    /// largest datagram's buffer per new conversation.
    pub(super) drain_buf: Vec<u8>,
}

/// The reader thread's view of one conversation.
pub(super) struct Client {
    tx: Sender<Message>,
    ties: Arc<Ties>,
    /// The conversation's own socket, to end it when the table is full or
    /// the listener closes (the channel owns it).
    own: Option<Weak<UdpSocket>>,
}

/// Most conversations at once; a new source beyond it replaces the one
/// heard from least recently.
pub const MAX_CONVERSATIONS: usize = 4096;

/// Conversations with a socket of their own at most: a descriptor each,
/// so at most a quarter of the process's descriptor limit, and never more
/// than 1024; the rest are read through the listener's socket.
fn own_sockets_max() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(limit / 4).unwrap_or(usize::MAX).min(1024)
}

/// Datagrams between sweeps of the client table while busy.
const SWEEP_EVERY: usize = 1024;

/// Queued datagrams one look at a socket takes at most (a client sending
/// flat out cannot keep a new conversation from starting).
const DRAIN_MAX: usize = 1024;

impl Demux {
    pub(super) fn run(mut self) {
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
        // The listener closed: its conversations end with it.
        let everyone: Vec<SocketAddr> = self.clients.keys().copied().collect();
        for client in everyone {
            self.forget(&client, true);
        }
    }

    /// Forgets conversations whose channel the server has dropped, or that
    /// heard their client's goodbye on their own socket.
    fn sweep(&mut self) {
        self.since_sweep = 0;
        self.clients
            .retain(|_, c| c.ties.alive.load(Ordering::Relaxed));
        self.invalid.report(None);
    }

    /// Ends one conversation: its channel's next receive reports PeerGone,
    /// as evicted unless the client said goodbye (`evict` false).
    fn forget(&mut self, from: &SocketAddr, evict: bool) {
        if let Some(client) = self.clients.remove(from) {
            if evict {
                client.ties.evicted.store(true, Ordering::Release);
            }
            if let Some(own) = client.own.as_ref().and_then(Weak::upgrade) {
                own::end(&own);
            }
            drop(client.tx);
            // Whether or not its receiver waits on the descriptor.
            if let Some(bell) = &client.ties.bell {
                bell.ring_always();
            }
        }
    }

    fn dispatch(&mut self, bytes: &[u8], from: SocketAddr) {
        if bytes.is_empty() {
            // Goodbye: dropping the sender makes the channel report PeerGone.
            self.forget(&from, false);
            return;
        }
        let (header, payload) = match frame::decode(bytes, self.max_payload) {
            Ok(ok) => ok,
            Err(e) => {
                self.invalid.dropped(bytes.len(), from, e);
                return;
            }
        };
        let first_sequence = header.sequence;
        let mut message = (header, payload.to_vec());
        if let Some(client) = self.clients.get_mut(&from) {
            if !client.ties.alive.load(Ordering::Relaxed) {
                // Its channel is gone or heard the client's goodbye: this
                // frame starts a new conversation.
                self.forget(&from, false);
            } else if client.tx.len() >= QUEUE_DEPTH {
                log::debug!(
                    "udp://{}: {from} is not being served fast enough; dropped a frame",
                    self.local
                );
                return;
            } else {
                match client.tx.try_send(message) {
                    Ok(()) => {
                        if let Some(bell) = &client.ties.bell {
                            bell.ring();
                        }
                        client.ties.note_heard(self.epoch, Instant::now());
                        return;
                    }
                    Err(TrySendError::Full(_)) => return,
                    // The server closed that conversation; a new frame starts a new one.
                    Err(TrySendError::Disconnected(m)) => {
                        self.forget(&from, false);
                        message = m;
                    }
                }
            }
        }
        if self.clients.len() >= self.max_conversations {
            self.sweep();
        }
        if self.clients.len() >= self.max_conversations {
            self.forget_least_recent();
        }
        self.start(from, message, first_sequence);
    }

    /// Forgets the conversation heard from least recently (the table is full).
    fn forget_least_recent(&mut self) {
        let oldest = self
            .clients
            .iter()
            .min_by_key(|(_, c)| c.ties.heard_ms.load(Ordering::Relaxed))
            .map(|(addr, _)| *addr);
        if let Some(oldest) = oldest {
            log::debug!(
                "udp://{}: {} conversations: forgetting {oldest}, heard from least recently",
                self.local,
                self.max_conversations
            );
            self.forget(&oldest, true);
        }
    }

    /// Starts a conversation with `from`, whose first frame is `message`,
    /// and queues its channel for `accept`.
    fn start(&mut self, from: SocketAddr, message: Message, first_sequence: u64) {
        // The channel's first `try_recv` takes the frame queued below (the
        // service layer drains a new channel before it waits on it).
        let own = self.open_own(from);
        let ties = match Ties::new(self.epoch, Instant::now(), own.is_none()) {
            Ok(ties) => Arc::new(ties),
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
        let channel = UdpServerChannel::new(
            self.socket.clone(),
            own.clone(),
            self.local,
            from,
            rx,
            first_sequence,
            ties.clone(),
            self.epoch,
            self.max_payload,
            self.invalid.clone(),
        );
        self.clients.insert(
            from,
            Client {
                tx,
                ties,
                own: own.as_ref().map(Arc::downgrade),
            },
        );
        // Before the channel reads `own`: the client's frames that reached
        // the listener's socket before `own` was connected.
        if own.is_some() && !self.draining {
            self.draining = true;
            let listener = self.socket.clone();
            self.drain(&listener);
            self.draining = false;
        }
        match self.accept.try_send(channel) {
            Ok(()) => self.bell.ring(),
            Err(TrySendError::Full(refused)) => {
                log::warn!(
                    "udp://{}: too many clients waiting for accept; ignored {from}",
                    self.local
                );
                self.clients.remove(&from);
                refused.never_accepted();
            }
            Err(TrySendError::Disconnected(refused)) => {
                self.clients.remove(&from);
                refused.never_accepted();
            }
        }
    }

    /// A socket of its own for the conversation with `from` (see `own.rs`),
    /// or `None`: the conversation is then read from the listener's socket.
    fn open_own(&mut self, from: SocketAddr) -> Option<Arc<UdpSocket>> {
        if !self.own_sockets {
            return None;
        }
        let owning = self.clients.values().filter(|c| c.own.is_some()).count();
        if owning >= own_sockets_max() {
            return None;
        }
        let socket = match own::open(self.local, from) {
            Ok(socket) => socket,
            Err(e) => {
                // Out of descriptors, most likely: this conversation is read
                // from here, and the next ones try again.
                log::debug!(
                    "udp://{}: no socket of its own for {from} ({e}); served through the listener",
                    self.local
                );
                return None;
            }
        };
        Some(Arc::new(socket))
    }

    /// Dispatches what `socket` (the listener's) holds now, without waiting.
    /// Never nested (`draining`), so it has its buffer to itself.
    fn drain(&mut self, socket: &UdpSocket) {
        let mut buf = std::mem::take(&mut self.drain_buf);
        buf.resize(MAX_DATAGRAM_V6, 0);
        for _ in 0..DRAIN_MAX {
            match own::take_waiting(socket, &mut buf) {
                Ok(Some((n, from))) => self.dispatch(&buf[..n], from),
                Ok(None) => break,
                // An earlier reply's ICMP error, reported once; or a signal.
                Err(rustix::io::Errno::CONNREFUSED | rustix::io::Errno::INTR) => {}
                Err(e) => {
                    log::debug!("udp://{}: reading queued datagrams: {e}", self.local);
                    break;
                }
            }
        }
        self.drain_buf = buf;
    }
}
