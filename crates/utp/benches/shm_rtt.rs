//! Round trip of a request/response between two processes over the
//! shared-memory link, in spin mode (8 B, 64 B and 1 KiB) and in blocking
//! mode (64 B), each beside a raw baseline measured in the same run: two
//! processes ping-ponging an atomic in shared memory (spin), and the same
//! with futex wait/wake.
//!
//! `cargo bench -p utp --bench shm_rtt`. The runs are interleaved (A B A B)
//! because the host moves the vCPUs between placements (BENCH-NOTES.md).
//! Spin figures are per-round-trip samples (p50 and p99, each sample timed
//! with `Instant`, the same overhead on both sides of a ratio) over rings
//! warmed by more than a full lap; block figures are medians of batch
//! means. Processes are pinned to CPUs 0 and 1. The benchmark re-executes
//! itself as the peer process. The links' rings are 64 KiB; set
//! `UTP_BENCH_RING` (e.g. `2M`, as `utp bench` uses) for another size.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use utp::Channel;
use utp::frame::{Frame, message_type};
use utp::shm::region::{Location, Region};

const BATCH: usize = 100;

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn words(region: &Region) -> (&AtomicU64, &AtomicU64, &AtomicU32, &AtomicU32) {
    let p = region.as_ptr();
    // SAFETY: the region is at least 4096 bytes, page aligned, and outlives
    // the returned references (they borrow it); offsets 0, 64, 128, 192 are
    // aligned for their types and any bit pattern is a valid integer.
    unsafe {
        (
            &*(p as *const AtomicU64),
            &*(p.add(64) as *const AtomicU64),
            &*(p.add(128) as *const AtomicU32),
            &*(p.add(192) as *const AtomicU32),
        )
    }
}

fn futex_wait(w: &AtomicU32, v: u32) {
    use rustix::thread::futex;
    let _ = futex::wait(w, futex::Flags::empty(), v, None);
}

fn futex_wake(w: &AtomicU32) {
    use rustix::thread::futex;
    let _ = futex::wake(w, futex::Flags::empty(), 1);
}

