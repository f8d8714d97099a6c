//! Frame timestamps without a clock read per frame.
//!
//! `SystemTime::now()` costs ~46 ns here (vDSO `clock_gettime` in a KVM
//! guest), a large share of a ~100 ns spin-mode message. On x86-64 the link
//! reads the invariant TSC instead (a few ns) and converts it with a rate
//! measured against the real clock, re-anchored at least every
//! [`REANCHOR`]. Timestamps stay within a few µs of `now_micros()`; until the
//! rate is known (the first 10 ms of a link) and on other architectures the
//! real clock is read.

use crate::frame::now_micros;
use std::time::Duration;

/// How often the TSC-to-µs conversion is re-anchored to the real clock.
pub const REANCHOR: Duration = Duration::from_millis(10);

/// Largest TSC gap (~30 µs at 3 GHz) around a clock read for it to anchor.
const MAX_ANCHOR_TICKS: u64 = 100_000;

/// A per-link source of frame timestamps (µs since the Unix epoch).
#[derive(Debug, Default)]
pub struct FrameClock {
    /// TSC and µs at the last anchor.
    anchor: Option<(u64, u64)>,
    /// µs per TSC tick, once measured; ticks per REANCHOR.
    rate: Option<(f64, u64)>,
}

#[cfg(target_arch = "x86_64")]
fn ticks() -> Option<u64> {
    // The TSC is invariant on every x86-64 CPU utp targets (constant_tsc);
    // a non-monotonic reading is caught below and falls back to the clock.
    // SAFETY: RDTSC has no preconditions (it reads a counter present on
    // every x86-64 CPU); the intrinsic is `unsafe` only by convention.
    Some(unsafe { core::arch::x86_64::_rdtsc() })
}

#[cfg(not(target_arch = "x86_64"))]
fn ticks() -> Option<u64> {
    None
}

impl FrameClock {
    /// The current time in µs since the Unix epoch.
    #[inline]
    pub fn now_micros(&mut self) -> u64 {
        let Some(t) = ticks() else {
            return now_micros();
        };
        if let (Some((t0, us0)), Some((per_tick, span))) = (self.anchor, self.rate) {
            let elapsed = t.wrapping_sub(t0);
            if elapsed < span {
                return us0 + (elapsed as f64 * per_tick) as u64;
            }
        }
        self.reanchor(t)
    }

    #[cold]
    fn reanchor(&mut self, t: u64) -> u64 {
        let us = now_micros();
        // The (TSC, µs) pair is only an anchor if nothing (preemption, a
        // migration) came between the two reads: bracket the clock read.
        let t_after = ticks().unwrap_or(t);
        if t_after.wrapping_sub(t) > MAX_ANCHOR_TICKS {
            return us;
        }
        if let Some((t0, us0)) = self.anchor {
            let (dt, dus) = (t.wrapping_sub(t0), us.saturating_sub(us0));
            // Only trust a measurement over a long enough, sane interval.
            if dus >= REANCHOR.as_micros() as u64 && dt > 0 && dt < u64::MAX / 2 {
                let per_tick = dus as f64 / dt as f64;
                let span = (REANCHOR.as_micros() as f64 / per_tick) as u64;
                self.rate = Some((per_tick, span));
                self.anchor = Some((t, us));
            } else if dt >= u64::MAX / 2 {
                // TSC went backwards (migration to an unsynchronised CPU):
                // start over.
                self.rate = None;
                self.anchor = Some((t, us));
            }
        } else {
            self.anchor = Some((t, us));
        }
        us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_close_to_the_real_clock() {
        let mut clock = FrameClock::default();
        let start = std::time::Instant::now();
        let (mut worst, mut samples) = (0i64, 0);
        while start.elapsed() < Duration::from_millis(60) {
            let before = now_micros() as i64;
            let ours = clock.now_micros() as i64;
            let after = now_micros() as i64;
            if after - before > 50 {
                continue; // preempted while sampling: says nothing about the clock
            }
            samples += 1;
            worst = worst.max(before - ours).max(ours - after);
        }
        assert!(samples > 100);
        assert!(worst < 200, "off by {worst} µs from the real clock");
    }
}
