//! The async layer's one `unsafe`: a receive that lends its frame when there
//! is one, and waits on the same channel when there is none.
//!
//! `AsyncChannel::recv_ref` tries [`Channel::try_recv_ref`] and returns the
//! frame it lends, or, when it lends none, waits and tries again. That loop
//! is sound, but today's borrow checker (NLL) keeps a borrow returned on one
//! path alive on every path, so it refuses the wait that follows a try that
//! lent nothing (NLL's "problem case #3"; Polonius, the borrow checker to
//! come, accepts it). This module is the loop's way around that, kept to one
//! function whose contract says what the callers must hold.

use crate::channel::Channel;
use crate::error::Result;
use crate::frame::{Frame, FrameRef};

/// [`Channel::try_recv_ref`] on `channel` into `spare`, the frame it lends
/// borrowed for a lifetime `'a` the caller names, not tied to a borrow of
/// either pointer.
///
/// # Safety
///
/// `channel` and `spare` are valid and come from borrows the caller holds
/// exclusively for all of `'a` (`&'a mut`). When this returns `Ok(Some(_))`,
/// the caller touches neither again during `'a` other than through the
/// returned frame (it returns the frame at once). When it returns `Ok(None)`
/// or an error, nothing borrowed from either outlives the call: a
/// [`FrameRef`] exists only in `Some`, and [`Error`](crate::Error) owns its
/// data.
pub(super) unsafe fn try_recv_ref<'a>(
    channel: *mut dyn Channel,
    spare: *mut Frame,
) -> Result<Option<FrameRef<'a>>> {
    // SAFETY: the contract above: both pointers are valid, exclusively the
    // caller's for 'a, and unused by it while a lent frame lives; when none
    // is lent no reference made here survives the call.
    unsafe { (*channel).try_recv_ref(&mut *spare) }
}