/// Peer side of every mode; runs until told to stop.
fn peer(role: &str, arg: &str) {
    pin(1);
    match role {
        "raw" => {
            let region = Region::open(Location::Posix(arg.into()), 4096).unwrap();
            let (ping, pong, fping, fpong) = words(&region);
            let mut seen = 0u64;
            let mut fseen = 0u32;
            loop {
                // Spin phase answers pings on the u64 words; futex phase on the u32 words.
                let p = ping.load(Ordering::Acquire);
                if p != seen {
                    if p == u64::MAX {
                        return;
                    }
                    seen = p;
                    pong.store(p, Ordering::Release);
                    continue;
                }
                let f = fping.load(Ordering::Acquire);
                if f != fseen {
                    fseen = f;
                    fpong.store(f, Ordering::Release);
                    futex_wake(fpong);
                    continue;
                }
                if ping.load(Ordering::Acquire) == seen && fping.load(Ordering::Acquire) == fseen {
                    // Sleep on the futex word only in futex phase (flag at 256).
                    // SAFETY: offset 256 is inside the 4096-byte region, aligned.
                    let phase = unsafe { &*(region.as_ptr().add(256) as *const AtomicU32) };
                    if phase.load(Ordering::Acquire) == 1 {
                        futex_wait(fping, fseen);
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        _ => {
            let mut listener = utp::listen(arg).unwrap();
            println!("READY");
            let mut ch = listener.accept().unwrap();
            let mut frame = Frame::with_capacity(64);
            while ch.recv(&mut frame).is_ok() {
                if ch.send(message_type::RESPONSE, 0, frame.payload()).is_err() {
                    return;
                }
            }
        }
    }
}

fn spawn(role: &str, arg: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env("UTP_BENCH_ROLE", role)
        .env("UTP_BENCH_ARG", arg)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median of batch means, in µs per round trip.
fn measure(batches: usize, mut rtt: impl FnMut()) -> f64 {
    for _ in 0..BATCH {
        rtt(); // warm up
    }
    let samples = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..BATCH {
                rtt();
            }
            t.elapsed().as_secs_f64() * 1e6 / BATCH as f64
        })
        .collect();
    median(samples)
}

fn main() {
    if let Ok(role) = std::env::var("UTP_BENCH_ROLE") {
        peer(&role, &std::env::var("UTP_BENCH_ARG").unwrap());
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches lists benchmarks
    }
    pin(0);
    let name = format!("/utp-bench.{}", std::process::id());
    let region = Region::create(Location::Posix(name.clone()), 4096).unwrap();
    let mut raw = spawn("raw", &name);
    std::thread::sleep(Duration::from_millis(300));
    region.remove(); // the name was only needed until the peer opened it
    let (ping, pong, fping, fpong) = words(&region);
    // SAFETY: offset 256 is inside the 4096-byte region, aligned for u32.
    let phase = unsafe { &*(region.as_ptr().add(256) as *const AtomicU32) };

    let ring = std::env::var("UTP_BENCH_RING").unwrap_or_else(|_| "64k".into());
    let mut links = Vec::new();
    for mode in ["spin", "block"] {
        let url = format!(
            "shm://utp-bench-{}-{mode}?wait={mode}&ring={ring}",
            std::process::id()
        );
        let mut child = spawn("echo", &url);
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let link = utp::shm::connect(&url.parse().unwrap(), &utp::Options::default()).unwrap();
        links.push((child, link));
    }
    let sizes = [8usize, 64, 1024];
    // raw spin p50/p99, link spin p50/p99 per size; raw futex, link block.
    let mut spin: Vec<[Vec<f64>; 4]> = sizes.iter().map(|_| Default::default()).collect();
    let (mut futex_raw, mut block) = (Vec::new(), Vec::new());
    let (mut seq, mut fseq) = (0u64, 0u32);
    const SAMPLES: usize = 20_000;
    for _round in 0..5 {
        for (k, &size) in sizes.iter().enumerate() {
            phase.store(0, Ordering::Release);
            futex_wake(fping);
            let (p50, p99) = percentiles(SAMPLES, || {
                seq += 1;
                ping.store(seq, Ordering::Release);
                while pong.load(Ordering::Acquire) != seq {
                    std::hint::spin_loop();
                }
            });
            spin[k][0].push(p50);
            spin[k][1].push(p99);
            let request = vec![7u8; size];
            let mut frame = Frame::with_capacity(size);
            let link = &mut links[0].1;
            let (p50, p99) = percentiles(SAMPLES, || {
                link.send(message_type::REQUEST, 0, &request).unwrap();
                link.recv(&mut frame).unwrap();
            });
            spin[k][2].push(p50);
            spin[k][3].push(p99);
        }
        let request = [7u8; 64];
        let mut frame = Frame::with_capacity(64);
        let link = &mut links[1].1;
        block.push(measure(20, || {
            link.send(message_type::REQUEST, 0, &request).unwrap();
            link.recv(&mut frame).unwrap();
        }));
        phase.store(1, Ordering::Release);
        futex_raw.push(measure(20, || {
            fseq = fseq.wrapping_add(1);
            fping.store(fseq, Ordering::Release);
            futex_wake(fping);
            loop {
                let v = fpong.load(Ordering::Acquire);
                if v == fseq {
                    break;
                }
                futex_wait(fpong, v);
            }
        }));
    }
    ping.store(u64::MAX, Ordering::Release);
    fping.store(fseq.wrapping_add(1), Ordering::Release);
    futex_wake(fping);
    let _ = raw.wait();
    for (mut child, link) in links {
        drop(link);
        let _ = child.wait();
    }
    let rounds = |v: &Vec<f64>| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "round trip between two pinned processes (µs), 5 interleaved rounds, medians of rounds:"
    );
    for (k, size) in sizes.iter().enumerate() {
        let m = |i: usize| median(spin[k][i].clone());
        println!(
            "  spin {size:>4} B: raw p50 {:.3} p99 {:.3} | link p50 {:.3} p99 {:.3} | \
             ratio p50 {:.2} p99 {:.2}   (link p50 rounds [{}])",
            m(0),
            m(1),
            m(2),
            m(3),
            m(2) / m(0),
            m(3) / m(1),
            rounds(&spin[k][2])
        );
    }
    println!(
        "  block 64 B (batch means): raw futex {:.2} | link {:.2} | ratio {:.2}",
        median(futex_raw.clone()),
        median(block.clone()),
        median(block) / median(futex_raw)
    );
}

/// p50 and p99 of `n` timed calls, after a warm-up longer than a full lap
/// of a 64 KiB ring at 1 KiB messages.
fn percentiles(n: usize, mut rtt: impl FnMut()) -> (f64, f64) {
    for _ in 0..2_000 {
        rtt();
    }
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            rtt();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[n / 2], v[n * 99 / 100])
}
