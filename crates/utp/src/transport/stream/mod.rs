//! Frames over byte streams: the shared engine of the `unix`, `tcp`, `pipe`
//! and `fifo` transports.
//!
//! Reading is incremental (see `inbox`), so short reads, frames split at any
//! byte and timeouts in the middle of a frame are all handled. Writing uses
//! one vectored write of header and payload (one plain write for frames up
//! to 512 bytes, copied together) and resumes after short writes.
//! Servers detect per connection whether a client speaks UTP or the original
//! tutorial's 4-byte length prefix ([`Framing::Detect`]).

pub(crate) mod batch;
mod framing;
mod hangup;
pub(crate) mod inbox;
mod io;
mod sigpipe;
#[cfg(test)]
mod tests;

pub use framing::Framing;
pub(crate) use framing::client_framing;
#[doc(hidden)]
pub use io::StreamIo;

use crate::channel::{Channel, Deadline, Options, PeerInfo, Readiness};
use crate::error::{Error, Result};
use crate::frame::{Frame, FrameRef, HEADER_LEN, Stamper, message_type};
use crate::halves::{RecvHalf, Role, SendHalf};
use crate::transport::wait::{Ready, Woke, wait_ready, wait_ready_or_hangup};
use crate::{GoneReason, ProtocolReason};
use inbox::Inbox;
use rustix::io::Errno;
use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Frames up to this many bytes (header included) are copied into one
/// buffer and written with one plain `write`/`send` instead of `writev`.
const COALESCE_MAX: usize = 512;

/// A [`Channel`] over a byte stream.
#[derive(Debug)]
pub struct StreamChannel {
    io: StreamIo,
    inbox: Inbox,
    stamper: Stamper,
    label: String,
    peer: PeerInfo,
    /// Set when a send stopped part-way through a frame: the peer would see
    /// a cut frame, so nothing more may be sent.
    torn: bool,
    closed: bool,
    /// How long a server lets this connection idle between frames.
    idle_timeout: Option<Duration>,
    /// Pairs whose descriptors may change mode alone: whether the write
    /// descriptor is non-blocking now (`None`: not known yet).
    write_nonblocking: Option<bool>,
    /// Whether the pair's modes may be changed at all (see
    /// [`StreamIo::pair_modes_separate`]).
    modes_separate: bool,
    /// The unsent end of the last frame [`Channel::try_send`] accepted when
    /// the socket or pipe filled up part-way (at most one frame): written
    /// before anything else is sent, so no frame is ever cut.
    tail: Vec<u8>,
    /// Where a run of small frames of a batch is put together (see
    /// `batch.rs`), kept from run to run: at most a run's 64 KiB + 32,
    /// allocated by the first batch.
    run_buffer: Vec<u8>,
    /// Set by `try_send` while it sends: a write that would block keeps
    /// the rest of the frame in `tail` instead of waiting.
    accept_tail: bool,
    /// Whole, or one half of a split channel (decides what `close` does).
    role: Role,
    /// Halves of a server channel split before the client's framing was
    /// known: the receive half records it here, the send half reads it.
    detected: Option<Arc<OnceLock<Framing>>>,
    /// Pipes and FIFOs made while SIGPIPE would end the process: each write
    /// blocks the signal around itself (see `sigpipe`).
    shield_sigpipe: bool,
    /// A pair whose read end hanging up means the peer ended the
    /// conversation while its end of our writes may stay open (a FIFO
    /// client: the listener keeps reading `PATH.req`): looked for now and
    /// then, and while waiting for room (see `hangup`).
    hangup: Option<hangup::HangupWatch>,
}

impl StreamChannel {
    /// Wraps connected descriptors. `label` names the endpoint in errors.
    #[doc(hidden)]
    pub fn new(
        io: StreamIo,
        framing: Framing,
        max_payload: usize,
        label: String,
        peer: PeerInfo,
    ) -> Self {
        let modes_separate = io.pair_modes_separate();
        let shield_sigpipe = !io.is_socket() && sigpipe::kills_the_process();
        let mut inbox = Inbox::new(framing, max_payload);
        inbox.mode.may_block = modes_separate;
        StreamChannel {
            io,
            inbox,
            stamper: Stamper::default(),
            label,
            peer,
            torn: false,
            closed: false,
            idle_timeout: None,
            write_nonblocking: None,
            modes_separate,
            tail: Vec::new(),
            run_buffer: Vec::new(),
            accept_tail: false,
            role: Role::Whole,
            detected: None,
            shield_sigpipe,
            hangup: None,
        }
    }

