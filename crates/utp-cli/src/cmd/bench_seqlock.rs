//! `utp bench-seqlock` (hidden): writer and reader cost per operation of a
//! seqlock cell with 0, 1, 2 and 4 reader processes, beside a raw baseline
//! (the same 64-byte copy with plain atomic stores/loads, no protocol).
//!
//! Reader processes are this binary re-executed with `--child`. Seqlock and
//! raw runs are interleaved round by round (the vCPU placement of this
//! machine changes every few minutes, BENCH-NOTES.md); figures are medians
//! over rounds (write) and over rounds x readers (read).

use crate::exit::{CmdResult, Exit};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use utp::__bench::probe;
use utp::__bench::{BenchReader, BenchWriter, Count, Mode};

/// Arguments of `utp bench-seqlock`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reader process counts to measure, comma-separated.
    #[arg(long, default_value = "0,1,2,4", value_delimiter = ',')]
    readers: Vec<usize>,
    /// Duration of each measurement in milliseconds.
    #[arg(long, default_value_t = 300)]
    ms: u64,
    /// Rounds per configuration (seqlock and raw alternate).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Internal: run as a reader process of MODE (seqlock|raw), or as the
    /// placement probe's echo (probe), on --url.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Internal: the cell a child reads.
    #[arg(long, hide = true)]
    url: Option<String>,
    /// Internal: the CPU a reader process pins itself to.
    #[arg(long, hide = true)]
    cpu: Option<usize>,
}

/// One line of the result table.
#[derive(Clone, Debug)]
pub struct Row {
    /// Reader processes running.
    pub readers: usize,
    /// Median ns per publish, seqlock and raw.
    pub write_ns: (f64, f64),
    /// Median ns per consistent read (retries charged to it), seqlock and raw.
    pub read_ns: (f64, f64),
    /// Retried reads per million, and torn reads (must be 0).
    pub retries_per_million: f64,
    /// Torn reads seen by seqlock readers (checksum failures; must be 0).
    pub torn: u64,
    /// Torn copies seen by raw readers: what the protocol prevents.
    pub raw_torn: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn mode_of(name: &str) -> Result<Mode, Exit> {
    match name {
        "seqlock" => Ok(Mode::Seqlock),
        "raw" => Ok(Mode::Raw),
        other => Err(Exit::Error(format!("unknown mode {other:?}"))),
    }
}

/// One measurement: `readers` reader processes and this process writing.
fn once(
    mode: Mode,
    readers: usize,
    ms: u64,
    allowed: &[usize],
) -> Result<(Count, Vec<Count>), Exit> {
    let url = format!("shm://bench-seqlock-{}", std::process::id());
    let mut writer = BenchWriter::create(&url, mode)?;
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for i in 0..readers {
        let mut command = Command::new(&exe);
        command
            .args(["bench-seqlock", "--child", mode.name(), "--url", &url])
            .args(["--ms", &ms.to_string()]);
        // The writer runs on the first allowed CPU, readers on the others.
        if let Some(cpu) = crate::cmd::bench::placement::away_from_first(allowed, i) {
            command.args(["--cpu", &cpu.to_string()]);
        }
        let mut child = command.stdout(Stdio::piped()).spawn()?;
        let mut out = BufReader::new(child.stdout.take().ok_or(Exit::Failed(2))?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        if line.trim() != "READY" {
            return Err(Exit::Error(format!("reader process said {line:?}")));
        }
        children.push((child, out));
    }
    let wrote = writer.run(Duration::from_millis(ms));
    let mut reads = Vec::new();
    for (mut child, mut out) in children {
        let mut line = String::new();
        out.read_line(&mut line)?;
        let _ = child.wait();
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() != 4 {
            return Err(Exit::Error(format!("reader process said {line:?}")));
        }
        reads.push(Count {
            ops: f[0],
            retries: f[1],
            torn: f[2],
            elapsed: Duration::from_nanos(f[3]),
        });
    }
    writer.remove()?;
    Ok((wrote, reads))
}

/// Measures every configuration; the table's rows. `allowed`: the CPUs
/// the bench may use, read before it pinned itself (the writer runs on the
/// first, readers on the others).
pub fn measure(
    readers: &[usize],
    ms: u64,
    rounds: usize,
    allowed: &[usize],
) -> Result<Vec<Row>, Exit> {
    let mut rows = Vec::new();
    for &n in readers {
        let (mut ws, mut wr, mut rs, mut rr) = (vec![], vec![], vec![], vec![]);
        let (mut retries, mut reads, mut torn, mut raw_torn) = (0u64, 0u64, 0u64, 0u64);
        for _ in 0..rounds.max(1) {
            for mode in [Mode::Seqlock, Mode::Raw] {
                let (w, r) = once(mode, n, ms, allowed)?;
                let (wv, rv) = match mode {
                    Mode::Seqlock => (&mut ws, &mut rs),
                    Mode::Raw => (&mut wr, &mut rr),
                };
                wv.push(w.ns_per_op());
                for c in r {
                    rv.push(c.ns_per_good_op());
                    if mode == Mode::Seqlock {
                        (retries, reads, torn) =
                            (retries + c.retries, reads + c.ops, torn + c.torn);
                    } else {
                        raw_torn += c.torn;
                    }
                }
            }
        }
        rows.push(Row {
            readers: n,
            write_ns: (median(ws), median(wr)),
            read_ns: (median(rs), median(rr)),
            retries_per_million: retries as f64 * 1e6 / reads.max(1) as f64,
            torn,
            raw_torn,
        });
    }
    Ok(rows)
}

fn ns(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1} ns")
    } else {
        "-".into()
    }
}

