//! The order of a benchmark run: mechanism by mechanism (a placement probe
//! before each), mode by mode, size by size; within a point the
//! implementations alternate (utp, raw, utp, raw, ...) for every repeat, and
//! the medians of the repeats are kept, with each repeat's figure for the
//! ratios, which pair the runs of one repeat.

use super::async_link::AsyncLink;
use super::machine::{CpuTimes, StealTally};
use super::mechanisms::{TABLE, fits};
use super::placement::{self, Placement, Probe};
use super::plan::{MEMCPY_SIZES, Plan};
use super::raw::{memcpy, plain_ring};
use super::results::{Row, key_figure};
use super::runner::{NOT_IN_BUILD, Runner};
use super::sample::Sample;
use super::spec::{Impl, Mode, Wait};
use indicatif::ProgressBar;
use std::collections::HashSet;
use std::time::Instant;

/// Everything a run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Medians per point.
    pub rows: Vec<Row>,
    /// Why something was skipped or failed.
    pub notes: Vec<String>,
    /// Placement probes, in order.
    pub probes: Vec<Probe>,
}

impl Outcome {
    fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }
}

/// One point: a mechanism row, a mode, a size, and the implementations compared there.
#[derive(Debug)]
struct Point {
    entry: usize,
    mode: Mode,
    size: usize,
    impls: Vec<Impl>,
}

/// Implementations measured at a point: utp, raw, and a peer library on the
/// shared-memory rows when the `peers` feature is built.
fn impls_for(entry: usize, mode: Mode) -> Vec<Impl> {
    let mut impls = vec![Impl::Utp, Impl::Raw];
    if mode == Mode::Rtt {
        impls.extend(super::peers::attached_to(&TABLE[entry]));
    }
    impls
}

fn points(plan: &Plan, selected: &[usize]) -> Vec<Point> {
    let mut points = Vec::new();
    for &entry in selected {
        if TABLE[entry].wait == Wait::Async && !AsyncLink::BUILT {
            // Neither side of an async row exists without tokio (`execute`
            // says so once).
            continue;
        }
        let modes: &[Mode] = if plan.rate.is_some() {
            &[Mode::Rate]
        } else if TABLE[entry].wait == Wait::Async {
            // Async rows answer one question: what a round trip costs
            // through the tokio layer, beside the blocking row.
            &[Mode::Rtt]
        } else if TABLE[entry].sends_batches() {
            &[Mode::Rtt, Mode::Stream, Mode::Batch, Mode::Calc]
        } else {
            &[Mode::Rtt, Mode::Stream, Mode::Calc]
        };
        for &mode in modes {
            for &size in plan.sizes(mode) {
                points.push(Point {
                    entry,
                    mode,
                    size,
                    impls: impls_for(entry, mode),
                });
            }
        }
    }
    points
}

/// The wait of an implementation at a point.
pub fn wait_of(entry: usize, implementation: Impl, mode: Mode, size: usize) -> Wait {
    let m = &TABLE[entry];
    match implementation {
        Impl::Utp => m.wait,
        Impl::Raw => m.raw_kind(mode, size).wait(),
        Impl::Iceoryx2 => Wait::Spin,
        Impl::IpcChannel => Wait::Block,
    }
}

