//! [`MqChannel`]: one end of a conversation over a pair of message queues.

use super::*;
use crate::halves::{RecvHalf, SendHalf};
use crate::now_and_then::NowAndThen;
use crate::transport::message;
use crate::{GoneReason, ProtocolReason};

/// How often a receive that waits less than a [`LIVENESS_CHECK`] slice (a
/// poll) checks that the peer still holds its queue: a `flock` on every
/// empty poll would cost each poll as much as the look itself.
const POLLED_PEER_CHECK: Duration = Duration::from_millis(10);

/// One end of a conversation over a pair of message queues.
#[derive(Debug)]
pub struct MqChannel {
    /// Sends here; this end holds an exclusive flock on it while open.
    pub(super) tx: Option<OwnedFd>,
    /// Receives here; the peer holds the flock on it.
    pub(super) rx: OwnedFd,
    pub(super) label: String,
    pub(super) stamper: Stamper,
    pub(super) message_size: usize,
    pub(super) max_payload: usize,
    pub(super) default_priority: u32,
    pub(super) last_priority: u32,
    pub(super) out: Vec<u8>,
    pub(super) buf: Vec<u8>,
    /// The readiness descriptor: an epoll set of the receive queue and a
    /// timer every [`LIVENESS_CHECK`], because a peer that dies leaves no
    /// trace on a queue descriptor (its lock goes, which nothing signals).
    ready: (crate::wake::PollSet, crate::wake::Ticker),
    /// When a receive that found nothing next checks the peer's lock (a
    /// `flock`): a caller that polls checks once per [`POLLED_PEER_CHECK`].
    peer_check: NowAndThen,
    idle_timeout: Option<Duration>,
    /// Set by `close`: later receives fail with `Closed`. (A receive half
    /// has no `tx` from the start and still receives.)
    pub(super) closed: bool,
}

impl MqChannel {
    pub(super) fn new(
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
        let ticker = crate::wake::Ticker::new(LIVENESS_CHECK)?;
        let set = crate::wake::PollSet::new(&[rx.as_fd(), ticker.fd()])?;
        Ok(MqChannel {
            ready: (set, ticker),
            peer_check: NowAndThen::new(POLLED_PEER_CHECK),
            idle_timeout: None,
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
            closed: false,
        })
    }

    /// The idle limit its readiness reports (set on server channels).
    pub(super) fn set_idle_timeout(&mut self, idle: Option<Duration>) {
        self.idle_timeout = idle;
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
        self.send_frame(message_type, flags, payload, None, priority, timeout)
    }

    fn send_frame(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: Option<u64>,
        priority: u32,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if priority >= PRIORITY_LIMIT {
            return Err(Error::protocol(
                ProtocolReason::Unsupported,
                format!("message priority {priority} is out of range (0..{PRIORITY_LIMIT})"),
            ));
        }
        let limit = self.max_send_payload();
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
    #[doc(hidden)]
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let tx = self.tx.as_ref().ok_or(Error::Closed)?;
        sys::timed_send(tx.as_fd(), bytes, 0, Duration::from_secs(1))
            .map_err(|e| Error::io(format!("send on {}", self.label), e))
    }

    fn gone(&self) -> Error {
        Error::peer_gone(
            GoneReason::Died,
            format!("the peer of {} closed its queues or exited", self.label),
        )
    }

    /// Takes one message if it arrives within `wait`: `Ok(None)` on timeout,
    /// or when a signal cut the wait short (not waited again here: `wait`
    /// would start over in full at each signal; the caller waits again with
    /// what its deadline has left).
    pub(super) fn receive(&mut self, wait: Duration) -> Result<Option<usize>> {
        match sys::timed_receive(self.rx.as_fd(), &mut self.buf, wait) {
            Ok((n, priority)) => {
                self.last_priority = priority;
                Ok(Some(n))
            }
            Err(Errno::INTR | Errno::TIMEDOUT) => Ok(None),
            Err(e) => Err(Error::io(format!("receive on {}", self.label), e)),
        }
    }

    /// Waits at most `timeout` for the next message and returns its length
    /// in `buf`. A peer found gone is reported once what it sent before
    /// leaving has been delivered.
    fn next_message(&mut self, timeout: Option<Duration>) -> Result<usize> {
        if self.closed {
            return Err(Error::Closed);
        }
        let deadline = Deadline::after(timeout);
        loop {
            let slice = deadline
                .remaining()
                .map_or(LIVENESS_CHECK, |d| d.min(LIVENESS_CHECK));
            match self.receive(slice)? {
                Some(n) => return Ok(n),
                // Checked before a timeout is reported too: a caller that
                // polls with timeouts no longer than the check interval (a
                // server) must still learn that its peer died. A poll
                // checks once per POLLED_PEER_CHECK; a slice of
                // LIVENESS_CHECK always finds the check due.
                None if !self.peer_check.due() || held_by_peer(&self.rx) => {
                    if deadline.remaining().is_some_and(|d| d.is_zero()) {
                        return Err(Error::Timeout {
                            waiting_for: "a message from the peer",
                            after: timeout.unwrap_or_default(),
                        });
                    }
                }
                // The peer is gone; deliver what it sent before leaving.
                None => {
                    return match self.receive(Duration::ZERO)? {
                        Some(n) => Ok(n),
                        None => Err(self.gone()),
                    };
                }
            }
        }
    }

