//! Counting wrappers: what [`connect`](crate::connect) and
//! [`listen`](crate::listen) return, so every transport is counted without
//! any transport counting for itself.

use super::layout::{Counter, Kind};
use super::region::{Counters, register};
use crate::channel::{Channel, Listener, PeerInfo};
use crate::error::{Error, Result};
use crate::frame::{Frame, FrameRef, HEADER_LEN};
use crate::halves::{RecvHalf, SendHalf};
use std::sync::Arc;
use std::time::Duration;

/// Wraps `channel` so it counts into a new block labelled `label`; returns
/// it unchanged when counting is off or every block is taken.
pub fn count_channel(
    mut channel: Box<dyn Channel>,
    kind: Kind,
    label: &str,
    parent: Option<&Counters>,
) -> Box<dyn Channel> {
    let Some(counters) = register(kind, label, parent) else {
        return channel;
    };
    channel.attach_counters(&counters);
    let retire = Arc::new(Retire {
        counters: counters.clone(),
        parent: parent.cloned(),
    });
    // The shared-memory link, the fast path, gets a wrapper that calls it
    // directly: one indirect call per frame instead of two, and the link's
    // send and receive inlined into the counting (23 fewer instructions
    // for a 64-byte send, 15 for a receive).
    #[cfg(not(loom))]
    let channel = match channel.downcast::<crate::shm::ShmLink>() {
        Ok(link) => {
            return Box::new(CountedChannel {
                inner: Box::new(link),
                counters,
                retire,
                inner_counts_sends: false,
            });
        }
        Err(other) => other,
    };
    Box::new(CountedChannel {
        inner: channel,
        counters,
        retire,
        inner_counts_sends: false,
    })
}

/// Wraps `listener` so it counts peers accepted and refused, and every
/// channel it accepts counts into a block of its own.
pub fn count_listener(listener: Box<dyn Listener>) -> Box<dyn Listener> {
    match register(Kind::Listener, &listener.endpoint(), None) {
        Some(counters) => Box::new(CountedListener {
            inner: listener,
            counters,
        }),
        None => listener,
    }
}

/// A channel that counts (or one half of a split one: both halves count
/// into the same block, each into its own direction's counters).
#[derive(Debug)]
struct CountedChannel<C: Channel + ?Sized = dyn Channel> {
    inner: Box<C>,
    counters: Counters,
    /// Retires the block when the channel, or the last of its halves, is gone.
    retire: Arc<Retire>,
    /// The channel inside counts the frames and bytes it sends itself,
    /// though its type does not say so: the send half of a split
    /// shared-memory link (see `split`). Otherwise [`CountsOwnSends`]
    /// says, from the type.
    inner_counts_sends: bool,
}

/// Retires a channel's counters block when dropped.
#[derive(Debug)]
struct Retire {
    counters: Counters,
    /// The listener that accepted this channel: its totals take this
    /// channel's counts when it closes, so a server's counters cover every
    /// client it ever had (`utp stat` adds the live ones).
    parent: Option<Counters>,
}

impl Drop for Retire {
    fn drop(&mut self) {
        if let Some(parent) = &self.parent {
            self.counters.retire();
            for c in Counter::ALL {
                let n = self.counters.get(c);
                if !c.is_level() && n != 0 {
                    parent.add_shared(c, n);
                }
            }
        }
    }
}

/// Whether a channel type counts its own sends, known from the type alone:
/// the shared-memory link does, once it has counters (in the one place
/// every frame it sends is published, zero-copy ones too); the wrapper
/// counts the others' sends.
trait CountsOwnSends {
    /// Always, for this type (no flag to read per frame).
    const ALWAYS: bool = false;
}

impl CountsOwnSends for dyn Channel {}

#[cfg(not(loom))]
impl CountsOwnSends for crate::shm::ShmLink {
    const ALWAYS: bool = true;
}

impl<C: Channel + CountsOwnSends + ?Sized> CountedChannel<C> {
    /// Frames with these payloads went out.
    fn count_sends(&self, payloads: &[&[u8]]) {
        if !(C::ALWAYS || self.inner_counts_sends || payloads.is_empty()) {
            let bytes: usize = payloads.iter().map(|p| HEADER_LEN + p.len()).sum();
            self.counters
                .add(Counter::FramesSent, payloads.len() as u64);
            self.counters.add(Counter::BytesSent, bytes as u64);
        }
    }

