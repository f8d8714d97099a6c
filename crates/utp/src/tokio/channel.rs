//! [`AsyncChannel`]: a [`Channel`] driven by tokio through its readiness descriptor.

use super::no_runtime;
use super::room::RoomWatch;
use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::frame::{Frame, FrameRef};
use ::tokio::io::unix::AsyncFd;
use ::tokio::time::Sleep;
use std::future::{Future, poll_fn};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The channel and its own duplicate of the channel's readiness descriptor
/// ([`Readiness::fd`](crate::Readiness::fd)), registered with tokio for
/// reading (and writing, for a stream socket: `interest.rs`).
///
/// The duplicate refers to the same open file, so it reports the same
/// readiness; owning it means the registered descriptor stays open and the
/// same for as long as tokio watches it, whatever the channel does with its
/// own (one extra descriptor per channel).
#[derive(Debug)]
struct Registered {
    channel: Box<dyn Channel>,
    fd: OwnedFd,
}

impl AsRawFd for Registered {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A [`Channel`] for tokio: `recv` and `send` wait without a thread.
///
/// Built on [`Channel::readiness`]: the channel's descriptor is registered
/// with tokio's reactor ([`AsyncFd`]); a receive calls
/// [`try_recv`](Channel::try_recv) and, when nothing is there, waits for the
/// descriptor. A channel without a readiness descriptor is refused by
/// [`new`](Self::new) with a clear error (docs/async.md says why there is no
/// hidden thread per channel).
///
/// - **Cancellation-safe receive**: a frame is taken only by `try_recv`,
///   whole, inside one poll; dropping a [`recv`](Self::recv) future (a lost
///   `select!` branch, a timeout) loses nothing, and bytes of a frame that
///   had started arriving stay in the channel for the next receive.
/// - **Backpressure**: [`send`](Self::send) waits until the channel takes
///   the frame; a send future dropped (or timed out) before that has sent
///   nothing. A byte stream with room for only part of a frame takes it and
///   sends the rest first with the next send or receive (or
///   [`flush`](Self::flush)): a frame is never cut.
/// - **Deadlines**: a frame that started arriving must finish by the
///   channel's frame deadline ([`Readiness::frame_deadline`](crate::Readiness)):
///   the receive wakes then and fails, as the blocking one does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> utp::Result<()> {
/// use utp::frame::{Frame, flags, message_type};
/// let path = std::env::temp_dir().join(format!("utp-doc-async-{}.sock", std::process::id()));
/// let url = format!("unix://{}", path.display());
/// let mut listener = utp::tokio::listen(&url)?;
/// let mut client = utp::tokio::connect(&url).await?;
/// let mut server = listener.accept().await?;
///
/// client.send(message_type::TEXT, flags::CHECKSUM, b"hello").await?;
/// let mut frame = Frame::default();
/// server.recv(&mut frame).await?;
/// assert_eq!(frame.payload(), b"hello");
/// listener.close().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncChannel {
    io: AsyncFd<Registered>,
    /// What a send that finds no room waits on.
    room: RoomWatch,
    /// Wakes a waiting receive at the deadline of a frame that has started.
    frame_timer: Option<Pin<Box<Sleep>>>,
    /// Try a receive before waiting: set at first (frames may be buffered
    /// inside the channel where the descriptor does not show them), kept
    /// after a receive that found a frame (more may be buffered), cleared by
    /// one that found nothing, and set again by a wait that ends.
    try_first: bool,
    /// The frame deadline a wait already ended at, so that it ends there
    /// only once.
    woken_at_deadline: Option<::tokio::time::Instant>,
}

