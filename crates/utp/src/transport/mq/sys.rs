//! The POSIX message-queue calls utp uses, the only `unsafe` of the `mq`
//! transport. rustix has no message queues, so these wrap `libc`.
//!
//! On Linux a message-queue descriptor (`mqd_t`) is an ordinary file
//! descriptor: it is held in an [`OwnedFd`], closed with `close` (which is
//! what `mq_close` does), and can be `flock`ed and polled.

use rustix::io::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Queue attributes fixed at creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    /// Most messages the queue holds.
    pub(crate) max_messages: usize,
    /// Largest message, in bytes.
    pub(crate) message_size: usize,
}

fn errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

fn c_name(name: &str) -> Result<CString, Errno> {
    CString::new(name).map_err(|_| Errno::INVAL)
}

/// `mq_open(3)`: opens (and with `O_CREAT`, creates with `create`) the queue `name`.
pub(crate) fn open(
    name: &str,
    flags: libc::c_int,
    mode: libc::mode_t,
    create: Option<Attr>,
) -> Result<OwnedFd, Errno> {
    let c_name = c_name(name)?;
    // SAFETY: mq_attr is a plain C struct of integers; all-zero is a valid value.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    let attr_ptr = match create {
        Some(a) => {
            attr.mq_maxmsg = a.max_messages as _;
            attr.mq_msgsize = a.message_size as _;
            &mut attr as *mut libc::mq_attr
        }
        None => std::ptr::null_mut(),
    };
    let flags = flags | libc::O_CLOEXEC;
    loop {
        // SAFETY: `c_name` is a NUL-terminated string that outlives the call;
        // the variadic arguments are the mode_t and `mq_attr *` mq_open reads
        // when O_CREAT is set (a null attr pointer means defaults), and
        // `attr` outlives the call.
        let fd = unsafe { libc::mq_open(c_name.as_ptr(), flags, mode as libc::c_uint, attr_ptr) };
        if fd >= 0 {
            // SAFETY: mq_open returned a new descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        match errno() {
            Errno::INTR => continue,
            e => return Err(e),
        }
    }
}

/// `mq_unlink(3)`: removes the name; open descriptors keep working.
pub(crate) fn unlink(name: &str) -> Result<(), Errno> {
    let c_name = c_name(name)?;
    // SAFETY: `c_name` is NUL-terminated and outlives the call.
    if unsafe { libc::mq_unlink(c_name.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// `mq_getattr(3)`: the queue's size limits.
pub(crate) fn attr(fd: BorrowedFd<'_>) -> Result<Attr, Errno> {
    // SAFETY: all-zero is a valid mq_attr (plain integers).
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is an open message-queue descriptor (the caller's OwnedFd
    // came from `open`), and `attr` is a valid, writable mq_attr.
    if unsafe { libc::mq_getattr(fd.as_raw_fd(), &mut attr) } != 0 {
        return Err(errno());
    }
    Ok(Attr {
        max_messages: attr.mq_maxmsg as usize,
        message_size: attr.mq_msgsize as usize,
    })
}

/// An absolute CLOCK_REALTIME time `after` from now, as the timed calls want.
fn abs_timeout(after: Duration) -> libc::timespec {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(after);
    libc::timespec {
        tv_sec: at.as_secs() as libc::time_t,
        tv_nsec: at.subsec_nanos() as _,
    }
}

#[cfg(test)]
thread_local! {
    /// How many timed calls this thread made: for the tests of calls that
    /// must not wait, which must not make one on an empty or full queue.
    pub(crate) static TIMED_CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether a call that must not wait would find the queue at `fd` ready
/// for `events`.
///
/// The timed calls do not return at once when their timeout has already
/// passed: the kernel queues the caller as a waiter and arms a timer for
/// the time given, then reports `ETIMEDOUT`. On the Intel guest measured an
/// expired `mq_timedreceive` on an empty queue took 22.5 µs of the
/// kernel's CPU time (no sleep: the timer's setting up), a `poll` 0.17
/// µs; so a zero wait looks first (and a poll that failed leaves the
/// answer to the call).
fn ready_now(fd: BorrowedFd<'_>, events: rustix::event::PollFlags) -> bool {
    crate::transport::wait::poll_now(fd, events).is_none_or(|got| got.intersects(events))
}

/// `mq_timedsend(3)`: queues `message` with `priority`, waiting at most `wait`
/// for room (`ETIMEDOUT` after that; at once, without a sleep, when `wait`
/// is zero and the queue is full).
pub(crate) fn timed_send(
    fd: BorrowedFd<'_>,
    message: &[u8],
    priority: u32,
    wait: Duration,
) -> Result<(), Errno> {
    if wait.is_zero() && !ready_now(fd, rustix::event::PollFlags::OUT) {
        return Err(Errno::TIMEDOUT);
    }
    #[cfg(test)]
    TIMED_CALLS.with(|n| n.set(n.get() + 1));
    let at = abs_timeout(wait);
    // SAFETY: `fd` is an open message-queue descriptor; `message` is valid
    // for reads of `message.len()` bytes and `at` is a valid timespec, both
    // outliving the call.
    let rc = unsafe {
        libc::mq_timedsend(
            fd.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            priority,
            &at,
        )
    };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// `mq_timedreceive(3)`: takes the oldest message of the highest priority
/// into `buf`, waiting at most `wait`; returns its length and priority
/// (`ETIMEDOUT` when none came; at once, without a sleep, when `wait` is
/// zero and the queue is empty). `buf` must be at least the queue's
/// message size (`EMSGSIZE` otherwise).
pub(crate) fn timed_receive(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    wait: Duration,
) -> Result<(usize, u32), Errno> {
    if wait.is_zero() && !ready_now(fd, rustix::event::PollFlags::IN) {
        return Err(Errno::TIMEDOUT);
    }
    #[cfg(test)]
    TIMED_CALLS.with(|n| n.set(n.get() + 1));
    let at = abs_timeout(wait);
    let mut priority: libc::c_uint = 0;
    // SAFETY: `fd` is an open message-queue descriptor; `buf` is valid for
    // writes of `buf.len()` bytes (the kernel writes at most that many);
    // `priority` and `at` are valid for the duration of the call.
    let n = unsafe {
        libc::mq_timedreceive(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut priority,
            &at,
        )
    };
    if n >= 0 {
        Ok((n as usize, priority))
    } else {
        Err(errno())
    }
}
