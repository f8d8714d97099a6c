//! How the futex baselines (mailbox and ring) go to sleep and are woken:
//! the way utp's `wait=block` does, so that the figures compare the
//! transports, not two waiting policies.

use std::sync::atomic::{AtomicU32, Ordering};

/// utp's looks between an empty poll and arming its sleep (it polls, reads
/// the clock, polls again, reads it again for its deadline checks, then
/// arms): true if `ready` became true meanwhile. Without them a receiver
/// that keeps up slept after every message, where utp's caught the next one.
pub fn pre_sleep_looks(ready: &mut impl FnMut() -> bool) -> bool {
    for _ in 0..2 {
        std::hint::black_box(std::time::Instant::now());
        if ready() {
            return true;
        }
    }
    false
}

/// The waker's side, after its SeqCst fence: whether the other side's
/// sleeping flag is up, taking it down if so (as utp's `notify` takes its
/// waiter word), so that a sleep costs one wake-up call.
///
/// When the flag stayed up until the sleeper had woken and lowered it
/// itself, a producer publishing 4 KiB messages made a futex call for each
/// message it published meanwhile (a wake-up takes tens of microseconds on
/// this host), and utp streamed 4 KiB at 1.4-2.2x the futex ring.
pub fn take_down(sleeping: &AtomicU32) -> bool {
    // The load first: no read-modify-write (and no line taken from the
    // sleeper) while nobody sleeps, which is every message of a busy link.
    sleeping.load(Ordering::Relaxed) != 0 && sleeping.swap(0, Ordering::Relaxed) != 0
}
