//! The terminal report: one table per mode, each utp (or peer) figure beside
//! its reference with the ratio, and the closing recommendation.

use super::format::{ns, opt, rate, size};
use super::mechanisms::TABLE;
use super::results::{Row, ratio, ratio_range, reference};
use super::spec::{BATCH, Impl, Mode};
use std::fmt::Write;

fn who(row: &Row) -> String {
    format!(
        "{:<9} {:<11} {:<5}",
        row.mechanism,
        row.implementation.label(),
        row.wait.map_or("-", |w| w.label())
    )
}

/// The ratio against the reference and, in brackets, the range of the
/// per-repeat ratios it is the median of, marked [`STOLEN_MARK`] if the
/// host stole enough CPU time while the point ran.
fn ratio_text(rows: &[Row], row: &Row) -> String {
    let Some((reference, label)) = reference(rows, row) else {
        return String::new();
    };
    let Some(x) = ratio(row, reference) else {
        return String::new();
    };
    let range = ratio_range(row, reference).map_or(String::new(), |(low, high)| {
        format!(" ({low:.2}–{high:.2})")
    });
    format!("{x:.2}x {label}{range}{}", stolen_mark(row))
}

/// Follows a ratio whose point ran while the host stole CPU time.
pub const STOLEN_MARK: &str = " *";

/// [`STOLEN_MARK`] if the host stole enough CPU time while `row`'s point
/// ran ([`Row::stolen`]), otherwise nothing.
pub fn stolen_mark(row: &Row) -> &'static str {
    if row.stolen() { STOLEN_MARK } else { "" }
}

/// The tables, as text.
pub fn tables(rows: &[Row]) -> String {
    let mut out = String::new();
    if rows.iter().any(|r| r.mode == Mode::Rate) {
        rate_table(&mut out, rows);
    } else {
        mode_tables(&mut out, rows);
    }
    if rows.iter().any(Row::stolen) {
        let _ = writeln!(
            out,
            "\n{}: the host gave {:.0} % or more of the CPU time to other work while the point ran (steal time), so its figures, the ratio too, are less certain",
            STOLEN_MARK.trim(),
            super::machine::STEAL_WARNING * 100.0
        );
    }
    out
}

