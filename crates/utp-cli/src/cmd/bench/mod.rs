//! `utp bench`: every mechanism between two processes, utp beside its raw
//! baseline (and peer libraries with feature `peers`), in one run.
//!
//! Files: `mechanisms` (the table), `orchestrate` (order, interleaving,
//! medians), `runner` + `session` + `peer` (one run, both sides), `rtt`,
//! `stream` (single sends and batches), `calc` (the loops), `raw/` (baselines), `peers/` (other
//! libraries), `report`, `json`, `plot` (output), `machine`, `placement`.

mod async_link;
mod calc;
#[cfg(test)]
mod fixtures;
mod format;
mod json;
mod link;
mod machine;
mod mechanisms;
mod orchestrate;
pub mod peer;
mod peers;
pub(crate) mod placement;
mod plan;
mod plot;
pub mod pubsub;
mod rate;
mod raw;
mod report;
mod results;
mod rtt;
mod runner;
mod sample;
mod session;
mod spec;
mod stream;
mod summary;
#[cfg(feature = "zenoh")]
pub mod zenoh;

use crate::exit::{CmdResult, Exit};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;
use std::time::Duration;

/// How long the bench looks at what else runs on the machine before it
/// starts, sleeping meanwhile (`machine::Usage::others_share`).
const OTHER_WORK_LOOK: Duration = Duration::from_millis(500);

/// Arguments of `utp bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A short run for CI and a first look: 64 B and 64 KiB only, each run
    /// still timed for at least 80 ms after a warm-up (about 90 s on 2 idle cores).
    #[arg(long)]
    quick: bool,
    /// Only these mechanisms, comma-separated (shm, sysv, file, unix,
    /// abstract, tcp, udp, pipe, fifo, mq, inproc, seqlock, pubsub; memcpy
    /// for the floors: one core's memcpy and a plain two-core ring).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    only: Vec<String>,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write latency and throughput charts as SVG to FILE.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Where the two processes run.
    #[arg(long, value_enum, default_value = "cross-core")]
    placement: placement::Placement,
    /// Repeats of every point (default 3).
    #[arg(long)]
    repeats: Option<usize>,
    /// Fixed-rate load instead of the usual tables: send 64 B requests at
    /// this rate (e.g. 100k/s) whatever the replies (up to 64 in flight),
    /// and report latency percentiles corrected for coordinated omission.
    /// Mechanisms: shm and unix unless --only says.
    #[arg(long, value_name = "N/s", value_parser = rate::parse_rate)]
    rate: Option<f64>,
    /// Seconds of each fixed-rate run (default 5, 1 with --quick).
    #[arg(long, value_name = "SECONDS", requires = "rate")]
    rate_seconds: Option<f64>,
    /// Ring size for shared-memory links and the raw ring, each direction
    /// (a power of two from 4k to 1G; default 2M). A point whose messages
    /// need more, for room for four, gets more.
    #[arg(long, value_name = "SIZE", value_parser = plan::parse_ring)]
    ring: Option<u64>,
}

