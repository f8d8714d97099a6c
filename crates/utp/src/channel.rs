//! The one API every transport implements: [`Channel`] and [`Listener`].

use crate::error::Result;
use crate::frame::{self, Frame, FrameRef};
use crate::halves::{RecvHalf, SendHalf};
use std::any::Any;
use std::fmt;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// A bidirectional, ordered channel of UTP frames to one peer.
///
/// The channel numbers outgoing frames (sequence 1, 2, 3, ...) and stamps
/// them with the time; the caller chooses type, flags and payload. Received
/// frames land in a caller-owned [`Frame`], whose buffer is reused, or are
/// lent where the channel read them ([`recv_ref`](Self::recv_ref)).
///
/// Every blocking call has a form with a timeout (`None` waits forever).
/// A peer that closes or dies shows up as [`Error::PeerGone`](crate::Error::PeerGone).
///
/// ```
/// use utp::frame::{Frame, flags, message_type};
/// let mut listener = utp::listen("inproc://doc-channel").unwrap();
/// let mut client = utp::connect("inproc://doc-channel").unwrap();
/// let mut server = listener.accept().unwrap();
///
/// client.send(message_type::TEXT, flags::CHECKSUM, b"hello").unwrap();
/// let mut frame = Frame::default();
/// server.recv(&mut frame).unwrap();
/// assert_eq!(frame.payload(), b"hello");
/// assert_eq!(frame.header.sequence, 1);
/// ```
pub trait Channel: Send + fmt::Debug {
    /// Sends one frame, waiting at most `timeout` for room (`None`: forever).
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()>;

    /// Receives the next frame into `frame`, waiting at most `timeout` (`None`: forever).
    ///
    /// On a timeout nothing is lost: a frame that was partly read is kept and
    /// completed by the next call.
    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()>;

    /// Closes the channel; the peer sees [`Error::PeerGone`](crate::Error::PeerGone).
    /// Dropping a channel closes it too.
    fn close(&mut self) -> Result<()>;

    /// What is known about the peer (credentials on Unix sockets, an address on IP).
    fn peer(&self) -> PeerInfo {
        PeerInfo::default()
    }

    /// Hands the channel the counters it is counted in (see [`crate::stats`]),
    /// so it can add what only it knows: waits, wake-ups, ring fill. Called
    /// once, by [`crate::connect`] and by listeners from [`crate::listen`];
    /// the default keeps nothing.
    fn attach_counters(&mut self, _counters: &crate::stats::Counters) {}

    /// Sends one frame, waiting for room as long as it takes.
    fn send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<()> {
        self.send_timeout(message_type, flags, payload, None)
    }

    /// Sends one frame per payload, in order, all of `message_type` and
    /// `flags`, waiting for room as long as it takes: what a loop of
    /// [`send`](Self::send) does, with what a transport can do once for the
    /// lot done once. A shared-memory link reads the clock once for up to
    /// 64 frames or 64 KiB of payload, and again after any wait for room
    /// (so every frame still says when it was written, to the coarse
    /// clock's tick), and stores the counts `utp stat` reads once; its
    /// frames are published one by one, so the peer reads the first while
    /// the rest are written. A Unix or TCP socket, a pipe or a FIFO writes
    /// up to 32 frames (64 KiB), stamped with one clock read, with one
    /// system call; UDP hands up to 32
    /// datagrams (one a frame, as ever) to one `sendmmsg`. The others
    /// (message queues, in-process, zenoh) send the frames one by one.
    ///
    /// If a frame fails (too large, the peer gone), the frames before it
    /// were sent and the ones after it were not; the error says why.
    ///
    /// ```
    /// use utp::frame::{Frame, message_type};
    /// let mut listener = utp::listen("inproc://doc-send-batch").unwrap();
    /// let mut client = utp::connect("inproc://doc-send-batch").unwrap();
    /// let mut server = listener.accept().unwrap();
    ///
    /// let quotes: [&[u8]; 3] = [b"AAPL 187.2", b"MSFT 411.9", b"NVDA 131.4"];
    /// client.send_batch(message_type::DATA, 0, &quotes).unwrap();
    /// let mut frame = Frame::default();
    /// for quote in quotes {
    ///     server.recv(&mut frame).unwrap();
    ///     assert_eq!(frame.payload(), quote);
    /// }
    /// assert_eq!(frame.header.sequence, 3);
    /// ```
    fn send_batch(&mut self, message_type: u8, flags: u16, payloads: &[&[u8]]) -> Result<()> {
        for payload in payloads {
            self.send_timeout(message_type, flags, payload, None)?;
        }
        Ok(())
    }