impl AsyncChannel {
    /// Wraps a connected channel. Must be called inside a tokio runtime.
    ///
    /// Fails with a clear error when the channel has no readiness
    /// descriptor ([`Channel::readiness`] is `None`) or the descriptor
    /// cannot be registered (a regular file: `file://`).
    pub fn new(channel: Box<dyn Channel>) -> Result<AsyncChannel> {
        let fd = match channel.readiness() {
            Some(ready) => ready.fd.try_clone_to_owned().map_err(|e| {
                Error::io("duplicate the channel's readiness descriptor for tokio", e)
            })?,
            None => return Err(no_readiness(&*channel)),
        };
        if ::tokio::runtime::Handle::try_current().is_err() {
            return Err(no_runtime("wrap a channel in utp::tokio::AsyncChannel"));
        }
        // Stream sockets for writing too: woken when the peer takes a
        // request, the runtime is awake for the answer (`interest.rs`).
        let interest = super::interest::for_readiness(fd.as_fd());
        let io = super::register(Registered { channel, fd }, interest)
            .map_err(|e| Error::io("register the channel's readiness descriptor with tokio", e))?;
        Ok(AsyncChannel {
            io,
            room: RoomWatch::default(),
            frame_timer: None,
            try_first: true,
            woken_at_deadline: None,
        })
    }

    /// Receives the next frame into `frame`, waiting as long as it takes.
    ///
    /// Cancellation-safe: if the future is dropped before it completes, no
    /// frame was taken; the next receive gets it.
    pub async fn recv(&mut self, frame: &mut Frame) -> Result<()> {
        poll_fn(|cx| self.poll_recv(cx, frame)).await
    }

    /// Like [`recv`](Self::recv), failing with [`Error::Timeout`] after `limit`.
    pub async fn recv_timeout(&mut self, frame: &mut Frame, limit: Duration) -> Result<()> {
        within(limit, "a frame", self.recv(frame)).await
    }