    /// Pairs: the read end hanging up means the peer has ended the
    /// conversation, even though a write may still find room. Sends then
    /// fail with [`Error::PeerGone`] instead of filling a pipe nobody will
    /// read again, and waiting for ever (see `hangup`).
    pub(crate) fn ending_with_read_hangup(mut self) -> Self {
        if let StreamIo::Pair {
            write: Some(write), ..
        } = &self.io
        {
            self.hangup = Some(hangup::HangupWatch::new(write.as_fd()));
        }
        self
    }

    /// Splits into a send-only and a receive-only channel (the halves of
    /// [`Channel::split`]). A socket is shared through a second descriptor
    /// (each half uses its own direction of it); a pair gives each half
    /// its own descriptor.
    pub(crate) fn split_ends(mut self) -> Result<(StreamChannel, StreamChannel)> {
        let sender = self.split_off_sender()?;
        Ok((sender, self))
    }

    /// [`split_ends`](Self::split_ends) in place: makes this channel the
    /// receive half and returns the send half (for wrappers that keep
    /// their own state with the receive half).
    pub(crate) fn split_off_sender(&mut self) -> Result<StreamChannel> {
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map_err(|e| Error::io("duplicate a descriptor for a send half", e))
        };
        let sender_io = match &mut self.io {
            StreamIo::Socket { fd, passes_fds } => StreamIo::Socket {
                fd: dup(fd)?,
                passes_fds: *passes_fds,
            },
            // The send half never reads. Its read slot holds a second
            // descriptor of the read end, which keeps that end open while
            // either half lives: dropping the receive half alone does not
            // break the peer's writes (see crate::halves).
            StreamIo::Pair { read, write } => StreamIo::Pair {
                read: dup(read)?,
                write: write.take(),
            },
        };
        let detected = (self.inbox.framing == Framing::Detect).then(Default::default);
        let mut inbox = Inbox::new(self.inbox.framing, self.inbox.max_payload);
        inbox.mode.may_block = self.inbox.mode.may_block;
        let sender = StreamChannel {
            io: sender_io,
            inbox,
            stamper: std::mem::take(&mut self.stamper),
            label: self.label.clone(),
            peer: self.peer.clone(),
            torn: self.torn,
            closed: self.closed,
            idle_timeout: self.idle_timeout,
            write_nonblocking: self.write_nonblocking,
            modes_separate: self.modes_separate,
            role: Role::Sender,
            detected: detected.clone(),
            tail: Vec::new(),
            run_buffer: Vec::new(),
            accept_tail: false,
            shield_sigpipe: self.shield_sigpipe,
            hangup: self.hangup.as_ref().map(hangup::HangupWatch::fresh),
        };
        self.role = Role::Receiver;
        self.detected = detected;
        Ok(sender)
    }

    /// Applies the deadlines of `options`: [`Options::frame_timeout`] for
    /// each frame received, [`Options::idle_timeout`] for servers.
    #[doc(hidden)]
    pub fn with_deadlines(mut self, options: &Options) -> Self {
        self.inbox.frame_timeout = options.frame_timeout;
        self.idle_timeout = options.idle_timeout;
        self
    }

    /// Numbers outgoing frames from `first` on instead of 1.
    #[doc(hidden)]
    pub fn start_sequence_at(&mut self, first: u64) {
        self.stamper.start_at(first);
    }

    /// Bytes of receive buffer this channel holds right now (it grows with
    /// the bytes that arrive, never with what a header announces).
    pub fn buffered_capacity(&self) -> usize {
        self.inbox.footprint()
    }

    /// Pairs: puts the write descriptor in the mode this send needs. With no
    /// deadline a blocking write is one system call however full the pipe
    /// is (a non-blocking one costs EAGAIN + poll + write each time it is
    /// full); with a deadline the write must not block, so the deadline can
    /// be kept (and so where waiting for room must watch the read end's
    /// hang-up: see `hangup`). The mode is only changed when it differs
    /// from the last one.
    fn write_mode(&mut self, nonblocking: bool) -> Result<()> {
        if !self.modes_separate {
            return Ok(());
        }
        if self.write_nonblocking != Some(nonblocking) {
            self.io.set_write_nonblocking(nonblocking)?;
            self.write_nonblocking = Some(nonblocking);
        }
        Ok(())
    }

    /// The framing in use: [`Framing::Detect`] until the first bytes arrive.
    pub fn framing(&self) -> Framing {
        self.inbox.framing
    }

    /// The underlying descriptors.
    #[doc(hidden)]
    pub fn io(&self) -> &StreamIo {
        &self.io
    }

    /// Sends a frame with file descriptors attached (`SCM_RIGHTS`, Unix sockets only).
    ///
    /// The receiver collects them with [`take_fds`](Self::take_fds) after
    /// receiving the frame. At most 16 descriptors per frame.
    pub fn send_with_fds(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> Result<()> {
        if !fds.is_empty()
            && !matches!(
                self.io,
                StreamIo::Socket {
                    passes_fds: true,
                    ..
                }
            )
        {
            return Err(Error::protocol(
                ProtocolReason::Unsupported,
                format!(
                    "{} cannot carry file descriptors; only unix:// sockets can",
                    self.label
                ),
            ));
        }
        if fds.len() > io::MAX_FDS_PER_MESSAGE {
            return Err(Error::protocol(
                ProtocolReason::Unsupported,
                format!(
                    "{} descriptors in one frame; at most {} are allowed",
                    fds.len(),
                    io::MAX_FDS_PER_MESSAGE
                ),
            ));
        }
        self.send_inner(message_type, flags, payload, fds, timeout)
    }

    /// Takes the file descriptors that arrived with the frames received so far.
    pub fn take_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.inbox.fds)
    }

    fn send_inner(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.send_frame(message_type, flags, payload, fds, None, timeout)
    }

    fn send_frame(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
        answers: Option<u64>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.check_sendable()?;
        self.check_limit(payload.len())?;
        let mut head = [0u8; HEADER_LEN];
        let head_len = if self.is_legacy() {
            match legacy_prefix(message_type, payload, &mut head) {
                Some(len) => len,
                // Control frames have no form in the tutorial's framing.
                None => return Ok(()),
            }
        } else {
            match answers {
                Some(request) => {
                    self.stamper
                        .stamp_reply(message_type, flags, payload, request, &mut head)
                }
                None => self.stamper.stamp(message_type, flags, payload, &mut head),
            };
            HEADER_LEN
        };
        let error_prefix: &[u8] = if head_len == 4 && message_type == message_type::ERROR {
            b"ERR "
        } else {
            b""
        };
        let frame_len = head_len + error_prefix.len() + payload.len();
        if frame_len <= COALESCE_MAX {
            // A small frame goes out as one plain write from the stack: the
            // kernel's iovec import and vectored path cost more than copying
            // a few hundred bytes (a 64-byte message: ~5 % of a FIFO send).
            let mut whole = [0u8; COALESCE_MAX];
            let (h, rest) = whole.split_at_mut(head_len);
            h.copy_from_slice(&head[..head_len]);
            let (p, rest) = rest.split_at_mut(error_prefix.len());
            p.copy_from_slice(error_prefix);
            rest[..payload.len()].copy_from_slice(payload);
            return self.write_all(&mut [IoSlice::new(&whole[..frame_len])], fds, timeout);
        }
        let mut bufs = [
            IoSlice::new(&head[..head_len]),
            IoSlice::new(error_prefix),
            IoSlice::new(payload),
        ];
        self.write_all(&mut bufs, fds, timeout)
    }

    /// Fails if the channel is closed, or torn by an earlier send that
    /// stopped part-way through a frame.
    fn check_sendable(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if self.torn {
            return Err(Error::protocol(
                ProtocolReason::Unsupported,
                format!(
                    "an earlier send to {} timed out part-way through a frame; close this channel",
                    self.label
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a payload of `len` bytes over the limit. The peer applies
    /// its limit before reading; a frame it refuses would leave both ends
    /// out of step. The limit we know is ours (both ends default to 1
    /// MiB): refuse at once, nothing sent.
    fn check_limit(&self, len: usize) -> Result<()> {
        let limit = self.inbox.max_payload.min(u32::MAX as usize);
        if len > limit {
            return Err(Error::TooLarge {
                len,
                limit,
                transport: "this stream channel; raise the max_payload option \
                            (?max_payload=N) on both ends",
            });
        }
        Ok(())
    }

    fn is_legacy(&self) -> bool {
        let framing = match (&self.detected, self.inbox.framing) {
            (Some(shared), Framing::Detect) => shared.get().copied().unwrap_or(Framing::Detect),
            (_, framing) => framing,
        };
        matches!(framing, Framing::LengthPrefixed { .. })
    }

    fn write_all(
        &mut self,
        mut bufs: &mut [IoSlice<'_>],
        mut fds: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> Result<()> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.peer_hung_up_before(total) {
            return Err(self.ended_by_peer());
        }
        // Where the peer's hang-up ends the conversation, a wait for room
        // must watch for it too, so no write may wait in the kernel.
        self.write_mode(timeout.is_some() || self.hangup.is_some())?;
        let deadline = Deadline::after(timeout);
        self.flush_tail(deadline, timeout)?;
        let mut written = 0;
        while written < total {
            match self.write_some(bufs, fds, timeout.is_some()) {
                Ok(n) => {
                    written += n;
                    fds = &[];
                    IoSlice::advance_slices(&mut bufs, n);
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) if self.accept_tail && written == 0 => {
                    // try_send, no room at all: the frame is not taken.
                    return Err(Error::Full);
                }
                Err(Errno::AGAIN) if self.accept_tail && fds.is_empty() => {
                    // try_send: the rest goes out before the next frame.
                    for buf in bufs.iter() {
                        self.tail.extend_from_slice(buf);
                    }
                    return Ok(());
                }
                Err(Errno::AGAIN) => {
                    let waited = self.wait_for_room(deadline, timeout);
                    if let Err(error) = waited {
                        self.torn = written > 0;
                        return Err(error);
                    }
                }
                Err(Errno::PIPE | Errno::CONNRESET | Errno::NOTCONN) => {
                    return Err(self.peer_closed());
                }
                Err(e) => return Err(Error::io(format!("write to {}", self.label), e)),
            }
        }
        Ok(())
    }
}

impl StreamChannel {
    /// Writes what is left of a frame `try_send` accepted, waiting until
    /// `deadline`; on a timeout the rest stays queued (the channel is not torn).
    fn flush_tail(&mut self, deadline: Deadline, timeout: Option<Duration>) -> Result<()> {
        while !self.tail.is_empty() {
            match self.write_some(&[IoSlice::new(&self.tail)], &[], timeout.is_some()) {
                Ok(n) => {
                    self.tail.drain(..n.min(self.tail.len()));
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => self.wait_for_room(deadline, timeout)?,
                Err(Errno::PIPE | Errno::CONNRESET | Errno::NOTCONN) => {
                    return Err(self.peer_closed());
                }
                Err(e) => return Err(Error::io(format!("write to {}", self.label), e)),
            }
        }
        Ok(())
    }

    /// [`Channel::try_send`]: `false` while the socket or pipe has no room
    /// (nothing stamped, nothing written); otherwise the frame is sent, its
    /// end kept in `tail` if the room ran out part-way.
    /// With `answers`, the frame is a reply naming that request (as
    /// [`Channel::reply_timeout`] with a zero timeout: async servers reply so).
    fn try_send_frame(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: Option<u64>,
    ) -> Result<bool> {
        if self.closed {
            return Err(Error::Closed);
        }
        if !self.may_try_now()? {
            return Ok(false);
        }
        let zero = Some(Duration::ZERO);
        self.try_taking(|c| c.send_frame(message_type, flags, payload, &[], answers, zero))
    }

    /// What every send that must not wait does first: the write descriptor
    /// made non-blocking, the rest of an earlier frame pushed out (`false`
    /// while some remains), and, only for a pair whose blocking mode is
    /// not this channel's to set (stdin and stdout one terminal), a look
    /// for room (`false`: none). Everywhere else the write goes straight
    /// away, not after a poll for room (a zero-timeout `ppoll` took 1.2 µs
    /// on the AMD guest of docs/benchmarks/journal.md, 2026-12-06,
    /// afternoon): a write that finds no room at all takes nothing. (A
    /// pipe whose reader is gone cannot raise SIGPIPE here: see
    /// `write_some`.)
    fn may_try_now(&mut self) -> Result<bool> {
        let zero = Some(Duration::ZERO);
        self.write_mode(true)?;
        match self.flush_tail(Deadline::after(zero), zero) {
            Ok(()) => {}
            Err(Error::Timeout { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        if !self.io.is_socket() && !self.modes_separate && !self.has_room_now()? {
            return Ok(false);
        }
        Ok(true)
    }

    /// Runs `write` (a zero-timeout write of stamped frames) so that a
    /// write the buffer takes in part keeps its rest in the tail: `true`
    /// when the frames were taken, `false` when there was no room at all
    /// (nothing taken, the sequence numbers stamped given back).
    fn try_taking(&mut self, write: impl FnOnce(&mut Self) -> Result<()>) -> Result<bool> {
        let stamper = self.stamper.clone();
        self.accept_tail = true;
        let written = write(self);
        self.accept_tail = false;
        match written {
            Ok(()) => Ok(true),
            Err(Error::Full | Error::Timeout { .. }) => {
                self.stamper = stamper;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the write descriptor has room now; a reader gone is
    /// [`Error::PeerGone`] (a pipe without a reader polls writable too).
    fn has_room_now(&self) -> Result<bool> {
        use rustix::event::PollFlags;
        let revents = crate::transport::wait::poll_now(self.io.write_fd()?, PollFlags::OUT)
            .unwrap_or(PollFlags::empty());
        if revents.intersects(PollFlags::ERR | PollFlags::HUP) {
            return Err(self.peer_closed());
        }
        Ok(revents.intersects(PollFlags::OUT))
    }

    /// One write of (a prefix of) `iov`; to a pipe or FIFO made while
    /// SIGPIPE would end the process, with the signal blocked around it
    /// (a reader gone is then `EPIPE` alone, as `MSG_NOSIGNAL` makes it on
    /// sockets).
    fn write_some(
        &self,
        iov: &[IoSlice<'_>],
        attach: &[BorrowedFd<'_>],
        dont_wait: bool,
    ) -> std::result::Result<usize, Errno> {
        if self.shield_sigpipe {
            sigpipe::shielded(|| self.io.write(iov, attach, dont_wait))
        } else {
            self.io.write(iov, attach, dont_wait)
        }
    }

    /// Waits until the write descriptor has room, or fails at `deadline`;
    /// where the read end's hang-up ends the conversation, also when it
    /// hangs up ([`Error::PeerGone`]).
    fn wait_for_room(&self, deadline: Deadline, timeout: Option<Duration>) -> Result<()> {
        const WAITING_FOR: &str = "room to send (the peer is not reading)";
        let write = self.io.write_fd()?;
        if self.hangup.is_none() {
            return wait_ready(write, Ready::Write, deadline, WAITING_FOR, timeout);
        }
        match wait_ready_or_hangup(write, self.io.read_fd(), deadline, WAITING_FOR, timeout)? {
            Woke::Ready => Ok(()),
            Woke::HungUp => Err(self.ended_by_peer()),
        }
    }

    /// Where the read end's hang-up ends the conversation: whether it has
    /// been seen, when it is time to look before writing `len` bytes (see
    /// `hangup`).
    fn peer_hung_up_before(&mut self, len: usize) -> bool {
        let read = self.io.read_fd();
        self.hangup
            .as_mut()
            .is_some_and(|watch| watch.hung_up_before(len, read))
    }

    /// The peer hung up its end of what we read while we were sending.
    fn ended_by_peer(&self) -> Error {
        Error::peer_gone(
            GoneReason::Closed,
            format!(
                "{}: the peer ended the conversation or exited (it closed its end of the replies) \
                 while this side was still sending",
                self.label
            ),
        )
    }

    /// A write found the peer's end closed.
    fn peer_closed(&self) -> Error {
        Error::peer_gone(
            GoneReason::Closed,
            format!("the peer of {} closed the connection", self.label),
        )
    }
}

/// Writes the tutorial's length prefix for an outgoing frame; `None` for frames
/// that have no place in that framing (heartbeats, goodbyes).
fn legacy_prefix(message_type: u8, payload: &[u8], head: &mut [u8; HEADER_LEN]) -> Option<usize> {
    let extra = match message_type {
        message_type::ERROR => 4, // sent as "ERR <reason>", as the tutorial's clients expect
        message_type::HEARTBEAT | message_type::GOODBYE => return None,
        _ => 0,
    };
    let length = (payload.len() + extra) as u32;
    head[..4].copy_from_slice(&length.to_le_bytes());
    Some(4)
}

impl StreamChannel {
    /// What every receive does first: refuse on a closed channel, and push
    /// what fits now of a frame `try_send` accepted but could not finish.
    #[inline(always)]
    fn before_recv(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if !self.tail.is_empty() {
            let zero = Some(Duration::ZERO);
            self.write_mode(true)?;
            match self.flush_tail(Deadline::after(zero), zero) {
                Ok(()) | Err(Error::Timeout { .. } | Error::PeerGone { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Channel for StreamChannel {
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.send_inner(message_type, flags, payload, &[], timeout)
    }

    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        self.before_recv()?;
        let Some(shared) = &self.detected else {
            // Returned as it comes: a result kept in a local while more
            // code runs is copied out after, and the copy waits for the
            // stores that wrote it (see `Inbox::recv`).
            return self.inbox.recv(&self.io, frame, timeout);
        };
        let received = self.inbox.recv(&self.io, frame, timeout);
        if self.inbox.framing != Framing::Detect {
            let _ = shared.set(self.inbox.framing);
        }
        received
    }

    /// Lends the frame from the channel's read buffer where it arrived whole
    /// there, else from the vector it was assembled in (the stream's inbox).
    fn recv_ref<'a>(
        &'a mut self,
        spare: &'a mut Frame,
        timeout: Option<Duration>,
    ) -> Result<FrameRef<'a>> {
        if self.detected.is_some() {
            // A half of a channel still detecting its peer's framing tells
            // the other half what it found after each receive: through `spare`.
            self.recv_timeout(spare, timeout)?;
            return Ok(spare.as_frame_ref());
        }
        self.before_recv()?;
        self.inbox.recv_ref(&self.io, timeout)
    }

    fn try_recv_ref<'a>(&'a mut self, spare: &'a mut Frame) -> Result<Option<FrameRef<'a>>> {
        crate::channel::lent_now(self.recv_ref(spare, Some(Duration::ZERO)))
    }

    fn send_batch(&mut self, message_type: u8, flags: u16, payloads: &[&[u8]]) -> Result<()> {
        self.send_frames(message_type, flags, payloads)
    }

    fn try_send_batch(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> Result<usize> {
        self.try_send_frames(message_type, flags, payloads)
    }

    fn try_send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<bool> {
        self.try_send_frame(message_type, flags, payload, None)
    }

    fn try_flush(&mut self) -> Result<bool> {
        if self.closed {
            return Err(Error::Closed);
        }
        if self.tail.is_empty() {
            return Ok(true);
        }
        let zero = Some(Duration::ZERO);
        self.write_mode(true)?;
        match self.flush_tail(Deadline::after(zero), zero) {
            Ok(()) => Ok(true),
            Err(Error::Timeout { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // A receive half only stops reading: shutting the socket's write
    // direction would end its send half's direction too.
    fn close(&mut self) -> Result<()> {
        if !std::mem::replace(&mut self.closed, true) && self.role != Role::Receiver {
            if !self.tail.is_empty() {
                // Best effort, without waiting: the end of a frame try_send
                // accepted (a peer that stopped reading sees a cut frame).
                let zero = Some(Duration::ZERO);
                if self.write_mode(true).is_ok() {
                    let _ = self.flush_tail(Deadline::after(zero), zero);
                }
            }
            self.io.shutdown_write();
        }
        Ok(())
    }

    fn split(self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        let (sender, receiver) = self.split_ends()?;
        Ok(crate::halves::halves(sender, receiver))
    }

    fn into_any(self: Box<Self>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(self)
    }

    fn as_any(&self) -> Option<&(dyn std::any::Any + Send)> {
        Some(self)
    }

    fn peer(&self) -> PeerInfo {
        self.peer.clone()
    }

    fn sent_sequence(&self) -> Option<u64> {
        self.stamper.last_sent().filter(|_| !self.is_legacy())
    }

    fn reply_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: u64,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if timeout == Some(Duration::ZERO) {
            // Never cut: a reply that does not fit whole keeps its end in
            // the tail, as try_send does.
            return match self.try_send_frame(message_type, flags, payload, Some(answers))? {
                true => Ok(()),
                false => Err(Error::Timeout {
                    waiting_for: "room to send (the peer is not reading)",
                    after: Duration::ZERO,
                }),
            };
        }
        self.send_frame(message_type, flags, payload, &[], Some(answers), timeout)
    }

    fn readiness(&self) -> Option<Readiness<'_>> {
        Some(Readiness {
            fd: self.io.read_fd(),
            frame_deadline: self.inbox.frame_deadline(),
            idle_timeout: self.idle_timeout,
        })
    }
}

impl Drop for StreamChannel {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