/// A path as the user can find it: absolute when the current directory is known.
fn shown(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Runs the benchmark and prints the report.
pub fn run(args: Args) -> CmdResult {
    // Servers in this process (inproc) would log every connection.
    log::set_max_level(log::LevelFilter::Warn);
    let mut names = mechanisms::known_names();
    names.push("seqlock");
    names.push("pubsub");
    #[cfg(feature = "zenoh")]
    names.push("zenoh");
    if let Some(bad) = args.only.iter().find(|n| !names.contains(&n.as_str())) {
        return Err(Exit::Error(format!(
            "--only: unknown mechanism {bad:?}; known: {}",
            names.join(", ")
        )));
    }
    let chosen = |name: &str| {
        if args.only.is_empty() && args.rate.is_some() {
            // A fixed rate by default: shared memory and a socket.
            return ["shm", "unix"].contains(&name);
        }
        args.only.is_empty() || args.only.iter().any(|n| n == name)
    };
    let selected: Vec<usize> = (0..mechanisms::TABLE.len())
        .filter(|&i| chosen(mechanisms::TABLE[i].name))
        .collect();
    let mut plan = if args.quick {
        plan::Plan::quick()
    } else {
        plan::Plan::full()
    };
    if let Some(repeats) = args.repeats {
        plan.repeats = repeats.max(1);
    }
    plan.rate = args.rate;
    if let Some(ring) = args.ring {
        plan.ring_floor = ring;
    }
    let ring_floor = plan.ring_floor;
    if let Some(seconds) = args.rate_seconds {
        if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
            return Err(Exit::Error(format!(
                "--rate-seconds: {seconds} is not a duration between 0 and 3600 s"
            )));
        }
        plan.rate_seconds = seconds;
    }
    // A fixed rate measures latency under load: no memcpy, no seqlock.
    let chosen_extra = |name: &str| args.rate.is_none() && chosen(name);
    let machine = machine::Machine::detect();
    let mut setup_notes = Vec::new();
    // Before this process pins itself: the pub/sub section spreads its
    // subscribers over the CPUs the bench was allowed.
    let allowed_cpus = placement::allowed_cpus();
    let (client_cpu, peer_cpu) = placement::cpus(args.placement, &mut setup_notes);
    if let Some(cpu) = client_cpu {
        placement::pin(cpu).map_err(|e| Exit::Error(e.to_string()))?;
    }
    println!("utp bench — {}", machine.summary());
    println!(
        "placement: {} (client CPU {}, peer CPU {}) · {} repeats, utp and raw interleaved",
        clap::ValueEnum::to_possible_value(&args.placement)
            .map_or("?".into(), |v| v.get_name().to_string()),
        client_cpu.map_or("any".into(), |c| c.to_string()),
        peer_cpu.map_or("any".into(), |c| c.to_string()),
        plan.repeats
    );
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let progress = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} runs · {elapsed} · {msg}")
            .map_err(|e| Exit::Error(e.to_string()))?,
    );
    let repeats = plan.repeats;
    let runner = runner::Runner::new(plan, peer_cpu);
    // What the run is about to compete with, measured while nothing of
    // ours runs; then the same during the run (and the steal time).
    let before_look = machine::Usage::now();
    std::thread::sleep(OTHER_WORK_LOOK);
    let at_start = machine::Usage::now();
    let others_before = before_look
        .zip(at_start)
        .and_then(|(before, start)| before.others_share(start));
    let mut outcome = orchestrate::execute(
        &runner,
        &selected,
        chosen_extra("memcpy"),
        args.placement,
        &progress,
    );
    progress.finish_and_clear();
    outcome.notes.splice(0..0, setup_notes);

    let load_at_end = machine::loadavg();
    // Every peer has been waited for by now, so its time counts as ours.
    let (steal, others_during) = match at_start.zip(machine::Usage::now()) {
        Some((start, end)) => (start.steal_share(end), start.others_share(end)),
        None => (None, None),
    };
    if !outcome.rows.is_empty() {
        print!("\n{}", summary::summary(&outcome.rows, plan.rate));
    }
    let warnings = summary::warnings(
        &summary::Load {
            average_at_start: &machine.loadavg_at_start,
            average_at_end: &load_at_end,
            cores: machine.cores,
            others_before,
            others_during,
            steal,
        },
        &outcome.rows,
    );
    for warning in &warnings {
        println!("{warning}");
    }
    if let Some(note) = summary::peers_note(chosen("shm")) {
        outcome.notes.push(note);
    }
    print!("{}", report::tables(&outcome.rows));
    print!("{}", summary::baselines(&outcome.rows, ring_floor));
    if !outcome.probes.is_empty() {
        let seen: Vec<String> = outcome
            .probes
            .iter()
            .map(|p| format!("{} {}", p.placement, format::ns(p.spin_p50_ns)))
            .collect();
        println!(
            "\nplacement probes (spin p50, in order): {}",
            seen.join(", ")
        );
    }
    println!(
        "load average: {} at the start, {load_at_end} at the end",
        machine.loadavg_at_start,
    );
    if let Some(during) = others_during {
        println!(
            "other work: processes other than the bench and its peers used {:.1} % of the CPU time during the run, {} in the {} ms before it",
            during * 100.0,
            others_before.map_or("unknown".into(), |b| format!("{:.1} %", b * 100.0)),
            OTHER_WORK_LOOK.as_millis()
        );
    }
    if let Some(steal) = steal {
        println!(
            "steal time: {:.1} % of the CPU time went to other work on the host (the hypervisor ran something else while this guest's CPUs were ready)",
            steal * 100.0
        );
    }
    for note in &outcome.notes {
        println!("note: {note}");
    }
    if chosen_extra("seqlock") {
        println!(
            "\nSeqlock cell, one writer and 0/1/2/4 reader processes (ns per operation, medians; ratio = seqlock / raw atomics)"
        );
        let ms = if args.quick { 100 } else { 300 };
        let rows = crate::cmd::bench_seqlock::measure(&[0, 1, 2, 4], ms, repeats, &allowed_cpus)?;
        crate::cmd::bench_seqlock::print(&rows);
    }
    if chosen("pubsub") {
        println!(
            "\nPub/sub: one publisher, 1/2/4 subscriber processes, 64-byte messages (medians; ratios against the raw broadcast ring)"
        );
        let ms = if args.quick { 150 } else { 400 };
        let report = pubsub::measure(&[1, 2, 4], ms, repeats, args.placement, &allowed_cpus)?;
        pubsub::print(&report);
    }
    #[cfg(feature = "zenoh")]
    if chosen("zenoh") {
        zenoh::run(args.quick, repeats)?;
    }
    if plan.rate.is_none() {
        println!("\n{}", report::recommendation(&outcome.rows));
    }
    if let Some(path) = &args.json {
        let machine = json::MachineJson {
            machine: &machine,
            placement: args.placement,
            quick: args.quick,
            plan: &plan,
            started_unix_s,
            placement_probes: &outcome.probes,
            notes: &outcome.notes,
            warnings: &warnings,
            steal_percent: steal.map(machine::percent),
            other_work_percent: others_during.map(machine::percent),
            other_work_before_percent: others_before.map(machine::percent),
            baselines: summary::baseline_list(&outcome.rows, ring_floor),
        };
        json::write(path, machine, &outcome.rows).map_err(|e| Exit::Error(e.to_string()))?;
        println!("wrote the results as JSON to {}", shown(path));
    }
    if let Some(path) = &args.plot {
        plot::write(path, &outcome.rows)
            .map_err(|e| Exit::Error(format!("plot {}: {e}", path.display())))?;
        println!("wrote the charts as SVG to {}", shown(path));
    }
    Ok(())
}
