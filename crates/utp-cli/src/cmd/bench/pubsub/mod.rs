//! `utp bench` pub/sub section: one publisher (this process) and 1, 2 and
//! 4 subscriber processes (this binary re-executed as `utp bench-pubsub
//! --child`), for utp's shm pub/sub, a hand-written broadcast ring (the
//! floor) and iceoryx2 publish-subscribe (feature `peers`), interleaved
//! round by round.
//!
//! Placement (`cpus.rs`): the publisher is pinned to the first allowed
//! CPU, the subscribers to the others (round-robin; on 2 vCPUs all on the
//! second). Waiting (`idle.rs`), the same for every implementation:
//! subscribers poll and yield their CPU every [`idle::SLICE_NS`], so
//! subscribers sharing a CPU take turns instead of holding it for a
//! scheduler slice each.
//!
//! Latency: the publisher publishes a 64-byte message every [`PACE`]
//! carrying its CLOCK_MONOTONIC send time; each subscriber records receive
//! time − send time (the processes share the clock). The pace is one that
//! 4 subscribers sharing one vCPU keep up with: those runs must lose
//! nothing (the table shows it, and warns otherwise). Throughput: the
//! publisher publishes flat out; each subscriber counts messages per
//! second between its first and last receive; losses are counted by the
//! publisher (published − received; drop semantics everywhere: nobody
//! waits for a slow reader).
//!
//! Every round runs raw, utp and iceoryx2 back to back after a spin probe
//! of the vCPU placement; ratios are taken within a round, then their
//! median over rounds is shown (the host moves the vCPUs between "near"
//! and "far" every few minutes, BENCH-NOTES).

mod child;
mod cpus;
mod idle;
mod raw_ring;
mod run;
mod sides;
mod table;
mod utp_side;

#[cfg(feature = "peers")]
mod iceoryx2_side;

pub use child::{Args, run as child};
pub use table::print;

use crate::cmd::bench::placement::{self, Placement};
use crate::exit::Exit;
use sides::Kind;
use std::time::Duration;

/// Gap between messages in the latency runs.
pub const PACE: Duration = Duration::from_micros(10);
/// Bit of the message's third word that marks the stop message.
const STOP_FLAG: u64 = 1;

fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One implementation's figures in one round.
#[derive(Clone, Copy, Debug)]
pub struct RoundFigures {
    /// Publish-to-receive p50 and p99 (paced), ns: median over subscribers.
    pub p50_ns: f64,
    /// See `p50_ns`.
    pub p99_ns: f64,
    /// p50 of the samples during which the subscriber kept its CPU
    /// (median over subscribers), ns.
    pub on_cpu_p50_ns: f64,
    /// Share of the samples that were on-CPU.
    pub on_cpu_share: f64,
    /// Share lost in the paced run (should be 0).
    pub paced_lost: f64,
    /// Flat out: messages per second per subscriber (median over subscribers).
    pub msgs_per_s: f64,
    /// Flat out: share lost.
    pub lost: f64,
    /// Flat out: the publisher's ns per message.
    pub publish_ns: f64,
}

/// Everything measured with one subscriber count.
#[derive(Clone, Debug)]
pub struct Count {
    /// Subscriber processes.
    pub subscribers: usize,
    /// Where they ran.
    pub placement: cpus::Assignment,
    /// The implementations, in the order run within a round.
    pub kinds: Vec<&'static str>,
    /// `rounds[r][k]`: round `r`, implementation `kinds[k]`.
    pub rounds: Vec<Vec<RoundFigures>>,
    /// Spin probe round trip before each round, ns (`None`: not probed).
    pub probes: Vec<Option<u64>>,
    /// Problems worth a line under the table.
    pub notes: Vec<String>,
}

/// The section's results.
#[derive(Clone, Debug)]
pub struct Report {
    /// Per subscriber count.
    pub counts: Vec<Count>,
    /// Load average when the section started and ended.
    pub load: (String, String),
}

/// Measures every available implementation with each subscriber count:
/// `rounds` rounds of (probe, then each implementation paced and flat
/// out). `allowed` are the CPUs the bench may use, read before it pinned itself.
pub fn measure(
    counts: &[usize],
    ms: u64,
    rounds: usize,
    placement: Placement,
    allowed: &[usize],
) -> Result<Report, Exit> {
    let load_start = crate::cmd::bench::machine::loadavg();
    let kinds = Kind::available();
    let mut out = Vec::new();
    for &subs in counts {
        let assignment = cpus::assign(placement, allowed, subs);
        let mut count = Count {
            subscribers: subs,
            placement: assignment.clone(),
            kinds: kinds.iter().map(|k| k.name()).collect(),
            rounds: Vec::new(),
            probes: Vec::new(),
            notes: Vec::new(),
        };
        for _ in 0..rounds.max(1) {
            count.probes.push(probe(placement, allowed));
            let mut round = Vec::new();
            for &kind in &kinds {
                let paced = run::once(kind, &assignment, true, ms)?;
                let flat = run::once(kind, &assignment, false, ms)?;
                for (what, r) in [("paced", &paced), ("flat-out", &flat)] {
                    if !r.accounting_agrees() {
                        count.notes.push(format!(
                            "{} {what}: a subscriber's own loss count disagrees with published − received",
                            kind.name()
                        ));
                    }
                }
                let over = |f: fn(&run::Measured) -> f64, r: &run::Outcome| {
                    median(r.subscribers.iter().map(f).collect())
                };
                round.push(RoundFigures {
                    p50_ns: over(|m| m.p50_ns as f64, &paced),
                    p99_ns: over(|m| m.p99_ns as f64, &paced),
                    on_cpu_p50_ns: over(
                        |m| {
                            if m.on_cpu_samples > 0 {
                                m.on_cpu_p50_ns as f64
                            } else {
                                f64::NAN
                            }
                        },
                        &paced,
                    ),
                    on_cpu_share: paced
                        .subscribers
                        .iter()
                        .map(|m| m.on_cpu_samples)
                        .sum::<u64>() as f64
                        / paced
                            .subscribers
                            .iter()
                            .map(|m| m.received)
                            .sum::<u64>()
                            .max(1) as f64,
                    paced_lost: paced.lost_share(),
                    msgs_per_s: over(|m| m.msgs_per_s, &flat),
                    lost: flat.lost_share(),
                    publish_ns: flat.publish_ns,
                });
            }
            count.rounds.push(round);
        }
        out.push(count);
    }
    // The probe unpins this process; later sections expect it pinned.
    if let Some(cpu) = cpus::assign(placement, allowed, 0).publisher {
        placement::pin(cpu).map_err(|e| Exit::Error(e.to_string()))?;
    }
    Ok(Report {
        counts: out,
        load: (load_start, crate::cmd::bench::machine::loadavg()),
    })
}

/// A spin ping-pong between CPUs 0 and 1 (the seqlock bench's probe):
/// which host placement the next round runs in.
fn probe(placement: Placement, allowed: &[usize]) -> Option<u64> {
    if placement == Placement::SameCore || !(allowed.contains(&0) && allowed.contains(&1)) {
        return None;
    }
    crate::cmd::bench_seqlock::placement_probe()
        .ok()
        .map(|d| d.as_nanos() as u64)
}
