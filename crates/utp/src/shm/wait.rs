//! Waiting for data or space: spin, then sleep on a futex in short slices,
//! checking that the peer is still alive between slices.

use super::link::ShmLink;
use super::sync::{AtomicU32, Ordering, futex_wait, spin_hint};
use crate::error::{Error, Result};
use std::time::{Duration, Instant};

/// How a link waits when there is nothing to read or no room to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaitMode {
    /// Spin (with a CPU pause hint) until the condition holds: lowest
    /// latency, burns a core while idle. `?wait=spin`
    Spin,
    /// Sleep on the futex at once: no CPU while idle, a kernel wake-up per
    /// message when the peer is blocked. `?wait=block`
    Block,
    /// Spin for [`ADAPTIVE_SPIN`], then sleep. `?wait=adaptive` (default)
    #[default]
    Adaptive,
}

impl WaitMode {
    /// Parses `spin`, `block` or `adaptive`.
    pub fn parse(raw: &str) -> Option<WaitMode> {
        Some(match raw {
            "spin" => WaitMode::Spin,
            "block" => WaitMode::Block,
            "adaptive" => WaitMode::Adaptive,
            _ => return None,
        })
    }
}

/// Spins before a wait first reads the clock.
const EARLY_SPINS: u32 = 256;

/// How long adaptive mode spins before sleeping.
pub const ADAPTIVE_SPIN: Duration = Duration::from_micros(50);
/// Longest single futex sleep, and the period of liveness checks and
/// heartbeats while waiting. A SIGKILLed peer is noticed within about this
/// long (plus scheduling), well under 100 ms.
pub const SLICE: Duration = Duration::from_millis(10);

/// Which futex word a wait sleeps on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum WaitFor {
    /// Data in our receive ring: its `data_waiters` word.
    Data,
    /// Space in our send ring: its `space_waiters` word.
    Space,
}

impl WaitFor {
    fn what(self) -> &'static str {
        match self {
            WaitFor::Data => "a frame from the shared-memory peer",
            WaitFor::Space => "room in the shared-memory ring (the peer is not reading)",
        }
    }
}

impl ShmLink {
    fn wait_word(&self, on: WaitFor) -> &AtomicU32 {
        match on {
            WaitFor::Data => self.rx.indices().data_waiters(),
            WaitFor::Space => self.tx.indices().space_waiters(),
        }
    }

    /// Calls `poll` until it yields a value, waiting per the link's mode,
    /// for at most `timeout`. Checks the peer every [`SLICE`].
    pub(crate) fn wait_until<T>(
        &mut self,
        on: WaitFor,
        timeout: Option<Duration>,
        mut poll: impl FnMut(&mut ShmLink) -> Result<Option<T>>,
    ) -> Result<T> {
        if let Some(v) = poll(self)? {
            return Ok(v);
        }
        // About to wait: give back what we consumed, so a peer waiting for
        // room in our receive ring is never held up by us waiting too.
        self.rx.flush();
        self.count_consumer_wakes();
        // Spin a little before reading the clock: replies that arrive within
        // a few hundred nanoseconds then cost no clock read at all.
        if self.wait != WaitMode::Block && timeout != Some(Duration::ZERO) {
            for _ in 0..EARLY_SPINS {
                spin_hint();
                if let Some(v) = poll(self)? {
                    return Ok(v);
                }
            }
        }
        // A real wait: the counts `utp inspect` shows catch up first.
        self.flush_counts();
        let start = Instant::now();
        // A timeout too large to be an instant (Duration::MAX) is no deadline.
        let deadline = timeout.and_then(|t| start.checked_add(t));
        let spin_until = match self.wait {
            WaitMode::Spin => None,
            WaitMode::Block => Some(start),
            WaitMode::Adaptive => Some(start + ADAPTIVE_SPIN),
        };
        // The first liveness check comes after one slice: a short wait (the
        // common case when both sides are busy) costs no system call.
        let mut next_check = start + SLICE;
        let mut spins: u32 = 0;
        loop {
            if let Some(v) = poll(self)? {
                return Ok(v);
            }
            spins = spins.wrapping_add(1);
            if spins % 64 != 1 {
                spin_hint();
                continue;
            }
            // Every 64 polls: the per-message checks (closed, the peer's
            // state word, a poisoned region), then the clock.
            if let Err(gone) = self.check_cheap() {
                // The peer may have published its last frame and then
                // closed between our look at the ring and at its state:
                // that frame is delivered before the close is reported.
                return match poll(self)? {
                    Some(v) => Ok(v),
                    None => Err(gone),
                };
            }
            let now = Instant::now();
            if now >= next_check {
                if let Err(gone) = self.check_peer() {
                    // Whatever the peer published before it went is still
                    // delivered: look once more before reporting it gone.
                    return match poll(self)? {
                        Some(v) => Ok(v),
                        None => Err(gone),
                    };
                }
                self.heartbeat();
                next_check = now + SLICE;
            }
            if let Some(d) = deadline
                && now >= d
            {
                return Err(Error::Timeout {
                    waiting_for: on.what(),
                    after: timeout.unwrap_or_default(),
                });
            }
            if spin_until.is_none_or(|until| now < until) {
                spin_hint();
                continue;
            }
            super::ring::arm(self.wait_word(on));
            if let Some(v) = poll(self)? {
                self.wait_word(on).store(0, Ordering::Relaxed);
                return Ok(v);
            }
            let mut sleep = next_check.saturating_duration_since(now).min(SLICE);
            if let Some(d) = deadline {
                sleep = sleep.min(d.saturating_duration_since(now));
            }
            if let Some(counters) = &self.counters {
                counters.add_shared(crate::stats::Counter::Waits, 1);
            }
            futex_wait(self.wait_word(on), 1, sleep.max(Duration::from_micros(1)));
            spins = 0;
        }
    }
}
