//! Requests and the replies that name them (docs/protocol.md,
//! "Correlation"): a client's call that takes only its own answer, and a
//! server's reply that says which request it answers.
//!
//! A server that answers with `utp_send` sends an ordinary frame, which a
//! client accepts as any request's answer; where clients share a medium
//! (a `fifo://` pair a lockless client may also write to) that can hand
//! one client another's answer. `utp_reply` names the request, and
//! `utp_call` (as `utp::service::Client`) refuses an answer naming
//! another.

use crate::channel::{UtpChannel, UtpFrameInfo};
use crate::event_loop::no_room;
use crate::guard::{boundary, bytes, bytes_mut, handle, status, timeout};
use crate::status::{UtpStatus, fail, from_error};
use std::time::Duration;

/// Sends `len` bytes of `request` as a REQUEST frame (with a checksum) and
/// waits for its answer: the RESPONSE's header into `*info`, its payload
/// into `buffer` (`capacity` bytes). `timeout_ms` (negative: forever) is a
/// deadline for the whole call: heartbeats and replies that name another
/// request (a server's `utp_reply` for someone else's request) are
/// dropped on the way and do not extend it.
///
/// An ERROR answer returns `UTP_ERR_PROTOCOL` with reason
/// `UTP_REASON_REFUSED` and the server's text in `utp_last_error()`. A
/// payload larger than `capacity` returns `UTP_ERR_BUFFER_TOO_SMALL` with
/// `info->payload_length` set; the answer is kept and returned by the next
/// `utp_recv`. Refused (`UTP_ERR_INVALID_ARGUMENT`) while an earlier frame
/// waits for `utp_recv` with a larger buffer.
///
/// ```c
/// UtpFrameInfo info;
/// uint8_t answer[64];
/// if (utp_call(ch, (const uint8_t *)"ADD 10 20", 9, &info, answer, sizeof answer, 1000) == UTP_OK)
///     printf("%.*s\n", (int)info.payload_length, answer); /* OK 30 */
/// ```
///
/// # Safety
/// `channel` is a live channel handle; `request` is valid for `len` bytes
/// (or NULL with `len == 0`); `info` is valid for writing; `buffer` is
/// valid for `capacity` writable bytes (or NULL with `capacity == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_call(
    channel: *mut UtpChannel,
    request: *const u8,
    len: usize,
    info: *mut UtpFrameInfo,
    buffer: *mut u8,
    capacity: usize,
    timeout_ms: i32,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            // SAFETY: forwarded from this function's contract.
            let request = unsafe { bytes(request, len) }?;
            // SAFETY: forwarded from this function's contract.
            let buffer = unsafe { bytes_mut(buffer, capacity) }?;
            if info.is_null() {
                return Err(fail(UtpStatus::UtpErrInvalidArgument, "info is NULL"));
            }
            let (inner, reply) = channel.channel_for_call()?;
            utp::service::call(inner, request, reply, timeout(timeout_ms)).map_err(from_error)?;
            // SAFETY: `info` was checked non-null; valid by this function's contract.
            unsafe { channel.hand_out(info, buffer) }
        })())
    })
}

/// Sends a reply that names the request it answers: a frame of
/// `message_type` (0x11 RESPONSE, 0x12 ERROR) with `flags` (pass 1 for a
/// checksum; the REPLY flag is added) and `len` bytes of `payload`, whose
/// sequence number is `answers`, the request's `info.sequence`. A client
/// then refuses it if it is not its own (`utp_call`, `utp::service::Client`
/// and the Python client do). Waits up to `timeout_ms` for room
/// (negative: forever).
///
/// Over a shared-memory link, which carries one client's frames only, the
/// reply goes out as an ordinary frame.
///
/// # Safety
/// `channel` is a live channel handle; `payload` is valid for `len` bytes (or NULL with `len == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_reply(
    channel: *mut UtpChannel,
    message_type: u8,
    flags: u16,
    answers: u64,
    payload: *const u8,
    len: usize,
    timeout_ms: i32,
) -> UtpStatus {
    let wait = timeout(timeout_ms);
    // SAFETY: forwarded from this function's contract.
    unsafe { reply(channel, message_type, flags, answers, payload, len, wait) }
}

/// For event loops: `utp_reply` if there is room now, without waiting:
/// `UTP_OK` when it was sent, `UTP_ERR_FULL` when there is no room (nothing
/// was sent). As with `utp_try_send`, a reply is never sent in part: the
/// end of one that fits only in part is kept and sent first by the next
/// call on the channel (`utp_try_flush` pushes it alone).
///
/// # Safety
/// `channel` is a live channel handle; `payload` is valid for `len` bytes (or NULL with `len == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_try_reply(
    channel: *mut UtpChannel,
    message_type: u8,
    flags: u16,
    answers: u64,
    payload: *const u8,
    len: usize,
) -> UtpStatus {
    let zero = Some(Duration::ZERO);
    // SAFETY: forwarded from this function's contract.
    match unsafe { reply(channel, message_type, flags, answers, payload, len, zero) } {
        UtpStatus::UtpErrTimeout => no_room(),
        other => other,
    }
}

/// `utp_reply` with a Rust timeout (`Some(ZERO)`: only if there is room now,
/// never cutting the frame, `UTP_ERR_TIMEOUT` otherwise).
///
/// # Safety
/// As `utp_reply`.
unsafe fn reply(
    channel: *mut UtpChannel,
    message_type: u8,
    flags: u16,
    answers: u64,
    payload: *const u8,
    len: usize,
    wait: Option<Duration>,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            // SAFETY: forwarded from this function's contract.
            let payload = unsafe { bytes(payload, len) }?;
            channel
                .channel()?
                .reply_timeout(message_type, flags, payload, answers, wait)
                .map_err(from_error)
        })())
    })
}
