//! Futex wait and wake on a 32-bit word of a shared mapping (shared, not
//! private, futexes: the waker is in another process). The raw system call
//! takes an address: the kernel reads the word itself, and a read-only
//! mapping is enough to wait.

use std::time::Duration;

/// Sleeps while the u32 at `addr` equals `expected`, at most `timeout`.
/// Spurious and early returns are normal: callers re-check.
pub fn wait(addr: *const u32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `addr` is a 4-aligned word of a live mapping (Mapping::addr
    // checks); FUTEX_WAIT only reads it; `ts` outlives the call.
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

/// Wakes every waiter on `addr`, in any process.
pub fn wake_all(addr: *const u32) {
    // SAFETY: as in `wait`; FUTEX_WAKE only looks up the futex key.
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
