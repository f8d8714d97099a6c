//! Where the two processes run: pinned to different cores (default), both on
//! one core, or left to the scheduler; and the spin probe that tells which
//! host placement ("near" or "far" vCPUs, see BENCH-NOTES) a run saw.

use super::link::Fallible;
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// How the client and the peer are placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Client and peer pinned to two different cores.
    CrossCore,
    /// Both pinned to the same core.
    SameCore,
    /// No pinning: the scheduler decides.
    Unpinned,
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => vec![0],
    }
}

/// CPUs for (client, peer) under `placement`, or `None` for no pinning.
/// Cross-core on a single allowed CPU falls back to that CPU, with a note.
pub fn cpus(placement: Placement, notes: &mut Vec<String>) -> (Option<usize>, Option<usize>) {
    let allowed = allowed_cpus();
    let first = allowed.first().copied().unwrap_or(0);
    match placement {
        Placement::Unpinned => (None, None),
        Placement::SameCore => (Some(first), Some(first)),
        Placement::CrossCore => match allowed.get(1) {
            Some(&second) => (Some(first), Some(second)),
            None => {
                notes.push(format!(
                    "only CPU {first} is available: client and peer share it (same-core)"
                ));
                (Some(first), Some(first))
            }
        },
    }
}

/// The CPU for helper process `i` of a run whose main process runs on the
/// first allowed CPU: round-robin over the other allowed CPUs, so helpers
/// never inherit the main process's pin and share its CPU; `None` when
/// there is no other CPU.
pub fn away_from_first(allowed: &[usize], i: usize) -> Option<usize> {
    let others = allowed.get(1..).unwrap_or_default();
    (!others.is_empty()).then(|| others[i % others.len()])
}

/// Pins the calling thread (and the threads it starts later) to `cpu`.
pub fn pin(cpu: usize) -> Fallible<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).map_err(|e| format!("pin to CPU {cpu}: {e}"))?;
    Ok(())
}

/// Spin round-trip p50 (ns) below which the vCPUs are taken to be "near".
///
/// BENCH-NOTES measured 0.20 µs near and 0.66 µs far on this kind of host;
/// 0.40 µs sits between them.
pub const NEAR_BELOW_NS: u64 = 400;

/// The placement a spin probe's p50 indicates.
pub fn classify(p50_ns: u64) -> &'static str {
    if p50_ns < NEAR_BELOW_NS {
        "near"
    } else {
        "far"
    }
}

/// One spin probe: when it ran and what it saw.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Probe {
    /// Seconds since the benchmark started.
    pub at_s: f64,
    /// The mechanism measured next.
    pub before: String,
    /// Raw spin ping-pong round trip, median, ns.
    pub spin_p50_ns: u64,
    /// `near` or `far`.
    pub placement: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_go_to_the_cpus_the_main_process_does_not_use() {
        assert_eq!(away_from_first(&[0, 1], 0), Some(1));
        assert_eq!(away_from_first(&[0, 1], 3), Some(1));
        assert_eq!(away_from_first(&[2, 5, 7], 1), Some(7));
        assert_eq!(away_from_first(&[0], 0), None);
        assert_eq!(away_from_first(&[], 0), None);
    }

    #[test]
    fn classification_follows_the_notes() {
        assert_eq!(classify(200), "near");
        assert_eq!(classify(660), "far");
    }

    #[test]
    fn unpinned_pins_nothing_and_same_core_pins_one_cpu() {
        let mut notes = Vec::new();
        assert_eq!(cpus(Placement::Unpinned, &mut notes), (None, None));
        let (a, b) = cpus(Placement::SameCore, &mut notes);
        assert_eq!(a, b);
        assert!(a.is_some());
    }
}
