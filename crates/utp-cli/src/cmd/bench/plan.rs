//! How much each run does: warm-up, minimum duration and counts for
//! `--quick` and for a full run, and the payload sizes of each mode.
//!
//! Every timed run lasts at least `min_seconds` *and* `min_*` operations (a
//! byte count alone made fast points last microseconds). Runs over a
//! shared-memory ring first go once round the ring, twice over, untimed:
//! otherwise the first lap's page faults (~10 µs a page) land in the figures.
//! The quick plan stays short by measuring fewer sizes, not shorter runs.

use super::rtt::Budget;
use super::spec::Mode;

/// Round-trip payload sizes of a full run.
pub const RTT_SIZES: [usize; 4] = [8, 64, 1024, 65536];
/// Streaming message sizes of a full run.
pub const STREAM_SIZES: [usize; 4] = [64, 4096, 65536, 1 << 20];
/// Sizes of the streams sent in batches of a full run: small messages,
/// where a call per message costs most (at 64 KiB one system call moves
/// one message anyway).
pub const BATCH_SIZES: [usize; 2] = [64, 1024];
/// Sizes of the streams sent in batches of `--quick`.
pub const QUICK_BATCH_SIZES: [usize; 1] = [64];
/// The calculator's one "size": its requests are short text.
pub const CALC_SIZES: [usize; 1] = [super::spec::CALC_MSG_LEN];
/// Round-trip sizes of `--quick`: the size the summary quotes, and a large one.
pub const QUICK_RTT_SIZES: [usize; 2] = [64, 65536];
/// Streaming sizes of `--quick`.
pub const QUICK_STREAM_SIZES: [usize; 2] = [64, 65536];
/// The fixed-rate mode's request size.
pub const RATE_SIZES: [usize; 1] = [64];
/// memcpy buffer sizes: in cache, and far beyond it.
pub const MEMCPY_SIZES: [usize; 2] = [64 << 10, 64 << 20];

/// The smallest shared-memory ring the benchmark gives utp and the raw ring
/// (`?ring=2M`) unless `--ring` says otherwise.
pub const MIN_RING_BYTES: u64 = 2 << 20;

/// Messages of the point's size that the ring holds at least.
pub const RING_MESSAGES: u64 = 4;

/// Bytes of the ring (per direction) that utp's shared-memory link and the
/// raw ring both get at a point of `size`-byte messages: `floor` (2 MiB,
/// [`MIN_RING_BYTES`], unless `--ring` says), or room for four of utp's
/// records, rounded up to a power of two (`?ring=` takes powers of two
/// only), whichever is larger: by default 2 MiB up to 512 KiB messages,
/// 8 MiB at 1 MiB. A warm-up covers it twice.
///
/// What a user streaming large messages is told to configure
/// (docs/transports.md). At 2 MiB a 1 MiB frame left no room for a second:
/// each utp send waited until the previous frame was copied out, while the
/// raw byte ring kept two messages in flight, so the point measured a
/// misconfiguration (0.28-0.56x raw) rather than either ring.
pub fn ring_bytes(size: usize, floor: u64) -> u64 {
    let record = utp::shm::ring::record_len(size).unwrap_or(usize::MAX) as u64;
    RING_MESSAGES
        .saturating_mul(record)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
        .max(floor)
}

/// Parses `--ring`: a ring size as `?ring=` takes it (`64k`, `1M`; a power
/// of two from 4 KiB to 1 GiB).
pub fn parse_ring(text: &str) -> Result<u64, String> {
    utp::endpoint::parse_size(text)
        .filter(|&n| usize::try_from(n).is_ok_and(utp::shm::layout::valid_capacity))
        .ok_or_else(|| {
            format!(
                "{text:?} is not a ring size: give a power of two from 4k to 1G, e.g. 64k or 2M"
            )
        })
}

/// Counts for every run.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Plan {
    /// Repeats of each point (utp and raw alternate within each repeat).
    pub repeats: usize,
    /// Seconds of timed work per run, at least.
    pub min_seconds: f64,
    /// Untimed round trips (or calls) before timing, at least.
    pub rtt_warmup: u64,
    /// Timed round trips (or calls), at least.
    pub rtt_min: u64,
    /// Timed streamed messages, at least.
    pub stream_min_messages: u64,
    /// Bytes each memcpy run copies.
    pub memcpy_bytes: u64,
    /// Round trips of a placement probe.
    pub probe_iterations: u64,
    /// Seconds a peer waits for anything before it gives up.
    pub idle_timeout_s: u64,
    /// Round-trip sizes measured.
    pub rtt_sizes: &'static [usize],
    /// Streaming sizes measured.
    pub stream_sizes: &'static [usize],
    /// Sizes of the streams sent in batches.
    pub batch_sizes: &'static [usize],
    /// `--rate`: the offered load, messages per second (only that mode runs).
    pub rate: Option<f64>,
    /// Seconds of each fixed-rate run.
    pub rate_seconds: f64,
    /// The smallest shared-memory ring a point gets (`--ring`; see
    /// [`ring_bytes`]).
    pub ring_floor: u64,
}

/// No run sends more than this many messages, whatever its duration.
const MAX_MESSAGES: u64 = 50_000_000;

impl Plan {
    /// The full run: every size, at least half a second per run, 3 repeats.
    pub fn full() -> Plan {
        Plan {
            repeats: 3,
            min_seconds: 0.5,
            rtt_warmup: 2_000,
            rtt_min: 20_000,
            stream_min_messages: 1_000,
            memcpy_bytes: 8 << 30,
            probe_iterations: 20_000,
            idle_timeout_s: 30,
            rtt_sizes: &RTT_SIZES,
            stream_sizes: &STREAM_SIZES,
            batch_sizes: &BATCH_SIZES,
            rate: None,
            rate_seconds: 5.0,
            ring_floor: MIN_RING_BYTES,
        }
    }

