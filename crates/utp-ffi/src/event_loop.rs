//! For C event loops: the descriptors to wait on, and sends that never wait.
//!
//! A C program serves many channels from one thread the way a Rust one
//! does (docs/event-loops.md): take each channel's descriptor with
//! `utp_channel_fd` (and the listener's with `utp_listener_fd`), drain with
//! `utp_recv(.., 0)` / `utp_accept(.., 0)` until `UTP_ERR_TIMEOUT`, then
//! `poll` the descriptors; reply with `utp_try_send`, which never waits.

use crate::channel::{UtpChannel, UtpListener};
use crate::guard::{boundary, bytes, handle, status, write_out};
use crate::status::{UtpStatus, fail_static, from_error};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// For event loops: the descriptor to wait on for this channel's next
/// frame, into `*fd`, and how long a wait may last, into `*timeout_ms`.
///
/// `*fd` turns readable (or hangs up) when `utp_recv(channel, .., 0)` may
/// make progress; it is level-triggered (`poll`, `select`, or epoll without
/// `EPOLLET`) and may wake spuriously. Frames the channel has already read
/// do not show on it, so a loop receives with a timeout of 0 until
/// `UTP_ERR_TIMEOUT` and only then waits. It stays owned by the channel
/// (do not read, close or change it) and is the same for the channel's
/// life. `-1` when the channel has none: a shared-memory peer that offers
/// no wake-ups, which only a thread blocked in `utp_recv` can serve.
///
/// Take it before the receive you wait after: a shared-memory link asks
/// its peer for wake-ups only once its descriptor was handed out, so a
/// program that never waits on it costs its peer nothing per frame.
///
/// `*timeout_ms` (NULL if not wanted): the longest the wait may last, in
/// milliseconds, as `poll` takes it. `-1` between frames; the time left
/// until a frame that has started arriving must be complete (the
/// channel's frame timeout, 5 s by default; past it the next receive fails
/// with `UTP_ERR_PROTOCOL` and the link is over); `0` when a frame is waiting in the channel
/// already (one `utp_recv` refused with `UTP_ERR_BUFFER_TOO_SMALL`).
///
/// # Safety
/// `channel` is a live channel handle; `fd` is valid for one write;
/// `timeout_ms` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_channel_fd(
    channel: *mut UtpChannel,
    fd: *mut i32,
    timeout_ms: *mut i32,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            let pending = channel.has_pending();
            let (raw, frame_deadline) = match channel.channel()?.readiness() {
                Some(readiness) => (readiness.fd.as_raw_fd(), readiness.frame_deadline),
                None => (-1, None),
            };
            // SAFETY: forwarded from this function's contract.
            unsafe { write_out(fd, raw, "fd") }?;
            if timeout_ms.is_null() {
                return Ok(());
            }
            let wait = if pending {
                0
            } else {
                frame_deadline.map_or(-1, |at| {
                    poll_millis(at.saturating_duration_since(Instant::now()))
                })
            };
            // SAFETY: forwarded from this function's contract (checked non-null above).
            unsafe { write_out(timeout_ms, wait, "timeout_ms") }
        })())
    })
}

/// `left` as `poll` takes a timeout: whole milliseconds rounded up (a wait
/// that ends before the deadline would only wake the loop to wait again),
/// at most `i32::MAX`.
fn poll_millis(left: Duration) -> i32 {
    let millis = left.as_nanos().div_ceil(1_000_000);
    i32::try_from(millis).unwrap_or(i32::MAX)
}

/// For event loops: the descriptor that turns readable when
/// `utp_accept(listener, 0, ..)` may return a client, into `*fd`, or -1
/// when this listener can only be waited for in `utp_accept`. Level-
/// triggered like `utp_channel_fd`'s; accept with a timeout of 0 until
/// `UTP_ERR_TIMEOUT` before waiting. It stays owned by the listener.
///
/// # Safety
/// `listener` is a live listener handle; `fd` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_listener_fd(listener: *mut UtpListener, fd: *mut i32) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let listener = unsafe { handle(listener, "listener") }?;
            let raw = listener.inner.readiness().map_or(-1, |f| f.as_raw_fd());
            // SAFETY: forwarded from this function's contract.
            unsafe { write_out(fd, raw, "fd") }
        })())
    })
}

/// Sends one frame if there is room for it now, without waiting: `UTP_OK`
/// when the frame is sent, `UTP_ERR_FULL` when there was no room and
/// nothing was sent (try again once the peer has read: over `unix://` and
/// `tcp://` the channel's descriptor polled for `POLLOUT` says when; over
/// the other mechanisms retry after a short pause, as `utp::tokio` does
/// after 1, 2, 4, 8 and then every 16 ms).
///
/// Over a byte stream (unix, tcp, pipe, fifo) a frame that found room for
/// only its beginning is committed all the same: the channel keeps the
/// rest and sends it first with the next send or receive, or with
/// `utp_try_flush`. So a frame is never half sent, and a full peer never
/// holds this thread.
///
/// # Safety
/// `channel` is a live channel handle; `payload` is valid for `len` bytes
/// (or NULL with `len == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_try_send(
    channel: *mut UtpChannel,
    message_type: u8,
    flags: u16,
    payload: *const u8,
    len: usize,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            // SAFETY: forwarded from this function's contract.
            let payload = unsafe { bytes(payload, len) }?;
            let sent = channel
                .channel()?
                .try_send(message_type, flags, payload)
                .map_err(from_error)?;
            if sent { Ok(()) } else { Err(no_room()) }
        })())
    })
}

/// Sends what a `utp_try_send` over a byte stream kept of its frame, if
/// there is room now: `UTP_OK` when nothing is left (also when nothing was
/// kept), `UTP_ERR_FULL` when some is. Call it before closing a channel
/// whose last frame may not have gone out whole.
///
/// # Safety
/// `channel` is a live channel handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_try_flush(channel: *mut UtpChannel) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            let flushed = channel.channel()?.try_flush().map_err(from_error)?;
            if flushed { Ok(()) } else { Err(no_room()) }
        })())
    })
}

/// `UTP_ERR_FULL`, recorded without allocating (a loop may meet it often).
pub(crate) fn no_room() -> UtpStatus {
    fail_static(
        UtpStatus::UtpErrFull,
        c"no room to send now: the peer has not read what it was sent",
    )
}
