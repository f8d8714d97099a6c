//! The broadcast ring's memory-ordering protocol as small functions over
//! atomics: the exact code the ring runs, and what the loom model
//! (`tests/loom_pubsub.rs`) checks under `--cfg loom` with loom's atomics.

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use super::layout::{committed, writing};

/// What a reader at message `n` finds in the slot's stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Message `n` is complete.
    Ready,
    /// Not published yet (or being written).
    Empty,
    /// The publisher has overwritten the slot with a later message.
    Lapped,
}

/// Publisher: marks message `n`'s slot as being written; every payload
/// store after this is ordered after the mark (release fence).
pub fn begin(stamp: &AtomicU64, n: u64) {
    stamp.store(writing(n), Ordering::Relaxed);
    fence(Ordering::Release);
}

/// Publisher: message `n` is complete: its stamp, then the tail.
pub fn commit(stamp: &AtomicU64, tail: &AtomicU64, n: u64) {
    stamp.store(committed(n), Ordering::Release);
    tail.store(n + 1, Ordering::Release);
}

/// Reader: one read of the stamp (acquire: the payload stores of a
/// complete message are visible after it).
pub fn look(stamp: &AtomicU64, n: u64) -> Seen {
    match stamp.load(Ordering::Acquire).cmp(&committed(n)) {
        std::cmp::Ordering::Less => Seen::Empty,
        std::cmp::Ordering::Equal => Seen::Ready,
        std::cmp::Ordering::Greater => Seen::Lapped,
    }
}

/// Reader, after copying: whether message `n` was still in place for the
/// whole copy (acquire fence, then the stamp again).
pub fn intact(stamp: &AtomicU64, n: u64) -> bool {
    fence(Ordering::Acquire);
    stamp.load(Ordering::Relaxed) == committed(n)
}

/// Reader, lapped at `cursor`: where to resume (a quarter ring of headroom
/// behind the tail, never backwards).
pub fn resume_after_lap(tail: &AtomicU64, cursor: u64, slots: u64) -> u64 {
    tail.load(Ordering::Acquire)
        .saturating_sub(slots - slots / 4)
        .max(cursor + 1)
}

/// Reader about to sleep: declares the wake value it will sleep on, then
/// a full fence; the caller re-checks the stamp before sleeping.
pub fn prepare_sleep(wake: &AtomicU32, sleep: &AtomicU64) -> u32 {
    let w = wake.load(Ordering::Acquire);
    sleep.store(1 << 32 | w as u64, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    w
}

/// Publisher, after commit: the full fence that pairs with [`prepare_sleep`].
pub fn before_waking() {
    fence(Ordering::SeqCst);
}

/// Publisher: whether this reader's sleep word says it sleeps on `wake`.
pub fn sleeps_on(sleep: &AtomicU64, wake: u32) -> bool {
    let s = sleep.load(Ordering::Relaxed);
    s >> 32 == 1 && s as u32 == wake
}
