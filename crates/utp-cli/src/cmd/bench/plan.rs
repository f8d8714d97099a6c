//! How much each run does: iteration counts and repeats for `--quick` and
//! for a full run, and the payload sizes of each mode.

use super::spec::Mode;

/// Round-trip payload sizes.
pub const RTT_SIZES: [usize; 4] = [8, 64, 1024, 65536];
/// Streaming message sizes.
pub const STREAM_SIZES: [usize; 4] = [64, 4096, 65536, 1 << 20];
/// The calculator's one "size": its requests are short text.
pub const CALC_SIZES: [usize; 1] = [super::spec::CALC_MSG_LEN];
/// memcpy buffer sizes: in cache, and far beyond it.
pub const MEMCPY_SIZES: [usize; 2] = [64 << 10, 64 << 20];

/// Counts for every run.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Plan {
    /// Repeats of each point (utp and raw alternate within each repeat).
    pub repeats: usize,
    /// Untimed round trips before timing.
    pub rtt_warmup: u64,
    /// Timed round trips for payloads up to 1 KiB.
    pub rtt_iterations: u64,
    /// Timed round trips for larger payloads.
    pub rtt_iterations_large: u64,
    /// Bytes each streaming run moves (at least).
    pub stream_bytes: u64,
    /// Messages each streaming run sends (at least).
    pub stream_min_messages: u64,
    /// Calculator calls per run.
    pub calc_calls: u64,
    /// Bytes each memcpy run copies.
    pub memcpy_bytes: u64,
    /// Round trips of a placement probe.
    pub probe_iterations: u64,
    /// Seconds a peer waits for anything before it gives up.
    pub idle_timeout_s: u64,
}

impl Plan {
    /// The full run: 100+ MiB per streaming point, 3 repeats.
    pub fn full() -> Plan {
        Plan {
            repeats: 3,
            rtt_warmup: 2_000,
            rtt_iterations: 50_000,
            rtt_iterations_large: 5_000,
            stream_bytes: 128 << 20,
            stream_min_messages: 64,
            calc_calls: 50_000,
            memcpy_bytes: 8 << 30,
            probe_iterations: 20_000,
            idle_timeout_s: 30,
        }
    }

    /// `--quick`: every mechanism in well under 90 s on 2 cores.
    pub fn quick() -> Plan {
        Plan {
            repeats: 3,
            rtt_warmup: 200,
            rtt_iterations: 1_000,
            rtt_iterations_large: 200,
            stream_bytes: 2 << 20,
            stream_min_messages: 16,
            calc_calls: 1_000,
            memcpy_bytes: 256 << 20,
            probe_iterations: 2_000,
            idle_timeout_s: 10,
        }
    }

    /// Untimed round trips before a round-trip run's timing starts.
    pub fn warmup(&self, size: usize) -> u64 {
        if size > 1024 {
            self.rtt_warmup / 4
        } else {
            self.rtt_warmup
        }
    }

    /// Messages, round trips (warm-up included) or calls of one run.
    pub fn count(&self, mode: Mode, size: usize) -> u64 {
        match mode {
            Mode::Rtt if size > 1024 => self.warmup(size) + self.rtt_iterations_large,
            Mode::Rtt => self.rtt_warmup + self.rtt_iterations,
            Mode::Stream => self
                .stream_bytes
                .div_ceil(size as u64)
                .max(self.stream_min_messages),
            Mode::Calc => self.calc_calls,
        }
    }

    /// Payload sizes of `mode`.
    pub fn sizes(mode: Mode) -> &'static [usize] {
        match mode {
            Mode::Rtt => &RTT_SIZES,
            Mode::Stream => &STREAM_SIZES,
            Mode::Calc => &CALC_SIZES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_stream_point_moves_at_least_100_mib() {
        let plan = Plan::full();
        for size in STREAM_SIZES {
            assert!(plan.count(Mode::Stream, size) * size as u64 >= 100 << 20);
        }
    }
}
