//! The receiving half of a stream channel: an incremental frame reader.
//!
//! Bytes arrive in arbitrary pieces. The inbox keeps a buffer (up to 260 KiB)
//! and the state of a partly received frame, so a read cut short by a timeout loses
//! nothing: the next call carries on where this one stopped. Large payloads
//! are read straight into their own vector, and after a large frame the next
//! header and the start of its payload arrive in one read, the header into
//! the buffer and the payload into the vector, so a stream of large frames is
//! never copied out of the buffer.
//!
//! Memory follows the bytes, never a peer's promise: the buffer starts empty
//! and doubles (up to 260 KiB) only when bytes fill it, and a large payload's
//! vector grows at most to twice what has arrived (plus 16 KiB), whatever
//! length its header declares. An idle connection costs no buffer at all.
//! The payload vector a caller's frame hands back on each receive is reused
//! as it is: reads overwrite its old bytes instead of zeroing them first.
//!
//! A frame that has started arriving must be complete within the frame
//! deadline (`Options::frame_timeout`); past it the stream is abandoned, so a
//! peer that trickles bytes or stops mid-frame cannot hold the reader.

use super::framing::Framing;
use super::io::{ReadOutcome, StreamIo};
use crate::ProtocolReason;
use crate::channel::Deadline;
use crate::error::{Error, Result};
use crate::frame::{self, DecodeError, Frame, FrameRef, HEADER_LEN, Header};
use crate::transport::pipe::PIPE_PIECE;
use crate::transport::wait::{Ready, wait_ready};
use std::io::IoSliceMut;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Reads into the empty buffer start at an address aligned to this (see
/// `Inbox::origin`).
const ALIGN: usize = 64;
/// Payload bytes are placed at addresses congruent to their index modulo
/// this (see `Inbox::origin`).
const KERNEL_COPY_PHASE: usize = 32;
/// 256 KiB and a page after aligning, reached only by a stream whose
/// reads fill the buffer (it doubles from 512 bytes each time one does):
/// about what a Unix socket holds by default (its sender's 208 KiB
/// `SO_SNDBUF`), so a reader that has fallen behind empties it in one
/// call. Frames of 16 KiB and more skip the buffer (`DIRECT_READ_MIN`);
/// the size is for runs of smaller ones, where a read is a large share of
/// each frame's cost: batches of 16 frames of 1 KiB over a Unix socket
/// moved 3.7–3.9 M frames/s with a 68 KiB buffer, 4.1–4.2 M with 132 KiB and
/// 4.6–4.8 M with 260 KiB, batches of 64-byte frames the same with either
/// (`examples/batch_stream.rs`, alternated builds, Intel host;
/// docs/benchmarks/journal.md, 2026-12-07, forenoon).
const BUFFER_LEN: usize = 256 * 1024 + 4096 + ALIGN;
/// The most a read into the buffer can hold, wherever the aligned start falls.
pub const BUFFER_ROOM: usize = BUFFER_LEN - ALIGN;
/// The buffer's size on its first read.
const FIRST_BUFFER_LEN: usize = 512 + ALIGN;
/// What a receive that timed out was waiting for (`Error::Timeout`).
const WAITING_FOR_FRAME: &str = "a frame from the peer";
/// Payloads at least this large bypass the buffer.
pub const DIRECT_READ_MIN: usize = 16 * 1024;
/// TCP reads a large payload in reads of at most this many bytes. One read
/// of the rest of a 1 MiB payload keeps copying while the sender fills the
/// socket, and the receive window the sender waits for reopens only when
/// it returns (our reading of `tcp_recvmsg`; the effect is measured, the
/// cause is not). Under BBR, streaming 1 MiB messages over loopback, a
/// plain reader went from 5.0–5.1 k to 6.5–6.8 k messages/s with 256 KiB
/// pieces (`utp bench --only tcp`, three interleaved pairs). Since loopback
/// connections send with Reno (`transport::tcp::congestion`), 512 KiB
/// does better: this reader 10.9–11.5 k against 9.0–11.1 k at 256 KiB, the
/// plain reader 10.4–11.1 k against 9.9–10.7 k (five interleaved pairs);
/// reading the rest whole, the plain reader reached 11.3–13.0 k but this
/// one fell to 7.5–8.0 k in three of seven runs (Intel host).
pub const TCP_READ_PIECE: usize = 512 * 1024;
/// A direct read never grows the payload vector by more than this beyond
/// what has arrived (16 KiB at first).
const DIRECT_GROWTH_MIN: usize = 16 * 1024;
/// The most a pipe or FIFO read asks for when it takes more than one
/// frame: a page, the pipe's unit (see [`pipe_read_len`]).
const PIPE_READ_AHEAD: usize = 4096;
/// A pipe or FIFO read takes more than one frame only when at least this
/// many fit in [`PIPE_READ_AHEAD`] (frames of up to 512 bytes).
const PIPE_READ_AHEAD_FRAMES_MIN: usize = 8;

/// The bytes a pipe or FIFO read asks for when the next frames are expected
/// to be `frame_len` bytes each: as many whole frames as fit in
/// `PIPE_READ_AHEAD` (a page) when that is at least eight, otherwise one.
///
/// A pipe's reader and writer take one lock in the kernel, held for a whole
/// copy, so a reader that empties the pipe at once keeps the writer waiting
/// (a stream of 4 KiB frames over a FIFO: 0.25 M frames/s reading 68 KiB at
/// a time, 0.6 M one frame at a time). A page of small frames is a short
/// copy, and a batch of them written at once is read in a call or two:
/// over a FIFO, in batches of 16, 64-byte payloads moved 0.63–0.77 M
/// frames/s a frame a read and 6.2–9.7 M a page a read, 256-byte ones 0.55–0.74
/// M and 3.2–4.2 M, sent one by one the same either way (alternated runs on
/// the AMD host, `examples/batch_stream.rs`). Larger frames are read one a
/// call: at 512 bytes and 1 KiB, reading up to a page sped batches up
/// 1.5–4x but left single sends 10–20 % slower in most of the same runs.
/// Whole frames, so a read ends where a frame does when they are all the
/// same size, and the next read starts at the buffer's aligned origin.
pub fn pipe_read_len(frame_len: usize) -> usize {
    let frame_len = frame_len.max(1);
    let fit = PIPE_READ_AHEAD / frame_len;
    if fit >= PIPE_READ_AHEAD_FRAMES_MIN {
        frame_len * fit
    } else {
        frame_len
    }
}

/// Incremental reader state.
///
// Invariants: `start <= end <= buf.len()`; `buf[start..end]` holds received,
// unconsumed bytes; when `pending` (the header of a frame whose payload
// is arriving) is set, `payload[..filled]` holds the first
// `filled < pending.payload_length` payload bytes of that frame, and
// `filled == 0` otherwise; `filled <= payload.len()`, and the bytes past
// `filled` are old ones, free to overwrite; `frame_started` is set while a
// frame is partly received and its rest has been waited for (a frame whole
// in the buffer never starts the clock).
pub(crate) struct Inbox {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    pending: Option<Header>,
    payload: Vec<u8>,
    filled: usize,
    /// The payload length of the last frame received: the guess at the
    /// next one's (see `read_for_header`).
    last_length: usize,
    pub(crate) framing: Framing,
    pub(crate) max_payload: usize,
    /// How long a started frame may take to arrive in full.
    pub(crate) frame_timeout: Duration,
    /// When the first byte of the frame being received was seen.
    frame_started: Option<Instant>,
    legacy_sequence: u64,
    /// Descriptors received with the bytes (Unix sockets), not yet claimed.
    pub(crate) fds: Vec<OwnedFd>,
    /// Set after an invalid or stalled frame: the byte stream can no longer be trusted.
    broken: Option<String>,
    /// How the descriptor reads (its `may_block` is set by the channel).
    pub(crate) mode: ReadMode,
}

impl std::fmt::Debug for Inbox {
    /// A summary: the buffer itself would drown any log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("buffered", &(self.end - self.start))
            .field("capacity", &self.buf.len())
            .field("pending", &self.pending)
            .field("framing", &self.framing)
            .field("max_payload", &self.max_payload)
            .field("fds", &self.fds.len())
            .field("broken", &self.broken)
            .finish()
    }
}

