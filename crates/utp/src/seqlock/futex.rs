//! Futex wait and wake on a 32-bit word of a shared mapping: the low 32 bits
//! of a seqlock cell's sequence word, and the pub/sub ring's wake words.
//!
//! `rustix::thread::futex` takes an `&AtomicU32`, which would be a second,
//! differently sized atomic view of the sequence word. The raw system call
//! takes an address instead: the kernel reads the 4 bytes itself, which is
//! no access in the Rust memory model, so the only Rust-level view of the
//! word stays the `AtomicU64`.

use std::time::Duration;

/// Sleeps while the 32 bits at `addr` equal `expected`, at most `timeout`.
/// Shared (not private) futex, so a waker in another process reaches it.
/// Spurious and early returns are normal: callers re-check.
pub(crate) fn wait(addr: *const u32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `addr` is 4-aligned inside a live shared mapping (the caller's
    // `Header` invariants); FUTEX_WAIT only reads it, `ts` outlives the call,
    // and the unused arguments are null/0 as futex(2) allows.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every waiter sleeping on `addr`, in any process.
pub(crate) fn wake_all(addr: *const u32) {
    // SAFETY: as in `wait`: a live, aligned shared address; FUTEX_WAKE does
    // not access user memory beyond looking up the futex key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}
