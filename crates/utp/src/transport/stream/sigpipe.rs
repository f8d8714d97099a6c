//! Writes to pipes and FIFOs that cannot raise SIGPIPE.
//!
//! A write to a pipe whose reader is gone fails with `EPIPE` and also
//! raises SIGPIPE, whose default action ends the process. Sockets are
//! written with `MSG_NOSIGNAL`; a pipe has no such flag. Rust and Python
//! programs ignore SIGPIPE from the start; a C or Swift program (through
//! utp-ffi) does not, and a Rust program may have set it back to its
//! default on purpose (so that `| head` ends it quietly). In such a process
//! a peer that leaves must end its link with an error, not the process.
//!
//! So a stream channel over pipes notes, when it is made, whether SIGPIPE
//! is at its default ([`kills_the_process`]); if it is, each write blocks
//! the signal in the calling thread for its duration and takes back the
//! one it raised ([`shielded`], the method of PostgreSQL's libpq). That is
//! two system calls more per write (about 1 µs a pair on the AMD guest of
//! docs/benchmarks/journal.md), paid only where the signal would kill: a
//! process that ignores SIGPIPE or handles it writes as before. The
//! process's disposition is never changed.

use rustix::io::Errno;
use std::mem::MaybeUninit;

#[cfg(test)]
thread_local! {
    /// How many writes this thread shielded: for the tests that a process
    /// ignoring SIGPIPE pays nothing, and one at its default does.
    pub(crate) static SHIELDED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether SIGPIPE's action in this process is the default one (ending
/// it). False when the query fails: nothing is shielded then, as before.
pub(crate) fn kills_the_process() -> bool {
    let mut current = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only reads the current one into `current`,
    // which is valid for writing one `sigaction`.
    let rc = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), current.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: sigaction returned 0, so it filled `current`.
    let current = unsafe { current.assume_init() };
    current.sa_sigaction == libc::SIG_DFL
}

/// The set holding SIGPIPE alone.
fn sigpipe_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: `set` is valid for writing a sigset_t; sigemptyset
    // initialises it and sigaddset adds a valid signal number to it.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        set.assume_init()
    }
}

/// Runs `write` with SIGPIPE blocked in this thread; if it failed with
/// `EPIPE`, takes the SIGPIPE it raised before unblocking. A thread that
/// blocks SIGPIPE already is left as it is (the signal is its own to take).
pub(crate) fn shielded(write: impl FnOnce() -> Result<usize, Errno>) -> Result<usize, Errno> {
    #[cfg(test)]
    SHIELDED.with(|n| n.set(n.get() + 1));
    let pipe_only = sigpipe_set();
    let mut before = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: both pointers are to initialised or writable sigset_t values
    // owned by this frame; SIG_BLOCK only adds to this thread's mask.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_only, before.as_mut_ptr()) };
    if rc != 0 {
        return write();
    }
    // SAFETY: pthread_sigmask returned 0, so it filled `before`.
    let before = unsafe { before.assume_init() };
    // SAFETY: `before` is an initialised sigset_t.
    if unsafe { libc::sigismember(&before, libc::SIGPIPE) } == 1 {
        return write();
    }
    let result = write();
    if result == Err(Errno::PIPE) {
        take_pending(&pipe_only);
    }
    // SAFETY: restores the mask read above; `before` is initialised.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut()) };
    result
}

/// Takes the SIGPIPE a failed write left pending on this thread (it was
/// unblocked until the write, so any pending one is the write's), without
/// waiting.
fn take_pending(pipe_only: &libc::sigset_t) {
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: `pipe_only` and `now` are initialised and outlive the call;
        // a null info pointer is allowed.
        let signal = unsafe { libc::sigtimedwait(pipe_only, std::ptr::null_mut(), &now) };
        if signal == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this thread blocks SIGPIPE.
    fn blocked() -> bool {
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: a null new set only reads this thread's mask into `set`.
        unsafe {
            assert_eq!(
                libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), set.as_mut_ptr()),
                0
            );
            libc::sigismember(set.as_ptr(), libc::SIGPIPE) == 1
        }
    }

    #[test]
    fn a_shielded_write_gives_the_thread_its_mask_back() {
        // A thread of its own keeps a mask left wrong from other tests. (The
        // harness ignores SIGPIPE: that the signal is taken back, and the
        // process lives, is tested by a child at the default, in
        // stream/tests.rs.)
        std::thread::spawn(|| {
            let (read_end, write_end) = rustix::pipe::pipe().unwrap();
            drop(read_end);
            let result = shielded(|| rustix::io::write(&write_end, b"x"));
            assert_eq!(result, Err(Errno::PIPE));
            assert!(!blocked(), "the mask is restored");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_test_process_ignores_sigpipe_so_nothing_would_be_shielded() {
        assert!(!kills_the_process(), "the Rust runtime ignores SIGPIPE");
    }
}
