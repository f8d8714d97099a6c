//! The subscribers' waiting policy, the same for every implementation:
//! poll, `spin_loop()` between empty polls, and — only when other
//! subscribers share the CPU — give it away with `sched_yield` once
//! [`SLICE_NS`] has passed since the last yield.
//!
//! Why: on a 2-vCPU machine 2 or 4 subscribers share one CPU. Pure
//! spinners would each keep it for a whole scheduler slice (milliseconds)
//! while the others' messages wait; a blocking wait (futex) is not
//! available alike in all three implementations and costs a wake-up per
//! message. Spin-then-yield makes subscribers sharing a CPU take turns
//! every few microseconds. A subscriber alone on its CPU never yields: on
//! a busy machine a yield hands the CPU to whatever else is runnable
//! there (someone's compiler) for a whole slice. The budget is time, not
//! a number of polls, so an implementation whose poll is slower does not
//! get longer turns than one whose poll is fast.
//!
//! It also tells which samples were taken on-CPU: a subscriber reads the
//! clock every few polls anyway, and a jump of more than [`GAP_NS`]
//! between two readings (or a yield) means it lost its CPU. A message
//! sent after the subscriber last got its CPU back and received before it
//! lost it again measured the implementations, not the scheduler (on this
//! kind of shared machine a pinned spinner is off its CPU a third of the
//! time, for milliseconds at once).

use super::now_ns;

/// Longest a subscriber keeps its CPU before yielding it (when shared).
pub const SLICE_NS: u64 = 2_000;
/// A gap between two clock readings longer than this was spent off-CPU
/// (a spinning subscriber reads the clock every [`CLOCK_EVERY`] polls:
/// well under a microsecond apart).
pub const GAP_NS: u64 = 10_000;
/// Polls between two clock reads (a clock read costs several polls).
const CLOCK_EVERY: u32 = 16;

/// Spin-then-yield bookkeeping of one subscriber.
#[derive(Debug)]
pub struct Idle {
    shared: bool,
    started_ns: u64,
    last_yield_ns: u64,
    last_seen_ns: u64,
    on_cpu_since_ns: u64,
    calls: u32,
    /// Yields so far.
    pub yields: u64,
}

impl Idle {
    /// For a subscriber whose CPU `sharing` subscribers use (itself included).
    pub fn new(sharing: usize) -> Idle {
        let now = now_ns();
        Idle {
            shared: sharing > 1,
            started_ns: now,
            last_yield_ns: now,
            last_seen_ns: now,
            on_cpu_since_ns: now,
            calls: 0,
            yields: 0,
        }
    }

    /// Records a clock reading `now` (CLOCK_MONOTONIC ns): a jump since
    /// the last one starts a new on-CPU stretch.
    pub fn saw(&mut self, now: u64) {
        if now.saturating_sub(self.last_seen_ns) > GAP_NS {
            self.on_cpu_since_ns = now;
        }
        self.last_seen_ns = now;
    }

    /// Whether a message sent at `sent` and received now (after [`saw`](Self::saw))
    /// found this subscriber on its CPU all along.
    pub fn on_cpu_since(&self, sent: u64) -> bool {
        self.on_cpu_since_ns <= sent
    }

    /// After every poll, empty or not: yields once the slice is used up,
    /// if the CPU is shared (also while messages keep coming, so a
    /// subscriber with a backlog does not starve the others). Returns
    /// whether it yielded.
    pub fn after_poll(&mut self, empty: bool) -> bool {
        if empty {
            std::hint::spin_loop();
        }
        self.calls = self.calls.wrapping_add(1);
        if self.calls % CLOCK_EVERY != 0 {
            return false;
        }
        let now = now_ns();
        self.saw(now);
        if self.shared && now.saturating_sub(self.last_yield_ns) >= SLICE_NS {
            std::thread::yield_now();
            self.yields += 1;
            // Another subscriber may have run meanwhile: a new stretch.
            let back = now_ns();
            self.last_yield_ns = back;
            self.last_seen_ns = back;
            self.on_cpu_since_ns = back;
            return true;
        }
        false
    }

    /// Nanoseconds since this subscriber started.
    pub fn elapsed_ns(&self) -> u64 {
        now_ns().saturating_sub(self.started_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_in_the_clock_starts_a_new_on_cpu_stretch() {
        let mut idle = Idle::new(1);
        let t = idle.last_seen_ns;
        idle.saw(t + 1_000);
        assert!(idle.on_cpu_since(t + 500), "continuous: on-CPU");
        idle.saw(t + 1_000 + GAP_NS + 1);
        assert!(!idle.on_cpu_since(t + 500), "sent before the gap");
        assert!(idle.on_cpu_since(t + 1_000 + GAP_NS + 1));
    }

    #[test]
    fn alone_it_never_yields() {
        let mut idle = Idle::new(1);
        for _ in 0..100_000 {
            assert!(!idle.after_poll(true));
        }
        assert_eq!(idle.yields, 0);
    }

    #[test]
    fn sharing_it_yields_at_most_once_per_slice() {
        let mut idle = Idle::new(2);
        assert_eq!(idle.yields, 0);
        while idle.elapsed_ns() < 100 * SLICE_NS {
            idle.after_poll(true);
        }
        // A yield may give the CPU away for milliseconds on a busy machine,
        // so only the bounds are certain: it yielded, and not more often
        // than once per slice.
        let slices = idle.elapsed_ns() / SLICE_NS;
        assert!(idle.yields >= 1);
        assert!(
            idle.yields <= slices + 1,
            "{} yields in {slices} slices",
            idle.yields
        );
    }
}
