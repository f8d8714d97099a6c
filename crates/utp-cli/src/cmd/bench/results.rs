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
    /// Spread of the repeats: (largest - smallest) / median of the figure
    /// the ratio uses; `None` with fewer than two repeats.
    pub spread: Option<f64>,
}

/// The figure a row is judged on: p50 for round trips, p99 at a fixed rate,
/// calls/s for the calculator, bytes/s for streaming.
pub fn key_figure(mode: Mode, sample: &Sample) -> Option<f64> {
    match mode {
        Mode::Rtt => sample.p50_ns.map(|v| v as f64),
        // What a fixed rate is about: the tail.
        Mode::Rate => sample.p99_ns.map(|v| v as f64),
        Mode::Calc => sample.msgs_per_s,
        Mode::Stream => sample.bytes_per_s,
    }
}

/// (largest - smallest) / median of the key figure over `samples`.
pub fn spread(mode: Mode, samples: &[Sample]) -> Option<f64> {
    let values: Vec<f64> = samples.iter().filter_map(|s| key_figure(mode, s)).collect();
    if values.len() < 2 {
        return None;
    }
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    let median = super::sample::median_f64(values)?;
    (median > 0.0).then(|| (max - min) / median)
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
}

impl From<&Row> for Record {
    fn from(row: &Row) -> Record {
        let s = &row.sample;
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
pub fn ratio(row: &Row, reference: &Row) -> Option<f64> {
    let a = key_figure(row.mode, &row.sample)?;
    let b = key_figure(reference.mode, &reference.sample)?;
    (b > 0.0).then(|| a / b)
}
