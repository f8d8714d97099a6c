//! Status codes and the per-thread last error message.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

/// Result of every utp C function: `UTP_OK` (0) or a negative error code.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UtpStatus {
    /// Success.
    UtpOk = 0,
    /// A pointer was null or an argument out of range.
    UtpErrInvalidArgument = -1,
    /// The endpoint URL is malformed or names an unknown mechanism.
    UtpErrBadUrl = -2,
    /// Nothing listens at the endpoint.
    UtpErrNotFound = -3,
    /// The call did not complete within its timeout.
    UtpErrTimeout = -4,
    /// The peer closed the channel or died.
    UtpErrPeerGone = -5,
    /// The peer sent an invalid frame.
    UtpErrFrame = -6,
    /// The payload is too large for the transport or the receiver.
    UtpErrTooLarge = -7,
    /// A non-blocking send found no room.
    UtpErrFull = -8,
    /// The caller's buffer is smaller than the frame; the frame is kept for the next call.
    UtpErrBufferTooSmall = -9,
    /// The peer broke the protocol (or a server replied with an ERROR frame).
    UtpErrProtocol = -10,
    /// The handle was already closed.
    UtpErrClosed = -11,
    /// An operating-system call failed.
    UtpErrIo = -12,
    /// The endpoint is in use by a live server.
    UtpErrInUse = -13,
    /// Refused by policy (for example, a uid not allowed).
    UtpErrDenied = -14,
    /// The calculator answered `ERR ...`; the message is in `utp_last_error()`.
    UtpErrCalc = -15,
    /// A bug inside utp: a panic was caught at the boundary.
    UtpErrPanic = -16,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error and returns `status`.
pub(crate) fn fail(status: UtpStatus, message: impl Into<String>) -> UtpStatus {
    let text = message.into().replace('\0', " ");
    LAST_ERROR.with(|slot| *slot.borrow_mut() = CString::new(text).unwrap_or_default());
    status
}

/// Maps a library error to its status code, recording its message.
pub(crate) fn from_error(error: utp::Error) -> UtpStatus {
    use utp::Error as E;
    let status = match &error {
        E::BadUrl { .. } => UtpStatus::UtpErrBadUrl,
        E::Frame(_) => UtpStatus::UtpErrFrame,
        E::NotFound { .. } => UtpStatus::UtpErrNotFound,
        E::InUse { .. } => UtpStatus::UtpErrInUse,
        E::PeerGone { .. } => UtpStatus::UtpErrPeerGone,
        E::Timeout { .. } => UtpStatus::UtpErrTimeout,
        E::Full => UtpStatus::UtpErrFull,
        E::TooLarge { .. } => UtpStatus::UtpErrTooLarge,
        E::Protocol { .. } => UtpStatus::UtpErrProtocol,
        E::Denied { .. } => UtpStatus::UtpErrDenied,
        E::Closed => UtpStatus::UtpErrClosed,
        _ => UtpStatus::UtpErrIo,
    };
    fail(status, error.to_string())
}

/// The message of the last failed utp call on this thread (empty if none).
///
/// The returned string is owned by utp and stays valid until the next utp
/// call on the same thread; copy it if you need it longer. Never null.
#[unsafe(no_mangle)]
pub extern "C" fn utp_last_error() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
}

/// The name of a status code, such as `"UTP_ERR_TIMEOUT"`, or
/// `"UTP_UNKNOWN_STATUS"` for a value that is not one. Static; never null.
///
/// Takes any `int32_t`: C lets a caller pass any integer as an enum.
#[unsafe(no_mangle)]
pub extern "C" fn utp_status_name(status: i32) -> *const c_char {
    use UtpStatus as S;
    const KNOWN: [UtpStatus; 17] = [
        S::UtpOk,
        S::UtpErrInvalidArgument,
        S::UtpErrBadUrl,
        S::UtpErrNotFound,
        S::UtpErrTimeout,
        S::UtpErrPeerGone,
        S::UtpErrFrame,
        S::UtpErrTooLarge,
        S::UtpErrFull,
        S::UtpErrBufferTooSmall,
        S::UtpErrProtocol,
        S::UtpErrClosed,
        S::UtpErrIo,
        S::UtpErrInUse,
        S::UtpErrDenied,
        S::UtpErrCalc,
        S::UtpErrPanic,
    ];
    let Some(&status) = KNOWN.iter().find(|s| **s as i32 == status) else {
        return c"UTP_UNKNOWN_STATUS".as_ptr();
    };
    let name: &'static [u8] = match status {
        UtpStatus::UtpOk => b"UTP_OK\0",
        UtpStatus::UtpErrInvalidArgument => b"UTP_ERR_INVALID_ARGUMENT\0",
        UtpStatus::UtpErrBadUrl => b"UTP_ERR_BAD_URL\0",
        UtpStatus::UtpErrNotFound => b"UTP_ERR_NOT_FOUND\0",
        UtpStatus::UtpErrTimeout => b"UTP_ERR_TIMEOUT\0",
        UtpStatus::UtpErrPeerGone => b"UTP_ERR_PEER_GONE\0",
        UtpStatus::UtpErrFrame => b"UTP_ERR_FRAME\0",
        UtpStatus::UtpErrTooLarge => b"UTP_ERR_TOO_LARGE\0",
        UtpStatus::UtpErrFull => b"UTP_ERR_FULL\0",
        UtpStatus::UtpErrBufferTooSmall => b"UTP_ERR_BUFFER_TOO_SMALL\0",
        UtpStatus::UtpErrProtocol => b"UTP_ERR_PROTOCOL\0",
        UtpStatus::UtpErrClosed => b"UTP_ERR_CLOSED\0",
        UtpStatus::UtpErrIo => b"UTP_ERR_IO\0",
        UtpStatus::UtpErrInUse => b"UTP_ERR_IN_USE\0",
        UtpStatus::UtpErrDenied => b"UTP_ERR_DENIED\0",
        UtpStatus::UtpErrCalc => b"UTP_ERR_CALC\0",
        UtpStatus::UtpErrPanic => b"UTP_ERR_PANIC\0",
    };
    name.as_ptr().cast()
}
