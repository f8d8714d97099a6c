//! The one place the shared-memory link gets its atomics and its futex.
//!
//! Under `cfg(loom)` the atomics are loom's, so the ring's index protocol
//! can be model-checked (`crates/utp/tests/loom_ring.rs`); the futex becomes
//! a yield, because loom models threads, not the kernel. Run the model with
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p utp --test loom_ring
//! ```

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use std::time::Duration;

/// Tells the CPU (or loom's scheduler) that this thread is spinning.
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Sleeps while `*word == expected`, at most `timeout`.
///
/// Uses a *shared* (not `FUTEX_PRIVATE`) futex, so a waker in another process
/// that maps the same page reaches it. Spurious and early returns are
/// normal; callers re-check their condition in a loop.
#[cfg(not(loom))]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    use rustix::thread::futex;
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: timeout.subsec_nanos() as i64,
    };
    // EAGAIN (value changed), ETIMEDOUT and EINTR all mean "re-check".
    let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
}

/// Wakes every thread sleeping in [`futex_wait`] on `word`, in any process.
#[cfg(not(loom))]
pub(crate) fn futex_wake(word: &AtomicU32) {
    use rustix::thread::futex;
    let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
}

/// Loom stand-in: yields instead of sleeping.
#[cfg(loom)]
#[allow(dead_code)] // the loom models do not reach the waiting code
pub(crate) fn futex_wait(_word: &AtomicU32, _expected: u32, _timeout: Duration) {
    loom::thread::yield_now();
}

/// Loom stand-in: nothing to wake, waiters only yield.
#[cfg(loom)]
pub(crate) fn futex_wake(_word: &AtomicU32) {}

/// A pointer to the `AtomicU64` at `p` in shared memory.
///
/// # Safety
///
/// `p` must be 8-byte aligned and point to 8 mapped bytes. Any bit pattern
/// is a valid `u64`, so whatever another process wrote there is fine.
#[cfg(not(loom))]
pub unsafe fn atomic_u64_at(p: *mut u8) -> std::ptr::NonNull<AtomicU64> {
    debug_assert!(p as usize % 8 == 0);
    // SAFETY: the caller guarantees `p` is non-null (mapped) and aligned;
    // AtomicU64 has the size and alignment of u64.
    unsafe { std::ptr::NonNull::new_unchecked(p.cast::<AtomicU64>()) }
}

/// A pointer to the `AtomicU32` at `p` in shared memory.
///
/// # Safety
///
/// `p` must be 4-byte aligned and point to 4 mapped bytes.
#[cfg(not(loom))]
pub unsafe fn atomic_u32_at(p: *mut u8) -> std::ptr::NonNull<AtomicU32> {
    debug_assert!(p as usize % 4 == 0);
    // SAFETY: the caller guarantees `p` is non-null (mapped) and aligned;
    // AtomicU32 has the size and alignment of u32.
    unsafe { std::ptr::NonNull::new_unchecked(p.cast::<AtomicU32>()) }
}