    /// A frame with `len` payload bytes went out.
    #[inline(always)]
    fn count_send(&self, len: usize) {
        if !(C::ALWAYS || self.inner_counts_sends) {
            self.counters.add(Counter::FramesSent, 1);
            self.counters
                .add(Counter::BytesSent, (HEADER_LEN + len) as u64);
        }
    }
}

/// A frame with `len` payload bytes came in.
#[inline(always)]
fn count_received(counters: &Counters, len: usize) {
    counters.add(Counter::FramesReceived, 1);
    counters.add(Counter::BytesReceived, (HEADER_LEN + len) as u64);
}

/// Errors count atomically: after a split, both halves may count one at once.
fn count_error(counters: &Counters, error: &Error, timeout: Counter) {
    let counter = match error {
        Error::Timeout { .. } => timeout,
        Error::Frame(_) => Counter::ErrorsFrame,
        Error::PeerGone { .. } => Counter::ErrorsPeerGone,
        Error::TooLarge { .. } => Counter::ErrorsTooLarge,
        Error::Full => Counter::ErrorsFull,
        _ => Counter::ErrorsOther,
    };
    counters.add_shared(counter, 1);
}

impl<C: Channel + CountsOwnSends + ?Sized + 'static> Channel for CountedChannel<C> {
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        // Ok(()) is built afresh rather than the inner Result passed on:
        // copying a 56-byte Result whose tag the callee just stored costs a
        // store-forwarding stall (about 25 ns a call), more than the counting.
        match self
            .inner
            .send_timeout(message_type, flags, payload, timeout)
        {
            Ok(()) => {
                self.count_send(payload.len());
                Ok(())
            }
            Err(e) => {
                count_error(&self.counters, &e, Counter::SendTimeouts);
                Err(e)
            }
        }
    }

    fn send_batch(&mut self, message_type: u8, flags: u16, payloads: &[&[u8]]) -> Result<()> {
        match self.inner.send_batch(message_type, flags, payloads) {
            Ok(()) => {
                self.count_sends(payloads);
                Ok(())
            }
            Err(e) => {
                // A frame over the limit ends a batch after the frames
                // before it, which were sent. Any other failure breaks the
                // link part-way through a write: what reached the peer is
                // not known, and the batch's frames are not counted.
                if let Error::TooLarge { limit, .. } = e {
                    let sent = payloads.iter().position(|p| p.len() > limit);
                    self.count_sends(&payloads[..sent.unwrap_or(0)]);
                }
                count_error(&self.counters, &e, Counter::SendTimeouts);
                Err(e)
            }
        }
    }

    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        match self.inner.recv_timeout(frame, timeout) {
            Ok(()) => {
                count_received(&self.counters, frame.payload().len());
                Ok(())
            }
            Err(e) => {
                count_error(&self.counters, &e, Counter::RecvTimeouts);
                Err(e)
            }
        }
    }

    fn close(&mut self) -> Result<()> {
        self.inner.close()
    }

    fn peer(&self) -> PeerInfo {
        self.inner.peer()
    }

    fn attach_counters(&mut self, counters: &Counters) {
        self.inner.attach_counters(counters);
    }

    fn sent_sequence(&self) -> Option<u64> {
        self.inner.sent_sequence()
    }

    fn reply_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: u64,
        timeout: Option<Duration>,
    ) -> Result<()> {
        match self
            .inner
            .reply_timeout(message_type, flags, payload, answers, timeout)
        {
            Ok(()) => {
                self.count_send(payload.len());
                Ok(())
            }
            Err(e) => {
                count_error(&self.counters, &e, Counter::SendTimeouts);
                Err(e)
            }
        }
    }

    fn readiness(&self) -> Option<crate::channel::Readiness<'_>> {
        self.inner.readiness()
    }

    fn try_flush(&mut self) -> Result<bool> {
        self.inner.try_flush()
    }

    // A miss ("nothing there yet") is not a timeout: only frames and errors count.
    fn try_recv(&mut self, frame: &mut Frame) -> Result<bool> {
        match self.inner.try_recv(frame) {
            Ok(true) => {
                count_received(&self.counters, frame.payload().len());
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                count_error(&self.counters, &e, Counter::RecvTimeouts);
                Err(e)
            }
        }
    }

    fn recv_ref<'a>(
        &'a mut self,
        spare: &'a mut Frame,
        timeout: Option<Duration>,
    ) -> Result<FrameRef<'a>> {
        match self.inner.recv_ref(spare, timeout) {
            Ok(frame) => {
                count_received(&self.counters, frame.payload.len());
                Ok(frame)
            }
            Err(e) => {
                count_error(&self.counters, &e, Counter::RecvTimeouts);
                Err(e)
            }
        }
    }

    fn try_recv_ref<'a>(&'a mut self, spare: &'a mut Frame) -> Result<Option<FrameRef<'a>>> {
        match self.inner.try_recv_ref(spare) {
            Ok(Some(frame)) => {
                count_received(&self.counters, frame.payload.len());
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                count_error(&self.counters, &e, Counter::RecvTimeouts);
                Err(e)
            }
        }
    }

    fn try_send_batch(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> Result<usize> {
        match self.inner.try_send_batch(message_type, flags, payloads) {
            Ok(sent) => {
                self.count_sends(&payloads[..sent.min(payloads.len())]);
                Ok(sent)
            }
            Err(e) => {
                count_error(&self.counters, &e, Counter::SendTimeouts);
                Err(e)
            }
        }
    }

    fn try_send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<bool> {
        match self.inner.try_send(message_type, flags, payload) {
            Ok(true) => {
                self.count_send(payload.len());
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                count_error(&self.counters, &e, Counter::SendTimeouts);
                Err(e)
            }
        }
    }

    // Each half counts into the same block: the send half only the send
    // counters, the receive half only the receive ones (one writer each).
    fn split(self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        let CountedChannel {
            inner,
            counters,
            retire,
            inner_counts_sends,
        } = *self;
        let (tx, rx) = inner.split()?;
        // A link that counted its own sends still does in its send half,
        // which the halves' wrappers know only as a channel.
        let inner_counts_sends = C::ALWAYS || inner_counts_sends;
        let half = |inner| {
            Box::new(CountedChannel {
                inner,
                counters: counters.clone(),
                retire: retire.clone(),
                inner_counts_sends,
            })
        };
        Ok((
            SendHalf::new(half(tx.into_inner())),
            RecvHalf::new(half(rx.into_inner())),
        ))
    }

    fn into_any(self: Box<Self>) -> Option<Box<dyn std::any::Any + Send>> {
        let CountedChannel { inner, .. } = *self;
        inner.into_any()
    }

    fn as_any(&self) -> Option<&(dyn std::any::Any + Send)> {
        self.inner.as_any()
    }
}

