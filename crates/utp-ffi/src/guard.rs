//! The boundary: turning C pointers into Rust references, and panics into
//! status codes. All the `unsafe` of the C ABI is in this file.

use crate::status::{UtpStatus, fail};
use std::ffi::{CStr, c_char};
use std::time::Duration;

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

/// Borrows a C-owned handle mutably.
///
/// # Safety
/// `ptr` is null or a handle returned by utp and not yet closed, used by one thread at a time.
pub(crate) unsafe fn handle<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, UtpStatus> {
    // SAFETY: the caller guarantees a live, unaliased handle (or null, which as_mut rejects).
    unsafe { ptr.as_mut() }
        .ok_or_else(|| fail(UtpStatus::UtpErrInvalidArgument, format!("{what} is NULL")))
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

/// Takes back ownership of a handle created with `Box::into_raw`.
///
/// # Safety
/// `ptr` is null or a handle returned by utp that has not been closed yet.
pub(crate) unsafe fn take_handle<T>(ptr: *mut T) -> Option<Box<T>> {
    // SAFETY: handles are created by Box::into_raw and closed once (caller's promise).
    (!ptr.is_null()).then(|| unsafe { Box::from_raw(ptr) })
}

/// Milliseconds from C: negative means wait forever.
pub(crate) fn timeout(ms: i32) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// Collapses the `Result` of a body into a status.
pub(crate) fn status(result: Result<(), UtpStatus>) -> UtpStatus {
    result.err().unwrap_or(UtpStatus::UtpOk)
}
