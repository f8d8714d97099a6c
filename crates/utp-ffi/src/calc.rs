//! The calculator call helper.

use crate::channel::UtpChannel;
use crate::guard::{boundary, c_str, handle, status, timeout, write_out};
use crate::status::{UtpStatus, fail, from_error};
use std::ffi::c_char;
use utp::frame::Frame;
use utp::service::calc::Reply;

/// Asks the calculator at the other end of `channel` for `op a b` (op is
/// `"ADD"`, `"SUB"`, `"MUL"` or `"DIV"`) and stores the result in `*result`.
///
/// Returns `UTP_ERR_CALC` when the calculator answers `ERR ...` (division by
/// zero, overflow, unknown operation); the message is in `utp_last_error()`.
/// `timeout_ms` (negative: forever) is a deadline for the whole call, and
/// only the answer to this request is taken (as `utp_call`).
///
/// # Safety
/// `channel` is a live channel handle; `op` a NUL-terminated string; `result` valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_calc_call(
    channel: *mut UtpChannel,
    op: *const c_char,
    a: i64,
    b: i64,
    result: *mut i64,
    timeout_ms: i32,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            // SAFETY: forwarded from this function's contract.
            let op = unsafe { c_str(op, "op") }?;
            if result.is_null() {
                return Err(fail(UtpStatus::UtpErrInvalidArgument, "result is NULL"));
            }
            let request = format!("{op} {a} {b}");
            let mut frame = Frame::default();
            // The call takes only its own answer, within one deadline.
            utp::service::call(
                channel.channel()?,
                request.as_bytes(),
                &mut frame,
                timeout(timeout_ms),
            )
            .map_err(from_error)?;
            match Reply::parse(frame.payload()) {
                // SAFETY: forwarded from this function's contract (checked non-null above).
                Ok(Reply::Ok(n)) => unsafe { write_out(result, n, "result") },
                Ok(Reply::Err(message)) => Err(fail(UtpStatus::UtpErrCalc, message)),
                Err(message) => Err(fail(UtpStatus::UtpErrProtocol, message)),
            }
        })())
    })
}
