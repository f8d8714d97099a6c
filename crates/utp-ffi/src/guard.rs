//! The boundary: turning C pointers into Rust references, and panics into
//! status codes. All the `unsafe` of the C ABI is in this file.

use crate::status::{UtpStatus, fail};
use std::any::TypeId;
use std::collections::BTreeSet;
use std::ffi::{CStr, c_char};
use std::sync::Mutex;
use std::time::Duration;

/// Every live handle utp gave out: its address and type. A pointer that is
/// not here (closed already, never from utp, or a handle of another type) is
/// refused with `UTP_ERR_CLOSED` before anything dereferences it, so a double
/// close or a use after close is an error code, not undefined behaviour.
static LIVE: Mutex<BTreeSet<(usize, TypeId)>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<(usize, TypeId)>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

fn not_live(what: &str) -> UtpStatus {
    fail(
        UtpStatus::UtpErrClosed,
        format!("{what} was already closed (or is not a handle utp returned)"),
    )
}

/// Turns a new object into a handle for C, recording it as live.
pub(crate) fn register<T: 'static>(value: T) -> *mut T {
    let raw = Box::into_raw(Box::new(value));
    live().insert((raw as usize, TypeId::of::<T>()));
    raw
}

/// Runs `body`, turning a panic into `UTP_ERR_PANIC` so none unwinds into C.
pub(crate) fn boundary(body: impl FnOnce() -> UtpStatus) -> UtpStatus {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(status) => status,
        Err(_) => fail(
            UtpStatus::UtpErrPanic,
            "internal error: utp panicked (a bug; please report it)",
        ),
    }
}

/// Borrows a NUL-terminated UTF-8 string from C.
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string valid for the call.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, UtpStatus> {
    if ptr.is_null() {
        return Err(fail(
            UtpStatus::UtpErrInvalidArgument,
            format!("{what} is NULL"),
        ));
    }
    // SAFETY: the caller guarantees a valid NUL-terminated string (checked non-null above).
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map_err(|_| {
        fail(
            UtpStatus::UtpErrInvalidArgument,
            format!("{what} is not UTF-8"),
        )
    })
}

/// Borrows `len` bytes from C; a null pointer is allowed only with `len == 0`.
///
/// # Safety
/// `ptr` is null (with `len == 0`) or valid for reads of `len` bytes for the call.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], UtpStatus> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(fail(
            UtpStatus::UtpErrInvalidArgument,
            "payload is NULL but its length is not 0",
        ));
    }
    // SAFETY: the caller guarantees `ptr` is valid for `len` bytes (non-null, checked above).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows a writable buffer of `len` bytes from C.
///
/// # Safety
/// `ptr` is null (with `len == 0`) or valid for writes of `len` bytes for the call.
pub(crate) unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], UtpStatus> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(fail(
            UtpStatus::UtpErrInvalidArgument,
            "buffer is NULL but its capacity is not 0",
        ));
    }
    // SAFETY: the caller guarantees `ptr` is valid for `len` writable bytes (non-null, checked above).
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Copies `text` into C's buffer as a NUL-terminated string;
/// `UTP_ERR_BUFFER_TOO_SMALL` (nothing written) when it needs more than
/// `capacity` bytes with its NUL.
///
/// # Safety
/// `out` is null (with `capacity == 0`) or valid for writes of `capacity` bytes.
pub(crate) unsafe fn write_c_string(
    text: &str,
    out: *mut c_char,
    capacity: usize,
    what: &str,
) -> Result<(), UtpStatus> {
    // SAFETY: forwarded from this function's contract.
    let room = unsafe { bytes_mut(out.cast::<u8>(), capacity) }?;
    let Some(out) = room.get_mut(..=text.len()) else {
        return Err(fail(
            UtpStatus::UtpErrBufferTooSmall,
            format!(
                "{what} is {} bytes and its NUL; the buffer holds {capacity}",
                text.len()
            ),
        ));
    };
    let (string, nul) = out.split_at_mut(text.len());
    string.copy_from_slice(text.as_bytes());
    nul[0] = 0;
    Ok(())
}

/// Borrows a C-owned handle mutably: `UTP_ERR_INVALID_ARGUMENT` for NULL,
/// `UTP_ERR_CLOSED` for a pointer that is not a live handle of this type.
///
/// # Safety
/// `ptr` is null or any pointer; a live handle is used by one thread at a time.
pub(crate) unsafe fn handle<'a, T: 'static>(
    ptr: *mut T,
    what: &str,
) -> Result<&'a mut T, UtpStatus> {
    if ptr.is_null() {
        return Err(fail(
            UtpStatus::UtpErrInvalidArgument,
            format!("{what} is NULL"),
        ));
    }
    if !live().contains(&(ptr as usize, TypeId::of::<T>())) {
        return Err(not_live(what));
    }
    // SAFETY: `ptr` is registered as a live handle of type T (created by
    // `register`, not yet taken back), and the caller uses it from one thread.
    Ok(unsafe { &mut *ptr })
}

/// Writes `value` through an out-pointer.
///
/// # Safety
/// `ptr` is null or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(ptr: *mut T, value: T, what: &str) -> Result<(), UtpStatus> {
    if ptr.is_null() {
        return Err(fail(
            UtpStatus::UtpErrInvalidArgument,
            format!("{what} is NULL"),
        ));
    }
    // SAFETY: the caller guarantees `ptr` is valid for writes (non-null, checked above).
    unsafe { ptr.write(value) };
    Ok(())
}

/// Takes back ownership of a handle: `Ok(None)` for NULL, `UTP_ERR_CLOSED`
/// for a pointer that is not a live handle of this type (a second close).
///
/// # Safety
/// `ptr` is null or any pointer; no other thread uses a live handle meanwhile.
pub(crate) unsafe fn take_handle<T: 'static>(
    ptr: *mut T,
    what: &str,
) -> Result<Option<Box<T>>, UtpStatus> {
    if ptr.is_null() {
        return Ok(None);
    }
    if !live().remove(&(ptr as usize, TypeId::of::<T>())) {
        return Err(not_live(what));
    }
    // SAFETY: `ptr` was registered by `register` (Box::into_raw) and has just
    // been removed from the live set, so it is turned back into a Box once.
    Ok(Some(unsafe { Box::from_raw(ptr) }))
}

/// Milliseconds from C: negative means wait forever.
pub(crate) fn timeout(ms: i32) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// Collapses the `Result` of a body into a status.
pub(crate) fn status(result: Result<(), UtpStatus>) -> UtpStatus {
    result.err().unwrap_or(UtpStatus::UtpOk)
}
