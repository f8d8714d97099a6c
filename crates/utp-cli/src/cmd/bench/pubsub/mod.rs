//! `utp bench` pub/sub section: one publisher (this process) and 1, 2 and
//! 4 subscriber processes (this binary re-executed as `utp bench-pubsub
//! --child`), for utp's shm pub/sub, a hand-written broadcast ring (the
//! floor) and iceoryx2 publish-subscribe (feature `peers`), interleaved
//! round by round.
//!
//! Latency: the publisher publishes a 64-byte message every
//! [`PACE`] carrying its CLOCK_MONOTONIC send time; each subscriber
//! records receive time − send time (the processes share the clock).
//! Throughput: the publisher publishes flat out; each subscriber counts
//! messages per second between its first and last receive, and what it
//! lost (drop semantics everywhere: nobody waits for a slow reader).

mod raw_ring;
mod sides;
mod utp_side;

#[cfg(feature = "peers")]
mod iceoryx2_side;

use crate::exit::{CmdResult, Exit};
use sides::{Kind, MESSAGE};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Gap between messages in the latency runs.
pub const PACE: Duration = Duration::from_micros(10);
/// Sequence number of the message that ends a run.
const STOP: u64 = u64::MAX;

/// Arguments of the hidden `utp bench-pubsub` (a subscriber process).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Implementation: raw, utp or iceoryx2.
    #[arg(long)]
    child: String,
    /// The run's name.
    #[arg(long)]
    name: String,
    /// Subscribers in the run (iceoryx2 sizes its service with it).
    #[arg(long)]
    subscribers: usize,
}

/// What one subscriber measured.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    p50_ns: u64,
    p99_ns: u64,
    received: u64,
    lost: u64,
    msgs_per_s: f64,
}

/// Per-round figures of one implementation: p50s, p99s, msgs/s, lost shares, publish ns.
type Rounds = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// One line of the table: medians over rounds.
#[derive(Clone, Debug)]
pub struct Row {
    /// Subscriber processes.
    pub subscribers: usize,
    /// Implementation name.
    pub kind: &'static str,
    /// Publish-to-receive p50 and p99, ns (median over subscribers, then rounds).
    pub p50_ns: f64,
    /// See `p50_ns`.
    pub p99_ns: f64,
    /// Messages per second per subscriber, flat out.
    pub msgs_per_s: f64,
    /// Share of messages lost in the flat-out runs.
    pub lost_share: f64,
    /// The publisher's cost per message flat out (ns), to see what each
    /// added subscriber costs it.
    pub publish_ns: f64,
}

fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A subscriber process: receives until the stop message, then prints its figures.
pub fn child(args: Args) -> CmdResult {
    let kind = Kind::parse(&args.child)
        .ok_or_else(|| Exit::Error(format!("unknown kind {}", args.child)))?;
    let fail = |e: Box<dyn std::error::Error + Send + Sync>| Exit::Error(e.to_string());
    let mut sub = sides::subscriber(kind, &args.name, args.subscribers).map_err(fail)?;
    println!("READY");
    std::io::stdout().flush()?;
    let mut hist = super::sample::latency_histogram();
    let (mut received, mut lost) = (0u64, 0u64);
    let (mut first, mut last) = (0u64, 0u64);
    let mut buf = [0u8; MESSAGE];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut polls = 0u32;
    loop {
        match sub.try_recv(&mut buf).map_err(fail)? {
            Some(gap) => {
                let now = now_ns();
                let seq = u64::from_le_bytes(buf[..8].try_into().unwrap_or_default());
                if seq == STOP {
                    break;
                }
                let sent = u64::from_le_bytes(buf[8..16].try_into().unwrap_or_default());
                hist.saturating_record(now.saturating_sub(sent).max(1));
                lost += gap;
                received += 1;
                if first == 0 {
                    first = now;
                }
                last = now;
            }
            None => {
                polls = polls.wrapping_add(1);
                if polls % (1 << 20) == 0 && Instant::now() > deadline {
                    return Err(Exit::Error("no stop message within 120 s".into()));
                }
                std::hint::spin_loop();
            }
        }
    }
    let span = last.saturating_sub(first).max(1) as f64 / 1e9;
    println!(
        "RESULT {} {} {received} {lost} {}",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        received as f64 / span
    );
    Ok(())
}

