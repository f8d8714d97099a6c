//! Payload buffers handed back from an in-process receiver to the sender
//! of its queue, so that a steady flow of frames allocates nothing.
//!
//! `inproc://` moves each payload as an owned vector. Without this, every
//! send allocated one and every receive freed the receiver's previous one,
//! in another thread: glibc returned the freed chunk to the sender's arena,
//! and once the top of the heap held more than its trim threshold (128
//! KiB) it gave the pages back to the kernel, to fault them in again at the
//! next send. `utp bench --only inproc` counted a million page faults in 28
//! seconds, and its 4 KiB and 64 KiB streams swung by 2x between runs
//! (docs/benchmarks/journal.md, 2026-12-05, morning). Now the receiver hands the
//! vector its frame held back, and the sender copies the next payload into
//! one of those.
//!
//! Buffers of 1 KiB or more go back one at a time through a short queue.
//! Smaller ones go back in batches of 32, through a queue with room for as
//! many as the frame queue holds: one queue operation per batch, where one
//! per buffer cost more than the allocation it saved; and no allocation
//! at all, where glibc's `malloc` was half of a 64 B stream's sender (the
//! receiver freed every buffer into its own cache, so the sender's was
//! always empty). A batch the sender has emptied goes back the other way
//! to collect the next one in, so batches are not allocated either. A
//! channel so keeps about a frame queue's worth of small
//! buffers per direction (at the default depth at most 33 batches waiting,
//! one being filled and one being used: some 1,100 buffers of under 1 KiB)
//! and four large ones, about what its queue held in flight at its peak.
//!
//! All queues are crossbeam channels (the transport's own); a full or
//! disconnected spare queue drops the buffers, an empty one means a fresh
//! allocation, so nothing here ever waits or fails.

use crossbeam_channel::{Receiver, Sender, bounded};

/// Large buffers waiting to be reused, per direction. A receiver hands
/// back one buffer per frame and a sender takes one per frame, so a few
/// cover the jitter between the two; more would only hold memory.
const DEPTH: usize = 4;

/// Buffers smaller than this go back in batches (`SMALL_BATCH` at a time), not
/// one by one: a trip through a queue for each costs more than their
/// allocation (handing back every size singly made the 8 B and 64 B round
/// trips 1.0 µs instead of 0.7–0.8 in `utp bench --only inproc`).
pub const SMALLEST: usize = 1024;

/// Small buffers go back this many at a time: one queue operation per
/// batch instead of one per frame.
const SMALL_BATCH: usize = 32;

/// A fresh small buffer holds at least this much, so that it can carry
/// the next small payload even if that one is a little longer.
const SMALL_MIN_CAPACITY: usize = 64;

/// A receiver's end of one direction's spare queues: the receive of a
/// frame queue hands back here the buffer its frame held before.
#[derive(Debug)]
pub struct Returns {
    large: Sender<Vec<u8>>,
    small: Sender<Vec<Vec<u8>>>,
    /// Batches the sender has emptied, to collect the next ones in.
    emptied: Receiver<Vec<Vec<u8>>>,
    /// Small buffers collected for the next batch.
    batch: Vec<Vec<u8>>,
}

/// A sender's end of one direction's spare queues: sends copy their
/// payloads into buffers from here.
#[derive(Debug)]
pub struct Supply {
    large: Receiver<Vec<u8>>,
    small: Receiver<Vec<Vec<u8>>>,
    /// Where emptied batches go back to the receiver.
    emptied: Sender<Vec<Vec<u8>>>,
    /// Small buffers from the last batch taken, used last in, first out.
    stash: Vec<Vec<u8>>,
}

/// The two ends of one direction's spare queues for a frame queue of
/// `depth` frames: the receiver of the frame queue holds the [`Returns`],
/// the sender the [`Supply`]. The small buffers' queue has room for as
/// many as the frame queue holds: a sender that filled it and then slept
/// gets back every buffer its receiver drained meanwhile. With room for
/// two batches, most of them were freed and allocated again as the sender
/// filled the queue anew, and the 64 B stream of `utp bench --only inproc`
/// stayed where it was without batches (2.8 M frames/s).
pub fn queue(depth: usize) -> (Returns, Supply) {
    let (large_tx, large_rx) = bounded(DEPTH);
    let batches = depth.div_ceil(SMALL_BATCH) + 1;
    let (small_tx, small_rx) = bounded(batches);
    let (emptied_tx, emptied_rx) = bounded(batches);
    (
        Returns {
            large: large_tx,
            small: small_tx,
            emptied: emptied_rx,
            batch: Vec::new(),
        },
        Supply {
            large: large_rx,
            small: small_rx,
            emptied: emptied_tx,
            stash: Vec::new(),
        },
    )
}

