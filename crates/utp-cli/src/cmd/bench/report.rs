//! The terminal report: one table per mode, each utp (or peer) figure beside
//! its reference with the ratio, and the closing recommendation.

use super::format::{ns, opt, rate, size};
use super::mechanisms::TABLE;
use super::results::{Row, ratio, reference};
use super::spec::{Impl, Mode};
use std::fmt::Write;

fn who(row: &Row) -> String {
    format!(
        "{:<9} {:<11} {:<5}",
        row.mechanism,
        row.implementation.label(),
        row.wait.map_or("-", |w| w.label())
    )
}

fn ratio_text(rows: &[Row], row: &Row) -> String {
    reference(rows, row)
        .and_then(|(r, label)| ratio(row, r).map(|x| format!("{x:.2}x {label}")))
        .unwrap_or_default()
}

/// The tables, as text.
pub fn tables(rows: &[Row]) -> String {
    let mut out = String::new();
    let section = |mode: Mode| rows.iter().filter(move |r| r.mode == mode);
    let _ = writeln!(
        out,
        "\nRound trip, request + reply (medians of the repeats; ratio = p50 / reference p50, above 1 is slower)"
    );
    let _ = writeln!(
        out,
        "{:<27} {:>7} {:>10} {:>10} {:>10} {:>10}  ratio",
        "mechanism impl        wait", "size", "p50", "p99", "p99.9", "max"
    );
    for row in section(Mode::Rtt) {
        let s = &row.sample;
        let _ = writeln!(
            out,
            "{} {:>7} {:>10} {:>10} {:>10} {:>10}  {}",
            who(row),
            size(row.size),
            opt(s.p50_ns, ns),
            opt(s.p99_ns, ns),
            opt(s.p999_ns, ns),
            opt(s.max_ns, ns),
            ratio_text(rows, row)
        );
    }
    let _ = writeln!(
        out,
        "\nStreaming one way (ratio = bytes/s / reference bytes/s, below 1 is slower)"
    );
    let _ = writeln!(
        out,
        "{:<27} {:>7} {:>12} {:>12}  ratio",
        "mechanism impl        wait", "size", "msgs/s", "bytes/s"
    );
    for row in section(Mode::Stream) {
        let s = &row.sample;
        let _ = writeln!(
            out,
            "{} {:>7} {:>12} {:>12}  {}",
            who(row),
            size(row.size),
            opt(s.msgs_per_s, |v| rate(v, "")),
            opt(s.bytes_per_s, |v| rate(v, "B/s")),
            ratio_text(rows, row)
        );
    }
    let _ = writeln!(
        out,
        "\nCalculator end to end (ratio = calls/s / reference calls/s, below 1 is slower)"
    );
    let _ = writeln!(
        out,
        "{:<27} {:>12} {:>10} {:>10}  ratio",
        "mechanism impl        wait", "calls/s", "p50", "p99"
    );
    for row in section(Mode::Calc) {
        let s = &row.sample;
        let _ = writeln!(
            out,
            "{} {:>12} {:>10} {:>10}  {}",
            who(row),
            opt(s.msgs_per_s, |v| rate(v, "")),
            opt(s.p50_ns, ns),
            opt(s.p99_ns, ns),
            ratio_text(rows, row)
        );
    }
    out
}

fn crosses(row: &Row) -> bool {
    row.entry.is_some_and(|e| TABLE[e].crosses_machines)
}

/// Best row by `key` among rows passing `filter`, preferring utp, else raw.
fn best(
    rows: &[Row],
    filter: impl Fn(&Row) -> bool,
    key: impl Fn(&Row) -> Option<f64>,
) -> Option<&Row> {
    [Impl::Utp, Impl::Raw].iter().find_map(|&implementation| {
        rows.iter()
            .filter(|r| r.implementation == implementation && r.entry.is_some() && filter(r))
            .filter_map(|r| key(r).map(|k| (r, k)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(r, _)| r)
    })
}

fn describe(row: &Row) -> String {
    let raw_only = if row.implementation == Impl::Raw {
        " (raw baseline only: utp's transport was not measured)"
    } else {
        ""
    };
    format!(
        "{} ({}){raw_only}",
        row.mechanism,
        row.wait.map_or("-", |w| w.label())
    )
}

/// The closing line: a mechanism for latency, for throughput and for
/// crossing machines, chosen from the measured numbers.
pub fn recommendation(rows: &[Row]) -> String {
    let small = |r: &Row| r.mode == Mode::Rtt && r.size == 64;
    let p50 = |r: &Row| r.sample.p50_ns.map(|v| v as f64);
    let latency = best(rows, small, p50)
        .map(|r| format!("{}, p50 {} at 64 B", describe(r), opt(r.sample.p50_ns, ns)));
    let throughput = best(
        rows,
        |r| r.mode == Mode::Stream,
        |r| r.sample.bytes_per_s.map(|b| -b),
    )
    .map(|r| {
        format!(
            "{}, {} at {}",
            describe(r),
            opt(r.sample.bytes_per_s, |v| rate(v, "B/s")),
            size(r.size)
        )
    });
    let remote = best(rows, |r| small(r) && crosses(r), p50)
        .map(|r| format!("{}, p50 {} at 64 B", describe(r), opt(r.sample.p50_ns, ns)));
    let or_none = |s: Option<String>| s.unwrap_or_else(|| "nothing measured".into());
    format!(
        "Recommended — latency: {} · throughput: {} · crossing machines: {}",
        or_none(latency),
        or_none(throughput),
        or_none(remote)
    )
}
