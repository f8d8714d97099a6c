//! `utp stat [URL]`: the counters of live channels and servers, read from
//! the counters regions of other processes (see `utp::stats`), like
//! Aeron's AeronStat.

use crate::exit::{CmdResult, Exit};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use utp::stats::{BlockSnapshot, Counter, Kind, ProcessStats};

/// Arguments of `utp stat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Endpoint whose servers and clients to show (default: every one).
    url: Option<String>,
    /// Print again every INTERVAL (default 1s) with rates, until Ctrl-C.
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "1s",
          value_parser = humantime::parse_duration)]
    watch: Option<Duration>,
    /// With --watch: stop after this many samples.
    #[arg(long, requires = "watch")]
    count: Option<u64>,
    /// Print JSON: one object per sample.
    #[arg(long)]
    json: bool,
}

/// One block with its owner.
struct Row {
    pid: u32,
    uid: u32,
    block: BlockSnapshot,
    /// Accepted channels of a listener.
    clients: usize,
}

/// An endpoint URL without its options, for comparing labels.
fn normalize(url: &str) -> String {
    utp::Endpoint::parse(url).map_or_else(|_| url.to_string(), |e| e.address.to_string())
}

fn rows(url: Option<&str>) -> Vec<Row> {
    let wanted = url.map(normalize);
    let mut rows = Vec::new();
    for ProcessStats {
        pid, uid, blocks, ..
    } in utp::stats::read_all()
    {
        // A listener's block holds the totals of its closed channels; add
        // the live ones so the row covers every client.
        let mut clients: HashMap<usize, usize> = HashMap::new();
        let mut live: HashMap<usize, Vec<u64>> = HashMap::new();
        for b in &blocks {
            if let (Kind::Accepted, Some(parent)) = (b.kind, b.parent) {
                *clients.entry(parent).or_default() += 1;
                let sum = live
                    .entry(parent)
                    .or_insert_with(|| vec![0; b.counters.len()]);
                for (i, c) in Counter::ALL.iter().enumerate() {
                    if !c.is_level() {
                        sum[i] += b.counters.get(i).copied().unwrap_or(0);
                    }
                }
            }
        }
        for mut block in blocks {
            if let Some(sum) = live.get(&block.index) {
                for (total, add) in block.counters.iter_mut().zip(sum) {
                    *total += add;
                }
            }
            if wanted
                .as_ref()
                .is_some_and(|w| *w != normalize(&block.label))
            {
                continue;
            }
            rows.push(Row {
                pid,
                uid,
                clients: clients.get(&block.index).copied().unwrap_or(0),
                block,
            });
        }
    }
    rows.sort_by(|a, b| {
        (normalize(&a.block.label), a.pid, a.block.index).cmp(&(
            normalize(&b.block.label),
            b.pid,
            b.block.index,
        ))
    });
    rows
}

fn errors(b: &BlockSnapshot) -> u64 {
    [
        Counter::ErrorsFrame,
        Counter::ErrorsPeerGone,
        Counter::ErrorsTooLarge,
        Counter::ErrorsFull,
        Counter::ErrorsOther,
    ]
    .iter()
    .map(|&c| b.get(c))
    .sum()
}

fn row_json(row: &Row, rate: Option<f64>) -> serde_json::Value {
    let counters: serde_json::Map<String, serde_json::Value> = Counter::ALL
        .iter()
        .map(|&c| (c.name().to_string(), json!(row.block.get(c))))
        .collect();
    json!({
        "url": row.block.label,
        "pid": row.pid,
        "uid": row.uid,
        "role": row.block.kind.name(),
        "block": row.block.index,
        "listener_block": row.block.parent,
        "created_ms": row.block.created_ms,
        "clients": (row.block.kind == Kind::Listener).then_some(row.clients),
        "frames_per_s": rate,
        "counters": counters,
    })
}

fn key(row: &Row) -> (u32, usize, u64) {
    (row.pid, row.block.index, row.block.created_ms)
}

fn frames(row: &Row) -> u64 {
    row.block.get(Counter::FramesSent) + row.block.get(Counter::FramesReceived)
}