/// The round-trip, streaming and calculator tables.
fn mode_tables(out: &mut String, rows: &[Row]) {
    let section = |mode: Mode| rows.iter().filter(move |r| r.mode == mode);
    let _ = writeln!(
        out,
        "\nRound trip, request + reply (medians of the repeats; ratio = p50 / reference p50 within each repeat, median over repeats, their range in brackets; above 1 is slower)"
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
    stream_rows(out, rows, Mode::Stream);
    if rows.iter().any(|r| r.mode == Mode::Batch) {
        let _ = writeln!(
            out,
            "\nStreaming one way in batches of {BATCH} messages a call (utp: Channel::send_batch; raw: one write or sendmmsg a batch, the ring's messages one by one; ratio as above)"
        );
        stream_rows(out, rows, Mode::Batch);
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
}

/// The header and rows of a streaming table.
fn stream_rows(out: &mut String, rows: &[Row], mode: Mode) {
    let _ = writeln!(
        out,
        "{:<27} {:>7} {:>12} {:>12}  ratio",
        "mechanism impl        wait", "size", "msgs/s", "bytes/s"
    );
    for row in rows.iter().filter(|r| r.mode == mode) {
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
}

/// The fixed-rate table: corrected percentiles, the uncorrected p99 beside
/// them, and the rate achieved.
fn rate_table(out: &mut String, rows: &[Row]) {
    let _ = writeln!(
        out,
        "\nFixed-rate load, 64 B requests echoed (medians of the repeats; latency from each request's scheduled send time, corrected for coordinated omission; ratio = p99 / reference p99 within each repeat, median over repeats)"
    );
    let _ = writeln!(
        out,
        "{:<27} {:>12} {:>10} {:>10} {:>10} {:>10} {:>16}  ratio",
        "mechanism impl        wait", "achieved/s", "p50", "p99", "p99.9", "max", "uncorrected p99"
    );
    for row in rows.iter().filter(|r| r.mode == Mode::Rate) {
        let s = &row.sample;
        let _ = writeln!(
            out,
            "{} {:>12} {:>10} {:>10} {:>10} {:>10} {:>16}  {}",
            who(row),
            opt(s.msgs_per_s, |v| rate(v, "")),
            opt(s.p50_ns, ns),
            opt(s.p99_ns, ns),
            opt(s.p999_ns, ns),
            opt(s.max_ns, ns),
            opt(s.uncorrected_p99_ns, ns),
            ratio_text(rows, row)
        );
    }
}

pub(super) fn crosses(row: &Row) -> bool {
    row.entry.is_some_and(|e| TABLE[e].crosses_machines)
}

/// Whether the row crosses a process boundary (inproc does not; memcpy is no IPC).
pub(super) fn between_processes(row: &Row) -> bool {
    row.entry.is_some_and(|e| !TABLE[e].in_process)
}

pub(super) fn lossy(row: &Row) -> bool {
    row.entry.is_some_and(|e| TABLE[e].lossy)
}

/// Best row by `key` among rows passing `filter`, preferring utp, else raw.
pub(super) fn best(
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

pub(super) fn describe(row: &Row) -> String {
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

/// What a reader should know when the winner is `sysv` or `file`: they run
/// shm://'s link over another kind of region, so between the three the
/// figures differ by where the host placed the vCPUs while each row ran,
/// not by the mechanism; shm:// is the one to pick unless the region's
/// kind matters (a file on disk may also take write faults at writeback).
fn same_link_note(row: &Row) -> &'static str {
    match row.mechanism {
        "file" => " (shm://'s link over a file: take shm:// unless the region must be a file)",
        "sysv" => " (shm://'s link over a System V segment: take shm:// unless you need System V)",
        _ => "",
    }
}

/// The closing line: a mechanism for latency, for throughput and for
/// crossing machines, chosen from the measured numbers (utp rows first, raw
/// rows only where utp was not measured; between processes, so not inproc).
pub fn recommendation(rows: &[Row]) -> String {
    let small = |r: &Row| r.mode == Mode::Rtt && r.size == 64 && between_processes(r);
    let p50 = |r: &Row| r.sample.p50_ns.map(|v| v as f64);
    let latency = best(rows, small, p50).map(|r| {
        format!(
            "{}, p50 {} at 64 B{}",
            describe(r),
            opt(r.sample.p50_ns, ns),
            same_link_note(r)
        )
    });
    let throughput = best(
        rows,
        |r| r.mode == Mode::Stream && between_processes(r),
        |r| r.sample.bytes_per_s.map(|b| -b),
    )
    .map(|r| {
        format!(
            "{}, {} at {}{}",
            describe(r),
            opt(r.sample.bytes_per_s, |v| rate(v, "B/s")),
            size(r.size),
            same_link_note(r)
        )
    });
    // A reliable mechanism first; a lossy one (UDP) only if nothing else was measured.
    let remote = best(rows, |r| small(r) && crosses(r) && !lossy(r), p50)
        .or_else(|| best(rows, |r| small(r) && crosses(r), p50))
        .map(|r| {
            let caveat = if lossy(r) { " (may drop messages)" } else { "" };
            format!(
                "{}{caveat}, p50 {} at 64 B",
                describe(r),
                opt(r.sample.p50_ns, ns)
            )
        });
    let or_none = |s: Option<String>| s.unwrap_or_else(|| "nothing measured".into());
    format!(
        "Recommended — latency: {} · throughput: {} · crossing machines: {}",
        or_none(latency),
        or_none(throughput),
        or_none(remote)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::bench::fixtures::{latency, row, throughput};

    #[test]
    fn recommends_from_measured_rows_preferring_utp_and_reliable_links() {
        let rows = vec![
            row("inproc", Impl::Utp, Mode::Rtt, 64, latency(500)),
            row("unix", Impl::Utp, Mode::Rtt, 64, latency(20_000)),
            row("unix", Impl::Raw, Mode::Rtt, 64, latency(18_000)),
            row("udp", Impl::Raw, Mode::Rtt, 64, latency(25_000)),
            row("tcp", Impl::Raw, Mode::Rtt, 64, latency(30_000)),
            row("unix", Impl::Utp, Mode::Stream, 65536, throughput(5e9)),
        ];
        let line = recommendation(&rows);
        assert!(
            line.contains("latency: unix (block), p50 20.00 µs"),
            "{line}"
        );
        assert!(
            line.contains("throughput: unix (block), 5.00 GB/s at 64 KiB"),
            "{line}"
        );
        assert!(
            line.contains("crossing machines: tcp (block) (raw baseline only"),
            "{line}"
        );
        assert!(!line.contains("take shm://"), "{line}");
    }

    #[test]
    fn a_file_or_sysv_winner_points_to_shm_whose_link_it_runs() {
        let rows = vec![
            row("shm", Impl::Utp, Mode::Rtt, 64, latency(890)),
            row("file", Impl::Utp, Mode::Rtt, 64, latency(260)),
            row("sysv", Impl::Utp, Mode::Stream, 4096, throughput(24e9)),
        ];
        let line = recommendation(&rows);
        assert!(
            line.contains(
                "latency: file (block), p50 260 ns at 64 B (shm://'s link over a file: take shm://"
            ),
            "{line}"
        );
        assert!(
            line.contains("throughput: sysv (block), 24.00 GB/s at 4 KiB (shm://'s link over a System V segment"),
            "{line}"
        );
    }

    #[test]
    fn tables_show_ratios_to_the_reference() {
        let rows = vec![
            row("unix", Impl::Utp, Mode::Rtt, 8, latency(22_000)),
            row("unix", Impl::Raw, Mode::Rtt, 8, latency(20_000)),
        ];
        let text = tables(&rows);
        assert!(text.contains("1.10x raw (1.10–1.10)"), "{text}");
        assert!(!text.contains("steal"), "nothing stolen, no note: {text}");
        // Repeats that moved: the median ratio and the range of them.
        let mut moved = rows.clone();
        moved[0].by_repeat = vec![Some(22_000.0), Some(30_000.0), Some(19_000.0)];
        let text = tables(&moved);
        assert!(text.contains("1.10x raw (0.95–1.50)"), "{text}");
        assert_eq!(recommendation(&[]).matches("nothing measured").count(), 3);
    }

    #[test]
    fn a_point_the_host_stole_from_is_marked_with_a_note() {
        let mut rows = vec![
            row("unix", Impl::Utp, Mode::Rtt, 8, latency(22_000)),
            row("unix", Impl::Raw, Mode::Rtt, 8, latency(20_000)),
            row("tcp", Impl::Utp, Mode::Rtt, 8, latency(30_000)),
            row("tcp", Impl::Raw, Mode::Rtt, 8, latency(20_000)),
        ];
        for r in &mut rows[..2] {
            r.steal = Some(0.05);
        }
        for r in &mut rows[2..] {
            r.steal = Some(0.049);
        }
        let text = tables(&rows);
        assert!(text.contains("1.10x raw (1.10–1.10) *\n"), "{text}");
        assert!(
            text.contains("1.50x raw (1.50–1.50)\n"),
            "under the threshold: {text}"
        );
        assert!(
            text.contains("\n*: the host gave 5 % or more of the CPU time"),
            "{text}"
        );
    }
}
