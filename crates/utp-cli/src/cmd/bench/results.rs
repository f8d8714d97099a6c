//! The rows of a benchmark run and their JSON form.

use super::sample::Sample;
use super::spec::{Impl, Mode, Wait};
use serde::Serialize;

/// The medians of one (mechanism, implementation, mode, wait, size) point.
#[derive(Clone, Debug)]
pub struct Row {
    /// Index in the mechanism table (`None` for memcpy).
    pub entry: Option<usize>,
    /// Mechanism name.
    pub mechanism: &'static str,
    /// Implementation.
    pub implementation: Impl,
    /// What was measured.
    pub mode: Mode,
    /// How the receiver waited, where that applies.
    pub wait: Option<Wait>,
    /// Payload bytes per message.
    pub size: usize,
    /// Medians over the repeats.
    pub sample: Sample,
    /// The figure the ratio uses, repeat by repeat (`None` where that
    /// repeat did not run), so that a ratio can pair the runs made
    /// back to back.
    pub by_repeat: Vec<Option<f64>>,
    /// The share (0 to 1) of the CPU time the hypervisor gave to other work
    /// while this point ran (its every implementation and repeat, so the
    /// rows of one point carry the same figure); `None` where /proc/stat
    /// has no steal column.
    pub steal: Option<f64>,
}

impl Row {
    /// Whether the host stole enough CPU time while this point ran for
    /// its figures to be marked ([`STEAL_WARNING`](super::machine::STEAL_WARNING)).
    pub fn stolen(&self) -> bool {
        self.steal
            .is_some_and(|s| s >= super::machine::STEAL_WARNING)
    }

    /// Spread of the repeats: (largest - smallest) / median of the figure
    /// the ratio uses; `None` with fewer than two repeats.
    pub fn spread(&self) -> Option<f64> {
        let values: Vec<f64> = self.by_repeat.iter().flatten().copied().collect();
        if values.len() < 2 {
            return None;
        }
        let max = values.iter().copied().fold(f64::MIN, f64::max);
        let min = values.iter().copied().fold(f64::MAX, f64::min);
        let median = super::sample::median_f64(values)?;
        (median > 0.0).then(|| (max - min) / median)
    }
}

/// The figure a row is judged on: p50 for round trips, p99 at a fixed rate,
/// calls/s for the calculator, bytes/s for streaming.
pub fn key_figure(mode: Mode, sample: &Sample) -> Option<f64> {
    match mode {
        Mode::Rtt => sample.p50_ns.map(|v| v as f64),
        // What a fixed rate is about: the tail.
        Mode::Rate => sample.p99_ns.map(|v| v as f64),
        Mode::Calc => sample.msgs_per_s,
        Mode::Stream | Mode::Batch => sample.bytes_per_s,
    }
}

/// One result in the JSON output, exactly the documented schema.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// `shm`, `unix`, ...
    pub mechanism: String,
    /// `utp`, `raw`, `iceoryx2`, `ipc-channel`.
    #[serde(rename = "impl")]
    pub implementation: String,
    /// `rtt`, `stream`, `calc`.
    pub mode: String,
    /// `spin`, `block`, or null.
    pub wait: Option<String>,
    /// Payload bytes per message.
    pub payload_bytes: u64,
    /// Median latency (ns), null for streaming.
    pub p50_ns: Option<u64>,
    /// 99th percentile (ns).
    pub p99_ns: Option<u64>,
    /// 99.9th percentile (ns).
    pub p999_ns: Option<u64>,
    /// Largest latency (ns).
    pub max_ns: Option<u64>,
    /// Messages or calls per second, null for round trips.
    pub msgs_per_s: Option<u64>,
    /// Payload bytes per second, null where not measured.
    pub bytes_per_s: Option<u64>,
    /// What `ratio` compares with (`raw`, or `utp` for a peer library);
    /// null for the raw baselines themselves.
    pub ratio_to: Option<String>,
    /// The figure the report judges (p50, calls/s, bytes/s; p99 at a fixed
    /// rate) over the reference's, taken repeat by repeat and then the
    /// median of those, as the report prints it.
    pub ratio: Option<f64>,
    /// The smallest of the per-repeat ratios `ratio` is the median of;
    /// null with fewer than two repeats in common, and for the raw baselines.
    pub ratio_min: Option<f64>,
    /// The largest of them.
    pub ratio_max: Option<f64>,
    /// The share of the CPU time the hypervisor gave to other work while
    /// this point ran, in percent; null where /proc/stat has no steal column.
    pub steal_percent: Option<f64>,
}

