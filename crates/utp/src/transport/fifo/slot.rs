//! [`SessionSlot`]: the one session a FIFO pair serves at a time.

use crate::channel::Deadline;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Whether a session holds the FIFO pair, and a way to wait for it to end.
///
/// The listener waits on it while a session runs, instead of looking again
/// every few milliseconds: the session ends on another thread (its channel
/// closed or dropped), which wakes the listener at once. A listener that
/// woke every 2 ms for nothing also made the session's own wake-ups faster
/// on a virtual machine (a vCPU woken often is woken sooner), so the FIFO
/// calculator ran 3–16 % ahead of a plain FIFO server.
#[derive(Debug, Default)]
pub(super) struct SessionSlot {
    busy: Mutex<bool>,
    freed: Condvar,
}

impl SessionSlot {
    fn busy(&self) -> MutexGuard<'_, bool> {
        // A panic elsewhere cannot leave a bool half-written.
        self.busy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a session holds the pair now.
    pub(super) fn is_taken(&self) -> bool {
        *self.busy()
    }

    /// A session starts.
    pub(super) fn take(&self) {
        *self.busy() = true;
    }

    /// The session has ended: the next client may start.
    pub(super) fn free(&self) {
        *self.busy() = false;
        self.freed.notify_all();
    }

    /// Waits until no session holds the pair; `false` if `deadline` passes first.
    pub(super) fn wait_free(&self, deadline: Deadline) -> bool {
        let busy = self.busy();
        let busy = match deadline.remaining() {
            None => self
                .freed
                .wait_while(busy, |busy| *busy)
                .unwrap_or_else(PoisonError::into_inner),
            Some(left) => {
                self.freed
                    .wait_timeout_while(busy, left, |busy| *busy)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        !*busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn a_free_slot_is_free_at_once_and_a_taken_one_times_out() {
        let slot = SessionSlot::default();
        assert!(slot.wait_free(Deadline::after(Some(Duration::ZERO))));
        slot.take();
        assert!(slot.is_taken());
        let started = Instant::now();
        assert!(!slot.wait_free(Deadline::after(Some(Duration::from_millis(20)))));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    /// The waiter wakes when the session ends, not at its deadline.
    #[test]
    fn the_end_of_a_session_wakes_the_waiter() {
        let slot = Arc::new(SessionSlot::default());
        slot.take();
        let ender = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                slot.free();
            })
        };
        let started = Instant::now();
        assert!(slot.wait_free(Deadline::after(Some(Duration::from_secs(30)))));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(!slot.is_taken());
        ender.join().unwrap();
    }
}