/// Grows `buf` to `len` bytes (zeroed), allocating exactly that: a
/// vector's own growth would double its capacity, and the last step up to
/// `BUFFER_LEN` would hold 288 KiB for a 260 KiB buffer.
fn grow_buffer(buf: &mut Vec<u8>, len: usize) {
    buf.reserve_exact(len.saturating_sub(buf.len()));
    buf.resize(len, 0);
}

impl Inbox {
    pub(crate) fn new(framing: Framing, max_payload: usize) -> Self {
        Inbox {
            buf: Vec::new(),
            start: 0,
            end: 0,
            pending: None,
            payload: Vec::new(),
            filled: 0,
            last_length: 0,
            framing,
            max_payload,
            frame_timeout: crate::channel::DEFAULT_FRAME_TIMEOUT,
            frame_started: None,
            legacy_sequence: 0,
            fds: Vec::new(),
            broken: None,
            mode: ReadMode::default(),
        }
    }

    /// When the frame being received must be complete (`None` between frames).
    pub(crate) fn frame_deadline(&self) -> Option<Instant> {
        self.frame_started
            .and_then(|t| t.checked_add(self.frame_timeout))
    }

    /// Bytes of memory the reader holds for this connection.
    pub(crate) fn footprint(&self) -> usize {
        self.buf.capacity() + self.payload.capacity()
    }

    /// Reads until one whole frame is in `frame` or the deadline passes.
    pub(crate) fn recv(
        &mut self,
        io: &StreamIo,
        frame: &mut Frame,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let mut header = Header::default();
        self.next_frame::<false>(io, timeout, &mut header)?;
        self.complete(header, frame)
    }

