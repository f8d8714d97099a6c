//! Publish/subscribe from C: subscribe and receive (every message with its
//! number and the count lost before it), and publish.

use crate::guard::{
    boundary, bytes, bytes_mut, c_str, handle, register, status, take_handle, timeout, write_out,
};
use crate::status::{UtpStatus, fail, from_error};
use std::ffi::c_char;
use std::os::fd::AsRawFd;
use utp::pubsub::{Publisher, Received, Subscriber};

/// A subscriber. Opaque; close with `utp_sub_close`.
#[derive(Debug)]
pub struct UtpSubscriber {
    inner: Subscriber,
    buffer: Vec<u8>,
    /// A message the caller's buffer was too small for, kept for the next call.
    pending: Option<Received>,
}

/// A publisher. Opaque; close with `utp_pub_close` (subscribers then see it gone).
#[derive(Debug)]
pub struct UtpPublisher {
    inner: Publisher,
}

/// What `utp_sub_recv` delivered.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UtpMessageInfo {
    /// The message number (0 for the publisher's first message).
    pub sequence: u64,
    /// Messages lost just before this one (the subscriber fell a ring behind).
    pub lost_before: u64,
    /// Publish time, microseconds since the Unix epoch (0 if not stamped).
    pub timestamp_us: u64,
    /// Payload length in bytes.
    pub payload_length: u32,
    /// The frame's message type.
    pub message_type: u8,
}

fn boxed<T: 'static>(value: T, out: *mut *mut T) -> Result<(), UtpStatus> {
    let raw = register(value);
    // SAFETY: forwarded from the calling function's contract on `out`.
    unsafe { write_out(out, raw, "out") }.inspect_err(|_| {
        // SAFETY: `raw` was just registered and never shared.
        drop(unsafe { take_handle(raw, "new handle") });
    })
}

/// Subscribes to the publisher at `url` (`shm://NAME`, `unix:///PATH`,
/// `tcp://HOST:PORT`, with options such as `?policy=block&wait=spin`) and
/// stores the subscriber in `*out`. It receives messages published from now on.
///
/// # Safety
/// `url` is a NUL-terminated string; `out` is valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_sub_connect(
    url: *const c_char,
    out: *mut *mut UtpSubscriber,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let url = unsafe { c_str(url, "url") }?;
            let inner = Subscriber::connect(url).map_err(from_error)?;
            boxed(
                UtpSubscriber {
                    inner,
                    buffer: Vec::new(),
                    pending: None,
                },
                out,
            )
        })())
    })
}

/// Receives the next message: its fields into `*info` and its payload into
/// `buffer` (`capacity` bytes), waiting up to `timeout_ms` (negative: until
/// a message comes or the publisher is gone: `UTP_ERR_PEER_GONE`).
///
/// If the payload does not fit, returns `UTP_ERR_BUFFER_TOO_SMALL` with
/// `info->payload_length` set; the message is kept for the next call.
///
/// # Safety
/// `sub` is a live subscriber; `info` is valid for one write; `buffer` is
/// valid for `capacity` bytes (or NULL with `capacity == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_sub_recv(
    sub: *mut UtpSubscriber,
    info: *mut UtpMessageInfo,
    buffer: *mut u8,
    capacity: usize,
    timeout_ms: i32,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let sub = unsafe { handle(sub, "subscriber") }?;
            // SAFETY: forwarded from this function's contract.
            let dst = unsafe { bytes_mut(buffer, capacity) }?;
            let got = match sub.pending.take() {
                Some(got) => got,
                None => sub
                    .inner
                    .recv(&mut sub.buffer, timeout(timeout_ms))
                    .map_err(from_error)?,
            };
            let message = UtpMessageInfo {
                sequence: got.sequence,
                lost_before: got.lost_before,
                timestamp_us: got.timestamp_us,
                payload_length: got.len as u32,
                message_type: got.message_type,
            };
            // SAFETY: forwarded from this function's contract.
            unsafe { write_out(info, message, "info") }?;
            if got.len > dst.len() {
                sub.pending = Some(got);
                return Err(fail(
                    UtpStatus::UtpErrBufferTooSmall,
                    format!(
                        "the message has {} bytes, the buffer {}",
                        got.len,
                        dst.len()
                    ),
                ));
            }
            dst[..got.len].copy_from_slice(&sub.buffer[..got.len]);
            Ok(())
        })())
    })
}