impl Returns {
    /// An end whose buffers nobody takes: everything handed back is freed.
    pub fn unconnected() -> Self {
        queue(0).0
    }

    /// Hands `buffer` back for reuse: one of at least [`SMALLEST`] and at
    /// most `largest` bytes at once, a smaller one with the next batch;
    /// freed when the queue is full or its other end gone, or when it
    /// holds nothing.
    #[inline]
    pub fn give_back(&mut self, buffer: Vec<u8>, largest: usize) {
        let capacity = buffer.capacity();
        if capacity == 0 {
            return;
        }
        if capacity < SMALLEST {
            self.batch.push(buffer);
            if self.batch.len() >= SMALL_BATCH {
                self.send_batch();
            }
        } else if capacity <= largest {
            // Full or disconnected: the buffer is dropped here.
            let _ = self.large.try_send(buffer);
        }
    }

    /// Sends the collected small buffers (dropped if the queue is full)
    /// and collects the next ones in a batch the sender emptied, so no
    /// batch is allocated in one thread and freed in the other.
    #[cold]
    fn send_batch(&mut self) {
        let next = self
            .emptied
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(SMALL_BATCH));
        let batch = std::mem::replace(&mut self.batch, next);
        let _ = self.small.try_send(batch);
    }
}

impl Supply {
    /// An end nothing is handed back to: every send allocates.
    pub fn unconnected() -> Self {
        queue(0).1
    }

    /// A vector holding a copy of `payload`: a handed-back buffer when one
    /// is waiting and large enough, a new one otherwise.
    #[inline]
    pub fn filled(&mut self, payload: &[u8]) -> Vec<u8> {
        let buffer = if payload.len() >= SMALLEST {
            self.large.try_recv().ok()
        } else if payload.is_empty() {
            return Vec::new();
        } else {
            self.small_buffer()
        };
        // A buffer too small for this payload is dropped here.
        if let Some(mut buffer) = buffer
            && buffer.capacity() >= payload.len()
        {
            buffer.clear();
            crate::copy::extend(&mut buffer, payload);
            return buffer;
        }
        let mut fresh = Vec::with_capacity(if payload.len() < SMALLEST {
            payload.len().max(SMALL_MIN_CAPACITY)
        } else {
            payload.len()
        });
        crate::copy::extend(&mut fresh, payload);
        fresh
    }

