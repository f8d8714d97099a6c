//! `SIGUSR1` notices, the seeds' "simple notification" (signal-hook).
//!
//! A reader puts its pid in one of the cell's 8 signal slots; the writer
//! sends `SIGUSR1` to every slot's pid after each publish. Limits:
//!
//! - **Coalescing**: standard signals are not queued. Any number of
//!   publishes while a signal is pending deliver it once: a signal means
//!   "at least one update", never "exactly one"; read the cell for the value.
//! - **Async-signal-safety**: the handler (installed here through
//!   signal-hook) only writes a byte to a socket; read the cell outside it.
//!   Other signal handlers for `SIGUSR1` in the process also run.
//! - **Interrupted calls**: a delivery can interrupt a blocking system call
//!   in the subscriber (`EINTR`) unless it was restarted (`SA_RESTART`,
//!   which signal-hook sets).
//! - **Cost and reach**: one `kill(2)` per subscriber per publish; 8
//!   subscribers at most; same user only. A subscriber that crashes leaves
//!   its pid until the writer sees `ESRCH`; if the pid is reused meanwhile,
//!   that process gets `SIGUSR1`, which kills a program that does not handle
//!   it. Prefer the futex or eventfd paths where that matters.

use super::layout::{Header, OFF_SIGNAL_FLAG, SIGNAL_SLOTS};
use crate::channel::Deadline;
use crate::error::{Error, Result};
use crate::shm::sync::Ordering;
use crate::transport::wait::{Ready, wait_ready};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A reader's subscription to `SIGUSR1` notices; unsubscribes on drop.
#[derive(Debug)]
pub struct SignalSubscription<'a> {
    header: &'a Header,
    slot: usize,
    pid: u32,
    rx: UnixStream,
    action: signal_hook::SigId,
}

impl<'a> SignalSubscription<'a> {
    /// Installs a `SIGUSR1` handler (before anything can signal us), then
    /// takes a free slot (or one whose pid is dead).
    pub(crate) fn new(header: &'a Header) -> Result<Self> {
        let (rx, tx) = UnixStream::pair().map_err(|e| Error::io("socketpair", e))?;
        rx.set_nonblocking(true)
            .map_err(|e| Error::io("set_nonblocking", e))?;
        let action = signal_hook::low_level::pipe::register(signal_hook::consts::SIGUSR1, tx)
            .map_err(|e| Error::io("install SIGUSR1 handler", e))?;
        let pid = std::process::id();
        for slot in 0..SIGNAL_SLOTS {
            let word = header.signal_slot(slot);
            let old = word.load(Ordering::Relaxed);
            if (old == 0 || !crate::shm::reclaim::pid_alive(old))
                && word
                    .compare_exchange(old, pid, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                header.u32_at(OFF_SIGNAL_FLAG).store(1, Ordering::SeqCst);
                return Ok(SignalSubscription {
                    header,
                    slot,
                    pid,
                    rx,
                    action,
                });
            }
        }
        signal_hook::low_level::unregister(action);
        Err(Error::InUse {
            endpoint: "seqlock signal slots".into(),
            hint: Some(format!("all {SIGNAL_SLOTS} are taken by live processes")),
        })
    }

    /// Whether at least one `SIGUSR1` arrived since the last call; does
    /// not block.
    pub fn take(&self) -> bool {
        let mut buf = [0u8; 64];
        let mut got = false;
        while let Ok(n) = (&self.rx).read(&mut buf) {
            if n == 0 {
                break;
            }
            got = true;
        }
        got
    }

    /// Waits up to `timeout` for a `SIGUSR1`; returns whether one came.
    /// (Another signal that interrupts the wait does not end it early.)
    pub fn wait(&self, timeout: Duration) -> bool {
        if self.take() {
            return true;
        }
        // Ready or timed out, both end the wait; an error reads as nothing.
        let _ = wait_ready(
            &self.rx,
            Ready::Read,
            Deadline::after(Some(timeout)),
            "a SIGUSR1 notice",
            Some(timeout),
        );
        self.take()
    }
}

impl Drop for SignalSubscription<'_> {
    fn drop(&mut self) {
        let _ = self.header.signal_slot(self.slot).compare_exchange(
            self.pid,
            0,
            Ordering::SeqCst,
            Ordering::Relaxed,
        );
        // SIGUSR1 stays handled (ignored) afterwards: signal-hook does not
        // restore the default action, which would terminate the process.
        signal_hook::low_level::unregister(self.action);
    }
}

/// Writer side of signal notices: sends `SIGUSR1` to each subscribed pid,
/// freeing slots whose process is gone. (The flag that brings the writer
/// here is never cleared: clearing it could race with a new subscriber.)
pub(crate) fn signal_subscribers(h: &Header) {
    for i in 0..SIGNAL_SLOTS {
        let slot = h.signal_slot(i);
        let pid = slot.load(Ordering::Relaxed);
        // Untrusted: a value above i32::MAX would name a process group.
        let Some(p) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            continue;
        };
        if rustix::process::kill_process(p, rustix::process::Signal::USR1)
            == Err(rustix::io::Errno::SRCH)
        {
            let _ = slot.compare_exchange(pid, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}
