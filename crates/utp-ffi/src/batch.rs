//! Sending several frames in one call: `utp_send_batch`, and
//! `utp_try_send_batch` for event loops.

use crate::channel::UtpChannel;
use crate::guard::{boundary, bytes, handle, status, write_out};
use crate::status::{UtpStatus, fail, from_error};

/// One payload of a batch: `len` bytes at `data` (NULL with `len == 0`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UtpBytes {
    /// The first byte, or NULL for an empty payload.
    pub data: *const u8,
    /// Bytes at `data`.
    pub len: usize,
}

/// Payloads handed to the channel per call: a batch is sent in runs of
/// this many, borrowed on the stack (no allocation, whatever `count` is).
/// A shared-memory link reads the clock once per 64 frames anyway.
const RUN: usize = 64;

/// Sends `count` frames, one per entry of `frames`, in order, all of
/// `message_type` with `flags` (pass 1 for a checksum), waiting for room as
/// long as it takes. A shared-memory link does once per batch what a send
/// does once per frame (the clock read that stamps it, the counts); a
/// socket, pipe or FIFO writes up to 32 frames with one system call, UDP
/// sends up to 32 datagrams with one; message queues, in-process channels
/// and zenoh send the frames one by one.
///
/// Every entry is checked before anything is sent: a NULL `data` with a
/// non-zero `len` returns `UTP_ERR_INVALID_ARGUMENT` and sends nothing.
/// If a frame fails later (too large, the peer gone), the frames before it
/// were sent and the ones after it were not.
///
/// # Safety
/// `channel` is a live channel handle; `frames` is valid for `count`
/// entries (or NULL with `count == 0`), each valid for `len` bytes (or
/// NULL with `len == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_send_batch(
    channel: *mut UtpChannel,
    message_type: u8,
    flags: u16,
    frames: *const UtpBytes,
    count: usize,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let (channel, frames) = unsafe { batch_args(channel, frames, count) }?;
            for run in frames.chunks(RUN) {
                let mut payloads: [&[u8]; RUN] = [&[]; RUN];
                // SAFETY: forwarded from this function's contract.
                unsafe { borrow_run(run, &mut payloads) }?;
                channel
                    .send_batch(message_type, flags, &payloads[..run.len()])
                    .map_err(from_error)?;
            }
            Ok(())
        })())
    })
}

/// Sends as many frames of a batch as there is room for now, from the
/// first, without waiting, and stores how many in `*sent`: `UTP_OK` with
/// `*sent == count` when all went, `UTP_ERR_FULL` with the number that did
/// (perhaps 0) when the channel filled; call again with the rest once the
/// peer has read (see `utp_try_send`). Batches as `utp_send_batch` does; a
/// stream takes whole the run of frames that filled its buffer, keeping
/// its end for the next call (or `utp_try_flush`), so no frame is half sent.
///
/// Every entry is checked before anything is sent, as by `utp_send_batch`
/// (`*sent` is then 0). A frame that fails (too large, the peer gone) stops the call: the
/// status says why, and `*sent` how many frames before it were sent.
///
/// # Safety
/// As `utp_send_batch`; `sent` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_try_send_batch(
    channel: *mut UtpChannel,
    message_type: u8,
    flags: u16,
    frames: *const UtpBytes,
    count: usize,
    sent: *mut usize,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract (`write_out`
            // refuses NULL). Written first: 0 if the arguments are refused.
            unsafe { write_out(sent, 0, "sent") }?;
            // SAFETY: forwarded from this function's contract.
            let (channel, frames) = unsafe { batch_args(channel, frames, count) }?;
            let mut done = 0;
            let outcome = (|| {
                for run in frames.chunks(RUN) {
                    let mut payloads: [&[u8]; RUN] = [&[]; RUN];
                    // SAFETY: forwarded from this function's contract.
                    unsafe { borrow_run(run, &mut payloads) }?;
                    let mut taken = 0;
                    while taken < run.len() {
                        let now = channel
                            .try_send_batch(message_type, flags, &payloads[taken..run.len()])
                            .map_err(from_error)?;
                        if now == 0 {
                            return Err(crate::event_loop::no_room());
                        }
                        taken += now;
                        done += now;
                    }
                }
                Ok(())
            })();
            // SAFETY: forwarded from this function's contract (written above).
            unsafe { write_out(sent, done, "sent") }?;
            outcome
        })())
    })
}

/// The channel and the entries of a batch, every entry checked before
/// anything is sent.
///
/// # Safety
/// As `utp_send_batch`.
unsafe fn batch_args<'a>(
    channel: *mut UtpChannel,
    frames: *const UtpBytes,
    count: usize,
) -> Result<(&'a mut dyn utp::Channel, &'a [UtpBytes]), UtpStatus> {
    // SAFETY: forwarded from this function's contract.
    let channel = unsafe { handle(channel, "channel") }?;
    let frames: &[UtpBytes] = if count == 0 {
        &[]
    } else if frames.is_null() {
        return Err(fail(
            UtpStatus::UtpErrInvalidArgument,
            "frames is NULL but count is not 0",
        ));
    } else {
        // SAFETY: non-null, and the caller guarantees `count` valid entries.
        unsafe { std::slice::from_raw_parts(frames, count) }
    };
    for entry in frames {
        // SAFETY: forwarded from this function's contract.
        unsafe { bytes(entry.data, entry.len) }?;
    }
    Ok((channel.channel()?, frames))
}

/// Borrows the payloads of `run` into `payloads`.
///
/// # Safety
/// Each entry of `run` is valid for `len` bytes (or NULL with `len == 0`)
/// for as long as `payloads` is used.
unsafe fn borrow_run(run: &[UtpBytes], payloads: &mut [&[u8]; RUN]) -> Result<(), UtpStatus> {
    for (payload, entry) in payloads.iter_mut().zip(run) {
        // SAFETY: forwarded from this function's contract.
        *payload = unsafe { bytes(entry.data, entry.len) }?;
    }
    Ok(())
}
