//! Full duplex from two threads: [`Channel::split`] turns a channel into a
//! [`SendHalf`] and a [`RecvHalf`], each `Send`, each owned by whoever uses it.
//!
//! Neither half takes a lock to send or receive: each transport hands each
//! half its own direction (a socket's two directions, a pipe's two
//! descriptors, a shared-memory link's two rings, a queue pair's two
//! queues), so one thread can block in `recv` while another sends. The
//! calls block like the channel's own; in an async runtime, wait on
//! [`RecvHalf::readiness`] and call [`RecvHalf::try_recv`], or move each
//! half to a blocking task.
//!
//! ```
//! use utp::frame::{Frame, flags, message_type};
//!
//! let mut listener = utp::listen("inproc://halves-doc")?;
//! let client = utp::connect("inproc://halves-doc")?;
//! let mut server = listener.accept()?;
//!
//! let (mut tx, mut rx) = client.split()?;
//! let sender = std::thread::spawn(move || {
//!     for i in 0..3u8 {
//!         tx.send(message_type::DATA, flags::CHECKSUM, &[i])?;
//!     }
//!     Ok::<_, utp::Error>(tx)
//! });
//! // The server echoes; the client's receive half reads the echoes while
//! // its send half is busy in the other thread.
//! let mut frame = Frame::default();
//! for i in 0..3u8 {
//!     server.recv(&mut frame)?;
//!     server.send(message_type::DATA, flags::CHECKSUM, frame.payload())?;
//!     rx.recv(&mut frame)?;
//!     assert_eq!(frame.payload(), &[i]);
//! }
//! sender.join().unwrap()?;
//! # Ok::<(), utp::Error>(())
//! ```
//!
//! # Dropping one half
//!
//! Dropping the **send half** (or calling [`SendHalf::close`]) ends this
//! direction, like TCP's `shutdown(SHUT_WR)`: the peer receives every frame
//! sent before, then [`Error::PeerGone`]. The receive
//! half goes on receiving what the peer still sends, until the peer closes.
//! Two exceptions: a shared-memory link (shm, sysv, file) and a zenoh link
//! have a single close signal per side, so there the peer's later sends
//! fail with `PeerGone` (what it sent before still reaches the receive
//! half); and a FIFO server's session ends only when both halves are gone
//! (the next client must not get in while this session's receive half
//! still reads).
//!
//! Dropping the **receive half** alone tells the peer nothing: frames it
//! sends wait in the transport's buffer (and its sends wait, with their
//! timeouts, once that is full). When both halves are gone the channel is
//! closed exactly as if it had been dropped whole: listeners free the
//! session, FIFO locks and pipe children are released.
//!
//! `docs/halves.md` has the per-transport table; `tests/halves.rs` checks
//! these rules on every transport against a peer process.

use crate::channel::{Channel, PeerInfo, Readiness};
use crate::error::{Error, Result};
use crate::frame::{Frame, FrameRef, flags, message_type};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The sending half of a split channel (see [`Channel::split`]).
pub struct SendHalf {
    inner: Box<dyn Channel>,
}

/// The receiving half of a split channel (see [`Channel::split`]).
pub struct RecvHalf {
    inner: Box<dyn Channel>,
    /// Set by `close`: the half refuses receives itself, since not every
    /// transport's receive side has a closed state (inproc reads on).
    closed: bool,
}

impl fmt::Debug for SendHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SendHalf").field(&self.inner).finish()
    }
}

impl fmt::Debug for RecvHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RecvHalf").field(&self.inner).finish()
    }
}

impl SendHalf {
    /// Wraps a channel that a transport set up to send only. The half
    /// exposes no receive call, so the channel's receive side is never used.
    pub(crate) fn new(inner: Box<dyn Channel>) -> Self {
        SendHalf { inner }
    }

    /// The channel underneath (for wrappers such as the counted one).
    pub(crate) fn into_inner(self) -> Box<dyn Channel> {
        self.inner
    }