    /// Reads until one whole frame is here or the deadline passes, and lends
    /// it where it lies: in the buffer when it arrived whole there (no copy
    /// at all), else in the payload vector it was assembled in. Valid until
    /// the next call on the inbox.
    pub(crate) fn recv_ref(
        &mut self,
        io: &StreamIo,
        timeout: Option<Duration>,
    ) -> Result<FrameRef<'_>> {
        let mut header = Header::default();
        let at = self.next_frame::<true>(io, timeout, &mut header)?;
        self.lend(header, at)
    }

    /// The whole frame `header` heads, its payload at `buf[at..]` or, for
    /// `None`, in the payload vector, once its checksum has been checked.
    fn lend(&mut self, header: Header, at: Option<usize>) -> Result<FrameRef<'_>> {
        let len = header.payload_length as usize;
        self.check_payload(header, at, len)?;
        Ok(FrameRef {
            header,
            payload: self.lent_bytes(at, len),
        })
    }

    /// Checks a whole frame's payload (`lent_bytes(at, len)`) against its
    /// header's checksum, for both receives.
    #[inline(always)]
    fn check_payload(&mut self, header: Header, at: Option<usize>, len: usize) -> Result<()> {
        if let Err(error) = frame::verify_checksum(header, self.lent_bytes(at, len)) {
            return Err(self.invalid(error));
        }
        self.last_length = len;
        Ok(())
    }

    /// An invalid frame puts the stream out of step for good: every later
    /// receive fails with why.
    #[cold]
    fn invalid(&mut self, error: DecodeError) -> Error {
        self.broken = Some(format!("an invalid frame ({error})"));
        error.into()
    }

    /// The frame being read is whole: nothing is pending any more.
    #[inline(always)]
    fn frame_done(&mut self) {
        self.pending = None;
        self.frame_started = None;
        self.filled = 0;
    }

    /// The `len` payload bytes of a whole frame: at `buf[at..]`, or for
    /// `None` at the start of the payload vector.
    fn lent_bytes(&self, at: Option<usize>, len: usize) -> &[u8] {
        match at {
            Some(at) => &self.buf[at..at + len],
            None => &self.payload[..len],
        }
    }

    /// Reads until the next frame is whole, its header in `header`: whole
    /// in the buffer, its payload at `buf[at..]` (returned, consumed), when
    /// `LEND` and it arrived there whole; else in the payload vector
    /// (`filled` bytes, left for the caller to take; `None`).
    ///
    /// Inlined into both callers, each with its own `LEND`. The header
    /// goes out through `header_out`, not back with the position: returned
    /// together (or handed to a closure), it was built in memory field by
    /// field just before the caller read it 16 bytes at a time, and that
    /// read waited for the stores, a third of `Inbox::recv`'s samples over a
    /// FIFO (as `recv`'s header local did, docs/benchmarks/journal.md,
    /// 2026-12-07). With `LEND` a runtime flag instead of a constant, `recv`
    /// over a FIFO took 3–5 ns a frame more than before lending existed;
    /// as a constant, 0.4 ns (paired runs of `examples/stream_profile.rs`).
    #[inline(always)]
    fn next_frame<const LEND: bool>(
        &mut self,
        io: &StreamIo,
        timeout: Option<Duration>,
        header_out: &mut Header,
    ) -> Result<Option<usize>> {
        if let Some(reason) = &self.broken {
            return Err(Error::protocol(
                ProtocolReason::Corrupt,
                format!("the stream is out of step after {reason}; close this channel"),
            ));
        }
        let deadline = Deadline::after(timeout);
        loop {
            // The header is kept in a local as well as in `pending`: read
            // back from `pending` right after its fields were stored, a
            // frame already whole in the buffer waited for those stores
            // (a load wider than the stores before it is not forwarded
            // from them; see docs/benchmarks/journal.md, 2026-12-07,
            // morning).
            let header = match self.pending {
                Some(header) => header,
                None => match self.parse_header() {
                    Ok(Some(header)) => {
                        self.pending = Some(header);
                        header
                    }
                    Ok(None) => {
                        let into = self.read_for_header(io);
                        self.read_more(io, deadline, timeout, into)?;
                        continue;
                    }
                    Err(error) => return Err(self.invalid(error)),
                },
            };
            *header_out = header;
            let want = header.payload_length as usize;
            if LEND && self.filled == 0 && self.end - self.start >= want {
                let at = self.start;
                self.start += want;
                self.frame_done();
                return Ok(Some(at));
            }
            let take = (want - self.filled).min(self.end - self.start);
            self.take_from_buffer(take);
            if self.filled == want {
                self.frame_done();
                return Ok(None);
            }
            let missing = want - self.filled;
            let direct = missing >= DIRECT_READ_MIN;
            let into = if reads_stop_at_frames(io) && !(direct && self.payload_well_placed()) {
                // The rest of this frame and nothing more, through the
                // buffer (see `origin`).
                ReadInto::Buffer { at_most: missing }
            } else if direct {
                ReadInto::Payload
            } else {
                ReadInto::Buffer {
                    at_most: usize::MAX,
                }
            };
            self.read_more(io, deadline, timeout, into)?;
        }
    }

    /// Moves `take` buffered bytes to the end of the pending payload,
    /// over the vector's old bytes first, then growing it. Inlined, as
    /// `parse_header` is: out of line it was 4 % of a FIFO stream's samples.
    #[inline(always)]
    fn take_from_buffer(&mut self, take: usize) {
        let bytes = &self.buf[self.start..self.start + take];
        let over_old = (self.payload.len() - self.filled).min(take);
        crate::copy::copy_slice(
            &mut self.payload[self.filled..self.filled + over_old],
            &bytes[..over_old],
        );
        crate::copy::extend(&mut self.payload, &bytes[over_old..]);
        self.filled += take;
        self.start += take;
    }

    /// How to read when no whole header is buffered.
    ///
    /// A socket reads all it can: the writer does not wait for the reader.
    /// A pipe reads whole frames the size of the last: as many as fit in a
    /// page if eight or more do, else one (see [`pipe_read_len`]). The
    /// frames go to the buffer whole, the first header at an aligned
    /// address (see `origin`), and their payloads are copied out from there.
    fn read_for_header(&self, io: &StreamIo) -> ReadInto {
        let buffered = self.end - self.start;
        if self.framing != Framing::Utp {
            return ReadInto::Buffer {
                at_most: usize::MAX,
            };
        }
        if reads_stop_at_frames(io) {
            return ReadInto::Buffer {
                at_most: pipe_read_len(HEADER_LEN + self.last_length) - buffered.min(HEADER_LEN),
            };
        }
        // After a large frame, a split read fills the payload vector the
        // caller's frame handed back (its length is an earlier frame's).
        if buffered == 0
            && self.last_length >= DIRECT_READ_MIN
            && self.payload.len() >= DIRECT_READ_MIN
        {
            return ReadInto::Split;
        }
        ReadInto::Buffer {
            at_most: usize::MAX,
        }
    }

    /// One read toward the current frame, within both the caller's deadline
    /// and the frame deadline; overrunning the latter abandons the stream.
    fn read_more(
        &mut self,
        io: &StreamIo,
        deadline: Deadline,
        timeout: Option<Duration>,
        into: ReadInto,
    ) -> Result<()> {
        // The frame clock starts when part of a frame is here and the rest
        // must be waited for: a frame that is already whole in the buffer
        // (most small ones: one read brings several) costs no clock read.
        if self.frame_started.is_none() && (self.end > self.start || self.pending.is_some()) {
            self.frame_started = Some(Instant::now());
        }
        let frame_deadline = self.frame_deadline();
        let effective = deadline.min(frame_deadline);
        let result = match into {
            ReadInto::Buffer { at_most } => self.fill_buffer(io, effective, timeout, at_most),
            ReadInto::Payload => self.read_direct(io, effective, timeout),
            ReadInto::Split => self.read_split(io, effective, timeout),
        };
        match (result, frame_deadline) {
            (Err(Error::Timeout { .. }), Some(due)) if Instant::now() >= due => {
                let (have, of) = self.progress().unwrap_or((0, 0));
                let reason = format!(
                    "a frame that did not arrive within the frame deadline of {:?} \
                     ({have} bytes of {} received; the frame_timeout option sets it)",
                    self.frame_timeout,
                    if of > 0 {
                        format!("a {of}-byte payload")
                    } else {
                        "its header".to_string()
                    }
                );
                let error =
                    Error::protocol(ProtocolReason::Corrupt, format!("the peer sent {reason}"));
                self.broken = Some(reason);
                Err(error)
            }
            (result, _) => result,
        }
    }

    /// Decodes the next header from the buffer, if it is all there.
    /// Inlined: a call per frame showed as 2 % of a Unix socket stream's
    /// samples once both receives (`recv`, `recv_ref`) had a call site; it
    /// had been inlined into the one before.
    #[inline(always)]
    fn parse_header(&mut self) -> std::result::Result<Option<Header>, DecodeError> {
        let available = &self.buf[self.start..self.end];
        if self.framing == Framing::Detect {
            let Some(first) = available.first_chunk::<4>() else {
                return Ok(None);
            };
            self.framing = Framing::detect(*first, self.max_payload)?;
        }
        match self.framing {
            Framing::Utp | Framing::Detect => {
                let Some(head) = available.first_chunk::<HEADER_LEN>() else {
                    return Ok(None);
                };
                let header = frame::decode_header(head, self.max_payload)?;
                self.start += HEADER_LEN;
                Ok(Some(header))
            }
            Framing::LengthPrefixed { incoming_type } => {
                let Some(prefix) = available.first_chunk::<4>() else {
                    return Ok(None);
                };
                let length = u32::from_le_bytes(*prefix);
                if length as usize > self.max_payload {
                    return Err(DecodeError::TooLarge {
                        length,
                        limit: self.max_payload,
                    });
                }
                self.start += 4;
                self.legacy_sequence += 1;
                let header = Header {
                    message_type: incoming_type,
                    flags: 0,
                    payload_length: length,
                    sequence: self.legacy_sequence,
                    timestamp_us: frame::now_micros(),
                    checksum: 0,
                };
                Ok(Some(header))
            }
        }
    }

    /// Hands the pending frame, `header` and its payload, to `frame`.
    fn complete(&mut self, header: Header, frame: &mut Frame) -> Result<()> {
        let len = header.payload_length as usize;
        self.check_payload(header, None, len)?;
        self.payload.truncate(len);
        frame.header = header;
        // The caller's old vector comes back, bytes and all, for the next
        // frame to overwrite.
        std::mem::swap(frame.payload_mut(), &mut self.payload);
        Ok(())
    }

    /// Reads more bytes into the buffer, compacting it first if needed.
    fn fill_buffer(
        &mut self,
        io: &StreamIo,
        deadline: Deadline,
        timeout: Option<Duration>,
        at_most: usize,
    ) -> Result<()> {
        if self.start == self.end {
            if self.buf.is_empty() {
                self.buf.resize(FIRST_BUFFER_LEN, 0);
            }
            self.start = self.origin();
            if reads_stop_at_frames(io) && self.pending.is_some() {
                // Payload byte i lands at an address ≡ i (mod 32), as in a
                // whole frame read at the origin (see `origin`).
                self.start += self.filled % KERNEL_COPY_PHASE;
            }
            self.end = self.start;
        } else if self.end == self.buf.len() {
            let origin = self.origin();
            if self.start > origin {
                self.buf.copy_within(self.start..self.end, origin);
                self.end -= self.start - origin;
                self.start = origin;
            }
            if self.end == self.buf.len() {
                // Full of received bytes: grow, up to BUFFER_LEN.
                let grown = (self.buf.len() * 2).clamp(FIRST_BUFFER_LEN, BUFFER_LEN);
                grow_buffer(&mut self.buf, grown);
            }
        }
        let end = self.end.saturating_add(at_most).min(self.buf.len());
        let progress = self.progress();
        let n = read_some(
            io,
            &mut self.mode,
            &mut [IoSliceMut::new(&mut self.buf[self.end..end])],
            &mut self.fds,
            deadline,
            timeout,
            progress,
        )?;
        self.end += n;
        if self.end == self.buf.len() && self.buf.len() < BUFFER_LEN {
            // The read filled the buffer: more is likely waiting, so read
            // more at a time from now on (the buffer grew with real bytes).
            let grown = (self.buf.len() * 2).min(BUFFER_LEN);
            grow_buffer(&mut self.buf, grown);
        }
        Ok(())
    }

    /// Reads more of a large payload straight into its vector: over the
    /// vector's old bytes while it has some, else growing it by at most what
    /// has arrived so far (and at least 16 KiB).
    fn read_direct(
        &mut self,
        io: &StreamIo,
        deadline: Deadline,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let want = self
            .pending
            .map_or(0, |header| header.payload_length as usize);
        let filled = self.filled;
        if self.payload.len() == filled {
            // Grow by at most what has arrived (16 KiB at first), or into
            // capacity this vector already has from earlier frames: memory
            // that is already ours costs nothing the peer announced.
            let room = self.payload.capacity() - filled;
            let step = (want - filled).min(filled.max(DIRECT_GROWTH_MIN).max(room));
            // Zero-filling costs one pass over the memory but keeps this free
            // of `unsafe`; it happens only where no earlier frame left bytes.
            self.payload.resize(filled + step, 0);
        }
        let end = self
            .payload
            .len()
            .min(want)
            .min(filled.saturating_add(payload_read_piece(io)));
        let progress = self.progress();
        let n = read_some(
            io,
            &mut self.mode,
            &mut [IoSliceMut::new(&mut self.payload[filled..end])],
            &mut self.fds,
            deadline,
            timeout,
            progress,
        )?;
        self.filled += n;
        Ok(())
    }

    /// Where reads into the empty buffer start: its first 64-byte-aligned
    /// byte. The kernel copies with `rep movsb`, which on this project's
    /// AMD hosts runs about half as fast (down to a quarter) when the
    /// destination sits 1–31 bytes past the source modulo a 4 KiB page as
    /// otherwise (a pipe streaming 64 KiB messages: 1.5 against 3.3 GB/s;
    /// see `crate::copy`); the allocator only promises 16-byte alignment.
    /// A destination a multiple of 32 bytes from the source is never in
    /// that window. In a pipe
    /// a payload of a page or more starts at offset 0 or 32 of a page (its
    /// header shared the page before, or starts its own), so a frame read
    /// whole at the origin, header first, copies at full speed either way.
    fn origin(&self) -> usize {
        self.buf.as_ptr().align_offset(ALIGN).min(self.buf.len())
    }

    /// Whether the payload vector sits where a pipe's kernel copy into it
    /// runs at full speed (see `origin`): at an address ≡ 0 (mod 32). The
    /// allocator gives large vectors addresses ≡ 16.
    fn payload_well_placed(&self) -> bool {
        self.payload.as_ptr().addr() % KERNEL_COPY_PHASE == 0
    }

    /// Reads the next header into the empty buffer and, in the same read,
    /// what follows it into the payload vector's old bytes (at most a
    /// buffer's worth): after a large frame the next is likely large too,
    /// and its payload is then never copied out of the buffer. Bytes beyond
    /// the new frame's payload (a smaller frame than expected) move to the
    /// buffer, where the frames after it are read from.
    fn read_split(
        &mut self,
        io: &StreamIo,
        deadline: Deadline,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if self.buf.len() < FIRST_BUFFER_LEN {
            self.buf.resize(FIRST_BUFFER_LEN, 0);
        }
        let origin = self.origin();
        self.start = origin;
        self.end = origin;
        let room = self.payload.len().min(BUFFER_ROOM - HEADER_LEN);
        let n = read_some(
            io,
            &mut self.mode,
            &mut [
                IoSliceMut::new(&mut self.buf[origin..origin + HEADER_LEN]),
                IoSliceMut::new(&mut self.payload[..room]),
            ],
            &mut self.fds,
            deadline,
            timeout,
            None,
        )?;
        if n <= HEADER_LEN {
            self.end = origin + n;
            return Ok(());
        }
        let spilled = n - HEADER_LEN;
        let head = self.buf[origin..]
            .first_chunk::<HEADER_LEN>()
            .expect("buffer holds a header");
        let header = match frame::decode_header(head, self.max_payload) {
            Ok(header) => header,
            Err(error) => return Err(self.invalid(error)),
        };
        let own = spilled.min(header.payload_length as usize);
        self.pending = Some(header);
        self.filled = own;
        // The next frame's first bytes, if any, go where it is read from.
        let next = spilled - own;
        if self.buf.len() < next + ALIGN {
            grow_buffer(
                &mut self.buf,
                (next + ALIGN)
                    .next_power_of_two()
                    .clamp(FIRST_BUFFER_LEN, BUFFER_LEN),
            );
        }
        let origin = self.origin();
        crate::copy::copy_slice(
            &mut self.buf[origin..origin + next],
            &self.payload[own..spilled],
        );
        self.start = origin;
        self.end = origin + next;
        Ok(())
    }

    /// How far into a frame the reader is, for "peer gone" messages: payload
    /// bytes received of the payload's length, or `(n, 0)` for the first
    /// `n` bytes of a header; `None` between frames.
    fn progress(&self) -> Option<(usize, usize)> {
        let buffered = self.end - self.start;
        match &self.pending {
            Some(header) => Some((self.filled + buffered, header.payload_length as usize)),
            // Part of a header (a whole one would have been parsed).
            None => (buffered > 0).then_some((buffered, 0)),
        }
    }
}