fn spawn(
    kind: Kind,
    name: &str,
    subscribers: usize,
) -> Result<(Child, BufReader<std::process::ChildStdout>), Exit> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["bench-pubsub", "--child", kind.name(), "--name", name])
        .args(["--subscribers", &subscribers.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let out = BufReader::new(child.stdout.take().ok_or(Exit::Failed(2))?);
    Ok((child, out))
}

fn line(out: &mut BufReader<std::process::ChildStdout>) -> Result<String, Exit> {
    let mut s = String::new();
    out.read_line(&mut s)?;
    Ok(s.trim().to_string())
}

/// One run: `subscribers` processes of `kind`, paced (latency) or flat out.
/// Returns each subscriber's figures and the publisher's ns per message.
fn once(
    kind: Kind,
    subscribers: usize,
    paced: bool,
    ms: u64,
) -> Result<(Vec<Measured>, f64), Exit> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static RUN: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "utp-bench-pubsub-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    );
    let result = (|| {
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| {
            Exit::Error(format!("{}: {e}", kind.name()))
        };
        let mut publisher = sides::publisher(kind, &name, subscribers).map_err(fail)?;
        let mut children = Vec::new();
        for _ in 0..subscribers {
            children.push(spawn(kind, &name, subscribers)?);
        }
        for (_, out) in &mut children {
            let said = line(out)?;
            if said != "READY" {
                return Err(Exit::Error(format!(
                    "{} subscriber said {said:?}",
                    kind.name()
                )));
            }
        }
        publisher.subscribers_ready().map_err(fail)?;
        std::thread::sleep(Duration::from_millis(20));
        let mut msg = [0u8; MESSAGE];
        let started = Instant::now();
        let end = started + Duration::from_millis(ms);
        let mut seq = 0u64;
        let mut next_at = now_ns();
        while Instant::now() < end {
            for _ in 0..64 {
                if paced {
                    while now_ns() < next_at {
                        std::hint::spin_loop();
                    }
                    next_at += PACE.as_nanos() as u64;
                }
                msg[..8].copy_from_slice(&seq.to_le_bytes());
                msg[8..16].copy_from_slice(&now_ns().to_le_bytes());
                publisher.publish(&msg).map_err(fail)?;
                seq += 1;
            }
        }
        let publish_ns = started.elapsed().as_nanos() as f64 / seq.max(1) as f64;
        msg[..8].copy_from_slice(&STOP.to_le_bytes());
        publisher.publish(&msg).map_err(fail)?;
        let mut results = Vec::new();
        for (mut child, mut out) in children {
            let said = line(&mut out)?;
            let f: Vec<&str> = said.split_whitespace().collect();
            if f.len() != 6 || f[0] != "RESULT" {
                let _ = child.kill();
                return Err(Exit::Error(format!(
                    "{} subscriber said {said:?}",
                    kind.name()
                )));
            }
            let num = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
            results.push(Measured {
                p50_ns: num(1) as u64,
                p99_ns: num(2) as u64,
                received: num(3) as u64,
                lost: num(4) as u64,
                msgs_per_s: num(5),
            });
            let _ = child.wait();
        }
        drop(publisher);
        Ok((results, publish_ns))
    })();
    sides::cleanup(kind, &name);
    result
}

/// Measures every available implementation with each subscriber count.
pub fn measure(counts: &[usize], ms: u64, rounds: usize) -> Result<Vec<Row>, Exit> {
    let kinds = Kind::available();
    let mut rows = Vec::new();
    for &subs in counts {
        let mut per_kind: Vec<Rounds> = vec![Default::default(); kinds.len()];
        for _ in 0..rounds {
            for (k, &kind) in kinds.iter().enumerate() {
                let (latency, _) = once(kind, subs, true, ms)?;
                let (flat, publish_ns) = once(kind, subs, false, ms)?;
                let entry = &mut per_kind[k];
                entry
                    .0
                    .push(median(latency.iter().map(|m| m.p50_ns as f64).collect()));
                entry
                    .1
                    .push(median(latency.iter().map(|m| m.p99_ns as f64).collect()));
                entry
                    .2
                    .push(median(flat.iter().map(|m| m.msgs_per_s).collect()));
                let (got, lost): (u64, u64) = flat
                    .iter()
                    .fold((0, 0), |a, m| (a.0 + m.received, a.1 + m.lost));
                entry.3.push(lost as f64 / (got + lost).max(1) as f64);
                entry.4.push(publish_ns);
            }
        }
        for (k, kind) in kinds.iter().enumerate() {
            let (p50, p99, tput, lost, publish) = per_kind[k].clone();
            rows.push(Row {
                subscribers: subs,
                kind: kind.name(),
                p50_ns: median(p50),
                p99_ns: median(p99),
                msgs_per_s: median(tput),
                lost_share: median(lost),
                publish_ns: median(publish),
            });
        }
    }
    Ok(rows)
}

/// Prints the table with ratios against the raw ring (and utp vs iceoryx2).
pub fn print(rows: &[Row]) {
    println!(
        "{:>4}  {:<9} {:>9} {:>9} {:>13} {:>7} {:>9}  {:>10} {:>13}",
        "subs", "impl", "p50", "p99", "msgs/s/sub", "lost", "pub ns", "p50 / raw", "msgs/s / raw"
    );
    for r in rows {
        let raw = rows
            .iter()
            .find(|x| x.subscribers == r.subscribers && x.kind == "raw");
        let (lat, tput) = raw.map_or((f64::NAN, f64::NAN), |b| {
            (r.p50_ns / b.p50_ns, r.msgs_per_s / b.msgs_per_s)
        });
        println!(
            "{:>4}  {:<9} {:>7.0}ns {:>7.0}ns {:>13.0} {:>6.2}% {:>7.1}ns  {:>9.2}x {:>12.2}x",
            r.subscribers,
            r.kind,
            r.p50_ns,
            r.p99_ns,
            r.msgs_per_s,
            r.lost_share * 100.0,
            r.publish_ns,
            lat,
            tput
        );
    }
    for subs in [1usize, 2, 4] {
        let get = |k: &str| rows.iter().find(|r| r.subscribers == subs && r.kind == k);
        if let (Some(u), Some(i)) = (get("utp"), get("iceoryx2")) {
            println!(
                "{subs} subscriber(s): utp p50 is {:.2}x iceoryx2's; utp throughput is {:.2}x iceoryx2's",
                u.p50_ns / i.p50_ns,
                u.msgs_per_s / i.msgs_per_s
            );
        }
    }
}
