//! `--json FILE`: `{"machine": {...}, "results": [...]}`, one result per point.

use super::link::Fallible;
use super::machine::Machine;
use super::placement::{Placement, Probe};
use super::plan::Plan;
use super::results::{Record, Row};
use serde::Serialize;
use std::path::Path;

/// The `machine` object: the machine, how the run was set up, what it saw.
#[derive(Debug, Serialize)]
pub struct MachineJson<'a> {
    /// CPU, cores, kernel, virtualisation.
    #[serde(flatten)]
    pub machine: &'a Machine,
    /// Process placement asked for.
    pub placement: Placement,
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// Counts used.
    pub plan: &'a Plan,
    /// When the run started, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// Spin probes bracketing the mechanisms (host placement seen).
    pub placement_probes: &'a [Probe],
    /// What was skipped or failed, and why.
    pub notes: &'a [String],
    /// Why the figures may not be trustworthy (busy machine, unsteady repeats).
    pub warnings: &'a [String],
    /// The share of the CPU time during the tables that the hypervisor gave
    /// to other work (steal time), in percent; `null` where /proc/stat has
    /// no steal column.
    pub steal_percent: Option<f64>,
    /// The share of the CPU time during the tables that processes other
    /// than the bench and its peers used, in percent (user and system time
    /// from /proc/stat less the bench's own from /proc/self/stat); `null`
    /// where either cannot be read.
    pub other_work_percent: Option<f64>,
    /// The same in the moment before the run (`OTHER_WORK_LOOK`), while
    /// nothing of the bench ran.
    pub other_work_before_percent: Option<f64>,
    /// How each raw baseline was set up.
    pub baselines: Vec<super::summary::Baseline>,
}

#[derive(Serialize)]
struct Output<'a> {
    machine: MachineJson<'a>,
    results: Vec<Record>,
}

/// Writes the JSON document to `path`.
pub fn write(path: &Path, machine: MachineJson<'_>, rows: &[Row]) -> Fallible<()> {
    let output = Output {
        machine,
        results: rows.iter().map(|row| Record::of(rows, row)).collect(),
    };
    let text = serde_json::to_string_pretty(&output)?;
    std::fs::write(path, text + "\n").map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(())
}
