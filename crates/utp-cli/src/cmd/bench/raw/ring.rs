//! A plain single-producer/single-consumer byte ring per direction in shared
//! memory: the raw baseline for streaming. memcpy in, memcpy out, no framing,
//! no padding; both sides spin (`spin_loop`) when full or empty.

use super::shmem::Region;
use crate::cmd::bench::link::{Fallible, Link, SpinBudget};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Bytes of each direction's ring: 1 MiB, the size of utp's default ring.
pub const CAPACITY: usize = 1 << 20;

/// Layout, per direction `d` (0: client to peer, 1: peer to client): head
/// (bytes written, producer-owned) at `256 * d`, tail (bytes read,
/// consumer-owned) at `256 * d + 128`, data at `512 + d * CAPACITY`.
const DATA: usize = 512;

/// Bytes of shared memory the two rings need.
pub const REGION_LEN: usize = DATA + 2 * CAPACITY;

/// One side of a duplex ring pair.
#[derive(Debug)]
pub struct RingLink {
    region: Region,
    outgoing: usize,
    idle: Duration,
    buf: Vec<u8>,
}

impl RingLink {
    /// Wraps a mapped region of [`REGION_LEN`] bytes; `peer` picks the direction.
    pub fn new(region: Region, peer: bool, idle: Duration) -> Self {
        RingLink {
            region,
            outgoing: usize::from(peer),
            idle,
            buf: Vec::new(),
        }
    }
}

impl Link for RingLink {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        let d = self.outgoing;
        let head = self.region.u64_at(256 * d);
        let tail = self.region.u64_at(256 * d + 128);
        let mut budget = SpinBudget::new(self.idle);
        let mut written = 0;
        while written < msg.len() {
            let h = head.load(Ordering::Relaxed);
            // Acquire: pairs with the consumer's release of `tail`, so the
            // bytes it read are no longer in use before they are overwritten.
            let used = h.wrapping_sub(tail.load(Ordering::Acquire));
            if used > CAPACITY as u64 {
                return Err("the peer's ring tail is ahead of the head: corrupt ring".into());
            }
            let free = CAPACITY as u64 - used;
            if free == 0 {
                budget.spin("room in the ring")?;
                continue;
            }
            let at = (h % CAPACITY as u64) as usize;
            let n = (free as usize).min(msg.len() - written).min(CAPACITY - at);
            self.region.write(DATA + d * CAPACITY + at, &msg[written..written + n]);
            // Release: publishes the bytes just copied; pairs with the consumer's acquire.
            head.store(h + n as u64, Ordering::Release);
            written += n;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize) -> Fallible<&[u8]> {
        let d = 1 - self.outgoing;
        let head = self.region.u64_at(256 * d);
        let tail = self.region.u64_at(256 * d + 128);
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let mut budget = SpinBudget::new(self.idle);
        let mut read = 0;
        while read < len {
            let t = tail.load(Ordering::Relaxed);
            // Acquire: pairs with the producer's release of `head`.
            let available = head.load(Ordering::Acquire).wrapping_sub(t);
            if available == 0 {
                budget.spin("bytes in the ring")?;
                continue;
            }
            if available > CAPACITY as u64 {
                return Err("the peer's ring head is past its capacity: corrupt ring".into());
            }
            let at = (t % CAPACITY as u64) as usize;
            let n = (available as usize).min(len - read).min(CAPACITY - at);
            self.region
                .read(DATA + d * CAPACITY + at, &mut self.buf[read..read + n]);
            // Release: hands the bytes just copied back to the producer.
            tail.store(t + n as u64, Ordering::Release);
            read += n;
        }
        Ok(&self.buf[..len])
    }
}