impl Record {
    /// `row` as JSON, with its ratio against its reference among `rows`.
    pub fn of(rows: &[Row], row: &Row) -> Record {
        let s = &row.sample;
        let reference = reference(rows, row);
        let range = reference.and_then(|(r, _)| ratio_range(row, r));
        Record {
            mechanism: row.mechanism.to_string(),
            implementation: row.implementation.label().to_string(),
            mode: row.mode.label().to_string(),
            wait: row.wait.map(|w| w.label().to_string()),
            payload_bytes: row.size as u64,
            p50_ns: s.p50_ns,
            p99_ns: s.p99_ns,
            p999_ns: s.p999_ns,
            max_ns: s.max_ns,
            msgs_per_s: s.msgs_per_s.map(|v| v.round() as u64),
            bytes_per_s: s.bytes_per_s.map(|v| v.round() as u64),
            ratio_to: reference.map(|(_, label)| label.to_string()),
            // Three decimals: the report prints two.
            ratio: reference.and_then(|(r, _)| ratio(row, r)).map(thousandths),
            ratio_min: range.map(|(low, _)| thousandths(low)),
            ratio_max: range.map(|(_, high)| thousandths(high)),
            steal_percent: row.steal.map(super::machine::percent),
        }
    }
}

/// The row that `row` is compared with: raw for utp; utp on the same
/// mechanism and wait for peer libraries (raw when utp was not measured).
/// Returns the reference and its label.
pub fn reference<'a>(rows: &'a [Row], row: &Row) -> Option<(&'a Row, &'static str)> {
    let find = |implementation: Impl| {
        rows.iter().find(|r| {
            r.entry == row.entry
                && r.mode == row.mode
                && r.size == row.size
                && r.implementation == implementation
        })
    };
    match row.implementation {
        Impl::Raw => None,
        Impl::Utp => find(Impl::Raw).map(|r| (r, "raw")),
        Impl::Iceoryx2 | Impl::IpcChannel => find(Impl::Utp)
            .map(|r| (r, "utp"))
            .or_else(|| find(Impl::Raw).map(|r| (r, "raw"))),
    }
}

/// `row`'s figure over its reference's: latency p50 for round trips, calls/s for
/// the calculator, bytes/s for streaming. Above 1 is slower for latency and
/// faster for rates; the table says which.
///
/// Taken within each repeat, where the two ran back to back, and then the
/// median of those: the host moving its vCPUs between repeats changes both
/// figures of a repeat alike, so it does not enter the ratio as it would in
/// a ratio of the two medians. Rows without repeats in common (a reference
/// measured apart) fall back to the ratio of the medians.
pub fn ratio(row: &Row, reference: &Row) -> Option<f64> {
    if let Some(median) = super::sample::median_f64(paired_ratios(row, reference)) {
        return Some(median);
    }
    let a = key_figure(row.mode, &row.sample)?;
    let b = key_figure(reference.mode, &reference.sample)?;
    (b > 0.0).then(|| a / b)
}

/// The smallest and the largest of the per-repeat ratios whose median
/// [`ratio`] is: how far the comparison itself moved between repeats,
/// which is what a claim made from the ratio rests on (the figures of a
/// repeat may move together, with the host, and leave it steady). `None`
/// with fewer than two repeats in common.
pub fn ratio_range(row: &Row, reference: &Row) -> Option<(f64, f64)> {
    let paired = paired_ratios(row, reference);
    if paired.len() < 2 {
        return None;
    }
    let low = paired.iter().copied().fold(f64::MAX, f64::min);
    let high = paired.iter().copied().fold(f64::MIN, f64::max);
    Some((low, high))
}

