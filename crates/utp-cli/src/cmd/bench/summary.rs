//! What a user reads first: the best mechanism for latency, throughput and
//! crossing machines with the ratios that matter, whether the run can be
//! trusted (load, spread between repeats), and how each raw baseline was set up.

use super::format::{ns, opt, rate, size};
use super::mechanisms::TABLE;
use super::raw::plain_ring;
use super::report::{STOLEN_MARK, best, between_processes, crosses, describe, lossy, stolen_mark};
use super::results::{Row, ratio, ratio_range, reference};
use super::spec::{BATCH, Impl, Mode};
use std::fmt::Write;

/// Spread between repeats above which a point is called unsteady.
pub const UNSTEADY_SPREAD: f64 = 0.25;
/// Spread of a point's per-repeat ratios (largest less smallest, over the
/// median) above which the ratio is called unsteady: the targets' bounds
/// (0.9x, 1.1x) are a tenth from parity.
pub const UNSTEADY_RATIO: f64 = 0.10;
/// How far utp may beat its raw baseline before the baseline is suspect (noise).
pub const NOISE: f64 = 0.05;

fn vs_raw(rows: &[Row], row: &Row) -> String {
    match reference(rows, row) {
        Some((raw, "raw")) => match (ratio(row, raw), row.mode) {
            (Some(x), Mode::Rtt) => format!(", {x:.2}x raw (raw {})", opt(raw.sample.p50_ns, ns)),
            (Some(x), _) => format!(", {x:.2}x raw"),
            (None, _) => String::new(),
        },
        _ => String::new(),
    }
}

/// Whether utp is slower than raw beyond the targets (latency > 1.1x, rates < 0.9x),
/// or faster beyond noise; `None` when there is no raw figure.
fn verdict(rows: &[Row], row: &Row) -> Option<(f64, std::cmp::Ordering)> {
    let x = ratio(row, raw_of(rows, row)?)?;
    let speed = speed(row, x);
    Some((
        x,
        if speed < 0.9 {
            std::cmp::Ordering::Less
        } else if speed > 1.0 + NOISE {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        },
    ))
}

fn point(row: &Row) -> String {
    let wait = row.wait.map_or("-", |w| w.label());
    match row.mode {
        Mode::Calc => format!("{} ({wait}) calc", row.mechanism),
        mode => format!(
            "{} ({wait}) {} {}",
            row.mechanism,
            mode.label(),
            size(row.size)
        ),
    }
}

/// The summary of a fixed-rate run: the lowest corrected p99, and which
/// mechanisms could not keep up with the offered rate.
fn rate_summary(rows: &[Row], offered: f64) -> String {
    let mut out = format!(
        "Summary at a fixed {} msgs/s (64 B requests; latency corrected for coordinated omission)\n",
        rate(offered, "")
    );
    let p99 = |r: &Row| r.sample.p99_ns.map(|v| v as f64);
    let keeps_up = |r: &Row| r.sample.msgs_per_s.is_some_and(|a| a >= 0.95 * offered);
    let best_row = best(rows, |r| r.mode == Mode::Rate && keeps_up(r), p99);
    let text = best_row.map_or_else(
        || "no mechanism kept up with the offered rate".to_string(),
        |r| {
            format!(
                "{}: p99 {} (p50 {}){}",
                describe(r),
                opt(r.sample.p99_ns, ns),
                opt(r.sample.p50_ns, ns),
                vs_raw(rows, r)
            )
        },
    );
    let _ = writeln!(out, "  {:<19}{text}", "lowest p99");
    let behind: Vec<String> = rows
        .iter()
        .filter(|r| r.mode == Mode::Rate && !keeps_up(r))
        .map(|r| {
            format!(
                "{} {} ({}) at {}",
                r.implementation.label(),
                r.mechanism,
                r.wait.map_or("-", |w| w.label()),
                opt(r.sample.msgs_per_s, |v| rate(v, "/s"))
            )
        })
        .collect();
    if !behind.is_empty() {
        let _ = writeln!(
            out,
            "  {:<19}{}: with up to {} requests in flight (a message queue's depth where it is smaller) it carries less than the offered rate, so requests queue and the corrected latencies grow with the run",
            "could not keep up",
            behind.join(", "),
            super::rate::IN_FLIGHT
        );
    }
    out
}

