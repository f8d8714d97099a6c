//! The pub/sub section's table: medians over rounds, ratios taken within
//! each round (interleaved runs) and then their median, the per-round
//! ratios with the placement probe before each round, the paced runs'
//! losses, and the load average.

use super::{Count, PACE, Report, RoundFigures, idle, median};
use crate::cmd::bench::placement::classify;

/// Median over rounds of `f(this kind) / f(other kind)` within each round.
fn ratio(c: &Count, kind: usize, other: usize, f: fn(&RoundFigures) -> f64) -> f64 {
    median(
        c.rounds
            .iter()
            .map(|r| f(&r[kind]) / f(&r[other]))
            .collect(),
    )
}

fn over_rounds(c: &Count, kind: usize, f: fn(&RoundFigures) -> f64) -> f64 {
    median(c.rounds.iter().map(|r| f(&r[kind])).collect())
}

fn probe_text(p: &Option<u64>) -> String {
    p.map_or("no probe".into(), |ns| format!("{} {ns} ns", classify(ns)))
}

/// Prints the section.
pub fn print(report: &Report) {
    if let Some(c) = report.counts.last() {
        println!(
            "placement: {} (up to {} subscriber(s) per CPU) · subscribers poll; those sharing a CPU yield it every {} µs (all implementations alike) · latency runs: one message every {} µs",
            c.placement.describe(),
            c.placement.most_per_cpu(),
            idle::SLICE_NS as f64 / 1000.0,
            PACE.as_micros()
        );
    }
    println!(
        "{:>4}  {:<9} {:>9} {:>15} {:>9} {:>7} {:>13} {:>7} {:>9}  {:>10} {:>12} {:>13}",
        "subs",
        "impl",
        "p50",
        "on-CPU p50",
        "p99",
        "lost*",
        "msgs/s/sub",
        "lost",
        "pub ns",
        "p50 / raw",
        "on-CPU / raw",
        "msgs/s / raw"
    );
    let mut paced_losses = Vec::new();
    for c in &report.counts {
        let raw = c.kinds.iter().position(|&k| k == "raw");
        for (k, kind) in c.kinds.iter().enumerate() {
            let (lat, hot, tput) = raw.map_or((f64::NAN, f64::NAN, f64::NAN), |b| {
                (
                    ratio(c, k, b, |f| f.p50_ns),
                    ratio(c, k, b, |f| f.on_cpu_p50_ns),
                    ratio(c, k, b, |f| f.msgs_per_s),
                )
            });
            let paced_lost = c.rounds.iter().map(|r| r[k].paced_lost).fold(0.0, f64::max);
            if paced_lost > 0.0 {
                paced_losses.push(format!(
                    "{kind} with {} subscriber(s) lost up to {:.3}%",
                    c.subscribers,
                    paced_lost * 100.0
                ));
            }
            println!(
                "{:>4}  {:<9} {:>7.0}ns {:>7.0}ns ({:>3.0}%) {:>7.0}ns {:>6.2}% {:>13.0} {:>6.2}% {:>7.1}ns  {:>9.2}x {:>11.2}x {:>12.2}x",
                c.subscribers,
                kind,
                over_rounds(c, k, |f| f.p50_ns),
                over_rounds(c, k, |f| f.on_cpu_p50_ns),
                over_rounds(c, k, |f| f.on_cpu_share) * 100.0,
                over_rounds(c, k, |f| f.p99_ns),
                paced_lost * 100.0,
                over_rounds(c, k, |f| f.msgs_per_s),
                over_rounds(c, k, |f| f.lost) * 100.0,
                over_rounds(c, k, |f| f.publish_ns),
                lat,
                hot,
                tput
            );
        }
    }
    println!(
        "(p50, on-CPU p50 (share of samples it kept), p99, lost*: paced runs, lost* the worst round; msgs/s, lost, pub ns: flat out; medians over rounds; ratios: median of the ratios within each round)"
    );
    for c in &report.counts {
        let at = |name: &str| c.kinds.iter().position(|&k| k == name);
        let (Some(u), Some(r)) = (at("utp"), at("raw")) else {
            continue;
        };
        let per_round = |other: usize| -> Vec<String> {
            c.rounds
                .iter()
                .map(|round| format!("{:.2}", round[u].on_cpu_p50_ns / round[other].on_cpu_p50_ns))
                .collect()
        };
        let mut line = format!(
            "{} subscriber(s): utp on-CPU p50 / raw {:.2}x (rounds: {}; all samples {:.2}x)",
            c.subscribers,
            ratio(c, u, r, |f| f.on_cpu_p50_ns),
            per_round(r).join(" "),
            ratio(c, u, r, |f| f.p50_ns)
        );
        if let Some(i) = at("iceoryx2") {
            line += &format!(
                "; / iceoryx2 {:.2}x (rounds: {}; all samples {:.2}x); utp throughput {:.2}x iceoryx2's",
                ratio(c, u, i, |f| f.on_cpu_p50_ns),
                per_round(i).join(" "),
                ratio(c, u, i, |f| f.p50_ns),
                ratio(c, u, i, |f| f.msgs_per_s)
            );
        }
        let probes: Vec<String> = c.probes.iter().map(probe_text).collect();
        println!("{line}; probes: {}", probes.join(", "));
        for note in &c.notes {
            println!("note: {} subscriber(s): {note}", c.subscribers);
        }
    }
    println!(
        "load average: {} at the start of the section, {} at the end",
        report.load.0, report.load.1
    );
    if !paced_losses.is_empty() {
        println!(
            "WARNING: the paced runs lost messages ({}): those latencies are not at an offered load the subscribers kept up with",
            paced_losses.join("; ")
        );
    }
}
