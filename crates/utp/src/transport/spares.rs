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
//! (docs/BENCHMARKS.md, 2026-12-05, morning). Now the receiver hands the
//! vector its frame held back through a small bounded queue, and the
//! sender copies the next payload into one of those.
//!
//! Both queues are crossbeam channels (the transport's own); a full or
//! disconnected spare queue drops the buffer, an empty one means a fresh
//! allocation, so nothing here ever waits or fails.

use crossbeam_channel::{Receiver, Sender, bounded};

/// Buffers waiting to be reused, per direction. A receiver hands back one
/// buffer per frame and a sender takes one per frame, so a few cover the
/// jitter between the two; more would only hold memory.
const DEPTH: usize = 4;

/// Buffers smaller than this are freed, not handed back: glibc keeps
/// chunks this small in per-thread caches and bins it never trims, and a
/// trip through the spare queue costs more than their allocation (handing
/// back every size made the 8 B and 64 B round trips 1.0 µs instead of
/// 0.7–0.8 in `utp bench --only inproc`).
pub const SMALLEST: usize = 1024;

/// The two ends of one direction's spare queue: the receiver of a frame
/// queue holds the [`Sender`], the sender of that frame queue the
/// [`Receiver`].
pub fn queue() -> (Sender<Vec<u8>>, Receiver<Vec<u8>>) {
    bounded(DEPTH)
}

/// Hands `buffer` back for reuse when its capacity is worth it (at least
/// [`SMALLEST`], at most `largest`); otherwise, or when the queue is full
/// or its sender gone, frees it.
#[inline]
pub fn give_back(to: &Sender<Vec<u8>>, buffer: Vec<u8>, largest: usize) {
    let capacity = buffer.capacity();
    if (SMALLEST..=largest).contains(&capacity) {
        // Full or disconnected: the buffer is dropped here, as before.
        let _ = to.try_send(buffer);
    }
}

/// A vector holding a copy of `payload`: a handed-back buffer when one is
/// waiting and large enough, a new one otherwise.
#[inline]
pub fn filled(from: &Receiver<Vec<u8>>, payload: &[u8]) -> Vec<u8> {
    // A buffer too small for this payload is dropped here.
    if payload.len() >= SMALLEST
        && let Ok(mut buffer) = from.try_recv()
        && buffer.capacity() >= payload.len()
    {
        buffer.clear();
        crate::copy::extend(&mut buffer, payload);
        return buffer;
    }
    crate::copy::to_vec(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_handed_back_carries_the_next_payload() {
        let (back, spare) = queue();
        let first = filled(&spare, &[1u8; 4096]);
        let at = first.as_ptr();
        give_back(&back, first, 1 << 20);
        let second = filled(&spare, &[2u8; 3000]);
        assert_eq!(second.as_ptr(), at, "the handed-back buffer was not reused");
        assert_eq!(second, vec![2u8; 3000]);
    }

    #[test]
    fn small_large_and_too_small_buffers_are_not_reused() {
        let (back, spare) = queue();
        give_back(&back, Vec::with_capacity(SMALLEST - 1), 1 << 20);
        give_back(&back, Vec::with_capacity(4096), 2048);
        assert!(
            spare.try_recv().is_err(),
            "a buffer outside the bounds was kept"
        );
        // One too small for the payload is freed and a new one made.
        give_back(&back, Vec::with_capacity(2048), 1 << 20);
        let payload = vec![3u8; 8192];
        assert_eq!(filled(&spare, &payload), payload);
        assert!(spare.try_recv().is_err());
    }

    #[test]
    fn the_queue_holds_at_most_its_depth() {
        let (back, spare) = queue();
        for _ in 0..DEPTH + 3 {
            give_back(&back, Vec::with_capacity(4096), 1 << 20);
        }
        assert_eq!(spare.try_iter().count(), DEPTH);
    }
}