/// The summary block printed above the tables (`offered`: the `--rate`, if any).
pub fn summary(rows: &[Row], offered: Option<f64>) -> String {
    if let Some(offered) = offered {
        return rate_summary(rows, offered);
    }
    let mut out = String::from(
        "Summary (medians of the repeats; each ratio against the raw baseline of the same mechanism, taken within each repeat, where the two ran back to back, then the median)\n",
    );
    let small = |r: &Row| r.mode == Mode::Rtt && r.size == 64 && between_processes(r);
    let p50 = |r: &Row| r.sample.p50_ns.map(|v| v as f64);
    let line = |label: &str, text: Option<String>| {
        format!(
            "  {label:<19}{}\n",
            text.unwrap_or_else(|| "nothing measured".into())
        )
    };
    let latency = best(rows, small, p50).map(|r| {
        format!(
            "{}: p50 {} at 64 B{}",
            describe(r),
            opt(r.sample.p50_ns, ns),
            vs_raw(rows, r)
        )
    });
    out += &line("latency", latency);
    let throughput = best(
        rows,
        |r| r.mode == Mode::Stream && between_processes(r),
        |r| r.sample.bytes_per_s.map(|b| -b),
    )
    .map(|r| {
        format!(
            "{}: {} at {}{}",
            describe(r),
            opt(r.sample.bytes_per_s, |v| rate(v, "B/s")),
            size(r.size),
            vs_raw(rows, r)
        )
    });
    out += &line("throughput", throughput);
    let remote = best(rows, |r| small(r) && crosses(r) && !lossy(r), p50)
        .or_else(|| best(rows, |r| small(r) && crosses(r), p50))
        .map(|r| {
            format!(
                "{}: p50 {} at 64 B{}",
                describe(r),
                opt(r.sample.p50_ns, ns),
                vs_raw(rows, r)
            )
        });
    out += &line("crossing machines", remote);
    if let Some(text) = batch_line(rows) {
        out += &line(&format!("batches of {BATCH}"), Some(text));
    }

    if let Some(text) = floor_line(rows) {
        out += &line("floors", Some(text));
    }
    let judged: Vec<(&Row, f64, std::cmp::Ordering)> = rows
        .iter()
        .filter(|r| r.implementation == Impl::Utp)
        .filter_map(|r| verdict(rows, r).map(|(x, v)| (r, x, v)))
        .collect();
    if !judged.is_empty() {
        let count = |o| judged.iter().filter(|(_, _, v)| *v == o).count();
        let mut text = format!(
            "{} points at raw speed (latency within 1.1x, rates within 0.9x), {} slower",
            count(std::cmp::Ordering::Equal),
            count(std::cmp::Ordering::Less)
        );
        let worst = judged
            .iter()
            .filter(|(_, _, v)| *v == std::cmp::Ordering::Less)
            .min_by(|a, b| speed(a.0, a.1).total_cmp(&speed(b.0, b.1)));
        if let Some((row, x, _)) = worst {
            let _ = write!(text, " (worst: {} {x:.2}x)", point(row));
        }
        // Faster in the median: in every repeat (a baseline to fix or
        // explain), or in some only (noise).
        let (steady, unsteady): (Vec<_>, Vec<_>) = judged
            .iter()
            .filter(|(_, _, v)| *v == std::cmp::Ordering::Greater)
            .partition(|(row, _, _)| faster_in_every_repeat(rows, row));
        let named = |points: &[&(&Row, f64, std::cmp::Ordering)]| {
            points
                .iter()
                .map(|(row, x, _)| format!("{} {x:.2}x{}", point(row), stolen_mark(row)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !steady.is_empty() {
            let _ = write!(
                text,
                "; faster than raw by more than noise in every repeat at {}: a baseline must never lose to utp, so each is a baseline to fix or explain",
                named(&steady)
            );
        }
        if !unsteady.is_empty() {
            let _ = write!(
                text,
                "; faster in the median but not in every repeat (noise) at {}",
                named(&unsteady)
            );
        }
        out += &line("utp against raw", Some(text));
    }
    out
}

/// What sending 64-byte messages in batches gains: the fastest batched
/// stream, and the fastest over a kernel object (a socket, a pipe), each
/// against the same mechanism's single sends and against raw.
fn batch_line(rows: &[Row]) -> Option<String> {
    let batched = |r: &Row| r.mode == Mode::Batch && r.size == 64 && between_processes(r);
    let msgs = |r: &Row| r.sample.msgs_per_s.map(|m| -m);
    let in_kernel = |r: &Row| {
        r.entry
            .is_some_and(|e| !TABLE[e].raw_kind(Mode::Batch, r.size).is_ring())
    };
    let text = |r: &Row| {
        let single = rows
            .iter()
            .find(|s| {
                s.mode == Mode::Stream
                    && s.entry == r.entry
                    && s.size == r.size
                    && s.implementation == r.implementation
            })
            .and_then(|s| Some(r.sample.msgs_per_s? / s.sample.msgs_per_s?))
            .map_or(String::new(), |x| format!(", {x:.1}x its single sends"));
        format!(
            "{}: {} msgs/s at 64 B{single}{}",
            describe(r),
            opt(r.sample.msgs_per_s, |v| rate(v, "")),
            vs_raw(rows, r)
        )
    };
    let fastest = best(rows, batched, msgs)?;
    let mut out = text(fastest);
    if !in_kernel(fastest)
        && let Some(kernel) = best(rows, |r| batched(r) && in_kernel(r), msgs)
    {
        let _ = write!(out, "; through the kernel, {}", text(kernel));
    }
    Some(out)
}

/// The raw shared-memory ring against the floors measured at 64 KiB: the
/// plain two-core ring (`raw::plain_ring`: the least a ring can do, which
/// issue 12 asks the raw ring to be within 20 % of; it runs beside the
/// first ring streaming 64 KiB, repeat by repeat, so that is the ring
/// named) and one core's memcpy (each side of a ring copies once, in
/// parallel, so no ring passes it).
fn floor_line(rows: &[Row]) -> Option<String> {
    const SIZE: usize = plain_ring::SIZE;
    let floor = |name: &str| {
        rows.iter()
            .find(|r| r.entry.is_none() && r.mechanism == name && r.size == SIZE)?
            .sample
            .bytes_per_s
    };
    let ring = rows
        .iter()
        .filter(|r| {
            r.implementation == Impl::Raw
                && r.mode == Mode::Stream
                && r.size == SIZE
                && r.entry
                    .is_some_and(|e| TABLE[e].raw_kind(Mode::Stream, SIZE).is_ring())
        })
        .find_map(|r| r.sample.bytes_per_s.map(|b| (r, b)))?;
    let against: Vec<String> = [
        (floor(plain_ring::MECHANISM), "the plain two-core ring"),
        (floor("memcpy"), "one core's memcpy of 64 KiB"),
    ]
    .into_iter()
    .filter_map(|(bytes_per_s, what)| {
        bytes_per_s.map(|b| format!("{:.2}x {what} ({})", ring.1 / b, rate(b, "B/s")))
    })
    .collect();
    (!against.is_empty()).then(|| {
        format!(
            "raw shared-memory ring at 64 KiB {} ({} {}) = {}",
            rate(ring.1, "B/s"),
            ring.0.mechanism,
            ring.0.wait.map_or("-", |w| w.label()),
            against.join(", ")
        )
    })
}

/// The raw baseline `row` is compared with, if its reference is one.
fn raw_of<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    reference(rows, row)
        .filter(|(_, label)| *label == "raw")
        .map(|(raw, _)| raw)
}

/// `row`'s ratio `x` as utp's speed over raw's: above 1 is faster,
/// whether the figure is a latency or a rate.
fn speed(row: &Row, x: f64) -> f64 {
    if row.mode == Mode::Rtt { 1.0 / x } else { x }
}

/// Whether utp beat its raw baseline by more than noise in each repeat,
/// not only in the median of them (a single repeat: in that one).
fn faster_in_every_repeat(rows: &[Row], row: &Row) -> bool {
    let Some(raw) = raw_of(rows, row) else {
        return false;
    };
    let slowest = match ratio_range(row, raw) {
        Some((low, high)) => speed(row, low).min(speed(row, high)),
        None => ratio(row, raw).map_or(0.0, |x| speed(row, x)),
    };
    slowest > 1.0 + NOISE
}

/// How busy the machine and its host were around a run.
#[derive(Clone, Copy, Debug)]
pub struct Load<'a> {
    /// /proc/loadavg's first three fields when the run started.
    pub average_at_start: &'a str,
    /// The same when the tables were done.
    pub average_at_end: &'a str,
    /// The machine's logical CPUs.
    pub cores: usize,
    /// The share of the CPU time other processes used in the moment before
    /// the run (see `machine::Usage::others_share`), where it could be read.
    pub others_before: Option<f64>,
    /// The same during the run: busy time the bench and its peers did not use.
    pub others_during: Option<f64>,
    /// The share of the CPU time the hypervisor gave to other guests.
    pub steal: Option<f64>,
}

/// Why the figures of this run may not be trustworthy: other processes
/// using the CPUs (measured, or where it cannot be, guessed from the load
/// average), a busy host (steal time: the share of the run's CPU time the
/// hypervisor gave to other guests), or repeats that disagree.
pub fn warnings(load: &Load<'_>, rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    let Load {
        average_at_start,
        average_at_end,
        cores,
        others_before,
        others_during,
        steal,
    } = *load;
    let busy = match (others_before, others_during) {
        (None, None) => {
            // No /proc to measure with: the load average, which cannot
            // tell earlier work from current, nor ours from others'.
            let one_minute = |load: &str| {
                load.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
            };
            let cores_f = cores.max(1) as f64;
            // At the start nothing of ours runs yet; at the end our own two
            // processes count in the load, so allow for them.
            one_minute(average_at_start).is_some_and(|l| l >= 0.5 * cores_f)
                || one_minute(average_at_end).is_some_and(|l| l >= 0.5 * cores_f + 2.0)
        }
        (before, during) => [before, during]
            .into_iter()
            .flatten()
            .any(|share| share >= super::machine::OTHER_WORK_WARNING),
    };
    if busy {
        let shown = |share: Option<f64>| {
            share.map_or("unknown".to_string(), |s| format!("{:.0} %", s * 100.0))
        };
        out.push(format!(
            "WARNING: the machine was busy: other processes used {} of its CPU time during the run and {} just before it (load average {average_at_start} at the start, {average_at_end} at the end, on {cores} cores): other work competes with both sides of every run, spinning ones most; compare ratios only, and rerun on a quiet machine before quoting figures",
            shown(others_during),
            shown(others_before),
        ));
    }
    if let Some(steal) = steal.filter(|&s| s >= super::machine::STEAL_WARNING) {
        out.push(format!(
            "WARNING: the host was busy: the hypervisor gave {:.0} % of this guest's CPU time to other work during the run (steal time); wake-ups wait for a vCPU to be scheduled and spinning sides lose slices, so absolute figures are inflated; compare ratios only",
            steal * 100.0
        ));
    }
    // Points, not rows: the rows of a point are consecutive and share its
    // steal figure.
    let mut points: Vec<(Option<usize>, Mode, usize, bool)> = rows
        .iter()
        .filter(|r| r.entry.is_some())
        .map(|r| (r.entry, r.mode, r.size, r.stolen()))
        .collect();
    points.dedup_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2));
    let stolen = points.iter().filter(|p| p.3).count();
    if stolen > 0 {
        out.push(format!(
            "WARNING: {stolen} of {} points ran while the host gave {:.0} % or more of the CPU time to other work (marked{STOLEN_MARK} in the tables); their ratios are the least certain",
            points.len(),
            super::machine::STEAL_WARNING * 100.0
        ));
    }
    // Each row's spread, computed once (it is derived from the repeats).
    let spreads: Vec<(&Row, f64)> = rows.iter().filter_map(|r| Some((r, r.spread()?))).collect();
    let judged = spreads.len();
    let unsteady: Vec<(&Row, f64)> = spreads
        .into_iter()
        .filter(|&(_, s)| s > UNSTEADY_SPREAD)
        .collect();
    if !unsteady.is_empty() {
        let worst = unsteady
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(r, s)| {
                format!(
                    "{} {}, {:.0} %",
                    r.implementation.label(),
                    point(r),
                    s * 100.0
                )
            })
            .unwrap_or_default();
        out.push(format!(
            "WARNING: {} of {judged} points varied by more than {:.0} % between repeats (worst: {worst}); their medians are uncertain",
            unsteady.len(),
            UNSTEADY_SPREAD * 100.0
        ));
    }
    if let Some(line) = unsteady_ratios(rows) {
        out.push(line);
    }
    out
}