    /// `--quick`: every mechanism in about 90 s on 2 cores, at fewer sizes.
    pub fn quick() -> Plan {
        Plan {
            repeats: 3,
            min_seconds: 0.08,
            rtt_warmup: 200,
            rtt_min: 1_000,
            stream_min_messages: 200,
            memcpy_bytes: 256 << 20,
            probe_iterations: 2_000,
            idle_timeout_s: 10,
            rtt_sizes: &QUICK_RTT_SIZES,
            stream_sizes: &QUICK_STREAM_SIZES,
            batch_sizes: &QUICK_BATCH_SIZES,
            rate: None,
            rate_seconds: 1.0,
            ring_floor: MIN_RING_BYTES,
        }
    }

    /// The ring (per direction) of a point of `size`-byte messages.
    pub fn ring(&self, size: usize) -> u64 {
        ring_bytes(size, self.ring_floor)
    }

    /// Warm-up operations for `size`: the plan's, or two laps of a ring.
    pub fn warmup(&self, mode: Mode, size: usize, ring: bool) -> u64 {
        let lap = if ring {
            (2 * self.ring(size)).div_ceil(size.max(64) as u64)
        } else {
            0
        };
        match mode {
            Mode::Rtt | Mode::Rate => self.rtt_warmup.max(lap),
            // Calls cannot be pipelined, so a lap costs a full round trip per
            // call: capped (the full plan's cap still covers a lap).
            Mode::Calc => self.rtt_warmup.max(lap.min(4 * self.rtt_min)),
            // Streams: a ring's two laps, else a few messages to settle.
            Mode::Stream | Mode::Batch => lap.max(16),
        }
    }

    /// The budget of one run of `mode` at `size` (`ring`: over a shared-memory ring).
    pub fn budget(&self, mode: Mode, size: usize, ring: bool) -> Budget {
        let warmup = self.warmup(mode, size, ring);
        let min_count = match mode {
            Mode::Rtt | Mode::Calc | Mode::Rate => self.rtt_min,
            Mode::Stream | Mode::Batch => self.stream_min_messages,
        };
        Budget {
            warmup,
            // Half a ring in flight at most, so neither side can fill its ring
            // while the other waits to send (the echo never blocks on a full ring).
            warmup_burst: if ring && matches!(mode, Mode::Rtt | Mode::Rate) {
                (self.ring(size) / 2 / (size as u64 + 128)).max(1)
            } else {
                1
            },
            min_count,
            min_seconds: self.min_seconds,
            max_count: MAX_MESSAGES.max(warmup + 2 * min_count),
        }
    }

    /// Payload sizes of `mode`.
    pub fn sizes(&self, mode: Mode) -> &'static [usize] {
        match mode {
            Mode::Rtt => self.rtt_sizes,
            Mode::Stream => self.stream_sizes,
            Mode::Batch => self.batch_sizes,
            Mode::Calc => &CALC_SIZES,
            Mode::Rate => &RATE_SIZES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_warm_up_covers_two_laps_and_every_run_has_a_duration() {
        let small = Plan {
            ring_floor: 64 << 10,
            ..Plan::quick()
        };
        for plan in [Plan::full(), Plan::quick(), small] {
            let ring_bytes = |size| plan.ring(size);
            for &size in plan.sizes(Mode::Rtt) {
                let budget = plan.budget(Mode::Rtt, size, true);
                assert!(budget.warmup * size.max(64) as u64 >= 2 * ring_bytes(size));
                assert!(budget.warmup_burst * (size as u64 + 128) <= ring_bytes(size) / 2);
                assert!(budget.min_seconds > 0.05);
            }
            for &size in plan.sizes(Mode::Stream) {
                let budget = plan.budget(Mode::Stream, size, true);
                assert!(budget.warmup * size.max(64) as u64 >= 2 * ring_bytes(size));
            }
            assert_eq!(plan.budget(Mode::Rtt, 64, false).warmup, plan.rtt_warmup);
        }
        assert!(
            Plan::quick().sizes(Mode::Rtt).contains(&64),
            "the summary quotes 64 B"
        );
    }

    #[test]
    fn a_ring_holds_four_messages_and_is_at_least_two_mebibytes() {
        for (size, ring) in [(8, 2 << 20), (65536, 2 << 20), (1 << 20, 8 << 20)] {
            assert_eq!(ring_bytes(size, MIN_RING_BYTES), ring, "{size}");
        }
        for size in [1usize, 4096, 524_288, 524_289, 1 << 20, 3 << 20] {
            let ring = ring_bytes(size, MIN_RING_BYTES);
            let record = utp::shm::ring::record_len(size).unwrap() as u64;
            assert!(ring.is_power_of_two() && ring >= MIN_RING_BYTES, "{size}");
            assert!(
                ring >= 4 * record && ring < 8 * record.max(MIN_RING_BYTES),
                "{size}"
            );
            assert!(
                utp::shm::ring::max_payload(ring as usize) >= size,
                "{size}: one frame fits"
            );
        }
    }

    #[test]
    fn a_smaller_ring_is_taken_where_four_messages_fit() {
        let floor = parse_ring("64k").unwrap();
        assert_eq!(floor, 64 << 10);
        assert_eq!(ring_bytes(64, floor), 64 << 10);
        assert_eq!(ring_bytes(65536, floor), 512 << 10, "four records");
        for bad in ["", "64", "48k", "2G", "1000", "k", "-4k"] {
            let error = parse_ring(bad).unwrap_err();
            assert!(error.contains("power of two"), "{bad}: {error}");
        }
    }
}
