//! Round trip of a 64-byte request/response between two processes over the
//! shared-memory link, in spin mode and in blocking mode, each beside a raw
//! baseline measured in the same run: two processes ping-ponging an atomic
//! in shared memory (spin), and the same with futex wait/wake.
//!
//! `cargo bench -p utp --bench shm_rtt`. The runs are interleaved (A B A B)
//! because the host moves the vCPUs between placements (BENCH-NOTES.md);
//! each figure is the median of per-batch means. Processes are pinned to
//! CPUs 0 and 1. The benchmark re-executes itself as the peer process.

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

    let mut links = Vec::new();
    for mode in ["spin", "block"] {
        let url = format!(
            "shm://utp-bench-{}-{mode}?wait={mode}&ring=64k",
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
    let request = [7u8; 64];
    let mut results: Vec<(&str, Vec<f64>)> = ["raw spin", "link spin", "raw futex", "link block"]
        .iter()
        .map(|n| (*n, Vec::new()))
        .collect();
    let (mut seq, mut fseq) = (0u64, 0u32);
    for _round in 0..5 {
        phase.store(0, Ordering::Release);
        futex_wake(fping);
        results[0].1.push(measure(200, || {
            seq += 1;
            ping.store(seq, Ordering::Release);
            while pong.load(Ordering::Acquire) != seq {
                std::hint::spin_loop();
            }
        }));
        for (i, (_, link)) in links.iter_mut().enumerate() {
            let mut frame = Frame::with_capacity(64);
            let batches = if i == 0 { 200 } else { 20 };
            let rtt = measure(batches, || {
                link.send(message_type::REQUEST, 0, &request).unwrap();
                link.recv(&mut frame).unwrap();
            });
            if i == 1 {
                phase.store(1, Ordering::Release);
                results[2].1.push(measure(20, || {
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
                results[3].1.push(rtt);
            } else {
                results[1].1.push(rtt);
            }
        }
    }
    ping.store(u64::MAX, Ordering::Release);
    fping.store(fseq.wrapping_add(1), Ordering::Release);
    futex_wake(fping);
    let _ = raw.wait();
    for (mut child, link) in links {
        drop(link);
        let _ = child.wait();
    }
    println!(
        "64-byte round trip between two pinned processes, median of batch means (µs), 5 interleaved rounds:"
    );
    for (name, v) in &results {
        let rounds: Vec<String> = v.iter().map(|x| format!("{x:.2}")).collect();
        println!(
            "  {name:<11} median {:>7.2}   rounds [{}]",
            median(v.clone()),
            rounds.join(", ")
        );
    }
    let m = |i: usize| median(results[i].1.clone());
    println!("  ratio spin:  link / raw = {:.2}", m(1) / m(0));
    println!("  ratio block: link / raw = {:.2}", m(3) / m(2));
}
