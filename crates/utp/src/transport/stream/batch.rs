//! [`Channel::send_batch`](crate::Channel::send_batch) over a byte stream:
//! the frames of a batch go out together, up to [`RUN`] frames per write,
//! where a loop of `send` makes one system call per frame (a 64-byte
//! frame's `write` is most of its cost: 1.5 µs for a pipe's write and read
//! on the AMD guest of docs/benchmarks/journal.md, 2026-12-06, evening).

use super::StreamChannel;
use crate::error::Result;
use crate::frame::{HEADER_LEN, coarse_micros};
use crate::transport::pipe::PIPE_PIECE;
use std::io::IoSlice;
use std::time::Duration;

/// Frames written by one system call at most: their headers sit on the
/// stack, and their buffers (two a frame) stay far under `IOV_MAX`.
const RUN: usize = 32;

/// Bytes a run of frames takes at most, unless one frame alone is larger:
/// what one write to a pipe moves (a 64 KiB payload and its header), so
/// that a run is one system call over pipes and FIFOs too.
const RUN_BYTES: usize = PIPE_PIECE + HEADER_LEN;

/// A run of frames this large or smaller (headers included) is copied
/// into one buffer and written with one plain write: for small frames
/// the kernel's import of 64 buffers costs more than the copy (as for
/// one frame, `COALESCE_MAX`).
pub const COALESCE_RUN_MAX: usize = 4096;

/// A run whose payloads are all this large or smaller is copied into one
/// buffer whatever its size (up to a run's 64 KiB + 32): the kernel copies a
/// run of 32-byte headers and small payloads, each landing 32 bytes off
/// the alignment it had, more slowly than one buffer of the same bytes
/// plus the copy that builds it. Alternated runs of
/// `examples/batch_stream.rs` over a Unix socket on the AMD guest of
/// docs/benchmarks/journal.md (2026-12-06, late night), batches of 16:
/// 512 B payloads 3.3-3.4 M frames/s vectored, 4.3-4.5 M copied; 1 KiB
/// 2.1-2.7 M, 3.0-3.2 M; 2 KiB 1.9 M, 2.1-2.3 M; 4 KiB 1.0 M, 0.9 M (so
/// larger payloads stay where they are).
pub const COALESCE_PAYLOAD_MAX: usize = 2048;

impl StreamChannel {
    /// [`Channel::send_batch`](crate::Channel::send_batch): every frame
    /// stamped as `send` stamps it, written in runs of at most [`RUN`]
    /// frames and [`RUN_BYTES`], each run one write when the kernel takes
    /// it whole (the rest resumed as `send` resumes a short write). A
    /// payload over the limit ends the batch after the frames before it,
    /// which are written first. A channel that speaks
    /// the tutorial's length-prefixed framing sends frame by frame.
    pub(super) fn send_frames(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> Result<()> {
        if self.is_legacy() {
            for payload in payloads {
                self.send_frame(message_type, flags, payload, &[], None, None)?;
            }
            return Ok(());
        }
        self.check_sendable()?;
        let mut start = 0;
        while start < payloads.len() {
            let end = self.run_end(payloads, start);
            self.write_run(message_type, flags, &payloads[start..end], None)?;
            if let Some(next) = payloads.get(end) {
                // Over the limit: the batch ends here, the frames before it sent.
                self.check_limit(next.len())?;
            }
            start = end;
        }
        Ok(())
    }

    /// [`Channel::try_send_batch`](crate::Channel::try_send_batch): the
    /// runs of [`send_frames`](Self::send_frames) written without waiting,
    /// until one finds no room at all (its frames not taken, their numbers
    /// given back); a run the buffer takes in part is taken whole, its
    /// rest kept in the tail as `try_send` keeps a frame's. A failure after
    /// frames were taken returns their count; the next call meets it.
    pub(super) fn try_send_frames(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> Result<usize> {
        if self.is_legacy() {
            return crate::channel::take_each(payloads, |payload| {
                self.try_send_frame(message_type, flags, payload, None)
            });
        }
        self.check_sendable()?;
        if !self.may_try_now()? {
            return Ok(0);
        }
        let zero = Some(Duration::ZERO);
        let mut sent = 0;
        while sent < payloads.len() {
            let end = self.run_end(payloads, sent);
            if end == sent {
                // The frame at `sent` is over the limit.
                return match self.check_limit(payloads[sent].len()) {
                    Err(e) if sent == 0 => Err(e),
                    _ => Ok(sent),
                };
            }
            let run = &payloads[sent..end];
            match self.try_taking(|c| c.write_run(message_type, flags, run, zero)) {
                Ok(true) => sent = end,
                Ok(false) => break,
                Err(_) if sent > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// Where the run of frames starting at `start` ends: at most [`RUN`]
    /// frames and [`RUN_BYTES`] (one frame alone may be larger), before
    /// the first payload over the limit (so at `start` if that is one).
    fn run_end(&self, payloads: &[&[u8]], start: usize) -> usize {
        let (mut end, mut bytes) = (start, 0);
        while let Some(payload) = payloads.get(end) {
            let frame = HEADER_LEN + payload.len();
            let full = end - start == RUN || (end > start && bytes + frame > RUN_BYTES);
            if full || self.check_limit(payload.len()).is_err() {
                break;
            }
            bytes += frame;
            end += 1;
        }
        end
    }

    /// Stamps and writes `payloads` (at most [`RUN`] frames, each within
    /// the limit) as one run of frames, waiting for room at most `timeout`
    /// (`None`: as long as it takes).
    fn write_run(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
        timeout: Option<Duration>,
    ) -> Result<()> {
        debug_assert!(payloads.len() <= RUN);
        if payloads.is_empty() {
            return Ok(());
        }
        let mut heads = [[0u8; HEADER_LEN]; RUN];
        // One clock read for the run: its frames are written together.
        let now = coarse_micros();
        for (head, payload) in heads.iter_mut().zip(payloads) {
            self.stamper
                .stamp_at(message_type, flags, payload, now, head);
        }
        let heads = &heads[..payloads.len()];
        let total: usize = payloads.iter().map(|p| HEADER_LEN + p.len()).sum();
        if total <= COALESCE_RUN_MAX || payloads.iter().all(|p| p.len() <= COALESCE_PAYLOAD_MAX) {
            // Into the channel's buffer, kept from run to run (at most
            // RUN_BYTES; zeroing a fresh 4 KiB one on the stack cost as
            // much as a tenth of the sender's time in a stream of 64-byte
            // frames).
            let mut whole = std::mem::take(&mut self.run_buffer);
            whole.clear();
            for (head, payload) in heads.iter().zip(payloads) {
                whole.extend_from_slice(head);
                whole.extend_from_slice(payload);
            }
            let written = self.write_all(&mut [IoSlice::new(&whole)], &[], timeout);
            self.run_buffer = whole;
            return written;
        }
        let mut bufs = [IoSlice::new(&[]); 2 * RUN];
        for (i, (head, payload)) in heads.iter().zip(payloads).enumerate() {
            bufs[2 * i] = IoSlice::new(head);
            bufs[2 * i + 1] = IoSlice::new(payload);
        }
        self.write_all(&mut bufs[..2 * payloads.len()], &[], timeout)
    }
}