/// The subscriber's counts: messages received and lost so far (either may be NULL).
///
/// # Safety
/// `sub` is a live subscriber; `received` and `lost` are NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_sub_counts(
    sub: *mut UtpSubscriber,
    received: *mut u64,
    lost: *mut u64,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let sub = unsafe { handle(sub, "subscriber") }?;
            if !received.is_null() {
                // SAFETY: non-null, valid for a write by this function's contract.
                unsafe { write_out(received, sub.inner.received(), "received") }?;
            }
            if !lost.is_null() {
                // SAFETY: as above.
                unsafe { write_out(lost, sub.inner.lost(), "lost") }?;
            }
            Ok(())
        })())
    })
}

/// For event loops: the subscriber's eventfd (`?notify=eventfd`, shm only)
/// into `*fd`, or -1 if it has none. It stays owned by the subscriber.
///
/// # Safety
/// `sub` is a live subscriber; `fd` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_sub_notify_fd(sub: *mut UtpSubscriber, fd: *mut i32) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let sub = unsafe { handle(sub, "subscriber") }?;
            let raw = sub.inner.notify_fd().map_or(-1, |f| f.as_raw_fd());
            // SAFETY: forwarded from this function's contract.
            unsafe { write_out(fd, raw, "fd") }
        })())
    })
}

/// For event loops: arms the notification eventfd. `*ready` becomes 1 if
/// a message (or the publisher's end) is already there — call
/// `utp_sub_recv` instead of polling — or 0 if armed: poll the fd, which
/// becomes readable at the next message.
///
/// # Safety
/// `sub` is a live subscriber; `ready` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_sub_arm(sub: *mut UtpSubscriber, ready: *mut i32) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let sub = unsafe { handle(sub, "subscriber") }?;
            if sub.pending.is_some() {
                // SAFETY: forwarded from this function's contract.
                return unsafe { write_out(ready, 1, "ready") };
            }
            let now = sub.inner.arm().map_err(from_error)?;
            // SAFETY: forwarded from this function's contract.
            unsafe { write_out(ready, i32::from(now), "ready") }
        })())
    })
}

/// Unsubscribes and frees the subscriber. NULL is allowed (no-op); a second
/// close returns `UTP_ERR_CLOSED`.
///
/// # Safety
/// `sub` is NULL or any pointer; a live subscriber is not used by another thread meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_sub_close(sub: *mut UtpSubscriber) -> UtpStatus {
    boundary(|| {
        // SAFETY: forwarded from this function's contract.
        status(unsafe { take_handle(sub, "subscriber") }.map(drop))
    })
}

/// Creates a publisher at `url` (`shm://NAME?slots=N&slot=SIZE`,
/// `unix:///PATH`, `tcp://HOST:PORT`) and stores it in `*out`.
///
/// # Safety
/// `url` is a NUL-terminated string; `out` is valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_pub_create(
    url: *const c_char,
    out: *mut *mut UtpPublisher,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let url = unsafe { c_str(url, "url") }?;
            let inner = Publisher::create(url).map_err(from_error)?;
            boxed(UtpPublisher { inner }, out)
        })())
    })
}

/// Publishes `len` bytes of `payload` as a message of `message_type`; its
/// number goes to `*sequence` (which may be NULL).
///
/// # Safety
/// `publisher` is live; `payload` is valid for `len` bytes (or NULL with
/// `len == 0`); `sequence` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_pub_send(
    publisher: *mut UtpPublisher,
    message_type: u8,
    payload: *const u8,
    len: usize,
    sequence: *mut u64,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let publisher = unsafe { handle(publisher, "publisher") }?;
            // SAFETY: forwarded from this function's contract.
            let payload = unsafe { bytes(payload, len) }?;
            let n = publisher
                .inner
                .send_typed(message_type, payload)
                .map_err(from_error)?;
            if !sequence.is_null() {
                // SAFETY: non-null, valid for a write by this function's contract.
                unsafe { write_out(sequence, n, "sequence") }?;
            }
            Ok(())
        })())
    })
}

/// The number of subscribers connected now, into `*count`.
///
/// # Safety
/// `publisher` is live; `count` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_pub_subscribers(
    publisher: *mut UtpPublisher,
    count: *mut usize,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let publisher = unsafe { handle(publisher, "publisher") }?;
            // SAFETY: forwarded from this function's contract.
            unsafe { write_out(count, publisher.inner.subscriber_count(), "count") }
        })())
    })
}

/// Closes the publisher (subscribers see it gone) and frees it. NULL is allowed.
///
/// A second close returns `UTP_ERR_CLOSED`.
///
/// # Safety
/// `publisher` is NULL or any pointer; a live publisher is not used by another thread meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_pub_close(publisher: *mut UtpPublisher) -> UtpStatus {
    boundary(|| {
        // SAFETY: forwarded from this function's contract.
        status(unsafe { take_handle(publisher, "publisher") }.map(drop))
    })
}
