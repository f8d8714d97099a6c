//! Seqlock cost per operation, beside a raw baseline (the same 64-byte copy
//! with plain Relaxed atomic stores/loads and no protocol), with 0, 1, 2
//! and 4 reader processes competing for the cell's cache lines.
//!
//! ```text
//! cargo bench -p utp --bench seqlock
//! ```
//!
//! - `write/{seqlock,raw}/N`: this process publishes; N reader processes
//!   (this binary re-executed) read in a loop meanwhile.
//! - `read/{seqlock,raw}/N`: a writer process publishes in a loop; this
//!   process and N-1 others read. Time per *consistent* read: retried
//!   attempts are charged to the reads that succeed.
//! - `core/{protocol,raw}`: the protocol alone on private memory, one
//!   thread: no other process, no clock, no waiter check.
//!
//! The `utp bench-seqlock` command measures the same in whole seconds with
//! seqlock and raw runs interleaved; docs/BENCHMARKS.md has the figures.

use criterion::{BenchmarkId, Criterion, black_box};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use utp::__bench::{BenchReader, BenchWriter, Count, Mode};
use utp::seqlock::place::Place;
use utp::seqlock::protocol;
use utp::shm::sync::{AtomicU64, Ordering};

const ROLE: &str = "UTP_SEQLOCK_BENCH_ROLE";

fn mode(name: &str) -> Mode {
    if name == "raw" {
        Mode::Raw
    } else {
        Mode::Seqlock
    }
}

/// Child process: `reader MODE URL` or `writer MODE URL`, until killed.
fn child(role: &str) {
    let parts: Vec<&str> = role.split(' ').collect();
    let (what, m, url) = (parts[0], mode(parts[1]), parts[2]);
    if what == "writer" {
        let mut w = BenchWriter::create(url, m).unwrap();
        println!("READY");
        loop {
            w.write_once();
        }
    }
    let r = BenchReader::open(url, m).unwrap();
    println!("READY");
    let mut c = Count::default();
    loop {
        black_box(r.read_once(&mut c));
    }
}

/// Child processes, SIGKILLed on drop.
struct Peers(Vec<Child>);

impl Peers {
    fn spawn(role: &str, m: Mode, url: &str, n: usize) -> Peers {
        let exe = std::env::current_exe().unwrap();
        let mut peers = Peers(Vec::new());
        for _ in 0..n {
            let mut child = Command::new(&exe)
                .env(ROLE, format!("{role} {} {url}", m.name()))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), "READY");
            peers.0.push(child);
        }
        peers
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn bench_write(c: &mut Criterion, url: &str) {
    let mut g = c.benchmark_group("write");
    for n in [0, 1, 2, 4] {
        for m in [Mode::Seqlock, Mode::Raw] {
            let mut w = BenchWriter::create(url, m).unwrap();
            let peers = Peers::spawn("reader", m, url, n);
            g.bench_function(BenchmarkId::new(m.name(), n), |b| b.iter(|| w.write_once()));
            drop(peers);
            w.remove().unwrap();
        }
    }
    g.finish();
}

fn bench_read(c: &mut Criterion, url: &str) {
    let mut g = c.benchmark_group("read");
    for n in [1, 2, 4] {
        for m in [Mode::Seqlock, Mode::Raw] {
            let writer = Peers::spawn("writer", m, url, 1);
            let others = Peers::spawn("reader", m, url, n - 1);
            let r = BenchReader::open(url, m).unwrap();
            g.bench_function(BenchmarkId::new(m.name(), n), |b| {
                b.iter_custom(|iters| {
                    let mut count = Count::default();
                    let start = Instant::now();
                    while count.ops - count.retries < iters {
                        black_box(r.read_once(&mut count));
                        count.ops += 1;
                    }
                    start.elapsed()
                })
            });
            drop((others, writer));
            Place::parse(url).unwrap().remove().unwrap();
        }
    }
    g.finish();
}

fn bench_core(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    let seq = AtomicU64::new(0);
    let words: Vec<AtomicU64> = (0..8).map(|_| AtomicU64::new(0)).collect();
    let mut s = 0;
    g.bench_function("protocol_publish", |b| {
        b.iter(|| s = protocol::publish(&seq, &words, s, |i| black_box(s ^ i as u64)))
    });
    g.bench_function("raw_store", |b| {
        b.iter(|| {
            for (i, w) in words.iter().enumerate() {
                w.store(black_box(s ^ i as u64), Ordering::Relaxed);
            }
        })
    });
    let mut out = [0u64; 8];
    g.bench_function("protocol_read", |b| {
        b.iter(|| black_box(protocol::try_read(&seq, &words, |i, w| out[i] = w)))
    });
    g.bench_function("raw_load", |b| {
        b.iter(|| {
            for (i, w) in words.iter().enumerate() {
                out[i] = w.load(Ordering::Relaxed);
            }
            black_box(&out);
        })
    });
    g.finish();
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        child(&role);
        return;
    }
    let url = format!("shm://bench-seqlock-criterion-{}", std::process::id());
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    bench_core(&mut c);
    bench_write(&mut c, &url);
    bench_read(&mut c, &url);
    c.final_summary();
}
