//! Zero-copy calls on shared-memory links: write a payload in place in the
//! ring and read one in place, with no copy and no syscall.
//!
//! The memory lent is shared with the peer process, which could change it
//! at any time: C code must read a viewed payload once (copy what it
//! uses), and the checksum is not verified in place. `utp_view_copy`
//! copies the viewed payload out and verifies the checksum on the copy.
//!
//! C cannot hold a Rust borrow, so the handle keeps the loan itself: a
//! [`Reservation`] or [`View`] whose lifetime is extended to `'static` and
//! tied by hand to the boxed link it borrows.
//!
// Invariants: while `UtpChannel::loan` is `Some`, the `ShmLink` it borrows
// is the one boxed in `UtpChannel::transport` (stable address, never moved
// or replaced), and nothing else touches that link: every other entry point
// goes through `UtpChannel::channel()`, which refuses while a loan is open.
// The loan field is declared first, so it is dropped before the link.

use crate::channel::{Transport, UtpChannel, UtpFrameInfo};
use crate::guard::{boundary, handle, status, timeout, write_out};
use crate::status::{UtpStatus, fail, from_error};
use utp::shm::{Reservation, ShmLink, View};

/// A borrow of a link lent to C.
#[derive(Debug)]
pub(crate) enum Loan {
    /// Room in the send ring, being written by C.
    Reservation(Reservation<'static>),
    /// A received frame, being read by C.
    View(View<'static>),
}

/// The link behind a handle with no loan open, as a pointer that outlives the borrow of the handle.
fn free_link(channel: &mut UtpChannel) -> Result<*mut ShmLink, UtpStatus> {
    if channel.loan.is_some() {
        return Err(fail(
            UtpStatus::UtpErrInvalidArgument,
            "a reservation or view is already open on this channel: commit or release it first",
        ));
    }
    match &mut channel.transport {
        Transport::Shm(link) => Ok(&mut **link),
        Transport::Any(_) => Err(fail(
            UtpStatus::UtpErrInvalidArgument,
            "zero-copy calls need a shared-memory link: a channel from utp_connect, or from utp_accept \
             on a listener, with a shm://, sysv:// or file:// URL",
        )),
    }
}

/// Reserves room for a `len`-byte payload in the send ring, waiting up to
/// `timeout_ms` (0: don't wait, `UTP_ERR_FULL` if full; negative: forever),
/// and stores a pointer to the payload area in `*data`.
///
/// Write exactly `len` bytes there, then call `utp_commit` (or `utp_cancel`).
/// `*data` is valid only until then. No other call may use the channel meanwhile.
///
/// # Safety
/// `channel` is a live channel handle; `data` is valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_reserve(
    channel: *mut UtpChannel,
    len: usize,
    timeout_ms: i32,
    data: *mut *mut u8,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            if data.is_null() {
                return Err(fail(UtpStatus::UtpErrInvalidArgument, "data is NULL"));
            }
            let link = free_link(channel)?;
            // SAFETY: see the module invariants: the link is boxed in this
            // handle, outlives the loan, and is not otherwise used while it exists.
            let mut reservation = unsafe { &mut *link }
                .reserve(len, timeout(timeout_ms))
                .map_err(from_error)?;
            let start = reservation.payload_mut().as_mut_ptr();
            channel.loan = Some(Loan::Reservation(reservation));
            // SAFETY: forwarded from this function's contract (checked non-null above).
            unsafe { write_out(data, start, "data") }
        })())
    })
}

/// Publishes the reserved frame with `message_type` and `flags`; the link
/// fills in sequence, timestamp and checksum.
///
/// # Safety
/// `channel` is a live channel handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_commit(
    channel: *mut UtpChannel,
    message_type: u8,
    flags: u16,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            match channel.loan.take() {
                Some(Loan::Reservation(reservation)) => {
                    reservation.commit(message_type, flags);
                    Ok(())
                }
                other => {
                    channel.loan = other;
                    Err(fail(
                        UtpStatus::UtpErrInvalidArgument,
                        "no reservation is open: call utp_reserve first",
                    ))
                }
            }
        })())
    })
}

