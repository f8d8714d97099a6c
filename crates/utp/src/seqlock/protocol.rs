//! The sequence protocol itself, over atomics only, so that loom can check
//! it (`crates/utp/tests/loom_seqlock.rs`) exactly as the cell runs it.
//!
//! The value lives in shared memory as `AtomicU64` words. The writer owns
//! the sequence word `seq`; an odd `seq` means "a write is in progress".
//!
//! ```text
//! writer (publish)                        reader (try_read)
//! s = seq (even, writer's own copy)       s1 = seq.load(Acquire)        [SEQ]
//! seq.store(s + 1, Relaxed)               if s1 is odd: retry
//! fence(Release)                 [ODD]    words[i].load(Relaxed) ...
//! words[i].store(Relaxed) ...             fence(Acquire)                [ODD]
//! seq.store(s + 2, Release)      [SEQ]    s2 = seq.load(Relaxed)
//!                                         s1 == s2: the copy is consistent
//! ```
//!
//! Why a reader that sees `s1 == s2` (even) holds exactly the value of
//! write number `s1 / 2` (H.-J. Boehm, "Can seqlocks get along with
//! programming language memory models?", MSPC 2012):
//!
//! - `[SEQ]`: the Acquire load of `s1` synchronises with the Release store
//!   that wrote `s1`, so every word store of that write (and earlier) is
//!   visible: no word can read a value *older* than write `s1 / 2`.
//! - `[ODD]`: if any word load read a value stored by a *later* write, that
//!   write's Release fence (after its `s + 1` store) synchronises with the
//!   reader's Acquire fence, so the `s + 1` store happens-before the
//!   reader's load of `s2`, which therefore reads `s1 + 1` or later and the
//!   copy is discarded.
//!
//! All accesses are atomic, so concurrent reading and writing is never a
//! data race in the Rust memory model: a discarded copy is merely stale
//! words, never undefined behaviour. Relaxed word accesses compile to
//! plain `mov`s on x86-64 and aarch64.
//!
//! Waking sleepers (`[WAKE]`, the link's protocol from `shm::ring`): a
//! reader about to sleep stores 1 in `waiters`, issues a SeqCst fence and
//! re-reads `seq`; the writer, after its final `seq` store, issues a SeqCst
//! fence and reads `waiters`. One of the two sees the other's store, so a
//! reader either notices the new value or is woken.

use crate::shm::sync::{AtomicU32, AtomicU64, Ordering, fence};

/// Writes `words` as the next value: `seq` goes from `s` to `s + 1`
/// (odd, "writing") to `s + 2`. `fill(i)` gives word `i`.
///
/// `s` is the writer's own record of the sequence (it is the only writer).
/// If `s` is odd (a predecessor died mid-write), the cell is first moved to
/// the next odd number, so readers keep refusing the torn words until the
/// new ones are complete. Returns the new, even sequence.
#[inline]
pub fn publish(seq: &AtomicU64, words: &[AtomicU64], s: u64, fill: impl Fn(usize) -> u64) -> u64 {
    let odd = s | 1;
    seq.store(odd, Ordering::Relaxed);
    fence(Ordering::Release); // [ODD] pairs with the reader's Acquire fence
    for (i, w) in words.iter().enumerate() {
        w.store(fill(i), Ordering::Relaxed);
    }
    seq.store(odd + 1, Ordering::Release); // [SEQ] pairs with the reader's first load
    odd + 1
}

/// The outcome of one read attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The words copied are write number `seq / 2`, untorn.
    Consistent(u64),
    /// A write was in progress (odd sequence) when the read began.
    Writing(u64),
    /// The sequence moved during the copy; the words are garbage.
    Raced,
}

/// One read attempt: copies every word through `store(i, word)` and says
/// whether the copy is consistent. On anything but
/// [`Attempt::Consistent`] the copied words must be discarded.
#[inline]
pub fn try_read(
    seq: &AtomicU64,
    words: &[AtomicU64],
    mut store: impl FnMut(usize, u64),
) -> Attempt {
    let s1 = seq.load(Ordering::Acquire); // [SEQ]
    if s1 & 1 == 1 {
        return Attempt::Writing(s1);
    }
    for (i, w) in words.iter().enumerate() {
        store(i, w.load(Ordering::Relaxed));
    }
    fence(Ordering::Acquire); // [ODD]
    if seq.load(Ordering::Relaxed) == s1 {
        Attempt::Consistent(s1)
    } else {
        Attempt::Raced
    }
}

/// Writer side of `[WAKE]`: after a publish, whether a reader asked to be
/// woken. Clears the request, so a caller that gets `true` must wake.
#[inline]
pub fn take_waiters(waiters: &AtomicU32) -> bool {
    fence(Ordering::SeqCst); // [WAKE] pairs with the fence in `arm`
    waiters.load(Ordering::Relaxed) != 0 && waiters.swap(0, Ordering::Relaxed) != 0
}

/// Reader side of `[WAKE]`: announces a sleeper, then returns the current
/// sequence to re-check before sleeping. Readers never clear the flag (another
/// reader may be asleep); the writer does, when it wakes them.
#[inline]
pub fn arm(waiters: &AtomicU32, seq: &AtomicU64) -> u64 {
    waiters.store(1, Ordering::Relaxed);
    fence(Ordering::SeqCst); // [WAKE] pairs with the fence in `take_waiters`
    seq.load(Ordering::Acquire)
}
