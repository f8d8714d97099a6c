//! Status codes and the per-thread last error message.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};

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

/// Why the last call failed, finer than its [`UtpStatus`]: what a program
/// acts on (reconnect after `UTP_REASON_PEER_DIED`, give up after
/// `UTP_REASON_VERSION`...). Read it with [`utp_last_error_reason`].
///
/// Values are stable; new ones may be added (treat an unknown value like
/// `UTP_REASON_OTHER`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UtpReason {
    /// No finer reason: the status says it all (or the last call succeeded).
    UtpReasonNone = 0,
    /// `UTP_ERR_PEER_GONE`: the peer ended the conversation in order.
    UtpReasonPeerClosed = 1,
    /// `UTP_ERR_PEER_GONE`: the peer ended without a goodbye (died, hung up,
    /// stopped in the middle of a frame).
    UtpReasonPeerDied = 2,
    /// `UTP_ERR_PEER_GONE`: nothing answers at the other end.
    UtpReasonPeerUnreachable = 3,
    /// `UTP_ERR_PEER_GONE`: the other side ended this conversation on its own
    /// terms (a publisher evicted a slow subscriber, a server an idle client).
    UtpReasonEvicted = 4,
    /// `UTP_ERR_PEER_GONE`: the shared memory of the link was truncated or
    /// damaged; the link is closed, the process goes on.
    UtpReasonBroken = 5,
    /// `UTP_ERR_PROTOCOL`: bytes or shared memory failed validation.
    UtpReasonCorrupt = 10,
    /// `UTP_ERR_PROTOCOL`: a well-formed message the protocol does not allow here.
    UtpReasonUnexpected = 11,
    /// `UTP_ERR_PROTOCOL`: the peer speaks another protocol or layout version.
    UtpReasonVersion = 12,
    /// `UTP_ERR_PROTOCOL` or `UTP_ERR_DENIED`: the peer refused and said why
    /// (the text is in `utp_last_error()`).
    UtpReasonRefused = 13,
    /// `UTP_ERR_PROTOCOL`: the call is not supported by this channel.
    UtpReasonUnsupported = 14,
    /// `UTP_ERR_DENIED`: the peer runs as a user the policy does not trust.
    UtpReasonUntrusted = 20,
    /// `UTP_ERR_DENIED`: a shared object is not safe to use (owner, mode,
    /// symlink, seals).
    UtpReasonUnsafe = 21,
    /// A reason this version of the C ABI has no name for.
    UtpReasonOther = 99,
}

/// What the last failed call on this thread left: its message, its reason
/// and its OS error number.
struct LastError {
    /// Borrowed for the fixed messages of calls that found nothing to do
    /// (see [`fail_static`]), owned for the rest.
    message: Cow<'static, CStr>,
    reason: UtpReason,
    errno: i32,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = const {
        RefCell::new(LastError {
            message: Cow::Borrowed(c""),
            reason: UtpReason::UtpReasonNone,
            errno: 0,
        })
    };
}

/// Records `message` as this thread's last error (no finer reason, no OS
/// error) and returns `status`.
pub(crate) fn fail(status: UtpStatus, message: impl Into<String>) -> UtpStatus {
    record(status, message.into(), UtpReason::UtpReasonNone, 0)
}

/// [`fail`] with a fixed message, recorded without allocating: the answer
/// of a call that found nothing to do (`utp_recv` or `utp_accept` with a
/// timeout of 0, `utp_try_send` on a full channel), which an event loop
/// gets once per channel each time it drains them.
pub(crate) fn fail_static(status: UtpStatus, message: &'static CStr) -> UtpStatus {
    store(Cow::Borrowed(message), UtpReason::UtpReasonNone, 0);
    status
}

fn record(status: UtpStatus, message: String, reason: UtpReason, errno: i32) -> UtpStatus {
    let text = message.replace('\0', " ");
    store(
        Cow::Owned(CString::new(text).unwrap_or_default()),
        reason,
        errno,
    );
    status
}

fn store(message: Cow<'static, CStr>, reason: UtpReason, errno: i32) {
    LAST_ERROR.with(|slot| {
        *slot.borrow_mut() = LastError {
            message,
            reason,
            errno,
        }
    });
}

/// The C reason of a library error.
fn reason_of(error: &utp::Error) -> UtpReason {
    use UtpReason as R;
    use utp::{DeniedReason as D, Error as E, GoneReason as G, ProtocolReason as P};
    match error {
        E::PeerGone { reason, .. } => match reason {
            G::Closed => R::UtpReasonPeerClosed,
            G::Died => R::UtpReasonPeerDied,
            G::Unreachable => R::UtpReasonPeerUnreachable,
            G::Evicted => R::UtpReasonEvicted,
            G::Broken => R::UtpReasonBroken,
            _ => R::UtpReasonOther,
        },
        E::Protocol { reason, .. } => match reason {
            P::Corrupt => R::UtpReasonCorrupt,
            P::Unexpected => R::UtpReasonUnexpected,
            P::Version => R::UtpReasonVersion,
            P::Refused => R::UtpReasonRefused,
            P::Unsupported => R::UtpReasonUnsupported,
            _ => R::UtpReasonOther,
        },
        E::Denied { reason, .. } => match reason {
            D::Untrusted => R::UtpReasonUntrusted,
            D::Refused => R::UtpReasonRefused,
            D::Unsafe => R::UtpReasonUnsafe,
            _ => R::UtpReasonOther,
        },
        _ => R::UtpReasonNone,
    }
}

/// Maps a library error to its status code, recording its message, reason
/// and OS error number.
pub(crate) fn from_error(error: utp::Error) -> UtpStatus {
    use utp::Error as E;
    let errno = match &error {
        E::Io { source, .. } => source.raw_os_error().unwrap_or(0),
        _ => 0,
    };
    let reason = reason_of(&error);
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
    record(status, error.to_string(), reason, errno)
}