    /// Sends one frame, waiting at most `timeout` for room (`None`: forever).
    pub fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.inner
            .send_timeout(message_type, flags, payload, timeout)
    }

    /// Sends one frame, waiting for room as long as it takes.
    pub fn send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<()> {
        self.inner.send_timeout(message_type, flags, payload, None)
    }

    /// Sends one frame per payload, in order (see [`Channel::send_batch`]).
    pub fn send_batch(&mut self, message_type: u8, flags: u16, payloads: &[&[u8]]) -> Result<()> {
        self.inner.send_batch(message_type, flags, payloads)
    }

    /// Sends as many frames of a batch as fit now, without waiting (see
    /// [`Channel::try_send_batch`]).
    pub fn try_send_batch(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> Result<usize> {
        self.inner.try_send_batch(message_type, flags, payloads)
    }

    /// Sends `payload` as a checksummed [`DATA`](message_type::DATA) frame.
    pub fn send_bytes(&mut self, payload: &[u8]) -> Result<()> {
        self.send(message_type::DATA, flags::CHECKSUM, payload)
    }

    /// Sends if there is room now: `Ok(false)` when full (see [`Channel::try_send`]).
    pub fn try_send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<bool> {
        self.inner.try_send(message_type, flags, payload)
    }

    /// Sends a reply naming the request it answers (see [`Channel::reply_timeout`]).
    pub fn reply_timeout(
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

    /// The sequence number of the last frame sent, where the transport knows it.
    pub fn sent_sequence(&self) -> Option<u64> {
        self.inner.sent_sequence()
    }

    /// What is known about the peer.
    pub fn peer(&self) -> PeerInfo {
        self.inner.peer()
    }

    /// Ends this direction now (what dropping the half does; see the
    /// [module docs](self)). Later sends fail with [`Error::Closed`].
    pub fn close(&mut self) -> Result<()> {
        self.inner.close()
    }
}

impl RecvHalf {
    /// Wraps a channel that a transport set up to receive only.
    pub(crate) fn new(inner: Box<dyn Channel>) -> Self {
        RecvHalf {
            inner,
            closed: false,
        }
    }

    /// The channel underneath (for wrappers such as the counted one).
    pub(crate) fn into_inner(self) -> Box<dyn Channel> {
        self.inner
    }

    /// Receives the next frame, waiting at most `timeout` (`None`: forever).
    /// On a timeout nothing is lost.
    pub fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.inner.recv_timeout(frame, timeout)
    }

    /// Receives the next frame, waiting as long as it takes.
    pub fn recv(&mut self, frame: &mut Frame) -> Result<()> {
        self.recv_timeout(frame, None)
    }

    /// Receives the next frame and lends it, waiting at most `timeout`
    /// (see [`Channel::recv_ref`]).
    pub fn recv_ref<'a>(
        &'a mut self,
        spare: &'a mut Frame,
        timeout: Option<Duration>,
    ) -> Result<FrameRef<'a>> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.inner.recv_ref(spare, timeout)
    }

    /// Lends a frame that is already there: `Ok(None)` when none is (see
    /// [`Channel::try_recv_ref`]).
    pub fn try_recv_ref<'a>(&'a mut self, spare: &'a mut Frame) -> Result<Option<FrameRef<'a>>> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.inner.try_recv_ref(spare)
    }

    /// Receives the next frame and returns its payload (any message type),
    /// waiting as long as it takes (see [`Channel::recv_bytes`]).
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        let mut frame = Frame::default();
        self.recv_timeout(&mut frame, None)?;
        Ok(frame.take_payload())
    }

    /// Receives a frame that is already there: `Ok(false)` when none is
    /// (see [`Channel::try_recv`]).
    pub fn try_recv(&mut self, frame: &mut Frame) -> Result<bool> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.inner.try_recv(frame)
    }

    /// The descriptor an event loop waits on (see [`Channel::readiness`]).
    pub fn readiness(&self) -> Option<Readiness<'_>> {
        self.inner.readiness()
    }

    /// What is known about the peer.
    pub fn peer(&self) -> PeerInfo {
        self.inner.peer()
    }

    /// Stops receiving (what dropping the half does). Later receives fail
    /// with [`Error::Closed`].
    pub fn close(&mut self) -> Result<()> {
        self.closed = true;
        self.inner.close()
    }
}

/// Which directions a transport's channel object serves: a whole channel,
/// or one half of a split one. Transports consult it where closing differs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Role {
    /// Both directions (not split).
    #[default]
    Whole,
    /// The send half: closing ends this direction.
    Sender,
    /// The receive half: closing only stops receiving.
    Receiver,
}

/// Builds the two halves from two one-direction channels.
pub(crate) fn halves(
    sender: impl Channel + 'static,
    receiver: impl Channel + 'static,
) -> (SendHalf, RecvHalf) {
    (
        SendHalf::new(Box::new(sender)),
        RecvHalf::new(Box::new(receiver)),
    )
}

/// A half that holds a share of something to release when both halves are
/// gone (a pipe's child, a FIFO session's lock). Declared after the channel,
/// so the channel closes first and the last half dropped releases it.
#[derive(Debug)]
pub(crate) struct Guarded<C, G: Send + Sync + fmt::Debug> {
    pub(crate) inner: C,
    pub(crate) _guard: Arc<G>,
}

impl<C: Channel, G: Send + Sync + fmt::Debug> Channel for Guarded<C, G> {
    crate::channel::forward_channel!(self => self.inner);
}

/// What [`Channel::split`] returns for a channel type that cannot split.
pub(crate) fn unsupported(what: &str) -> Error {
    Error::protocol(
        crate::ProtocolReason::Unsupported,
        format!("{what} cannot be split into send and receive halves"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both halves move to other threads and tasks.
    #[test]
    fn halves_are_send() {
        fn send<T: Send + 'static>() {}
        send::<SendHalf>();
        send::<RecvHalf>();
    }

    /// A channel type defined outside utp that does not implement `split`.
    #[derive(Debug)]
    struct Foreign;

    impl Channel for Foreign {
        fn send_timeout(&mut self, _: u8, _: u16, _: &[u8], _: Option<Duration>) -> Result<()> {
            Ok(())
        }
        fn recv_timeout(&mut self, _: &mut Frame, _: Option<Duration>) -> Result<()> {
            Err(Error::Closed)
        }
        fn close(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_channel_that_cannot_split_says_so() {
        let channel: Box<dyn Channel> = Box::new(Foreign);
        match channel.split() {
            Err(Error::Protocol { detail: why, .. }) => {
                assert!(why.contains("cannot be split"), "{why}");
                assert!(why.contains("Foreign"), "names the channel: {why}");
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn closing_a_half_is_closed_for_that_half() {
        let name = format!("inproc://halves-close-{}", std::process::id());
        let mut listener = crate::listen(&name).unwrap();
        let client = crate::connect(&name).unwrap();
        let mut server = listener.accept().unwrap();
        let (mut tx, mut rx) = client.split().unwrap();
        tx.close().unwrap();
        assert!(matches!(tx.send_bytes(b"late"), Err(Error::Closed)));
        // The peer sees the end of our direction, and can still answer.
        let mut frame = Frame::default();
        assert!(server.recv(&mut frame).unwrap_err().is_peer_gone());
        server.send_bytes(b"still here").unwrap();
        assert_eq!(rx.recv_bytes().unwrap(), b"still here");
        rx.close().unwrap();
        assert!(matches!(rx.recv(&mut frame), Err(Error::Closed)));
    }
}
