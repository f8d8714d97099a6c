//! Waiting for a file descriptor to become ready, with an optional deadline.

use crate::channel::Deadline;
use crate::error::{Error, Result};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use std::os::fd::AsFd;
use std::time::Duration;

/// Readiness to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    /// Data (or EOF, or an error) can be read.
    Read,
    /// Data can be written.
    Write,
}

#[cfg(test)]
thread_local! {
    /// How many polls this thread made (both functions here): for the tests
    /// of looks that must not cost a `poll` before the read or write itself.
    pub(crate) static POLLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn count_poll() {
    POLLS.with(|n| n.set(n.get() + 1));
}

/// Waits until `fd` is ready, or fails with [`Error::Timeout`] when `deadline` passes.
///
/// Hang-ups and errors count as ready: the following read or write reports them.
pub(crate) fn wait_ready(
    fd: impl AsFd,
    ready: Ready,
    deadline: Deadline,
    waiting_for: &'static str,
    total: Option<Duration>,
) -> Result<()> {
    let flags = match ready {
        Ready::Read => PollFlags::IN,
        Ready::Write => PollFlags::OUT,
    };
    let mut fds = [PollFd::new(&fd, flags)];
    poll_until(&mut fds, deadline, waiting_for, total)
}

/// What ended a [`wait_ready_or_hangup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woke {
    /// The descriptor waited on is ready (or reports an error or hang-up
    /// of its own, which the following call reports).
    Ready,
    /// The watched descriptor hung up (its writer closed), room or not.
    HungUp,
}

/// [`wait_ready`] for room in `write`, also ending when `watch` (a reader
/// whose writer is the same peer) hangs up; [`Error::Timeout`] at `deadline`.
pub(crate) fn wait_ready_or_hangup(
    write: impl AsFd,
    watch: impl AsFd,
    deadline: Deadline,
    waiting_for: &'static str,
    total: Option<Duration>,
) -> Result<Woke> {
    // No events asked of `watch`: only its hang-up (or error) wakes us,
    // not the replies waiting in it.
    let mut fds = [
        PollFd::new(&write, PollFlags::OUT),
        PollFd::new(&watch, PollFlags::empty()),
    ];
    poll_until(&mut fds, deadline, waiting_for, total)?;
    // The conversation is over even if there is room.
    Ok(if fds[1].revents().is_empty() {
        Woke::Ready
    } else {
        Woke::HungUp
    })
}

/// Polls `fds` until one of them reports something, or fails with
/// [`Error::Timeout`] when `deadline` passes; a signal restarts the poll
/// with the time left.
fn poll_until(
    fds: &mut [PollFd<'_>],
    deadline: Deadline,
    waiting_for: &'static str,
    total: Option<Duration>,
) -> Result<()> {
    loop {
        let timeout = deadline.remaining().map(|d| Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        #[cfg(test)]
        count_poll();
        match poll(fds, timeout.as_ref()) {
            Ok(0) => {
                return Err(Error::Timeout {
                    waiting_for,
                    after: total.unwrap_or_default(),
                });
            }
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(Error::io("poll", e)),
        }
    }
}

/// The events of `fd` right now, of those asked for plus hang-ups and
/// errors (a `poll` that does not wait: a zero timeout never sleeps nor
/// arms a timer); `None` if the poll failed.
pub(crate) fn poll_now(fd: impl AsFd, events: PollFlags) -> Option<PollFlags> {
    let mut fds = [PollFd::new(&fd, events)];
    #[cfg(test)]
    count_poll();
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(0) => Some(PollFlags::empty()),
        Ok(_) => Some(fds[0].revents()),
        Err(_) => None,
    }
}
