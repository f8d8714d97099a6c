//! The plain ring: the least a shared-memory ring can do to move messages
//! from one core to another, as the floor the raw ring baseline is judged
//! against (issue 12: "a raw ring that is itself within 20 % of the
//! physical floor").
//!
//! Two threads pinned where the run's client and peer run, one POSIX
//! shared-memory region of utp's ring size (2 MiB), a producer index and a
//! consumer index on lines of their own, each side caching the other's;
//! messages are copied in whole and out whole with utp's copies, at a
//! stride of their own size (no stamp, no header, no padding, no pieces).
//! The raw ring baseline does all of that like utp's link (`ring.rs`); the
//! gap between the two is what utp's ring layout costs on this machine,
//! not something either copy pays.

use super::UTP_SHM_COPY;
use super::shmem::Region;
use crate::cmd::bench::link::{Fallible, SpinBudget};
use crate::cmd::bench::placement;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The row's name in the report's tables.
pub const MECHANISM: &str = "ring";

/// The message size the bench measures the plain ring at (the size the
/// summary sets the raw rings against it).
pub const SIZE: usize = 64 << 10;

/// Bytes of the data area: the ring utp's link gets for 64 KiB frames.
const RING: usize = 2 << 20;
/// The producer's index (bytes published), on a line of its own.
const TAIL: usize = 0;
/// The consumer's index (bytes given back), on a line of its own.
const HEAD: usize = 64;
/// Set by the consumer once it has the region open and is pinned.
const READY: usize = 128;
/// Where the data area starts.
const DATA: usize = 192;
/// How long either side spins for the other before giving up.
const IDLE: Duration = Duration::from_secs(10);

/// How the plain ring is set up, for the report's list of baselines.
pub fn describe() -> String {
    format!(
        "the floor under the shared-memory rings (not a mechanism of utp's): two threads pinned as the run's client and peer, one POSIX shared-memory region (prefaulted) with a {} MiB byte ring, each side caching the other's index (on lines of their own), spinning when full/empty; 64 KiB messages copied in whole and out whole {UTP_SHM_COPY}, at a stride of their size: no stamp, header, padding or pieces",
        RING >> 20,
    )
}

/// Streams `size`-byte messages (a divisor of 2 MiB) through the plain
/// ring until at least `total` bytes moved, the consumer pinned to
/// `peer_cpu`; bytes per second. `name` is the region's unique name
/// (`/utp-bench-...`), removed before this returns.
pub fn bandwidth(size: usize, total: u64, name: &str, peer_cpu: Option<usize>) -> Fallible<f64> {
    if size == 0 || RING % size != 0 {
        return Err(format!("the plain ring takes sizes that divide {RING} B, not {size}").into());
    }
    let count = total.div_ceil(size as u64).max(1);
    let region = Region::create(name, DATA + RING)?;
    let consumer = {
        let name = name.to_string();
        std::thread::spawn(move || consume(&name, size, count, peer_cpu))
    };
    let produced = produce(&region, size, count);
    // The consumer's result first: when it failed, the producer's timeout
    // is only a consequence.
    let consumed = consumer
        .join()
        .map_err(|_| "the plain ring's consumer thread panicked")?;
    let seconds = consumed?;
    produced?;
    Ok((count * size as u64) as f64 / seconds)
}

/// The producer's side; the clock is the consumer's.
fn produce(region: &Region, size: usize, count: u64) -> Fallible<()> {
    let mut spin = SpinBudget::new(IDLE);
    while region.u64_at(READY).load(Ordering::Acquire) == 0 {
        spin.spin("plain-ring consumer")?;
    }
    let message = vec![0x5a_u8; size];
    let (mut tail, mut head) = (0u64, 0u64);
    for _ in 0..count {
        while tail + size as u64 - head > RING as u64 {
            head = region.u64_at(HEAD).load(Ordering::Acquire);
            if tail + size as u64 - head > RING as u64 {
                spin.spin("room in the plain ring")?;
            }
        }
        region.write(DATA + (tail % RING as u64) as usize, &message);
        tail += size as u64;
        region.u64_at(TAIL).store(tail, Ordering::Release);
    }
    Ok(())
}

/// The consumer's side: opens the region by name (which removes the name),
/// pins itself, says it is ready, and times from its first message to its
/// last.
fn consume(name: &str, size: usize, count: u64, cpu: Option<usize>) -> Fallible<f64> {
    // Opened first: opening removes the name, whatever happens next.
    let region = Region::open(name)?;
    if let Some(cpu) = cpu {
        placement::pin(cpu)?;
    }
    let mut out_buf = Vec::new();
    let out = super::aligned(&mut out_buf, size);
    out.fill(0);
    region.u64_at(READY).store(1, Ordering::Release);
    let mut spin = SpinBudget::new(IDLE);
    let (mut head, mut tail) = (0u64, 0u64);
    let mut started = None;
    for _ in 0..count {
        while tail - head < size as u64 {
            tail = region.u64_at(TAIL).load(Ordering::Acquire);
            if tail - head < size as u64 {
                spin.spin("a message in the plain ring")?;
            }
        }
        // From the first message seen: the thread's start is not the ring's.
        started.get_or_insert_with(Instant::now);
        region.read(DATA + (head % RING as u64) as usize, out);
        head += size as u64;
        region.u64_at(HEAD).store(head, Ordering::Release);
    }
    std::hint::black_box(&*out);
    Ok(started.map_or(0.0, |t| t.elapsed().as_secs_f64()).max(1e-9))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        format!(
            "/utp-test-plain-ring-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    #[test]
    fn streams_to_the_end_and_leaves_no_region_behind() {
        let name = name();
        let rate = bandwidth(64 << 10, 64 << 20, &name, None).unwrap();
        assert!(rate > 0.0 && rate.is_finite(), "{rate}");
        // Opening removed the name; nothing is left in /dev/shm.
        assert!(!std::path::Path::new(&format!("/dev/shm{name}")).exists());
    }

    #[test]
    fn a_size_that_does_not_divide_the_ring_is_refused() {
        let err = bandwidth(3000, 1 << 20, &name(), None).unwrap_err();
        assert!(err.to_string().contains("divide"), "{err}");
    }
}