    /// The next small buffer from the stash, taking a batch when it is empty.
    #[inline]
    fn small_buffer(&mut self) -> Option<Vec<u8>> {
        if self.stash.is_empty()
            && let Ok(batch) = self.small.try_recv()
        {
            let emptied = std::mem::replace(&mut self.stash, batch);
            if emptied.capacity() > 0 {
                // Full or disconnected: dropped here.
                let _ = self.emptied.try_send(emptied);
            }
        }
        self.stash.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames the tests' frame queue holds.
    const FRAMES: usize = 100;

    #[test]
    fn a_large_buffer_handed_back_carries_the_next_payload() {
        let (mut back, mut spare) = queue(FRAMES);
        let first = spare.filled(&[1u8; 4096]);
        let at = first.as_ptr();
        back.give_back(first, 1 << 20);
        let second = spare.filled(&[2u8; 3000]);
        assert_eq!(second.as_ptr(), at, "the handed-back buffer was not reused");
        assert_eq!(second, vec![2u8; 3000]);
    }

    #[test]
    fn large_buffers_out_of_bounds_or_too_small_are_not_reused() {
        let (mut back, mut spare) = queue(FRAMES);
        back.give_back(Vec::with_capacity(4096), 2048);
        assert!(
            spare.large.try_recv().is_err(),
            "a buffer over the limit was kept"
        );
        // One too small for the payload is freed and a new one made.
        back.give_back(Vec::with_capacity(2048), 1 << 20);
        let payload = vec![3u8; 8192];
        assert_eq!(spare.filled(&payload), payload);
        assert!(spare.large.try_recv().is_err());
    }

    #[test]
    fn the_large_queue_holds_at_most_its_depth() {
        let (mut back, spare) = queue(FRAMES);
        for _ in 0..DEPTH + 3 {
            back.give_back(Vec::with_capacity(4096), 1 << 20);
        }
        assert_eq!(spare.large.try_iter().count(), DEPTH);
    }

    #[test]
    fn small_buffers_come_back_a_batch_at_a_time() {
        let (mut back, mut spare) = queue(FRAMES);
        let sent: Vec<Vec<u8>> = (0..SMALL_BATCH)
            .map(|i| spare.filled(&[i as u8; 64]))
            .collect();
        let places: Vec<*const u8> = sent.iter().map(|b| b.as_ptr()).collect();
        let mut sent = sent.into_iter();
        for buffer in sent.by_ref().take(SMALL_BATCH - 1) {
            back.give_back(buffer, 1 << 20);
        }
        // A batch short of one: nothing has gone back yet.
        let fresh = spare.filled(&[9u8; 64]);
        assert!(
            !places.contains(&fresh.as_ptr()),
            "a buffer came back before its batch"
        );
        back.give_back(sent.next().unwrap(), 1 << 20);
        // The batch is whole: every one of its buffers carries a payload again.
        let again: Vec<Vec<u8>> = (0..SMALL_BATCH)
            .map(|i| spare.filled(&[i as u8; 60]))
            .collect();
        for (i, buffer) in again.iter().enumerate() {
            assert!(
                places.contains(&buffer.as_ptr()),
                "buffer {i} was not one handed back"
            );
            assert_eq!(buffer, &vec![i as u8; 60]);
        }
        // The stash is spent and no batch waits: a new buffer, with room to spare.
        let next = spare.filled(&[1u8; 8]);
        assert!(!places.contains(&next.as_ptr()));
        assert!(next.capacity() >= SMALL_MIN_CAPACITY);
    }

    #[test]
    fn the_small_queue_takes_back_a_whole_frame_queue() {
        let (mut back, mut spare) = queue(FRAMES);
        let sent: Vec<Vec<u8>> = (0..FRAMES + SMALL_BATCH)
            .map(|_| spare.filled(&[7u8; 64]))
            .collect();
        let first = sent[0].as_ptr();
        for buffer in sent {
            back.give_back(buffer, 1 << 20);
        }
        // Every batch the frame queue's worth of buffers made waits (a
        // freed one's address could come back from the allocator, so the
        // queue is counted, not the addresses).
        assert_eq!(spare.small.len(), (FRAMES + SMALL_BATCH) / SMALL_BATCH);
        // Last in, first out within a batch: the first buffer sent is the
        // last of the first batch taken.
        let refilled: Vec<Vec<u8>> = (0..SMALL_BATCH).map(|_| spare.filled(&[1u8; 64])).collect();
        assert_eq!(refilled[SMALL_BATCH - 1].as_ptr(), first);
    }

    #[test]
    fn an_emptied_batch_goes_back_to_collect_the_next_one_in() {
        let (mut back, mut spare) = queue(FRAMES);
        let give_back_a_batch = |back: &mut Returns| {
            for _ in 0..SMALL_BATCH {
                back.give_back(Vec::with_capacity(64), 1 << 20);
            }
        };
        give_back_a_batch(&mut back);
        // The sender takes the first batch and uses it up; the one it held
        // before was never a batch (nothing to send back).
        for _ in 0..SMALL_BATCH {
            spare.filled(&[1u8; 64]);
        }
        assert_eq!(back.emptied.len(), 0);
        give_back_a_batch(&mut back);
        // Taking the second batch sends the emptied first one back...
        spare.filled(&[2u8; 64]);
        assert_eq!(back.emptied.len(), 1, "the emptied batch was not sent back");
        assert_eq!(spare.stash.len(), SMALL_BATCH - 1);
        // ...and the next batch is collected in it, nothing allocated.
        give_back_a_batch(&mut back);
        assert_eq!(back.emptied.len(), 0, "the emptied batch was not reused");
        assert!(back.batch.is_empty() && back.batch.capacity() >= SMALL_BATCH);
    }

    #[test]
    fn empty_buffers_and_payloads_take_nothing() {
        let (mut back, mut spare) = queue(FRAMES);
        for _ in 0..SMALL_BATCH {
            back.give_back(Vec::new(), 1 << 20);
        }
        assert!(back.batch.is_empty(), "an empty vector was kept");
        let kept = spare.filled(&[5u8; 16]);
        for _ in 0..SMALL_BATCH {
            back.give_back(kept.clone(), 1 << 20);
        }
        assert_eq!(
            spare.filled(&[]).capacity(),
            0,
            "an empty payload took a buffer"
        );
        // The next payload takes one of the batch (a clone's capacity is
        // its length, 16; a new one would have 64).
        let next = spare.filled(&[6u8; 3]);
        assert_eq!(next, [6u8; 3]);
        assert_eq!(next.capacity(), 16);
    }
}