    /// Receives the next frame and lends it, waiting as long as it takes:
    /// [`Channel::recv_ref`] for tokio. A Unix or TCP socket, pipe or FIFO
    /// lends the frame from its read buffer, so its payload is not copied
    /// into a [`Frame`]; a message queue or UDP client from its datagram
    /// buffer; every other channel receives into `spare` and lends that.
    /// The frame is borrowed until the next call on this channel.
    ///
    /// Cancellation-safe, as [`recv`](Self::recv). To give up after a time,
    /// wrap it in [`tokio::time::timeout`](::tokio::time::timeout).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> utp::Result<()> {
    /// use utp::frame::{Frame, message_type};
    /// let path = std::env::temp_dir().join(format!("utp-doc-async-ref-{}.sock", std::process::id()));
    /// let url = format!("unix://{}", path.display());
    /// let mut listener = utp::tokio::listen(&url)?;
    /// let mut client = utp::tokio::connect(&url).await?;
    /// let mut server = listener.accept().await?;
    ///
    /// server.send(message_type::DATA, 0, b"tick 42").await?;
    /// let mut spare = Frame::default();
    /// let frame = client.recv_ref(&mut spare).await?;
    /// assert_eq!(frame.payload, b"tick 42");
    /// assert!(spare.payload().is_empty(), "lent from the socket's read buffer");
    /// listener.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_ref<'a>(&'a mut self, spare: &'a mut Frame) -> Result<FrameRef<'a>> {
        loop {
            if self.try_first {
                let channel: *mut dyn Channel = &mut *self.io.get_mut().channel;
                // SAFETY: `self` and `spare` are this call's for all of 'a
                // (`&'a mut`); a lent frame is returned at once, and neither
                // is touched again here; when none is lent, nothing borrowed
                // survives the call and the wait below may use `self`.
                if let Some(frame) = unsafe { crate::lend::try_recv_ref(channel, spare) }? {
                    return Ok(frame);
                }
                self.try_first = false;
            }
            poll_fn(|cx| self.poll_wait(cx)).await?;
        }
    }

    /// Sends one frame, waiting for room as long as it takes (backpressure:
    /// a peer that does not read makes this wait).
    ///
    /// If the future is dropped before it completes, nothing was sent.
    pub async fn send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<()> {
        self.reset_send();
        poll_fn(|cx| self.poll_send_with(cx, |c| c.try_send(message_type, flags, payload))).await
    }

    /// Like [`send`](Self::send), failing with [`Error::Timeout`] (nothing
    /// sent) when there is no room within `limit`.
    pub async fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        limit: Duration,
    ) -> Result<()> {
        within(
            limit,
            "room to send (the peer is not reading)",
            self.send(message_type, flags, payload),
        )
        .await
    }

    /// Sends one frame per payload, in order, waiting for room as long as
    /// it takes (see [`Channel::send_batch`]): each time the channel has
    /// room, it takes as many frames as fit
    /// ([`Channel::try_send_batch`]), so a socket or pipe writes a run of
    /// frames with one system call and a shared-memory link stamps them
    /// with one clock read.
    ///
    /// If the future is dropped before it completes, a prefix of the batch
    /// was sent (none, some or all but the last frames); a failing frame
    /// ends the batch after the frames before it, as with
    /// [`Channel::send_batch`].
    pub async fn send_batch(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> Result<()> {
        let mut sent = 0;
        while sent < payloads.len() {
            self.reset_send();
            let rest = &payloads[sent..];
            let mut taken = 0;
            poll_fn(|cx| {
                self.poll_send_with(cx, |c| {
                    taken = c.try_send_batch(message_type, flags, rest)?;
                    Ok(taken > 0)
                })
            })
            .await?;
            sent += taken;
        }
        Ok(())
    }

    /// Sends a reply naming the request it answers (see
    /// [`Channel::reply_timeout`]), waiting for room as long as it takes.
    pub async fn reply(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: u64,
    ) -> Result<()> {
        self.reset_send();
        poll_fn(|cx| {
            self.poll_send_with(cx, |c| {
                zero_wait(c.reply_timeout(
                    message_type,
                    flags,
                    payload,
                    answers,
                    Some(Duration::ZERO),
                ))
            })
        })
        .await
    }

    /// Closes the channel; the peer sees [`Error::PeerGone`]. Does not wait.
    pub fn close(&mut self) -> Result<()> {
        self.io.get_mut().channel.close()
    }

    /// The wrapped channel (for [`peer`](Channel::peer),
    /// [`sent_sequence`](Channel::sent_sequence), [`readiness`](Channel::readiness)).
    pub fn get_ref(&self) -> &dyn Channel {
        &*self.io.get_ref().channel
    }

    /// The wrapped channel, mutably. Blocking calls on it block the task.
    pub fn get_mut(&mut self) -> &mut dyn Channel {
        &mut *self.io.get_mut().channel
    }

    /// Unregisters the descriptor from tokio and returns the channel.
    pub fn into_inner(self) -> Box<dyn Channel> {
        self.io.into_inner().channel
    }

    /// Polls for the next frame: the building block of [`recv`](Self::recv)
    /// and of [`FrameStream`](super::FrameStream), for hand-written futures.
    ///
    /// `Ready(Ok(()))` with the frame in `frame`; `Pending` with the task
    /// woken when a receive may make progress (no frame taken).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>, frame: &mut Frame) -> Poll<Result<()>> {
        loop {
            if self.try_first {
                match self.io.get_mut().channel.try_recv(frame) {
                    Ok(true) => return Poll::Ready(Ok(())),
                    Ok(false) => self.try_first = false,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if let Err(e) = std::task::ready!(self.poll_wait(cx)) {
                return Poll::Ready(Err(e));
            }
        }
    }

    /// Waits until a receive may find something, and says so in
    /// `try_first`: the descriptor is readable (its readiness is used up
    /// here, before the receive tries; readiness that comes after it is
    /// kept: tokio's tick), or a frame that has started is past its
    /// deadline, so that the receive reports the overrun. Meanwhile the rest
    /// of a frame an abandoned send started goes out.
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            match self.io.poll_read_ready_mut(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    guard.clear_ready();
                    self.try_first = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(Error::io("wait for a frame (tokio)", e)));
                }
                Poll::Pending => {
                    // The rest of a frame an abandoned send started may
                    // stand between the peer and its answer: finish it.
                    match self.io.get_mut().channel.try_flush() {
                        // Nothing to send: nor anything to watch for room
                        // while this task sleeps, unless a send waits.
                        Ok(true) => self.room.end_if_unwatched(),
                        Ok(false) => match self.poll_flush(cx) {
                            Poll::Ready(Ok(())) => continue,
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                            Poll::Pending => {}
                        },
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                    return self.poll_frame_deadline(cx);
                }
            }
        }
    }

    /// While waiting: a frame that has started arriving must be complete by
    /// its deadline, so the wait ends then and the receive that follows
    /// fails (or completes, if the rest arrived just now). Once per
    /// deadline: past it, a receive that still finds the frame incomplete
    /// without failing waits for the descriptor alone.
    fn poll_frame_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let due = self
            .io
            .get_ref()
            .channel
            .readiness()
            .and_then(|r| r.frame_deadline);
        let Some(due) = due.map(::tokio::time::Instant::from_std) else {
            self.frame_timer = None;
            return Poll::Pending;
        };
        if self.woken_at_deadline == Some(due) {
            return Poll::Pending;
        }
        let timer = self
            .frame_timer
            .get_or_insert_with(|| Box::pin(::tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.frame_timer = None;
        self.woken_at_deadline = Some(due);
        self.try_first = true;
        Poll::Ready(Ok(()))
    }

    /// Polls a non-blocking operation until it succeeds: `attempt` is a
    /// send (`Ok(false)`: no room, nothing sent), a reply, or
    /// [`Channel::try_flush`].
    ///
    /// While it finds no room, the descriptor is watched for writability,
    /// which wakes the task where the descriptor is the socket (unix, tcp,
    /// udp); everywhere (pipe and FIFO write ends are separate
    /// descriptors, shm rings signal only their reader) a backoff timer also
    /// retries after 1, 2, 4, 8, then every 16 ms. The watch ends when the
    /// operation succeeds, so a channel that is not waiting to send is not
    /// woken each time its peer reads.
    ///
    /// Call [`reset_send`](Self::reset_send) before polling a new frame.
    pub fn poll_send_with(
        &mut self,
        cx: &mut Context<'_>,
        mut attempt: impl FnMut(&mut dyn Channel) -> Result<bool>,
    ) -> Poll<Result<()>> {
        loop {
            let outcome = match attempt(&mut *self.io.get_mut().channel) {
                Ok(true) => Ok(()),
                Ok(false) => match self.room.poll_room(cx, &self.io.get_ref().fd) {
                    // Room may have come: try again.
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => Err(Error::io("wait for room to send (tokio)", e)),
                    Poll::Pending => return Poll::Pending,
                },
                Err(e) => Err(e),
            };
            self.room.done(Some(cx));
            return Poll::Ready(outcome);
        }
    }

    /// Waits until the rest of a frame a byte stream took only in part (see
    /// [`Channel::try_flush`]) is out. [`send`](Self::send) returns once the
    /// channel has taken the frame; the rest goes out with the next send or
    /// receive, or here. Call it before [`close`](Self::close) to be sure
    /// the last frame reaches the peer.
    pub async fn flush(&mut self) -> Result<()> {
        self.reset_send();
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Polls [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_send_with(cx, |c| c.try_flush())
    }

    /// Forgets the waiting state of an earlier, abandoned send, so the next
    /// one is tried at once.
    pub fn reset_send(&mut self) {
        self.room.done(None);
    }
}

/// A non-blocking send's result as "sent / no room".
pub(crate) fn zero_wait(result: Result<()>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(Error::Timeout { .. } | Error::Full) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs `work` for at most `limit`, as an [`Error::Timeout`] after it.
pub(crate) async fn within<T>(
    limit: Duration,
    waiting_for: &'static str,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    match ::tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout {
            waiting_for,
            after: limit,
        }),
    }
}

fn no_readiness(channel: &dyn Channel) -> Error {
    let peer = channel.peer();
    let what = peer.address.unwrap_or_else(|| format!("{channel:?}"));
    let what: String = what.chars().take(120).collect();
    Error::io(
        format!("use the channel {what} from tokio"),
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "it has no readiness descriptor (Channel::readiness is None), so it can only be \
             served by a thread blocked in recv; see docs/async.md",
        ),
    )
}

impl super::OwnsItsFd for Registered {}