/// Drops an open reservation without sending anything.
///
/// # Safety
/// `channel` is a live channel handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_cancel(channel: *mut UtpChannel) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            match channel.loan.take() {
                Some(Loan::Reservation(_)) => Ok(()),
                other => {
                    channel.loan = other;
                    Err(fail(
                        UtpStatus::UtpErrInvalidArgument,
                        "no reservation is open",
                    ))
                }
            }
        })())
    })
}

/// Waits up to `timeout_ms` (negative: forever) for the next frame and lends
/// it in place: header into `*info`, payload pointer into `*data`
/// (`info->payload_length` bytes). Call `utp_release` when done; the pointer
/// is valid only until then. The bytes come from the peer, which could still
/// change them, and their checksum is NOT verified: read each byte once, or
/// use `utp_view_copy` for a private copy whose checksum is verified.
///
/// # Safety
/// `channel` is a live channel handle; `info` and `data` are valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_recv_view(
    channel: *mut UtpChannel,
    info: *mut UtpFrameInfo,
    data: *mut *const u8,
    timeout_ms: i32,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            if info.is_null() || data.is_null() {
                return Err(fail(
                    UtpStatus::UtpErrInvalidArgument,
                    "info or data is NULL",
                ));
            }
            let link = free_link(channel)?;
            // SAFETY: see the module invariants, as in utp_reserve.
            let view = unsafe { &mut *link }
                .recv_view(timeout(timeout_ms))
                .map_err(from_error)?;
            let header = *view.header();
            let start = view.payload().as_ptr();
            channel.loan = Some(Loan::View(view));
            let summary = UtpFrameInfo {
                message_type: header.message_type,
                flags: header.flags,
                payload_length: header.payload_length,
                sequence: header.sequence,
                timestamp_us: header.timestamp_us,
            };
            // SAFETY: forwarded from this function's contract (checked non-null above).
            unsafe { write_out(info, summary, "info") }?;
            // SAFETY: as above.
            unsafe { write_out(data, start, "data") }
        })())
    })
}

/// Copies the payload of the frame lent by `utp_recv_view` into `buf`
/// (`cap` bytes), stores its length in `*len`, and verifies the frame's
/// checksum (if flagged) on that copy: `UTP_ERR_CHECKSUM`-class errors mean
/// the copy is not what the sender sent. `UTP_ERR_TOO_LARGE` if `cap` is too
/// small. The view stays open; call `utp_release` afterwards.
///
/// # Safety
/// `channel` is a live channel handle; `buf` is valid for writing `cap`
/// bytes; `len` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_view_copy(
    channel: *mut UtpChannel,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            if buf.is_null() || len.is_null() {
                return Err(fail(UtpStatus::UtpErrInvalidArgument, "buf or len is NULL"));
            }
            let Some(Loan::View(view)) = &channel.loan else {
                return Err(fail(
                    UtpStatus::UtpErrInvalidArgument,
                    "no view is open: call utp_recv_view first",
                ));
            };
            let n = view.payload().len();
            if n > cap {
                return Err(from_error(utp::Error::TooLarge {
                    len: n,
                    limit: cap,
                    transport: "the caller's buffer",
                }));
            }
            // SAFETY: the caller guarantees `buf` is writable for `cap >= n`
            // bytes, and it is C memory, not the shared mapping.
            let out = unsafe { std::slice::from_raw_parts_mut(buf, n) };
            view.payload().copy_to(out);
            view.verify_copy(out).map_err(from_error)?;
            // SAFETY: forwarded from this function's contract (checked non-null above).
            unsafe { write_out(len, n, "len") }
        })())
    })
}

/// Frees the space of the frame lent by `utp_recv_view`.
///
/// # Safety
/// `channel` is a live channel handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_release(channel: *mut UtpChannel) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            match channel.loan.take() {
                Some(Loan::View(_)) => Ok(()),
                other => {
                    channel.loan = other;
                    Err(fail(
                        UtpStatus::UtpErrInvalidArgument,
                        "no view is open: call utp_recv_view first",
                    ))
                }
            }
        })())
    })
}