/// Pipes and FIFOs (any descriptor pair): every read stops at the end of
/// a frame, the one it is for or the last whole one of a page of small
/// frames (see `Inbox::read_for_header`), never past it.
fn reads_stop_at_frames(io: &StreamIo) -> bool {
    !io.is_socket()
}

/// The most one read straight into a payload asks for: a pipe is read in
/// pieces as it is written (see `PIPE_PIECE`), TCP in pieces of
/// [`TCP_READ_PIECE`], a Unix socket whole. (Every Unix socket passes
/// descriptors; a socket that does not is TCP's.)
fn payload_read_piece(io: &StreamIo) -> usize {
    match io {
        StreamIo::Pair { .. } => PIPE_PIECE,
        StreamIo::Socket {
            passes_fds: false, ..
        } => TCP_READ_PIECE,
        StreamIo::Socket { .. } => usize::MAX,
    }
}

/// Where a read puts the bytes.
#[derive(Clone, Copy)]
enum ReadInto {
    /// The buffer (headers, small payloads), at most this many bytes.
    Buffer { at_most: usize },
    /// The rest of a large payload, straight into its vector.
    Payload,
    /// A header into the empty buffer and what follows into the payload
    /// vector (see `Inbox::read_split`).
    Split,
}

/// The socket receive timeout to use for a read with `remaining` time left,
/// given the one currently set. Keeping the current one saves a syscall; it
/// may end the read up to 1 ms late, or early (the caller then reads again).
fn kernel_timeout(current: Option<Duration>, remaining: Option<Duration>) -> Option<Duration> {
    match (current, remaining) {
        (Some(c), Some(r)) if c >= r / 2 && c <= r + Duration::from_millis(1) => Some(c),
        (_, r) => r,
    }
}

