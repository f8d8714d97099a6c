//! A placement probe for benchmarks: a spin ping-pong on a shared cache
//! line between two processes pinned to CPUs 0 and 1.
//!
//! This machine's host moves its two vCPUs between a "near" and a "far"
//! placement every few minutes, changing cache-line transfer times ~3.5x
//! (BENCH-NOTES.md); the probe's round trip says which placement a
//! measurement ran in (near ≈ 0.1-0.2 µs, far ≈ 0.4-0.7 µs).

use super::seqlock::{BenchWriter, Mode, Sample};
use crate::error::{Error, Result};
use crate::seqlock::cell::{Cell, CellOptions};
use crate::shm::sync::{Ordering, spin_hint};
use std::time::{Duration, Instant};

/// Value of the ping word that tells the echo process to stop.
const STOP: u64 = u64::MAX;
/// Longest a probe waits for its peer before giving up.
const PATIENCE: Duration = Duration::from_secs(2);

/// Pins the calling thread to `cpu` (best effort; returns whether it worked).
pub fn pin(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

/// Unpins the calling thread (all CPUs the process may use).
pub fn unpin() {
    let mut set = rustix::thread::CpuSet::new();
    for cpu in 0..rustix::thread::CpuSet::MAX_CPU.min(1024) {
        set.set(cpu);
    }
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn spin_until(mut done: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    let mut n = 0u32;
    while !done() {
        spin_hint();
        n = n.wrapping_add(1);
        if n % 4096 == 0 && start.elapsed() > PATIENCE {
            return Err(Error::Timeout {
                waiting_for: "the placement probe's peer",
                after: PATIENCE,
            });
        }
    }
    Ok(())
}

/// Creates the probe's cell at `url`; keep the writer while probing, then
/// [`remove`](BenchWriter::remove) it. Then run [`echo`] in another process
/// and [`ping`] in this one.
pub fn create(url: &str) -> Result<BenchWriter> {
    BenchWriter::create(url, Mode::Raw)
}

/// The echo process: pinned to CPU 1, copies word 0 to word 1 until told
/// to stop.
pub fn echo(url: &str) -> Result<()> {
    pin(1);
    let cell = Cell::open::<Sample>(url, &CellOptions::default(), Duration::from_secs(1))?;
    let w = cell.header.words();
    let mut last = w[1].load(Ordering::Acquire);
    loop {
        spin_until(|| w[0].load(Ordering::Acquire) != last)?;
        last = w[0].load(Ordering::Acquire);
        if last == STOP {
            return Ok(());
        }
        w[1].store(last, Ordering::Release);
    }
}

/// Pinned to CPU 0, measures `batches` x 100 round trips with the echo
/// process; returns the median batch mean, then stops the echo.
pub fn ping(url: &str, batches: usize) -> Result<Duration> {
    let cell = Cell::open::<Sample>(url, &CellOptions::default(), Duration::from_secs(1))?;
    let w = cell.header.words();
    pin(0);
    let mut n = w[1].load(Ordering::Acquire);
    let mut means = Vec::with_capacity(batches);
    let result = (|| {
        for _ in 0..batches.max(1) {
            let start = Instant::now();
            for _ in 0..100 {
                n += 1;
                w[0].store(n, Ordering::Release);
                spin_until(|| w[1].load(Ordering::Acquire) == n)?;
            }
            means.push(start.elapsed() / 100);
        }
        Ok::<(), Error>(())
    })();
    w[0].store(STOP, Ordering::Release);
    unpin();
    result?;
    means.sort();
    Ok(means[means.len() / 2])
}