/// The warning for ratios that moved between repeats by more than
/// [`UNSTEADY_RATIO`], if any did: a figure may swing with the host while
/// its ratio, taken within each repeat, holds (or the reverse), and a
/// claim made from a ratio rests on the latter.
fn unsteady_ratios(rows: &[Row]) -> Option<String> {
    let ranges: Vec<(&Row, &str, f64, f64, f64)> = rows
        .iter()
        .filter_map(|row| {
            let (reference, label) = reference(rows, row)?;
            let (low, high) = ratio_range(row, reference)?;
            let median = ratio(row, reference)?;
            (median > 0.0).then_some((row, label, low, high, (high - low) / median))
        })
        .collect();
    let judged = ranges.len();
    let unsteady: Vec<_> = ranges
        .into_iter()
        .filter(|&(.., spread)| spread > UNSTEADY_RATIO)
        .collect();
    let (row, label, low, high, _) = *unsteady.iter().max_by(|a, b| a.4.total_cmp(&b.4))?;
    Some(format!(
        "WARNING: the ratios of {} of {judged} points moved by more than {:.0} % between repeats (worst: {} {}, {low:.2}–{high:.2}x {label}); each ratio's range is beside it in the tables",
        unsteady.len(),
        UNSTEADY_RATIO * 100.0,
        row.implementation.label(),
        point(row),
    ))
}