/// The message of the last failed utp call on this thread (empty if none).
///
/// The returned string is owned by utp and stays valid until the next utp
/// call on the same thread; copy it if you need it longer. Never null.
#[unsafe(no_mangle)]
pub extern "C" fn utp_last_error() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().message.as_ptr())
}

/// Why the last failed utp call on this thread failed, finer than its
/// status: for `UTP_ERR_PEER_GONE` whether the peer closed in order
/// (`UTP_REASON_PEER_CLOSED`) or died (`UTP_REASON_PEER_DIED`), for
/// `UTP_ERR_PROTOCOL` corrupt input or another version, for
/// `UTP_ERR_DENIED` an untrusted peer or an unsafe object.
/// `UTP_REASON_NONE` when the status says it all.
///
/// ```c
/// if (utp_recv(ch, &info, buf, sizeof buf, -1) == UTP_ERR_PEER_GONE
///     && utp_last_error_reason() == UTP_REASON_PEER_DIED) {
///     reconnect();
/// }
/// ```
#[unsafe(no_mangle)]
pub extern "C" fn utp_last_error_reason() -> UtpReason {
    LAST_ERROR.with(|slot| slot.borrow().reason)
}

/// The operating system's error number (`errno`) behind the last failed
/// utp call on this thread, when it was `UTP_ERR_IO` from a system call;
/// 0 otherwise.
#[unsafe(no_mangle)]
pub extern "C" fn utp_last_os_error() -> i32 {
    LAST_ERROR.with(|slot| slot.borrow().errno)
}

/// The name of a reason, such as `"UTP_REASON_PEER_DIED"`, or
/// `"UTP_REASON_UNKNOWN"` for a value that is not one. Static; never null.
#[unsafe(no_mangle)]
pub extern "C" fn utp_reason_name(reason: i32) -> *const c_char {
    use UtpReason as R;
    const KNOWN: [UtpReason; 14] = [
        R::UtpReasonNone,
        R::UtpReasonPeerClosed,
        R::UtpReasonPeerDied,
        R::UtpReasonPeerUnreachable,
        R::UtpReasonEvicted,
        R::UtpReasonBroken,
        R::UtpReasonCorrupt,
        R::UtpReasonUnexpected,
        R::UtpReasonVersion,
        R::UtpReasonRefused,
        R::UtpReasonUnsupported,
        R::UtpReasonUntrusted,
        R::UtpReasonUnsafe,
        R::UtpReasonOther,
    ];
    let Some(&known) = KNOWN.iter().find(|r| **r as i32 == reason) else {
        return c"UTP_REASON_UNKNOWN".as_ptr();
    };
    // Exhaustive: a reason added to the enum needs its name here.
    let name: &'static std::ffi::CStr = match known {
        R::UtpReasonNone => c"UTP_REASON_NONE",
        R::UtpReasonPeerClosed => c"UTP_REASON_PEER_CLOSED",
        R::UtpReasonPeerDied => c"UTP_REASON_PEER_DIED",
        R::UtpReasonPeerUnreachable => c"UTP_REASON_PEER_UNREACHABLE",
        R::UtpReasonEvicted => c"UTP_REASON_EVICTED",
        R::UtpReasonBroken => c"UTP_REASON_BROKEN",
        R::UtpReasonCorrupt => c"UTP_REASON_CORRUPT",
        R::UtpReasonUnexpected => c"UTP_REASON_UNEXPECTED",
        R::UtpReasonVersion => c"UTP_REASON_VERSION",
        R::UtpReasonRefused => c"UTP_REASON_REFUSED",
        R::UtpReasonUnsupported => c"UTP_REASON_UNSUPPORTED",
        R::UtpReasonUntrusted => c"UTP_REASON_UNTRUSTED",
        R::UtpReasonUnsafe => c"UTP_REASON_UNSAFE",
        R::UtpReasonOther => c"UTP_REASON_OTHER",
    };
    name.as_ptr()
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
    let name: &'static std::ffi::CStr = match status {
        UtpStatus::UtpOk => c"UTP_OK",
        UtpStatus::UtpErrInvalidArgument => c"UTP_ERR_INVALID_ARGUMENT",
        UtpStatus::UtpErrBadUrl => c"UTP_ERR_BAD_URL",
        UtpStatus::UtpErrNotFound => c"UTP_ERR_NOT_FOUND",
        UtpStatus::UtpErrTimeout => c"UTP_ERR_TIMEOUT",
        UtpStatus::UtpErrPeerGone => c"UTP_ERR_PEER_GONE",
        UtpStatus::UtpErrFrame => c"UTP_ERR_FRAME",
        UtpStatus::UtpErrTooLarge => c"UTP_ERR_TOO_LARGE",
        UtpStatus::UtpErrFull => c"UTP_ERR_FULL",
        UtpStatus::UtpErrBufferTooSmall => c"UTP_ERR_BUFFER_TOO_SMALL",
        UtpStatus::UtpErrProtocol => c"UTP_ERR_PROTOCOL",
        UtpStatus::UtpErrClosed => c"UTP_ERR_CLOSED",
        UtpStatus::UtpErrIo => c"UTP_ERR_IO",
        UtpStatus::UtpErrInUse => c"UTP_ERR_IN_USE",
        UtpStatus::UtpErrDenied => c"UTP_ERR_DENIED",
        UtpStatus::UtpErrCalc => c"UTP_ERR_CALC",
        UtpStatus::UtpErrPanic => c"UTP_ERR_PANIC",
    };
    name.as_ptr()
}