/// How the descriptor reads: a socket's current receive timeout; a pair's
/// blocking mode.
#[derive(Debug, Default)]
pub(crate) struct ReadMode {
    /// The receive timeout currently set on a socket (`None`: blocking).
    socket_timeout: Option<Duration>,
    /// Pairs: whether the read descriptor may be made blocking (it is not
    /// shared with the write one); set by the channel.
    pub(crate) may_block: bool,
    /// Pairs: whether it has been.
    blocking: bool,
    /// Pairs: whether this reader has polled its pipe. From then on the
    /// kernel wakes the reader on every write anyway (see
    /// `pipe::holds_bytes`), so looking with `FIONREAD` first saves
    /// nothing and costs the pipe's lock.
    polled: bool,
}

fn read_some(
    io: &StreamIo,
    mode: &mut ReadMode,
    dst: &mut [IoSliceMut<'_>],
    fds: &mut Vec<OwnedFd>,
    deadline: Deadline,
    timeout: Option<Duration>,
    progress: Option<(usize, usize)>,
) -> Result<usize> {
    // Polls the descriptor until it is readable or the deadline passes.
    let wait_for_bytes = |mode: &mut ReadMode| {
        mode.polled = true;
        wait_ready(
            io.read_fd(),
            Ready::Read,
            deadline,
            WAITING_FOR_FRAME,
            timeout,
        )
    };
    loop {
        let remaining = deadline.remaining();
        let mut dont_wait = false;
        if io.is_socket() {
            // Sockets enforce the deadline in the kernel (SO_RCVTIMEO), so a
            // receive is one read() instead of poll() + read(); the option is
            // only changed when the wanted timeout moves (see kernel_timeout).
            if remaining == Some(Duration::ZERO) {
                // Time is up, but a frame may be waiting: read what is
                // there without blocking.
                dont_wait = true;
            } else {
                io.set_read_timeout(
                    kernel_timeout(mode.socket_timeout, remaining),
                    &mut mode.socket_timeout,
                )?;
            }
        } else if remaining.is_some() {
            // A pair with a deadline: wait for data first, so that the read
            // cannot block whatever mode the descriptor is in (one reader).
            // Bytes already there need no wait, and asking for them with
            // FIONREAD rather than poll keeps the pipe unpolled, its writes
            // cheaper (see `pipe::holds_bytes`): the rest of a small frame
            // begun in an earlier read is mostly there already. A large
            // read polls at once: FIONREAD takes the pipe's lock, so it
            // waits out the writer's copy of a large piece (1 MiB frames
            // over a FIFO streamed at 0.81–0.85x raw with that look before
            // every piece, 0.96–0.99x without), and large frames gain
            // little from an unpolled pipe. Once polled, poll straight
            // away (see `ReadMode::polled`).
            let wanted: usize = dst.iter().map(|buf| buf.len()).sum();
            if mode.polled
                || wanted >= DIRECT_READ_MIN
                || !crate::transport::pipe::holds_bytes(io.read_fd())
            {
                wait_for_bytes(mode)?;
            }
        } else if mode.may_block && !mode.blocking {
            // No deadline: one blocking read() is the whole wait (a
            // non-blocking one costs read + poll + read when the pipe is
            // empty). Made blocking once; reads with a deadline poll first.
            io.set_read_nonblocking(false)?;
            mode.blocking = true;
        }
        match io.read(dst, fds, dont_wait)? {
            ReadOutcome::Data(n) => return Ok(n),
            ReadOutcome::WouldBlock if dont_wait => {
                return Err(Error::Timeout {
                    waiting_for: WAITING_FOR_FRAME,
                    after: timeout.unwrap_or_default(),
                });
            }
            ReadOutcome::WouldBlock => wait_for_bytes(mode)?,
            // Again with the time left (a socket's timeout is set anew).
            ReadOutcome::Interrupted => {}
            ReadOutcome::Eof => {
                let reason = match progress {
                    Some(_) => crate::error::GoneReason::Died,
                    None => crate::error::GoneReason::Closed,
                };
                return Err(Error::peer_gone(
                    reason,
                    match progress {
                        Some((have, 0)) => format!(
                            "the peer closed the connection in the middle of a frame header ({have} of {HEADER_LEN} bytes received)"
                        ),
                        Some((have, of)) => format!(
                            "the peer closed the connection in the middle of a frame ({have} of {of} payload bytes received)"
                        ),
                        None => "the peer closed the connection".to_string(),
                    },
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ALIGN, FIRST_BUFFER_LEN, Inbox, kernel_timeout};
    use crate::transport::stream::Framing;
    use std::time::Duration;

    /// Reads into the buffer start on a 64-byte boundary whatever address the
    /// allocator gave it (it promises 16, so most buffers here are not
    /// aligned at index 0).
    #[test]
    fn the_buffer_origin_is_aligned_for_every_allocation() {
        let mut unaligned_at_zero = 0;
        let inboxes: Vec<Inbox> = (0..64)
            .map(|i| {
                let mut inbox = Inbox::new(Framing::Utp, 1 << 20);
                inbox.buf.resize(FIRST_BUFFER_LEN + 16 * i, 0);
                inbox
            })
            .collect();
        for inbox in &inboxes {
            let origin = inbox.origin();
            let address = inbox.buf.as_ptr().addr();
            assert!(origin < ALIGN, "{origin}");
            assert_eq!((address + origin) % ALIGN, 0, "origin {origin}");
            unaligned_at_zero += usize::from(address % ALIGN != 0);
        }
        // The test means something only if some buffers needed the offset.
        assert!(unaligned_at_zero > 0);
    }

    /// TCP payloads are read in pieces, Unix sockets' whole, pipes' in
    /// the pieces they are written in.
    #[test]
    fn each_kind_of_descriptor_reads_payloads_in_its_own_pieces() {
        use super::{PIPE_PIECE, StreamIo, TCP_READ_PIECE, payload_read_piece};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (unix, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        let (read, write) = rustix::pipe::pipe().unwrap();
        // As the transports build them: TCP's sockets do not pass
        // descriptors, Unix sockets' do.
        let kinds = [
            (
                StreamIo::Socket {
                    fd: tcp.into(),
                    passes_fds: false,
                },
                TCP_READ_PIECE,
            ),
            (
                StreamIo::Socket {
                    fd: unix.into(),
                    passes_fds: true,
                },
                usize::MAX,
            ),
            (
                StreamIo::Pair {
                    read,
                    write: Some(write),
                },
                PIPE_PIECE,
            ),
        ];
        for (io, piece) in &kinds {
            assert_eq!(payload_read_piece(io), *piece, "{io:?}");
        }
    }

    #[test]
    fn a_pipe_read_asks_for_whole_small_frames_up_to_a_page() {
        use super::{PIPE_READ_AHEAD, pipe_read_len};
        assert_eq!(PIPE_READ_AHEAD, 4096);
        // 64-byte payloads: 42 frames of 96 bytes; 256-byte ones, 14.
        assert_eq!(pipe_read_len(96), 42 * 96);
        assert_eq!(pipe_read_len(288), 14 * 288);
        assert_eq!(pipe_read_len(512), 4096);
        assert_eq!(pipe_read_len(0), 4096);
        // Fewer than eight to a page: one frame.
        assert_eq!(pipe_read_len(513), 513);
        assert_eq!(pipe_read_len(1056), 1056);
        assert_eq!(pipe_read_len(4128), 4128);
        assert_eq!(pipe_read_len(1 << 20), 1 << 20);
    }

    /// A batch of small frames written to a pipe at once is read whole
    /// frames at a time, as many as fit in a page: after the first of 16
    /// frames of 64 B the other 15 are in the buffer; of 16 of 256 B (14
    /// fit), the 13 read with it; of 1 KiB ones (four fit), none.
    #[test]
    fn a_pipe_reader_takes_the_whole_frames_of_a_batch_that_fit_in_a_page() {
        use super::{StreamIo, pipe_read_len};
        use crate::frame::{Frame, HEADER_LEN, Header, encode_to_vec, flags, message_type};
        let (read, write) = rustix::pipe::pipe().unwrap();
        let io = StreamIo::Pair { read, write: None };
        let mut inbox = Inbox::new(Framing::Utp, 1 << 20);
        let mut frame = Frame::with_capacity(0);
        let mut sequence = 0;
        let mut batch = |count: usize, payload_len: usize| {
            let mut bytes = Vec::new();
            for _ in 0..count {
                sequence += 1;
                let header = Header::new(message_type::DATA, flags::CHECKSUM, sequence, 0);
                bytes.extend(encode_to_vec(&header, &vec![sequence as u8; payload_len]));
            }
            assert_eq!(rustix::io::write(&write, &bytes).unwrap(), bytes.len());
        };
        let mut received = 0;
        let mut take = |inbox: &mut Inbox, payload_len: usize| {
            inbox.recv(&io, &mut frame, None).unwrap();
            received += 1;
            assert_eq!(frame.header.sequence, received);
            assert_eq!(frame.payload(), &vec![received as u8; payload_len][..]);
            inbox.end - inbox.start
        };
        for (payload_len, count, buffered_after_first) in
            [(64, 16, 15 * 96), (256, 16, 13 * 288), (1024, 8, 0)]
        {
            // The first batches set the length the reader expects and grow
            // its buffer (it grows when a read fills it) to hold what a read
            // asks for; the first batch that finds both done is looked at.
            for round in 0.. {
                assert!(round < 8, "{payload_len} B: the buffer never grew");
                let wanted =
                    pipe_read_len(HEADER_LEN + payload_len).min(count * (HEADER_LEN + payload_len));
                let settled = inbox.last_length == payload_len && inbox.buf.len() >= wanted + ALIGN;
                batch(count, payload_len);
                let after_first = take(&mut inbox, payload_len);
                for _ in 1..count {
                    take(&mut inbox, payload_len);
                }
                assert_eq!(inbox.end - inbox.start, 0, "{payload_len} B");
                if settled {
                    assert_eq!(after_first, buffered_after_first, "{payload_len} B");
                    break;
                }
            }
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_kernel_timeout_is_kept_while_close_enough_and_replaced_otherwise() {
        // No deadline: block.
        assert_eq!(kernel_timeout(Some(100 * MS), None), None);
        // First timed read: set it.
        assert_eq!(kernel_timeout(None, Some(100 * MS)), Some(100 * MS));
        // The same timeout again, a few microseconds spent: keep it (no syscall).
        let nearly = 100 * MS - Duration::from_micros(5);
        assert_eq!(kernel_timeout(Some(100 * MS), Some(nearly)), Some(100 * MS));
        // Much less time left than set: replace, so the deadline is not overrun.
        assert_eq!(kernel_timeout(Some(100 * MS), Some(10 * MS)), Some(10 * MS));
        // Much more time left than set: replace, so reads do not wake needlessly.
        assert_eq!(
            kernel_timeout(Some(10 * MS), Some(5000 * MS)),
            Some(5000 * MS)
        );
    }
}