fn print_table(rows: &[Row], rates: &HashMap<(u32, usize, u64), f64>, watching: bool) {
    println!(
        "{:<8} {:<9} {:>10} {:>12} {:>10} {:>12} {:>9} {:>7} {:>9} {:>8} {:>8}{}  URL",
        "PID",
        "ROLE",
        "FRAMES>",
        "BYTES>",
        "FRAMES<",
        "BYTES<",
        "TIMEOUTS",
        "ERRORS",
        "ACCEPTED",
        "REFUSED",
        "CLIENTS",
        if watching { "  FRAMES/S" } else { "" }
    );
    for row in rows {
        let b = &row.block;
        let listener = b.kind == Kind::Listener;
        let dash = |v: u64, show: bool| if show { v.to_string() } else { "-".into() };
        let rate = if watching {
            format!(
                "  {:>9}",
                rates
                    .get(&key(row))
                    .map_or_else(|| "-".into(), |r| format!("{r:.0}"))
            )
        } else {
            String::new()
        };
        println!(
            "{:<8} {:<9} {:>10} {:>12} {:>10} {:>12} {:>9} {:>7} {:>9} {:>8} {:>8}{rate}  {}",
            row.pid,
            b.kind.name(),
            b.get(Counter::FramesSent),
            b.get(Counter::BytesSent),
            b.get(Counter::FramesReceived),
            b.get(Counter::BytesReceived),
            b.get(Counter::SendTimeouts)
                + if listener {
                    0
                } else {
                    b.get(Counter::RecvTimeouts)
                },
            errors(b),
            dash(b.get(Counter::PeersAccepted), listener),
            dash(b.get(Counter::PeersRefused), listener),
            dash(row.clients as u64, listener),
            b.label
        );
        let extra: Vec<String> = [
            Counter::ErrorsFrame,
            Counter::ErrorsPeerGone,
            Counter::ErrorsTooLarge,
            Counter::ErrorsFull,
            Counter::ErrorsOther,
            Counter::Waits,
            Counter::Wakeups,
        ]
        .iter()
        .filter(|&&c| b.get(c) != 0)
        .map(|&c| format!("{} {}", c.name(), b.get(c)))
        .chain((b.get(Counter::RingCapacity) != 0).then(|| {
            format!(
                "ring {} of {} bytes",
                b.get(Counter::RingUsed),
                b.get(Counter::RingCapacity)
            )
        }))
        .collect();
        if !extra.is_empty() {
            println!("{:<8} {}", "", extra.join(", "));
        }
    }
}

/// Prints the counters once, or every interval with `--watch`. Exit 1 when
/// a URL was given and no live process keeps counters for it.
pub fn run(args: Args) -> CmdResult {
    let mut previous: HashMap<(u32, usize, u64), (u64, Instant)> = HashMap::new();
    let mut samples = 0u64;
    loop {
        let now = Instant::now();
        let rows = rows(args.url.as_deref());
        if rows.is_empty() && args.watch.is_none() {
            if args.json {
                println!("[]");
            }
            match &args.url {
                Some(url) => {
                    eprintln!(
                        "utp: no live counters for {url}: no utp process of this user serves or \
                         is connected there (or it runs with UTP_STATS=off); counters are in {}",
                        utp::stats::directory().display()
                    );
                    return Err(Exit::Failed(1));
                }
                None => {
                    if !args.json {
                        println!(
                            "no live utp counters (in {})",
                            utp::stats::directory().display()
                        );
                    }
                    return Ok(());
                }
            }
        }
        let mut rates = HashMap::new();
        for row in &rows {
            if let Some((before, at)) = previous.get(&key(row)) {
                let dt = now.duration_since(*at).as_secs_f64();
                if dt > 0.0 {
                    rates.insert(key(row), frames(row).saturating_sub(*before) as f64 / dt);
                }
            }
        }
        previous = rows.iter().map(|r| (key(r), (frames(r), now))).collect();
        if args.json {
            let all: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| row_json(r, rates.get(&key(r)).copied()))
                .collect();
            println!("{}", serde_json::Value::Array(all));
        } else {
            if args.watch.is_some() {
                println!(
                    "-- {}",
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                );
            }
            print_table(&rows, &rates, args.watch.is_some());
        }
        samples += 1;
        let Some(interval) = args.watch else {
            return Ok(());
        };
        if args.count.is_some_and(|n| samples >= n) {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}