/// `x` to three decimals.
fn thousandths(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `row`'s figure over `reference`'s in each repeat both ran.
fn paired_ratios(row: &Row, reference: &Row) -> Vec<f64> {
    row.by_repeat
        .iter()
        .zip(&reference.by_repeat)
        .filter_map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) if *b > 0.0 => Some(a / b),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(implementation: Impl, p50: u64, by_repeat: Vec<Option<f64>>) -> Row {
        Row {
            entry: Some(0),
            mechanism: "shm",
            implementation,
            mode: Mode::Rtt,
            wait: None,
            size: 64,
            sample: Sample {
                p50_ns: Some(p50),
                ..Sample::default()
            },
            by_repeat,
            steal: None,
        }
    }

    #[test]
    fn a_ratio_pairs_the_runs_of_each_repeat() {
        // The host slowed everything down in repeat 2: the ratio of the
        // medians (300 / 150 = 2.0) says utp is twice as slow; within each
        // repeat it is 1.1x, 1.0x and 2.0x, the median 1.1x.
        let utp = row(Impl::Utp, 300, vec![Some(110.0), Some(1000.0), Some(300.0)]);
        let raw = row(Impl::Raw, 150, vec![Some(100.0), Some(1000.0), Some(150.0)]);
        let x = ratio(&utp, &raw).unwrap();
        assert!((x - 1.1).abs() < 1e-9, "{x}");
        // A repeat in which one side did not run is left out.
        let utp = row(Impl::Utp, 0, vec![Some(120.0), None, Some(300.0)]);
        let x = ratio(&utp, &raw).unwrap();
        assert!((x - 1.6).abs() < 1e-9, "{x}");
        // Nothing in common: the ratio of the medians.
        let lone = row(Impl::Utp, 300, Vec::new());
        assert_eq!(ratio(&lone, &raw), Some(2.0));
    }

    #[test]
    fn the_json_record_carries_the_paired_ratio_and_its_reference() {
        let utp = row(Impl::Utp, 300, vec![Some(110.0), Some(1000.0), Some(300.0)]);
        let raw = row(Impl::Raw, 150, vec![Some(100.0), Some(1000.0), Some(150.0)]);
        let rows = [utp, raw];
        let record = Record::of(&rows, &rows[0]);
        assert_eq!(record.ratio, Some(1.1));
        assert_eq!((record.ratio_min, record.ratio_max), (Some(1.0), Some(2.0)));
        assert_eq!(record.ratio_to.as_deref(), Some("raw"));
        let record = Record::of(&rows, &rows[1]);
        assert_eq!((record.ratio, record.ratio_to), (None, None));
        assert_eq!((record.ratio_min, record.ratio_max), (None, None));
    }

    #[test]
    fn a_ratio_range_spans_the_repeats_both_sides_ran() {
        // Per repeat 1.1, 1.0 and 2.0: the range is 1.0 to 2.0 whatever
        // order the repeats came in.
        let utp = row(Impl::Utp, 300, vec![Some(110.0), Some(1000.0), Some(300.0)]);
        let raw = row(Impl::Raw, 150, vec![Some(100.0), Some(1000.0), Some(150.0)]);
        assert_eq!(ratio_range(&utp, &raw), Some((1.0, 2.0)));
        // A repeat one side missed is not in it.
        let utp = row(Impl::Utp, 300, vec![Some(110.0), None, Some(300.0)]);
        assert_eq!(ratio_range(&utp, &raw), Some((1.1, 2.0)));
        // One repeat in common, or none: no range.
        let utp = row(Impl::Utp, 300, vec![Some(110.0), None, None]);
        assert_eq!(ratio_range(&utp, &raw), None);
        assert_eq!(ratio_range(&row(Impl::Utp, 300, Vec::new()), &raw), None);
    }
}
