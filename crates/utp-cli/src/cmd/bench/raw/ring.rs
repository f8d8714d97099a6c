//! A plain single-producer/single-consumer byte ring per direction in shared
//! memory: the raw baseline for streaming. memcpy in, memcpy out, no framing,
//! no padding. When full or empty a side either spins (`spin_loop`) or sleeps
//! on a futex, announcing that it sleeps so the other side wakes it only then.

use super::shmem::Region;
use crate::cmd::bench::link::{Fallible, Link, SpinBudget};
use rustix::thread::futex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::Duration;

/// Bytes of each direction's ring: 2 MiB, the ring the benchmark gives utp's
/// shared-memory links (`?ring=2M`), so both move data through the same
/// amount of memory.
pub const CAPACITY: usize = 2 << 20;

/// Layout, per direction `d` (0: client to peer, 1: peer to client), from
/// `base = 256 * d`: head (bytes written, producer-owned) at `base`, data
/// sequence (bumped by the producer) at `base + 8`, consumer-sleeping flag at
/// `base + 12`; tail (bytes read, consumer-owned) at `base + 128`, room
/// sequence (bumped by the consumer) at `base + 136`, producer-sleeping flag
/// at `base + 140`. Ring bytes at `512 + d * CAPACITY`.
const DATA: usize = 512;

/// Bytes of shared memory the two rings need.
pub const REGION_LEN: usize = DATA + 2 * CAPACITY;

/// How long one futex wait sleeps before the idle deadline is checked again.
const FUTEX_SLICE_NS: i64 = 100_000_000;

/// One side of a duplex ring pair.
///
/// Each side keeps a private copy of the other side's index (`tail_seen`,
/// `head_seen`) and reads the shared one only when the copy says "full" or
/// "empty": the other side's cache line moves only when it must, as in any
/// well-made SPSC ring (and in utp's).
#[derive(Debug)]
pub struct RingLink {
    region: Region,
    outgoing: usize,
    futex: bool,
    idle: Duration,
    buf: Vec<u8>,
    /// Producer: bytes written (our own head, mirrored here).
    head: u64,
    /// Producer: the consumer's tail as last read.
    tail_seen: u64,
    /// Consumer: bytes read (our own tail, mirrored here).
    tail: u64,
    /// Consumer: the producer's head as last read.
    head_seen: u64,
}

/// The words of one direction.
struct Words<'a> {
    head: &'a AtomicU64,
    data_seq: &'a AtomicU32,
    consumer_sleeping: &'a AtomicU32,
    tail: &'a AtomicU64,
    room_seq: &'a AtomicU32,
    producer_sleeping: &'a AtomicU32,
}

fn words(region: &Region, d: usize) -> Words<'_> {
    let base = 256 * d;
    Words {
        head: region.u64_at(base),
        data_seq: region.u32_at(base + 8),
        consumer_sleeping: region.u32_at(base + 12),
        tail: region.u64_at(base + 128),
        room_seq: region.u32_at(base + 136),
        producer_sleeping: region.u32_at(base + 140),
    }
}