    /// The goodbye a peer sends as an empty message, as the error a receive returns.
    fn said_goodbye(&self) -> Error {
        Error::peer_gone(
            GoneReason::Closed,
            format!("the peer of {} said goodbye", self.label),
        )
    }

    /// `try_recv`'s first step: consume the liveness tick (once the
    /// descriptor is out: see Ticker); a tick after this check brings the
    /// loop back. A tick means the event loop came back to check the peer:
    /// check now, however recently a poll did.
    fn take_tick(&mut self) {
        if self.ready.1.reset() > 0 {
            self.peer_check.expire();
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
        let n = self.next_message(timeout)?;
        if !message::decode(&self.buf[..n], self.max_payload, frame)? {
            return Err(self.said_goodbye());
        }
        Ok(())
    }

    /// Lent from the channel's receive buffer, where the message arrived.
    fn recv_ref<'a>(
        &'a mut self,
        _spare: &'a mut Frame,
        timeout: Option<Duration>,
    ) -> Result<FrameRef<'a>> {
        let n = self.next_message(timeout)?;
        let this: &'a Self = self;
        message::lend(&this.buf[..n], this.max_payload)?.ok_or_else(|| this.said_goodbye())
    }

    fn try_recv_ref<'a>(&'a mut self, spare: &'a mut Frame) -> Result<Option<FrameRef<'a>>> {
        self.take_tick();
        crate::channel::lent_now(self.recv_ref(spare, Some(Duration::ZERO)))
    }

    /// An epoll set of the receive queue (readable when a message is
    /// there) and a timer that ticks every [`LIVENESS_CHECK`], so that an
    /// event loop comes back to `try_recv`, which checks that the peer
    /// still holds its queue: a peer that dies is noticed within a tick.
    fn readiness(&self) -> Option<crate::channel::Readiness<'_>> {
        self.ready.1.hand_out();
        Some(crate::channel::Readiness {
            fd: self.ready.0.fd(),
            frame_deadline: None,
            idle_timeout: self.idle_timeout,
        })
    }

    fn try_recv(&mut self, frame: &mut Frame) -> Result<bool> {
        self.take_tick();
        match self.recv_timeout(frame, Some(Duration::ZERO)) {
            Ok(()) => Ok(true),
            Err(Error::Timeout { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn close(&mut self) -> Result<()> {
        self.closed = true;
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

    // One queue each way: the send half takes the outgoing queue (and says
    // goodbye on it when dropped), the receive half the incoming one.
    fn split(mut self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        let sender = self.split_off_sender()?;
        Ok(crate::halves::halves(sender, *self))
    }

    fn into_any(self: Box<Self>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(self)
    }

    fn as_any(&self) -> Option<&(dyn std::any::Any + Send)> {
        Some(self)
    }

    fn sent_sequence(&self) -> Option<u64> {
        self.stamper.last_sent()
    }

    fn reply_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: u64,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let priority = self.default_priority;
        self.send_frame(
            message_type,
            flags,
            payload,
            Some(answers),
            priority,
            timeout,
        )
    }
}

impl MqChannel {
    /// Makes this channel the receive half and returns the send half (see
    /// [`Channel::split`]). The send half keeps a second descriptor of the
    /// receive queue only to see whether the peer still holds it.
    fn split_off_sender(&mut self) -> Result<MqChannel> {
        let rx = self.rx.try_clone().map_err(|e| {
            Error::io(
                format!("duplicate the queue descriptor of {}", self.label),
                e,
            )
        })?;
        // The send half's readiness is never asked for (the half types give
        // it no receive), but the struct keeps one: a second set and tick
        // on the duplicate, two descriptors for the life of the half.
        let ticker = crate::wake::Ticker::new(LIVENESS_CHECK)?;
        let set = crate::wake::PollSet::new(&[rx.as_fd(), ticker.fd()])?;
        Ok(MqChannel {
            ready: (set, ticker),
            peer_check: NowAndThen::new(POLLED_PEER_CHECK),
            idle_timeout: None,
            tx: self.tx.take(),
            rx,
            label: self.label.clone(),
            stamper: std::mem::take(&mut self.stamper),
            message_size: self.message_size,
            max_payload: self.max_payload,
            default_priority: self.default_priority,
            last_priority: 0,
            out: std::mem::take(&mut self.out),
            buf: Vec::new(),
            closed: self.closed,
        })
    }
}

impl Drop for MqChannel {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
