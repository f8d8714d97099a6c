//! The async layer's one `unsafe`: a receive that lends its frame when there
//! is one, and waits on the same channel when there is none.
//!
//! It lives outside `tokio/` so that Miri checks it (`scripts/miri`, which
//! builds no optional feature) in a model of that loop, below.
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
pub(crate) unsafe fn try_recv_ref<'a>(
    channel: *mut dyn Channel,
    spare: *mut Frame,
) -> Result<Option<FrameRef<'a>>> {
    // SAFETY: the contract above: both pointers are valid, exclusively the
    // caller's for 'a, and unused by it while a lent frame lives; when none
    // is lent no reference made here survives the call.
    unsafe { (*channel).try_recv_ref(&mut *spare) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Header;
    use std::collections::VecDeque;
    use std::time::Duration;

    /// A channel that lends frames from memory of its own, as a socket's
    /// read buffer does, and lends none while its queue is empty.
    #[derive(Debug, Default)]
    struct Queue {
        queued: VecDeque<Vec<u8>>,
        lent: Vec<u8>,
    }

    impl Channel for Queue {
        fn send_timeout(
            &mut self,
            _message_type: u8,
            _flags: u16,
            payload: &[u8],
            _timeout: Option<Duration>,
        ) -> Result<()> {
            self.queued.push_back(payload.to_vec());
            Ok(())
        }

        fn recv_timeout(&mut self, frame: &mut Frame, _timeout: Option<Duration>) -> Result<()> {
            let Some(next) = self.queued.pop_front() else {
                return Err(crate::Error::Timeout {
                    waiting_for: "a queued frame",
                    after: Duration::ZERO,
                });
            };
            frame.set(Header::default(), &next);
            Ok(())
        }

        fn try_recv_ref<'a>(&'a mut self, _spare: &'a mut Frame) -> Result<Option<FrameRef<'a>>> {
            let Some(next) = self.queued.pop_front() else {
                return Ok(None);
            };
            self.lent = next;
            Ok(Some(FrameRef {
                header: Header::default(),
                payload: &self.lent,
            }))
        }

        fn close(&mut self) -> Result<()> {
            Ok(())
        }
    }

    /// `AsyncChannel::recv_ref`'s loop without the runtime: lend a frame,
    /// or "wait" (`arrive`, which uses the channel again, as the wait
    /// does) and try again.
    fn lend_or_wait<'a>(
        channel: &'a mut Box<dyn Channel>,
        spare: &'a mut Frame,
        arrive: &mut dyn FnMut(&mut dyn Channel),
    ) -> Result<FrameRef<'a>> {
        loop {
            let raw: *mut dyn Channel = &mut **channel;
            // SAFETY: the contract of `try_recv_ref`: both borrows are this
            // function's for 'a, a lent frame is returned at once, and the
            // wait below uses the channel only when none was lent.
            if let Some(frame) = unsafe { try_recv_ref(raw, spare) }? {
                return Ok(frame);
            }
            arrive(&mut **channel);
        }
    }

    #[test]
    fn frames_lent_between_waits_on_the_same_channel_stay_whole() {
        let mut channel: Box<dyn Channel> = Box::new(Queue::default());
        let mut spare = Frame::default();
        let mut next = 0u8;
        // Each frame arrives only after the receive found nothing once,
        // two at a time from the third on (one lent at once, one after).
        let mut arrive = |channel: &mut dyn Channel| {
            let count = if next < 2 { 1 } else { 2 };
            for _ in 0..count {
                channel
                    .send(0, 0, &[next; 3])
                    .expect("the queue takes every frame");
                next += 1;
            }
        };
        for expected in 0..6u8 {
            let frame = lend_or_wait(&mut channel, &mut spare, &mut arrive).unwrap();
            assert_eq!(frame.payload, [expected; 3]);
        }
        assert!(spare.payload().is_empty(), "lent, not copied");
    }
}