fn ratio(a: f64, b: f64) -> String {
    if (a / b).is_finite() {
        format!("{:.1}", a / b)
    } else {
        "-".into()
    }
}

/// Prints the rows as a Markdown table.
pub fn print(rows: &[Row]) {
    println!(
        "| readers | write seqlock | write raw | ratio | read seqlock | read raw | ratio | retried reads | torn | torn raw |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} ppm | {} | {} |",
            r.readers,
            ns(r.write_ns.0),
            ns(r.write_ns.1),
            ratio(r.write_ns.0, r.write_ns.1),
            ns(r.read_ns.0),
            ns(r.read_ns.1),
            ratio(r.read_ns.0, r.read_ns.1),
            r.retries_per_million,
            r.torn,
            r.raw_torn
        );
    }
}

/// Spin round trip between two processes pinned to CPUs 0 and 1: tells
/// the vCPU placement a measurement ran in (BENCH-NOTES.md).
pub fn placement_probe() -> Result<Duration, Exit> {
    let url = format!("shm://bench-seqlock-probe-{}", std::process::id());
    let cell = probe::create(&url)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["bench-seqlock", "--child", "probe", "--url", &url])
        .spawn()?;
    let rtt = probe::ping(&url, 50);
    let _ = child.wait();
    cell.remove()?;
    Ok(rtt?)
}

fn show_probe(when: &str) {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        println!("placement probe {when}: skipped (fewer than 2 CPUs)");
        return;
    }
    match placement_probe() {
        Ok(rtt) => {
            let us = rtt.as_secs_f64() * 1e6;
            let placement = if us < 0.3 { "near" } else { "far (or busy)" };
            println!("placement probe {when}: spin round trip {us:.2} µs ({placement})");
        }
        Err(e) => println!("placement probe {when}: failed ({e:?})"),
    }
}

/// Runs the benchmark (or, with `--child`, one reader process).
pub fn run(args: Args) -> CmdResult {
    if let Some(mode) = &args.child {
        let url = args.url.as_deref().ok_or(Exit::Failed(2))?;
        if mode == "probe" {
            probe::echo(url)?;
            return Ok(());
        }
        if let Some(cpu) = args.cpu {
            crate::cmd::bench::placement::pin(cpu).map_err(|e| Exit::Error(e.to_string()))?;
        }
        let reader = BenchReader::open(url, mode_of(mode)?)?;
        println!("READY");
        let c = reader.run(Duration::from_millis(args.ms));
        println!(
            "{} {} {} {}",
            c.ops,
            c.retries,
            c.torn,
            c.elapsed.as_nanos()
        );
        return Ok(());
    }
    println!(
        "seqlock cell of a 64-byte value vs raw atomic copy, {} ms x {} rounds, medians",
        args.ms, args.rounds
    );
    show_probe("before");
    // The writer on the first allowed CPU, the readers on the others.
    let allowed = crate::cmd::bench::placement::allowed_cpus();
    if allowed.len() > 1 {
        crate::cmd::bench::placement::pin(allowed[0]).map_err(|e| Exit::Error(e.to_string()))?;
    }
    let rows = measure(&args.readers, args.ms, args.rounds, &allowed)?;
    print(&rows);
    show_probe("after");
    if rows.iter().any(|r| r.torn > 0) {
        return Err(Exit::Error("torn reads observed".into()));
    }
    Ok(())
}