/// The note shown when the peer libraries are not compiled in.
pub fn peers_note(shm_measured: bool) -> Option<String> {
    (!cfg!(feature = "peers") && shm_measured).then(|| {
        "peer libraries (iceoryx2, ipc-channel) are not in this build: build with --features peers to compare".into()
    })
}

/// One raw baseline of the run and how it was set up (also in the JSON).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Baseline {
    /// Mechanism name.
    pub mechanism: &'static str,
    /// How its receiver waits.
    pub wait: &'static str,
    /// Modes it served (`rtt`, `stream`, `calc`, `rate`).
    pub modes: Vec<&'static str>,
    /// Buffers, depth, waiting, prefaulting.
    pub setup: String,
}

/// Every raw baseline used by `rows`, once each.
pub fn baseline_list(rows: &[Row], ring_floor: u64) -> Vec<Baseline> {
    let mut out: Vec<(super::raw::RawKind, Baseline)> = Vec::new();
    for row in rows.iter().filter(|r| r.implementation == Impl::Raw) {
        let Some(entry) = row.entry else { continue };
        let kind = TABLE[entry].raw_kind(row.mode, row.size);
        let mode = row.mode.label();
        match out
            .iter_mut()
            .find(|(k, b)| *k == kind && b.mechanism == row.mechanism)
        {
            Some((_, b)) if !b.modes.contains(&mode) => b.modes.push(mode),
            Some(_) => {}
            None => out.push((
                kind,
                Baseline {
                    mechanism: row.mechanism,
                    wait: kind.wait().label(),
                    modes: vec![mode],
                    setup: kind.describe(TABLE[entry].raw_in_file, ring_floor),
                },
            )),
        }
    }
    let mut list: Vec<Baseline> = out.into_iter().map(|(_, b)| b).collect();
    // The floor the raw ring is judged against, when it ran.
    if rows
        .iter()
        .any(|r| r.entry.is_none() && r.mechanism == plain_ring::MECHANISM)
    {
        list.push(Baseline {
            mechanism: plain_ring::MECHANISM,
            wait: super::spec::Wait::Spin.label(),
            modes: vec![Mode::Stream.label()],
            setup: plain_ring::describe(),
        });
    }
    list
}