/// Runs everything selected; `memcpy` adds the single-core copy bandwidth.
pub fn execute(
    runner: &Runner,
    selected: &[usize],
    memcpy_selected: bool,
    placement: Placement,
    progress: &ProgressBar,
) -> Outcome {
    let started = Instant::now();
    let points = points(&runner.plan, selected);
    let repeats = runner.plan.repeats;
    // Two spinning threads on one core would only measure the scheduler
    // (and take minutes a run).
    let plain_ring_selected = memcpy_selected && placement != Placement::SameCore;
    let probes = if placement == Placement::SameCore {
        0
    } else {
        selected.len() + 1
    };
    let total: usize = points
        .iter()
        .map(|p| p.impls.len() * repeats)
        .sum::<usize>()
        + probes
        + usize::from(memcpy_selected) * MEMCPY_SIZES.len() * repeats
        + usize::from(plain_ring_selected) * repeats;
    progress.set_length(total as u64);
    let mut out = Outcome::default();
    let mut unavailable: HashSet<(usize, Impl)> = HashSet::new();
    let mut current = None;
    // The plain ring runs beside the first raw ring streaming 64 KiB, a
    // run of it in each of that point's repeats, so the summary sets the
    // two against each other in the same placement (`None` once done, or
    // when the floors are not selected).
    let mut plain_ring = plain_ring_selected.then(PlainRing::new);
    if !AsyncLink::BUILT && selected.iter().any(|&e| TABLE[e].wait == Wait::Async) {
        out.note(
            "async rows (utp::tokio against a tokio socket) are not in this build: build utp-cli with --features tokio to measure them"
                .into(),
        );
    }
    if memcpy_selected && !plain_ring_selected {
        out.note("plain ring: skipped, spinning on one core only measures the scheduler".into());
    }
    for point in &points {
        let beside_plain_ring = plain_ring.is_some()
            && point.mode == Mode::Stream
            && point.size == plain_ring::SIZE
            && streams_over_a_ring(point.entry);
        let m = &TABLE[point.entry];
        if current != Some(point.entry) {
            current = Some(point.entry);
            probe(runner, placement, m.name, started, progress, &mut out);
        }
        let label = format!("{} {} {} B", m.name, point.mode.label(), point.size);
        progress.set_message(label.clone());
        // By repeat, then by implementation: `None` where a run did not happen.
        let mut samples: Vec<Vec<Option<Sample>>> = vec![vec![None; point.impls.len()]; repeats];
        let mut failed: HashSet<Impl> = HashSet::new();
        // The host's steal time over this point's runs only (not the
        // setup between points): what the point's figures went through.
        let mut steal = Some(StealTally::default());
        for this_repeat in samples.iter_mut() {
            for (i, &implementation) in point.impls.iter().enumerate() {
                progress.inc(1);
                let wait = wait_of(point.entry, implementation, point.mode, point.size);
                let who = format!("{} {} ({})", implementation.label(), m.name, wait.label());
                if unavailable.contains(&(point.entry, implementation))
                    || failed.contains(&implementation)
                {
                    continue;
                }
                if !fits(m, point.size) {
                    out.note(format!(
                        "{who}: {} B does not fit in one message",
                        point.size
                    ));
                    continue;
                }
                if placement == Placement::SameCore && wait == Wait::Spin {
                    out.note(format!(
                        "{who}: skipped, spinning on one core only measures the scheduler"
                    ));
                    continue;
                }
                let before = CpuTimes::now();
                let result = runner.run(point.entry, implementation, point.mode, point.size);
                steal = match (steal, before, CpuTimes::now()) {
                    (Some(tally), Some(start), Some(end)) => Some(tally.add(start, end)),
                    _ => None,
                };
                match result {
                    Ok(sample) => this_repeat[i] = Some(sample),
                    Err(e) if e.to_string().contains(NOT_IN_BUILD) => {
                        unavailable.insert((point.entry, implementation));
                        out.note(format!("{who}: transport not available in this build; raw baseline measured alone"));
                    }
                    Err(e) => {
                        // One failure is enough: the other repeats would fail alike.
                        failed.insert(implementation);
                        let (mode, size) = (point.mode.label(), point.size);
                        out.note(format!("{who} {mode} {size} B: {e}"));
                    }
                }
            }
            if beside_plain_ring && let Some(floor) = plain_ring.as_mut() {
                floor.run(runner, progress, &mut out);
            }
        }
        for (i, &implementation) in point.impls.iter().enumerate() {
            let of_this: Vec<Option<&Sample>> = samples.iter().map(|r| r[i].as_ref()).collect();
            let runs: Vec<Sample> = of_this.iter().flatten().map(|s| (*s).clone()).collect();
            if runs.is_empty() {
                continue;
            }
            out.rows.push(Row {
                entry: Some(point.entry),
                mechanism: m.name,
                implementation,
                mode: point.mode,
                wait: Some(wait_of(point.entry, implementation, point.mode, point.size)),
                size: point.size,
                sample: Sample::median(&runs),
                by_repeat: of_this
                    .iter()
                    .map(|s| s.and_then(|s| key_figure(point.mode, s)))
                    .collect(),
                steal: steal.and_then(StealTally::share),
            });
        }
        if beside_plain_ring && let Some(floor) = plain_ring.take() {
            floor.push_row(&mut out);
        }
    }
    if memcpy_selected {
        progress.set_message("memcpy");
        for size in MEMCPY_SIZES {
            let rates: Vec<f64> = (0..repeats)
                .map(|_| {
                    progress.inc(1);
                    memcpy::bandwidth(size, runner.plan.memcpy_bytes)
                })
                .collect();
            // One thread copying: the host's steal is not what it measures.
            out.rows.push(floor_row("memcpy", size, &rates, None));
        }
        // No ring streamed 64 KiB in this run (`--only memcpy`, say): the
        // plain ring alone, after the copies.
        if let Some(mut floor) = plain_ring.take() {
            for _ in 0..repeats {
                floor.run(runner, progress, &mut out);
            }
            floor.push_row(&mut out);
        }
    }
    probe(runner, placement, "(end)", started, progress, &mut out);
    out
}

