//! The raw baseline: a hand-written broadcast ring in a POSIX shared-memory
//! file, the least a safe broadcast needs — a per-slot stamp written before
//! and after the payload (seqlock), a tail for resynchronising after a lap,
//! readers that copy and re-check. No handshake, no sealing, no registry,
//! no wake-ups, no loss counters in shared memory.

use super::sides::{BenchPublisher, BenchSubscriber, MESSAGE, SLOTS};
use crate::cmd::bench::link::Fallible;
use std::sync::atomic::{AtomicU64, Ordering, fence};

const HEADER: usize = 64;
const SLOT: usize = 128;
const PAYLOAD: usize = 64;
const LEN: usize = HEADER + SLOTS * SLOT;

fn path(name: &str) -> String {
    format!("/dev/shm/{name}-raw")
}

/// Removes the ring's file.
pub fn cleanup(name: &str) {
    let _ = std::fs::remove_file(path(name));
}

struct Ring {
    map: memmap2::MmapRaw,
}

impl Ring {
    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= LEN);
        // SAFETY: aligned, in bounds (asserted); the mapping lives as long
        // as `self`; shared words are only accessed atomically.
        unsafe { &*self.map.as_ptr().add(offset).cast::<AtomicU64>() }
    }
}

/// The raw ring's writer.
pub struct RawPublisher {
    ring: Ring,
    next: u64,
    /// The ring's file, removed once every subscriber has mapped it.
    path: String,
}

impl RawPublisher {
    /// Creates the ring file.
    pub fn create(name: &str) -> Fallible<RawPublisher> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path(name))?;
        file.set_len(LEN as u64)?;
        let map = memmap2::MmapOptions::new().populate().map_raw(&file)?;
        Ok(RawPublisher {
            ring: Ring { map },
            next: 0,
            path: path(name),
        })
    }
}

impl BenchPublisher for RawPublisher {
    /// Every subscriber has the ring mapped: its name goes now, so that a
    /// run killed from here on (even by SIGKILL) leaves nothing in
    /// `/dev/shm`; [`cleanup`] covers the runs that fail before.
    fn subscribers_ready(&mut self) -> Fallible<()> {
        std::fs::remove_file(&self.path)?;
        Ok(())
    }

    fn publish(&mut self, payload: &[u8]) -> Fallible<()> {
        let n = self.next;
        let slot = HEADER + (n as usize % SLOTS) * SLOT;
        self.ring.word(slot).store(2 * n + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let len = payload.len().min(PAYLOAD);
        // SAFETY: the slot's payload area is in bounds and only this writer
        // writes it; readers re-check the stamp after copying.
        unsafe {
            std::ptr::copy_nonoverlapping(
                payload.as_ptr(),
                self.ring.map.as_mut_ptr().add(slot + 64),
                len,
            )
        };
        self.ring.word(slot).store(2 * n + 2, Ordering::Release);
        self.ring.word(0).store(n + 1, Ordering::Release);
        self.next = n + 1;
        Ok(())
    }
}

/// A raw ring reader.
pub struct RawSubscriber {
    ring: Ring,
    cursor: u64,
}

impl RawSubscriber {
    /// Maps the ring and starts at its tail.
    pub fn open(name: &str) -> Fallible<RawSubscriber> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path(name))?;
        if file.metadata()?.len() != LEN as u64 {
            return Err("raw ring of the wrong size".into());
        }
        let map = memmap2::MmapOptions::new().populate().map_raw(&file)?;
        let ring = Ring { map };
        let cursor = ring.word(0).load(Ordering::Acquire);
        Ok(RawSubscriber { ring, cursor })
    }
}

impl BenchSubscriber for RawSubscriber {
    fn try_recv(&mut self, buf: &mut [u8]) -> Fallible<Option<u64>> {
        let mut lost = 0;
        loop {
            let n = self.cursor;
            let slot = HEADER + (n as usize % SLOTS) * SLOT;
            let stamp = self.ring.word(slot).load(Ordering::Acquire);
            if stamp < 2 * n + 2 {
                return Ok(None);
            }
            if stamp == 2 * n + 2 {
                for (i, chunk) in buf[..MESSAGE.min(PAYLOAD)].chunks_mut(8).enumerate() {
                    let w = self
                        .ring
                        .word(slot + 64 + i * 8)
                        .load(Ordering::Relaxed)
                        .to_ne_bytes();
                    chunk.copy_from_slice(&w[..chunk.len()]);
                }
                fence(Ordering::Acquire);
                self.cursor += 1;
                if self.ring.word(slot).load(Ordering::Relaxed) == stamp {
                    return Ok(Some(lost));
                }
                lost += 1;
                continue;
            }
            let tail = self.ring.word(0).load(Ordering::Acquire);
            let resume = tail.saturating_sub((SLOTS - SLOTS / 4) as u64).max(n + 1);
            lost += resume - n;
            self.cursor = resume;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_file_is_gone_once_the_subscribers_are_ready_and_the_ring_still_works() {
        let name = format!("utp-test-raw-ring-{}", std::process::id());
        // Removed however the test ends (a second removal is quiet).
        let _cleanup = crate::cmd::bench::raw::RemoveOnDrop(path(&name).into());
        let mut publisher = RawPublisher::create(&name).unwrap();
        let mut subscriber = RawSubscriber::open(&name).unwrap();
        publisher.subscribers_ready().unwrap();
        assert!(!std::path::Path::new(&path(&name)).exists());
        publisher.publish(&[7; MESSAGE]).unwrap();
        let mut buf = [0u8; MESSAGE];
        assert_eq!(subscriber.try_recv(&mut buf).unwrap(), Some(0));
        assert_eq!(buf, [7; MESSAGE]);
    }
}