/// How every raw baseline of this run was set up, as text.
pub fn baselines(rows: &[Row], ring_floor: u64) -> String {
    let list = baseline_list(rows, ring_floor);
    let mut out = String::new();
    if !list.is_empty() {
        out += "\nRaw baselines (each does the least work the mechanism allows, with utp's buffers, queue depth and waiting)\n";
    }
    for b in list {
        let _ = writeln!(
            out,
            "  {:<17} {:<16} {}",
            format!("{} ({})", b.mechanism, b.wait),
            b.modes.join("/"),
            b.setup
        );
    }
    out
}

/// Whether a row has the figure it is judged on (for the tests).
#[cfg(test)]
fn measured(row: &Row) -> bool {
    super::results::key_figure(row.mode, &row.sample).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::bench::fixtures::{latency, row, throughput};
    use crate::cmd::bench::sample::Sample;

    #[test]
    fn the_summary_quotes_the_best_mechanisms_with_their_ratios_and_flags_suspect_baselines() {
        let rows = vec![
            row("unix", Impl::Utp, Mode::Rtt, 64, latency(22_000)),
            row("unix", Impl::Raw, Mode::Rtt, 64, latency(20_000)),
            row("tcp", Impl::Utp, Mode::Rtt, 64, latency(40_000)),
            row("tcp", Impl::Raw, Mode::Rtt, 64, latency(20_000)),
            row("unix", Impl::Utp, Mode::Stream, 4096, throughput(3e9)),
            row("unix", Impl::Raw, Mode::Stream, 4096, throughput(1e9)),
        ];
        assert!(rows.iter().all(measured));
        let text = summary(&rows, None);
        assert!(
            text.contains(
                "latency            unix (block): p50 22.00 µs at 64 B, 1.10x raw (raw 20.00 µs)"
            ),
            "{text}"
        );
        assert!(
            text.contains("throughput         unix (block): 3.00 GB/s at 4 KiB, 3.00x raw"),
            "{text}"
        );
        assert!(
            text.contains("crossing machines  tcp (block): p50 40.00 µs"),
            "{text}"
        );
        assert!(text.contains("1 points at raw speed"), "{text}");
        assert!(!text.contains("floors"), "no memcpy row: {text}");
        assert!(
            text.contains("1 slower (worst: tcp (block) rtt 64 B 2.00x)"),
            "{text}"
        );
        assert!(
            text.contains(
                "faster than raw by more than noise in every repeat at unix (block) stream 4 KiB 3.00x"
            ),
            "{text}"
        );
        assert!(!text.contains("not in every repeat"), "{text}");
        // Faster in the median, slower in one repeat: noise, said apart.
        let mut rows = rows;
        rows[4].by_repeat = vec![Some(3e9), Some(0.5e9), Some(3e9)];
        let text = summary(&rows, None);
        assert!(
            text.contains(
                "faster in the median but not in every repeat (noise) at unix (block) stream 4 KiB 3.00x"
            ) && !text.contains("in every repeat at"),
            "{text}"
        );
    }

    #[test]
    fn a_rate_summary_names_the_lowest_p99_and_who_fell_behind() {
        let at = |achieved: f64, p99: u64| Sample {
            msgs_per_s: Some(achieved),
            p50_ns: Some(p99 / 2),
            p99_ns: Some(p99),
            ..Sample::default()
        };
        let rows = vec![
            row("shm", Impl::Utp, Mode::Rate, 64, at(10_000.0, 2_000)),
            row("shm", Impl::Raw, Mode::Rate, 64, at(10_000.0, 1_000)),
            row("unix", Impl::Utp, Mode::Rate, 64, at(4_000.0, 900_000)),
        ];
        let text = summary(&rows, Some(10_000.0));
        assert!(
            text.contains("lowest p99         shm (block): p99 2.00 µs (p50 1.00 µs), 2.00x raw"),
            "{text}"
        );
        assert!(
            text.contains("could not keep up  utp unix (block) at 4.00 k/s"),
            "{text}"
        );
    }

    #[test]
    fn the_raw_ring_is_set_against_memcpy_when_both_ran() {
        let mut memcpy = row("shm", Impl::Raw, Mode::Stream, 65536, throughput(40e9));
        memcpy.entry = None;
        memcpy.mechanism = "memcpy";
        let rows = vec![
            memcpy,
            row("shm", Impl::Raw, Mode::Stream, 65536, throughput(20e9)),
            row("unix", Impl::Raw, Mode::Stream, 65536, throughput(30e9)),
        ];
        let text = summary(&rows, None);
        assert!(
            text.contains("floors             raw shared-memory ring at 64 KiB 20.00 GB/s (shm block) = 0.50x one core's memcpy of 64 KiB (40.00 GB/s)"),
            "{text}"
        );
    }

    #[test]
    fn the_raw_ring_is_set_against_the_plain_ring_first() {
        let floor = |name: &'static str, rate: f64| {
            let mut r = row("shm", Impl::Raw, Mode::Stream, 65536, throughput(rate));
            r.entry = None;
            r.mechanism = name;
            r
        };
        let rows = vec![
            floor("memcpy", 40e9),
            floor(plain_ring::MECHANISM, 25e9),
            row("shm", Impl::Raw, Mode::Stream, 65536, throughput(20e9)),
        ];
        let text = summary(&rows, None);
        assert!(
            text.contains("raw shared-memory ring at 64 KiB 20.00 GB/s (shm block) = 0.80x the plain two-core ring (25.00 GB/s), 0.50x one core's memcpy of 64 KiB (40.00 GB/s)"),
            "{text}"
        );
        // The plain ring alone is enough for the line.
        let text = summary(&rows[1..], None);
        assert!(
            text.contains("= 0.80x the plain two-core ring (25.00 GB/s)\n"),
            "{text}"
        );
    }

    /// A run on 2 cores whose load average reads quiet (0.20 at the start,
    /// 2.40 at the end: our own two processes).
    fn load(
        others_before: Option<f64>,
        others_during: Option<f64>,
        steal: Option<f64>,
    ) -> Load<'static> {
        Load {
            average_at_start: "0.20 0.1 0.1",
            average_at_end: "2.40 1 1",
            cores: 2,
            others_before,
            others_during,
            steal,
        }
    }

    #[test]
    fn a_busy_machine_and_unsteady_repeats_are_warned_about() {
        let mut unsteady = row("unix", Impl::Utp, Mode::Rtt, 64, latency(1));
        unsteady.by_repeat = vec![Some(70.0), Some(100.0), Some(130.0)];
        let rows = vec![unsteady, row("unix", Impl::Raw, Mode::Rtt, 64, latency(1))];
        let w = warnings(&load(Some(0.02), Some(0.31), None), &rows);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].contains(
                "other processes used 31 % of its CPU time during the run and 2 % just before it"
            ) && w[0].contains("load average 0.20 0.1 0.1 at the start"),
            "{w:?}"
        );
        assert!(
            w[1].contains("1 of 2 points") && w[1].contains("60 %"),
            "{w:?}"
        );
        // The unsteady row's ratio moved too, against a steady raw of 1 ns:
        // 70, 100 and 130 (the range 60 % of the median).
        assert!(
            w[2].contains("the ratios of 1 of 1 points moved by more than 10 %")
                && w[2].contains("utp unix (block) rtt 64 B, 70.00–130.00x raw"),
            "{w:?}"
        );
        // Busy just before the run is enough.
        let w = warnings(&load(Some(0.15), Some(0.01), None), &rows[1..]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("busy") && w[0].contains("15 %"), "{w:?}");
        // A quiet machine and steady repeats: nothing to say, however high
        // the load average (work that ended before the run, our own spinning
        // sides during it).
        let quiet = Load {
            average_at_start: "3.10 2.00 1.00",
            average_at_end: "3.50 2.00 1.00",
            ..load(Some(0.09), Some(0.03), Some(0.049))
        };
        assert!(warnings(&quiet, &rows[1..]).is_empty());
        // Nothing measured (no /proc): the load average decides.
        let unmeasured = Load {
            average_at_start: "3.10 2.00 1.00",
            ..load(None, None, None)
        };
        let w = warnings(&unmeasured, &rows[1..]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("busy") && w[0].contains("unknown"), "{w:?}");
        assert!(warnings(&load(None, None, None), &rows[1..]).is_empty());
        // A quiet guest on a busy host: the steal time is the warning.
        let w = warnings(&load(Some(0.0), Some(0.0), Some(0.12)), &rows[1..]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("host was busy") && w[0].contains("12 %"),
            "{w:?}"
        );
    }

    #[test]
    fn points_the_host_stole_from_are_counted_and_marked_in_the_summary() {
        let stolen = |mut r: Row| {
            r.steal = Some(0.2);
            r
        };
        let rows = vec![
            stolen(row("unix", Impl::Utp, Mode::Stream, 64, throughput(3e9))),
            stolen(row("unix", Impl::Raw, Mode::Stream, 64, throughput(1e9))),
            row("tcp", Impl::Utp, Mode::Stream, 64, throughput(1e9)),
            row("tcp", Impl::Raw, Mode::Stream, 64, throughput(1e9)),
        ];
        let w = warnings(&load(None, Some(0.0), Some(0.01)), &rows);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("1 of 2 points ran while the host gave 5 %"),
            "{w:?}"
        );
        let text = summary(&rows, None);
        assert!(
            text.contains(
                "faster than raw by more than noise in every repeat at unix (block) stream 64 B 3.00x *:"
            ),
            "{text}"
        );
    }

    #[test]
    fn every_raw_baseline_used_is_described_once() {
        let rows = vec![
            row("shm", Impl::Raw, Mode::Rtt, 64, latency(1)),
            row("shm", Impl::Raw, Mode::Rtt, 65536, latency(1)),
            row("shm", Impl::Raw, Mode::Stream, 65536, throughput(1.0)),
            row("mq", Impl::Raw, Mode::Rtt, 64, latency(1)),
        ];
        let text = baselines(&rows, super::super::plan::MIN_RING_BYTES);
        assert_eq!(text.matches("mailbox").count(), 1, "{text}");
        assert_eq!(text.matches("SPSC byte ring").count(), 1, "{text}");
        assert!(text.contains("rtt/stream"), "the ring serves both: {text}");
        assert!(text.contains("messages of"), "{text}");
    }
}