/// Waits until `ready()` holds: spinning, or sleeping on `seq` with `sleeping` raised.
fn wait(
    futex_mode: bool,
    mut ready: impl FnMut() -> bool,
    seq: &AtomicU32,
    sleeping: &AtomicU32,
    budget: &mut SpinBudget,
    waiting_for: &str,
) -> Fallible<()> {
    while !ready() {
        if !futex_mode {
            budget.spin(waiting_for)?;
            continue;
        }
        let seen = seq.load(Ordering::Acquire);
        sleeping.store(1, Ordering::SeqCst);
        // SeqCst fence: orders the flag store before the re-check, pairing with
        // the fence in `notify` (one of the two sides sees the other's write).
        fence(Ordering::SeqCst);
        if !ready() {
            let slice = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: FUTEX_SLICE_NS,
            };
            match futex::wait(seq, futex::Flags::empty(), seen, Some(&slice)) {
                Ok(()) | Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::TIMEDOUT) if !budget.expired() => {}
                Err(rustix::io::Errno::TIMEDOUT) => {
                    sleeping.store(0, Ordering::Relaxed);
                    return Err(format!("no {waiting_for}: the peer is gone").into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        sleeping.store(0, Ordering::Relaxed);
    }
    Ok(())
}

/// Tells the other side that something changed; touches the sequence word
/// and wakes it only if it sleeps (no read-modify-write per message).
fn notify(futex_mode: bool, seq: &AtomicU32, sleeping: &AtomicU32) -> Fallible<()> {
    if futex_mode {
        // SeqCst fence: pairs with the one in `wait`: either the sleeper sees
        // the index just published, or we see its flag. A sleeper that read
        // the sequence before raising its flag then finds it changed (its
        // futex wait returns at once) or is woken.
        fence(Ordering::SeqCst);
        if sleeping.load(Ordering::Relaxed) != 0 {
            seq.fetch_add(1, Ordering::Release);
            futex::wake(seq, futex::Flags::empty(), 1)?;
        }
    }
    Ok(())
}

impl RingLink {
    /// Wraps a mapped region of [`REGION_LEN`] bytes; `peer` picks the
    /// direction, `futex` whether full/empty sides sleep instead of spinning.
    pub fn new(region: Region, peer: bool, futex: bool, idle: Duration) -> Self {
        RingLink {
            region,
            outgoing: usize::from(peer),
            futex,
            idle,
            buf: Vec::new(),
            head: 0,
            tail_seen: 0,
            tail: 0,
            head_seen: 0,
        }
    }
}

impl Link for RingLink {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        let d = self.outgoing;
        let w = words(&self.region, d);
        let mut budget = SpinBudget::new(self.idle);
        let mut written = 0;
        while written < msg.len() {
            let h = self.head;
            if h.wrapping_sub(self.tail_seen) >= CAPACITY as u64 {
                // Full as far as we know: look at the consumer's tail, and wait.
                // Acquire: pairs with the consumer's release of `tail`, so the
                // bytes it read are no longer in use before they are overwritten.
                let tail_seen = &mut self.tail_seen;
                wait(
                    self.futex,
                    || {
                        *tail_seen = w.tail.load(Ordering::Acquire);
                        h.wrapping_sub(*tail_seen) < CAPACITY as u64
                    },
                    w.room_seq,
                    w.producer_sleeping,
                    &mut budget,
                    "room in the ring",
                )?;
            }
            let used = h.wrapping_sub(self.tail_seen);
            if used > CAPACITY as u64 {
                return Err("the peer's ring tail is ahead of the head: corrupt ring".into());
            }
            let free = CAPACITY - used as usize;
            let at = (h % CAPACITY as u64) as usize;
            let n = free.min(msg.len() - written).min(CAPACITY - at);
            self.region
                .write(DATA + d * CAPACITY + at, &msg[written..written + n]);
            self.head = h + n as u64;
            // Release: publishes the bytes just copied; pairs with the consumer's acquire.
            w.head.store(self.head, Ordering::Release);
            notify(self.futex, w.data_seq, w.consumer_sleeping)?;
            written += n;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize) -> Fallible<&[u8]> {
        let d = 1 - self.outgoing;
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let w = words(&self.region, d);
        let mut budget = SpinBudget::new(self.idle);
        let mut read = 0;
        while read < len {
            let t = self.tail;
            if self.head_seen == t {
                // Empty as far as we know: look at the producer's head, and wait.
                // Acquire: pairs with the producer's release of `head`.
                let head_seen = &mut self.head_seen;
                wait(
                    self.futex,
                    || {
                        *head_seen = w.head.load(Ordering::Acquire);
                        *head_seen != t
                    },
                    w.data_seq,
                    w.consumer_sleeping,
                    &mut budget,
                    "bytes in the ring",
                )?;
            }
            let available = self.head_seen.wrapping_sub(t);
            if available > CAPACITY as u64 {
                return Err("the peer's ring head is past its capacity: corrupt ring".into());
            }
            let at = (t % CAPACITY as u64) as usize;
            let n = (available as usize).min(len - read).min(CAPACITY - at);
            self.region
                .read(DATA + d * CAPACITY + at, &mut self.buf[read..read + n]);
            self.tail = t + n as u64;
            // Release: hands the bytes just copied back to the producer.
            w.tail.store(self.tail, Ordering::Release);
            notify(self.futex, w.room_seq, w.producer_sleeping)?;
            read += n;
        }
        Ok(&self.buf[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streams messages whose size does not divide the ring, so copies wrap,
    /// and checks every byte; spinning and futex modes alike.
    fn stream_intact(futex: bool) {
        let name = format!("/utp-bench-test-{}-ring-{futex}", std::process::id());
        let region = Region::create(&name, REGION_LEN).unwrap();
        let idle = Duration::from_secs(10);
        let mut producer = RingLink::new(Region::open(&name).unwrap(), false, futex, idle);
        let mut consumer = RingLink::new(region, true, futex, idle);
        let size = 300_007;
        let pattern = move |i: usize| (0..size).map(|j| (i * 31 + j) as u8).collect::<Vec<u8>>();
        let receiver = std::thread::spawn(move || {
            for i in 0..20 {
                assert_eq!(consumer.recv(size).unwrap(), pattern(i), "message {i}");
            }
            consumer.send(b"ack").unwrap();
        });
        for i in 0..20 {
            producer.send(&pattern(i)).unwrap();
        }
        assert_eq!(producer.recv(3).unwrap(), b"ack");
        receiver.join().unwrap();
        assert!(!std::path::Path::new(&format!("/dev/shm{name}")).exists());
    }

    #[test]
    fn spinning_ring_carries_wrapping_messages_intact() {
        stream_intact(false);
    }

    #[test]
    fn futex_ring_carries_wrapping_messages_intact() {
        stream_intact(true);
    }
}