/// Whether `entry`'s raw baseline streams 64 KiB over a shared-memory ring.
fn streams_over_a_ring(entry: usize) -> bool {
    TABLE[entry]
        .raw_kind(Mode::Stream, plain_ring::SIZE)
        .is_ring()
}

/// The plain two-core ring at 64 KiB (`raw::plain_ring`), the floor the
/// summary sets the raw ring against: its runs so far.
struct PlainRing {
    /// Bytes per second of each run that succeeded.
    rates: Vec<f64>,
    /// The host's steal time over the runs (`None` once unreadable).
    steal: Option<StealTally>,
    failed: bool,
}

impl PlainRing {
    fn new() -> Self {
        PlainRing {
            rates: Vec::new(),
            steal: Some(StealTally::default()),
            failed: false,
        }
    }

    /// One run (none after a failure, which is noted once).
    fn run(&mut self, runner: &Runner, progress: &ProgressBar, out: &mut Outcome) {
        progress.inc(1);
        if self.failed {
            return;
        }
        let before = CpuTimes::now();
        let name = format!("/{}", runner.unique());
        let result = plain_ring::bandwidth(
            plain_ring::SIZE,
            runner.plan.memcpy_bytes,
            &name,
            runner.peer_cpu,
        );
        self.steal = match (self.steal, before, CpuTimes::now()) {
            (Some(tally), Some(start), Some(end)) => Some(tally.add(start, end)),
            _ => None,
        };
        match result {
            Ok(bytes_per_s) => self.rates.push(bytes_per_s),
            Err(e) => {
                self.failed = true;
                out.note(format!("plain ring {} B: {e}", plain_ring::SIZE));
            }
        }
    }

    /// The row of the runs, if any succeeded.
    fn push_row(self, out: &mut Outcome) {
        if !self.rates.is_empty() {
            let steal = self.steal.and_then(StealTally::share);
            let row = floor_row(plain_ring::MECHANISM, plain_ring::SIZE, &self.rates, steal);
            out.rows.push(row);
        }
    }
}

/// The row of a floor (no mechanism of the table, no utp side): its
/// streaming rate in each repeat, `size`-byte messages.
fn floor_row(mechanism: &'static str, size: usize, rates: &[f64], steal: Option<f64>) -> Row {
    let runs: Vec<Sample> = rates
        .iter()
        .map(|&bytes_per_s| Sample {
            bytes_per_s: Some(bytes_per_s),
            msgs_per_s: Some(bytes_per_s / size as f64),
            ..Sample::default()
        })
        .collect();
    Row {
        entry: None,
        mechanism,
        implementation: Impl::Raw,
        mode: Mode::Stream,
        wait: None,
        size,
        by_repeat: runs.iter().map(|s| key_figure(Mode::Stream, s)).collect(),
        sample: Sample::median(&runs),
        steal,
    }
}

/// A short raw spin ping-pong, recording which host placement the run sees.
fn probe(
    runner: &Runner,
    placement: Placement,
    before: &str,
    started: Instant,
    progress: &ProgressBar,
    out: &mut Outcome,
) {
    if placement == Placement::SameCore {
        return;
    }
    progress.inc(1);
    let Some(entry) = TABLE
        .iter()
        .position(|m| m.raw_rtt == super::raw::RawKind::SlotSpin)
    else {
        return;
    };
    let spec = runner.spec(entry, Impl::Raw, Mode::Rtt, 8);
    let budget = super::rtt::Budget {
        warmup: 1_000,
        warmup_burst: 1,
        min_count: runner.plan.probe_iterations,
        min_seconds: 0.0,
        max_count: spec.count,
    };
    match runner.run_spec(spec, &budget) {
        Ok(sample) => {
            let p50 = sample.p50_ns.unwrap_or(0);
            out.probes.push(Probe {
                at_s: started.elapsed().as_secs_f64(),
                before: before.to_string(),
                spin_p50_ns: p50,
                placement: placement::classify(p50),
            });
        }
        Err(e) => out.note(format!("placement probe before {before}: {e}")),
    }
}
