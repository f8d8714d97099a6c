//! [`Channel::send_batch`](crate::Channel::send_batch) on a link: the
//! frames of a batch are reserved, written and published one by one, as
//! `send` does it, so the peer reads the first while the rest are written;
//! what a send does once per frame that a batch can do once for many (the
//! clock read that stamps a frame, the counts for `utp stat`, the look at
//! the peer's state and the heartbeat) is done once.
//!
//! The clock read is the one that matters: a streaming producer's stores
//! queue behind the lines its consumer still holds, and the vDSO call's
//! own stores queue with them: one read per 64-byte frame cost a spinning
//! stream a quarter to nearly half of its rate on an AMD EPYC guest
//! (docs/benchmarks/journal.md, 2026-12-06, night).

use super::{Payload, ShmLink};
use crate::error::Result;
use crate::frame::coarse_micros;
use std::time::Duration;

/// Frames of a [`Channel::send_batch`](crate::Channel::send_batch) that one clock read stamps, at
/// most: 64 frames take a few microseconds to write, far less than the
/// coarse clock's tick, and the read (3–6 ns, and stores that wait behind
/// a streaming producer's) costs a 64-byte frame little once shared.
const BATCH_STAMP_FRAMES: usize = 64;

/// Payload bytes of a [`Channel::send_batch`](crate::Channel::send_batch) that one clock read stamps,
/// at most (then the clock is read again): 64 KiB take tens of
/// microseconds to copy at the slowest, still well within a tick.
const BATCH_STAMP_BYTES: usize = 64 * 1024;

impl ShmLink {
    /// [`Channel::send_batch`](crate::Channel::send_batch) (`wait`: for
    /// room as long as it takes) and
    /// [`Channel::try_send_batch`](crate::Channel::try_send_batch) (not
    /// at all): each frame reserved, written and published as `send` does
    /// it, with one clock read for up to [`BATCH_STAMP_FRAMES`] frames or
    /// [`BATCH_STAMP_BYTES`] of payload (and again after any wait for
    /// room), the peer's state looked at with each read, and the counts
    /// and the bookkeeping after the last frame sent. A frame that fails,
    /// or finds no room without waiting ([`Error::Full`](crate::Error::Full)), ends the batch;
    /// returns how many frames were sent before it, and why it ended.
    pub(super) fn publish_batch(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
        wait: bool,
    ) -> (usize, Result<()>) {
        let timeout = if wait { None } else { Some(Duration::ZERO) };
        let mut now = None;
        // Frames and payload bytes stamped with `now` so far.
        let (mut frames, mut bytes) = (0, 0);
        let mut outcome = Ok(());
        let mut sent = 0;
        for payload in payloads {
            // A new stamp is due: first the look at the link and the
            // peer's state that `send` makes before every frame, so a peer
            // that closed while the batch was written is reported within
            // 64 frames. (A wait for room looks at them as it waits.)
            let due = now.is_none() || frames >= BATCH_STAMP_FRAMES || bytes >= BATCH_STAMP_BYTES;
            if due && let Err(gone) = self.check_cheap() {
                outcome = Err(gone);
                break;
            }
            let (offset, rec, waited) = match self.reserve_checked(payload.len(), timeout) {
                Ok(reserved) => reserved,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            };
            let stamp = match now {
                Some(stamp) if !due && !waited => {
                    frames += 1;
                    bytes += payload.len();
                    stamp
                }
                _ => {
                    (frames, bytes) = (1, payload.len());
                    #[cfg(test)]
                    {
                        self.batch_clock_reads += 1;
                    }
                    *now.insert(coarse_micros())
                }
            };
            let private = Payload::Private(payload);
            let len = self.write_record(offset, rec, message_type, flags, private, stamp);
            self.commit_record(offset, rec);
            self.count_bytes(len);
            sent += 1;
        }
        if let Some(now) = now {
            self.store_counts();
            self.after_sends(now);
        }
        (sent, outcome)
    }
}