    /// Receives the next frame into `frame`, waiting as long as it takes.
    fn recv(&mut self, frame: &mut Frame) -> Result<()> {
        self.recv_timeout(frame, None)
    }

    /// Receives the next frame and lends it, waiting at most `timeout`
    /// (`None`: forever): the header and a payload borrowed from the
    /// channel, valid until the next call on it. A channel that reads into
    /// memory of its own hands out the frame where it read it, so the
    /// payload is not copied in user space: Unix and TCP sockets, pipes and
    /// FIFOs from their read buffer, message queues and UDP clients from
    /// their datagram buffer. The others receive into `spare`, as
    /// [`recv_timeout`](Self::recv_timeout) would, and lend that. So a receive loop keeps one `spare` and either
    /// way allocates no more than with `recv`.
    ///
    /// Shared-memory links receive into `spare`: memory another process can
    /// write is never lent as a `&[u8]` (their own zero-copy receive is
    /// [`ShmLink::recv_view`](crate::shm::ShmLink::recv_view)). Timeouts and
    /// errors are [`recv_timeout`](Self::recv_timeout)'s, checksums are
    /// checked before the frame is lent, and frames received with either
    /// call come in one order.
    ///
    /// ```
    /// use utp::frame::{Frame, message_type};
    /// let mut listener = utp::listen("inproc://doc-recv-ref").unwrap();
    /// let mut client = utp::connect("inproc://doc-recv-ref").unwrap();
    /// let mut server = listener.accept().unwrap();
    ///
    /// client.send_bytes(b"lent").unwrap();
    /// let mut spare = Frame::default();
    /// let frame = server.recv_ref(&mut spare, None).unwrap();
    /// assert_eq!(frame.payload, b"lent");
    /// assert_eq!(frame.message_type(), message_type::DATA);
    /// ```
    fn recv_ref<'a>(
        &'a mut self,
        spare: &'a mut Frame,
        timeout: Option<Duration>,
    ) -> Result<FrameRef<'a>> {
        self.recv_timeout(spare, timeout)?;
        Ok(spare.as_frame_ref())
    }

    /// [`recv_ref`](Self::recv_ref) without waiting: `Ok(None)` when no frame
    /// is there yet, as [`try_recv`](Self::try_recv) returns `Ok(false)`.
    fn try_recv_ref<'a>(&'a mut self, spare: &'a mut Frame) -> Result<Option<FrameRef<'a>>> {
        if self.try_recv(spare)? {
            Ok(Some(spare.as_frame_ref()))
        } else {
            Ok(None)
        }
    }

    /// The sequence number of the last frame this channel sent, where the
    /// transport knows it. A client compares it with the sequence a reply
    /// names (see [`reply_timeout`](Self::reply_timeout)).
    fn sent_sequence(&self) -> Option<u64> {
        None
    }

    /// Sends a reply that names the request it answers: the frame carries
    /// [`flags::REPLY`](crate::frame::flags::REPLY) and `answers` as its
    /// sequence number, so a client can refuse a reply that is not its own
    /// (docs/protocol.md, "Correlation"). Transports that cannot set the
    /// sequence send an ordinary frame, which clients accept as before.
    fn reply_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: u64,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let _ = answers;
        self.send_timeout(message_type, flags, payload, timeout)
    }

    /// For event loops and async runtimes: how to wait for this channel
    /// without a thread of its own, or `None` when it can only be served by
    /// a thread blocked in [`recv_timeout`](Self::recv_timeout).
    ///
    /// The contract (level-triggered): after [`try_recv`](Self::try_recv)
    /// returned `Ok(false)`, [`Readiness::fd`] turns readable (or hangs up)
    /// as soon as a receive may make progress. So an event loop drains with
    /// `try_recv` until it returns `false`, then waits on the descriptor.
    /// Wake-ups may be spurious; a peer that closed or died makes the
    /// descriptor readable and `try_recv` fail with `PeerGone` (UDP aside:
    /// it has no connection to lose).
    ///
    /// Every transport has one: sockets, pipes and FIFOs natively; mq an
    /// epoll set of its queue and a liveness tick; inproc an eventfd; shm
    /// links their socket, to which the writer sends a byte only after the
    /// reader declared it waits (so spinning users pay nothing); zenoh an
    /// epoll set of an eventfd and a liveness tick. Take the descriptor
    /// before the `try_recv` you wait after: shm, inproc, zenoh and UDP
    /// server channels ask for wake-ups only once it has been handed out
    /// (and mq reads its tick only then), so a program that polls with
    /// `try_recv` and never waits on it costs its writer no system call
    /// per frame. Per transport: `docs/event-loops.md`. `None` (an shm
    /// peer that offers no wake-ups) means the channel needs a thread.
    fn readiness(&self) -> Option<Readiness<'_>> {
        None
    }

    /// Receives a frame that is already there, without waiting: `Ok(true)`
    /// with the frame in `frame`, `Ok(false)` when none is there yet (then
    /// the channel's [`readiness`](Self::readiness) descriptor, if it has
    /// one, signals the next). Errors are the receive's: a peer that is gone
    /// is `Err(PeerGone)`, not `Ok(false)`.
    ///
    /// ```
    /// use utp::frame::{Frame, flags, message_type};
    /// let mut listener = utp::listen("inproc://doc-try-recv").unwrap();
    /// let mut client = utp::connect("inproc://doc-try-recv").unwrap();
    /// let mut server = listener.accept().unwrap();
    /// let mut frame = Frame::default();
    /// assert!(!server.try_recv(&mut frame).unwrap());
    /// client.send(message_type::DATA, flags::CHECKSUM, b"now").unwrap();
    /// assert!(server.try_recv(&mut frame).unwrap());
    /// assert_eq!(frame.payload(), b"now");
    /// ```
    fn try_recv(&mut self, frame: &mut Frame) -> Result<bool> {
        match self.recv_timeout(frame, Some(Duration::ZERO)) {
            Ok(()) => Ok(true),
            Err(crate::Error::Timeout { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends `payload` as one checksummed [`DATA`](crate::frame::message_type::DATA)
    /// frame, waiting for room as long as it takes: the common case in one call.
    ///
    /// ```
    /// let mut listener = utp::listen("inproc://doc-send-bytes").unwrap();
    /// let mut client = utp::connect("inproc://doc-send-bytes").unwrap();
    /// let mut server = listener.accept().unwrap();
    /// client.send_bytes(b"hello").unwrap();
    /// assert_eq!(server.recv_bytes().unwrap(), b"hello");
    /// ```
    fn send_bytes(&mut self, payload: &[u8]) -> Result<()> {
        self.send_timeout(
            crate::frame::message_type::DATA,
            crate::frame::flags::CHECKSUM,
            payload,
            None,
        )
    }

    /// Receives the next frame and returns its payload (whatever its
    /// message type), waiting as long as it takes. The returned vector is
    /// the frame's own buffer, new each call; loops that care about
    /// allocation use [`recv`](Self::recv) with a reused [`Frame`].
    fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        let mut frame = Frame::default();
        self.recv_timeout(&mut frame, None)?;
        Ok(frame.take_payload())
    }

    /// Splits the channel into a send half and a receive half, each usable
    /// from its own thread or task with no lock between them (see
    /// [`crate::halves`], which also says what dropping one half does).
    /// Every transport of this crate splits; the default (for channel
    /// types defined elsewhere) is an error. Splitting may need a second
    /// descriptor; if the process has none left, the error says so and the
    /// channel is closed.
    fn split(self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        Err(crate::halves::unsupported(&format!("{self:?}")))
    }

    /// The channel as [`Any`], to recover its concrete type — for example a
    /// server's accepted shm link, to use its zero-copy calls:
    ///
    /// ```
    /// # fn main() -> utp::Result<()> {
    /// let name = format!("doc-into-any-{}", std::process::id());
    /// let mut listener = utp::listen(&format!("shm://{name}"))?;
    /// let client = std::thread::spawn(move || {
    ///     let mut c = utp::connect(&format!("shm://{name}"))?;
    ///     c.send_bytes(b"zero-copy")
    /// });
    /// let accepted = listener.accept()?;
    /// let mut link: utp::shm::ShmLink = *accepted
    ///     .into_any()
    ///     .and_then(|any| any.downcast().ok())
    ///     .expect("an shm listener accepts shm links");
    /// let view = link.recv_view(None)?;
    /// let mut copy = Vec::new();
    /// view.copy_payload(&mut copy)?;
    /// assert_eq!(copy, b"zero-copy");
    /// # drop(view);
    /// # client.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// `None` for channel types that do not offer it. A channel from
    /// [`connect`](crate::connect) or a listener is counted for `utp stat`;
    /// the concrete channel returned here is not counted any more.
    fn into_any(self: Box<Self>) -> Option<Box<dyn Any + Send>> {
        None
    }

    /// The channel as [`Any`], to look at its concrete type without taking
    /// it (what [`downcast`](trait.Channel.html#method.downcast) uses).
    /// `None` where [`into_any`](Self::into_any) is `None`.
    fn as_any(&self) -> Option<&(dyn Any + Send)> {
        None
    }

    /// Sends a frame if there is room now, without waiting: `Ok(true)` when
    /// it was sent, `Ok(false)` when the channel is full (nothing was sent;
    /// try again later). A frame is never sent in part: on a stream
    /// (unix, tcp, pipe, fifo) whose buffer fills up part-way through an
    /// accepted frame, the channel keeps the rest (one frame at most) and
    /// writes it before anything else, at the next call on the channel
    /// (`send`, `try_send`, `recv`, `try_recv`); until it is out,
    /// `try_send` returns `false`, and [`try_flush`](Self::try_flush)
    /// pushes it without sending anything new.
    fn try_send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<bool> {
        match self.send_timeout(message_type, flags, payload, Some(Duration::ZERO)) {
            Ok(()) => Ok(true),
            Err(crate::Error::Timeout { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends as many frames of a batch as there is room for now, from the
    /// first, without waiting (see [`send_batch`](Self::send_batch)):
    /// how many were sent, `Ok(0)` when the channel is full (nothing was
    /// sent; try again later with the same batch). What
    /// [`AsyncChannel::send_batch`](crate::tokio::AsyncChannel::send_batch)
    /// and event loops call. On a stream the frames of the run that filled
    /// the buffer are all taken, their rest kept and written before
    /// anything else, as [`try_send`](Self::try_send) keeps one frame's.
    ///
    /// A frame that fails (too large, the peer gone) is reported when it
    /// comes first: after frames that were sent, the call returns their
    /// count, and the next call, which starts at that frame, fails.
    ///
    /// ```
    /// use utp::frame::{Frame, message_type};
    /// let mut listener = utp::listen("inproc://doc-try-send-batch").unwrap();
    /// let mut client = utp::connect("inproc://doc-try-send-batch").unwrap();
    /// let mut server = listener.accept().unwrap();
    ///
    /// let batch: [&[u8]; 3] = [b"a", b"b", b"c"];
    /// let mut sent = 0;
    /// while sent < batch.len() {
    ///     // 0 when full: wait for room (a readiness descriptor, a timer), then again.
    ///     sent += client.try_send_batch(message_type::DATA, 0, &batch[sent..]).unwrap();
    /// }
    /// let mut frame = Frame::default();
    /// server.recv(&mut frame).unwrap();
    /// assert_eq!(frame.payload(), b"a");
    /// ```
    fn try_send_batch(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> Result<usize> {
        take_each(payloads, |payload| {
            self.try_send(message_type, flags, payload)
        })
    }

    /// Sends, without waiting, what remains of a frame [`try_send`](Self::try_send)
    /// committed but had no room for: `Ok(true)` when nothing remains (always,
    /// on channels that never keep a rest), `Ok(false)` when some is still
    /// waiting for room (wait for the peer to read, as for a send).
    fn try_flush(&mut self) -> Result<bool> {
        Ok(true)
    }
}

/// A zero-timeout [`Channel::recv_ref`] as [`Channel::try_recv_ref`]'s
/// answer: the timeout (nothing there yet) is `None`.
pub(crate) fn lent_now(received: Result<FrameRef<'_>>) -> Result<Option<FrameRef<'_>>> {
    match received {
        Ok(frame) => Ok(Some(frame)),
        Err(crate::Error::Timeout { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// [`Channel::try_send_batch`] one frame at a time: `try_one` each payload
/// until one finds no room; how many were taken. A failure after frames
/// were taken returns their count (the next call, which starts there,
/// meets it).
pub(crate) fn take_each(
    payloads: &[&[u8]],
    mut try_one: impl FnMut(&[u8]) -> Result<bool>,
) -> Result<usize> {
    let mut sent = 0;
    for payload in payloads {
        match try_one(payload) {
            Ok(true) => sent += 1,
            Ok(false) => break,
            Err(_) if sent > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// What an event-driven server needs to wait for a channel (see
/// [`Channel::readiness`]).
#[derive(Clone, Copy, Debug)]
pub struct Readiness<'a> {
    /// A descriptor that turns readable (or hangs up) when
    /// `recv_timeout(Some(Duration::ZERO))` may make progress. Bytes already
    /// buffered by the channel do not show here: drain with zero-timeout
    /// receives until one times out before waiting on it.
    pub fd: BorrowedFd<'a>,
    /// When a frame that has started arriving must be complete; `None`
    /// between frames. Past it, the next receive fails.
    pub frame_deadline: Option<Instant>,
    /// How long the channel may sit idle between frames before a server
    /// closes it ([`Options::idle_timeout`]).
    pub idle_timeout: Option<Duration>,
}

/// The per-frame methods of [`Channel`], passed unchanged to the channel a
/// wrapper holds: `forward_channel!(self => expr)` inside an `impl Channel`,
/// where `expr` reaches the inner channel. A wrapper written this way
/// cannot forget a method added to the trait later (it would silently get
/// the default, e.g. no readiness). `split`, `into_any` and `as_any` depend
/// on the wrapper and are written by hand.
macro_rules! forward_channel {
    ($s:ident => $($inner:tt)+) => {
        fn send_timeout(
            &mut $s,
            message_type: u8,
            flags: u16,
            payload: &[u8],
            timeout: Option<Duration>,
        ) -> Result<()> {
            $($inner)+.send_timeout(message_type, flags, payload, timeout)
        }

        fn recv_timeout(&mut $s, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
            $($inner)+.recv_timeout(frame, timeout)
        }

        fn send_batch(&mut $s, message_type: u8, flags: u16, payloads: &[&[u8]]) -> Result<()> {
            $($inner)+.send_batch(message_type, flags, payloads)
        }

        fn close(&mut $s) -> Result<()> {
            $($inner)+.close()
        }

        fn peer(&$s) -> PeerInfo {
            $($inner)+.peer()
        }

        fn attach_counters(&mut $s, counters: &crate::stats::Counters) {
            $($inner)+.attach_counters(counters)
        }

        fn sent_sequence(&$s) -> Option<u64> {
            $($inner)+.sent_sequence()
        }

        fn reply_timeout(
            &mut $s,
            message_type: u8,
            flags: u16,
            payload: &[u8],
            answers: u64,
            timeout: Option<Duration>,
        ) -> Result<()> {
            $($inner)+.reply_timeout(message_type, flags, payload, answers, timeout)
        }

        fn readiness(&$s) -> Option<Readiness<'_>> {
            $($inner)+.readiness()
        }

        fn try_recv(&mut $s, frame: &mut Frame) -> Result<bool> {
            $($inner)+.try_recv(frame)
        }

        fn recv_ref<'a>(
            &'a mut $s,
            spare: &'a mut Frame,
            timeout: Option<Duration>,
        ) -> Result<crate::frame::FrameRef<'a>> {
            $($inner)+.recv_ref(spare, timeout)
        }

        fn try_recv_ref<'a>(
            &'a mut $s,
            spare: &'a mut Frame,
        ) -> Result<Option<crate::frame::FrameRef<'a>>> {
            $($inner)+.try_recv_ref(spare)
        }

        fn try_send(&mut $s, message_type: u8, flags: u16, payload: &[u8]) -> Result<bool> {
            $($inner)+.try_send(message_type, flags, payload)
        }

        fn try_send_batch(
            &mut $s,
            message_type: u8,
            flags: u16,
            payloads: &[&[u8]],
        ) -> Result<usize> {
            $($inner)+.try_send_batch(message_type, flags, payloads)
        }

        fn try_flush(&mut $s) -> Result<bool> {
            $($inner)+.try_flush()
        }
    };
}
pub(crate) use forward_channel;

/// A boxed channel is a channel, so generic code (such as
/// [`TypedChannel`](crate::typed)) takes what [`connect`](crate::connect) returns.
impl<C: Channel + ?Sized> Channel for Box<C> {
    forward_channel!(self => (**self));

    fn split(self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        C::split(*self)
    }

    fn into_any(self: Box<Self>) -> Option<Box<dyn Any + Send>> {
        C::into_any(*self)
    }

    fn as_any(&self) -> Option<&(dyn Any + Send)> {
        (**self).as_any()
    }
}

impl dyn Channel {
    /// The concrete channel inside, if it is a `T`; otherwise the channel
    /// back, unchanged. For a server that wants the zero-copy calls of the
    /// shm links it accepts:
    ///
    /// ```
    /// # fn main() -> utp::Result<()> {
    /// use utp::shm::ShmLink;
    /// let url = format!("shm://doc-downcast-{}", std::process::id());
    /// let mut listener = utp::listen(&url)?;
    /// let client = std::thread::spawn(move || utp::connect(&url)?.send_bytes(b"in place"));
    /// let mut link: ShmLink = listener.accept()?.downcast().expect("an shm link");
    /// let view = link.recv_view(None)?;
    /// assert_eq!(view.payload().len(), 8);
    /// # drop(view);
    /// # client.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// A counted channel (from [`connect`](crate::connect) or a listener)
    /// is no longer counted for `utp stat` once taken out.
    pub fn downcast<T: Channel + 'static>(
        self: Box<Self>,
    ) -> std::result::Result<T, Box<dyn Channel>> {
        if !self.as_any().is_some_and(|any| any.is::<T>()) {
            return Err(self);
        }
        match self.into_any().map(|any| any.downcast::<T>()) {
            Some(Ok(channel)) => Ok(*channel),
            // as_any and into_any name the same value: not reached.
            _ => unreachable!("as_any and into_any disagree about the concrete type"),
        }
    }
}

/// Accepts channels from clients at one endpoint.
///
/// Dropping a listener (or calling [`close`](Listener::close)) removes the
/// endpoint it created: the socket file, the FIFOs, the queues, the segments.
pub trait Listener: Send + fmt::Debug {
    /// Waits at most `timeout` for the next client (`None`: forever).
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>>;

    /// The endpoint this listener serves, as a URL.
    fn endpoint(&self) -> String;

    /// Stops listening and removes the endpoint.
    fn close(&mut self) -> Result<()>;

    /// Waits for the next client as long as it takes.
    fn accept(&mut self) -> Result<Box<dyn Channel>> {
        self.accept_timeout(None)
    }

    /// Accepts a client that is already waiting, without waiting:
    /// `Ok(None)` when there is none (then [`readiness`](Self::readiness),
    /// if the listener has a descriptor, signals the next).
    fn try_accept(&mut self) -> Result<Option<Box<dyn Channel>>> {
        match self.accept_timeout(Some(Duration::ZERO)) {
            Ok(channel) => Ok(Some(channel)),
            Err(crate::Error::Timeout { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A descriptor that turns readable when [`try_accept`](Self::try_accept)
    /// may return a client (level-triggered, like [`Channel::readiness`]),
    /// or `None` when this listener can only be waited for in `accept`.
    fn readiness(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

/// What a channel knows about its peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// Process id, where the mechanism tells it.
    pub pid: Option<u32>,
    /// User id, where the mechanism tells it.
    pub uid: Option<u32>,
    /// Group id, where the mechanism tells it.
    pub gid: Option<u32>,
    /// A printable address (IP:port, socket path), where there is one.
    pub address: Option<String>,
}

/// Settings shared by every transport.
///
/// Start from the defaults and change what you need with the `with_*`
/// methods; URL options (`?max_payload=N`, ...) override them.
///
/// ```
/// use std::time::Duration;
/// let options = utp::Options::default()
///     .with_max_payload(64 * 1024)
///     .with_connect_timeout(Duration::from_secs(1))
///     .with_idle_timeout(None);
/// assert_eq!(options.max_payload, 64 * 1024);
/// let listener = utp::listen_with("inproc://doc-options", &options)?;
/// # drop(listener);
/// # Ok::<(), utp::Error>(())
/// ```
///
/// The fields stay readable and assignable; the struct is
/// `#[non_exhaustive]`, so new settings can be added without breaking
/// callers (build it with [`Options::default`] and the methods, not with a
/// struct literal).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Largest payload accepted from the peer; larger frames are refused as
    /// `too_large` before anything is allocated. Default 1 MiB.
    pub max_payload: usize,
    /// How long `connect` may take before giving up. Default 5 s.
    pub connect_timeout: Duration,
    /// Stream transports: once the first byte of a frame has arrived, the
    /// whole frame must arrive within this time, or the receive fails and the
    /// connection is closed (a slow or stalled peer cannot hold it).
    /// URL option `?frame_timeout_ms=N`. Default [`DEFAULT_FRAME_TIMEOUT`] (5 s).
    pub frame_timeout: Duration,
    /// Servers: a connection that sends nothing for this long between frames
    /// is closed (`None`: never). URL option `?idle_timeout_ms=N` (0: never).
    /// Default [`DEFAULT_IDLE_TIMEOUT`] (5 minutes).
    pub idle_timeout: Option<Duration>,
}

/// Default of [`Options::frame_timeout`].
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of [`Options::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for Options {
    fn default() -> Self {
        Options {
            max_payload: frame::DEFAULT_MAX_PAYLOAD,
            connect_timeout: Duration::from_secs(5),
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

impl Options {
    /// The defaults: the same as [`Options::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`max_payload`](Self::max_payload): the largest payload accepted
    /// from the peer.
    #[must_use]
    pub fn with_max_payload(mut self, max_payload: usize) -> Self {
        self.max_payload = max_payload;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout): how long `connect` may take.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`frame_timeout`](Self::frame_timeout): how long a started frame
    /// may take to arrive in full.
    #[must_use]
    pub fn with_frame_timeout(mut self, timeout: Duration) -> Self {
        self.frame_timeout = timeout;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout): how long a server keeps a
    /// silent connection (`None`: forever).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }
}

/// Turns a remaining-time budget into an absolute deadline and back.
///
/// A zero budget (a `try_` call) is a deadline of its own that reads no
/// clock: `try_recv` over a socket whose frame is already buffered, or that
/// finds nothing, costs no clock read (a vDSO `clock_gettime`, some 25 ns
/// on the 2-vCPU AMD guest of docs/BENCHMARKS.md, per call of an event loop
/// or of `utp::tokio`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// No deadline: wait as long as it takes.
    Never,
    /// Already due: do not wait at all.
    Now,
    /// Due at this instant.
    At(Instant),
}

impl Deadline {
    /// A deadline `timeout` from now. A timeout too large to represent
    /// (`Duration::MAX`) means no deadline, never a panic.
    pub(crate) fn after(timeout: Option<Duration>) -> Self {
        match timeout {
            None => Deadline::Never,
            Some(t) if t.is_zero() => Deadline::Now,
            Some(t) => Instant::now()
                .checked_add(t)
                .map_or(Deadline::Never, Deadline::At),
        }
    }

    /// The earlier of this deadline and `other`.
    pub(crate) fn min(self, other: Option<Instant>) -> Self {
        match (self, other) {
            (Deadline::Now, _) => Deadline::Now,
            (Deadline::At(a), Some(b)) => Deadline::At(a.min(b)),
            (Deadline::Never, Some(b)) => Deadline::At(b),
            (deadline, None) => deadline,
        }
    }

    /// Time left, `None` for no deadline; zero once passed.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        match self {
            Deadline::Never => None,
            Deadline::Now => Some(Duration::ZERO),
            Deadline::At(due) => Some(due.saturating_duration_since(Instant::now())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Deadline;
    use std::time::{Duration, Instant};

    #[test]
    fn a_deadline_is_never_now_or_an_instant_and_says_what_is_left() {
        assert_eq!(Deadline::after(None).remaining(), None);
        assert_eq!(Deadline::after(Some(Duration::MAX)).remaining(), None);
        assert!(matches!(
            Deadline::after(Some(Duration::ZERO)),
            Deadline::Now
        ));
        assert_eq!(
            Deadline::after(Some(Duration::ZERO)).remaining(),
            Some(Duration::ZERO)
        );
        let left = Deadline::after(Some(Duration::from_secs(60)))
            .remaining()
            .unwrap();
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
    }

    #[test]
    fn the_earlier_of_two_deadlines_wins() {
        let soon = Instant::now() + Duration::from_secs(1);
        let later = Deadline::after(Some(Duration::from_secs(60)));
        let left = |d: Deadline| d.remaining().unwrap();
        assert!(left(later.min(Some(soon))) <= Duration::from_secs(1));
        assert!(left(later.min(None)) > Duration::from_secs(59));
        assert!(left(Deadline::Never.min(Some(soon))) <= Duration::from_secs(1));
        assert_eq!(Deadline::Never.min(None).remaining(), None);
        // Due now stays due now, whatever the other deadline.
        assert_eq!(
            Deadline::Now.min(Some(soon)).remaining(),
            Some(Duration::ZERO)
        );
        assert_eq!(Deadline::Now.min(None).remaining(), Some(Duration::ZERO));
    }
}