/// A listener that counts.
#[derive(Debug)]
struct CountedListener {
    inner: Box<dyn Listener>,
    counters: Counters,
}

impl CountedListener {
    fn accepted(&self, channel: Box<dyn Channel>) -> Box<dyn Channel> {
        self.counters.add_shared(Counter::PeersAccepted, 1);
        let label = self.inner.endpoint();
        count_channel(channel, Kind::Accepted, &label, Some(&self.counters))
    }

    fn refused(&self, e: &Error) {
        match e {
            Error::Timeout { .. } | Error::Closed => {}
            Error::Denied { .. } => self.counters.add_shared(Counter::PeersRefused, 1),
            _ => self.counters.add_shared(Counter::ErrorsOther, 1),
        }
    }
}

impl Listener for CountedListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        match self.inner.accept_timeout(timeout) {
            Ok(channel) => Ok(self.accepted(channel)),
            Err(e) => {
                self.refused(&e);
                Err(e)
            }
        }
    }

    fn try_accept(&mut self) -> Result<Option<Box<dyn Channel>>> {
        match self.inner.try_accept() {
            Ok(channel) => Ok(channel.map(|c| self.accepted(c))),
            Err(e) => {
                self.refused(&e);
                Err(e)
            }
        }
    }

    fn readiness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.inner.readiness()
    }

    fn endpoint(&self) -> String {
        self.inner.endpoint()
    }

    fn close(&mut self) -> Result<()> {
        self.inner.close()
    }
}
