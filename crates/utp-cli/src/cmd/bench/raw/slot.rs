//! Raw ping-pong in shared memory: one mailbox per direction, a sequence word
//! on its own cache line, waiting by spinning (`spin_loop`) or on a futex.
//!
//! This is the floor under utp's shared-memory link: the same copies in and
//! out, the same acquire/release hand-off, no frame header, no ring.
//! Only one message per direction may be in flight, which round trips and
//! calculator calls (strictly alternating) guarantee.

use super::shmem::Region;
use crate::cmd::bench::link::{Fallible, Link, SpinBudget};
use rustix::thread::futex;
use std::sync::atomic::{Ordering, fence};
use std::time::Duration;

/// Layout, per direction `d` (0: client to peer, 1: peer to client):
/// sequence word at `64 * d` and the receiver's sleeping flag beside it at
/// `64 * d + 4` (futex mode: the sender wakes the receiver only when the flag
/// is up, as utp's waiter flag does), length at `128 + 64 * d`, data at
/// `256 + d * capacity`.
const DATA: usize = 256;

/// How long one futex wait sleeps before the idle deadline is checked again.
const FUTEX_SLICE: Duration = Duration::from_millis(100);

/// One side of a mailbox pair.
#[derive(Debug)]
pub struct SlotLink {
    region: Region,
    capacity: usize,
    outgoing: usize,
    sent: u32,
    seen: u32,
    futex: bool,
    idle: Duration,
    buf: Vec<u8>,
}

/// Bytes of shared memory for messages up to `capacity` bytes.
pub fn region_len(capacity: usize) -> usize {
    DATA + 2 * capacity.next_multiple_of(64)
}

impl SlotLink {
    /// Wraps a mapped region. `peer` picks the direction; `futex` the way to wait.
    pub fn new(region: Region, capacity: usize, peer: bool, futex: bool, idle: Duration) -> Self {
        SlotLink {
            region,
            capacity: capacity.next_multiple_of(64),
            outgoing: usize::from(peer),
            sent: 0,
            seen: 0,
            futex,
            idle,
            buf: vec![0; capacity],
        }
    }

    fn data(&self, direction: usize) -> usize {
        DATA + direction * self.capacity
    }
}

impl Link for SlotLink {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        if msg.len() > self.capacity {
            return Err(format!(
                "{} bytes exceed the mailbox of {}",
                msg.len(),
                self.capacity
            )
            .into());
        }
        let d = self.outgoing;
        self.region.write(self.data(d), msg);
        self.region
            .u64_at(128 + 64 * d)
            .store(msg.len() as u64, Ordering::Relaxed);
        self.sent = self.sent.wrapping_add(1);
        // Release: pairs with the receiver's acquire load of the sequence word,
        // publishing the data and length written above.
        let word = self.region.u32_at(64 * d);
        word.store(self.sent, Ordering::Release);
        if self.futex {
            // SeqCst fence: pairs with the receiver's (see `recv`): either it
            // sees the new sequence before sleeping, or we see its flag.
            fence(Ordering::SeqCst);
            if super::sleep::take_down(self.region.u32_at(64 * d + 4)) {
                futex::wake(word, futex::Flags::empty(), 1)?;
            }
        }
        Ok(())
    }

    fn recv(&mut self, _len: usize) -> Fallible<&[u8]> {
        let d = 1 - self.outgoing;
        let word = self.region.u32_at(64 * d);
        let mut budget = SpinBudget::new(self.idle);
        // Acquire: pairs with the sender's release store of the sequence word.
        let sleeping = self.region.u32_at(64 * d + 4);
        while word.load(Ordering::Acquire) == self.seen {
            if self.futex {
                if super::sleep::pre_sleep_looks(&mut || word.load(Ordering::Acquire) != self.seen)
                {
                    break;
                }
                let slice = rustix::time::Timespec {
                    tv_sec: 0,
                    tv_nsec: FUTEX_SLICE.as_nanos() as i64,
                };
                // Raise the flag, then look again (SeqCst fence, paired with
                // the sender's): the sender wakes us only when the flag is up.
                sleeping.store(1, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                if word.load(Ordering::Acquire) != self.seen {
                    sleeping.store(0, Ordering::Relaxed);
                    break;
                }
                let waited = futex::wait(word, futex::Flags::empty(), self.seen, Some(&slice));
                sleeping.store(0, Ordering::Relaxed);
                match waited {
                    Ok(()) | Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                    Err(rustix::io::Errno::TIMEDOUT) if !budget.expired() => {}
                    Err(rustix::io::Errno::TIMEDOUT) => {
                        return Err(
                            format!("no message for {:?}: the peer is gone", self.idle).into()
                        );
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                budget.spin("message")?;
            }
        }
        self.seen = self.seen.wrapping_add(1);
        let len = self.region.u64_at(128 + 64 * d).load(Ordering::Relaxed) as usize;
        if len > self.capacity {
            return Err(
                format!("the peer announced {len} bytes, more than the mailbox holds").into(),
            );
        }
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let offset = self.data(d);
        self.region.read(offset, &mut self.buf[..len]);
        Ok(&self.buf[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping_pong(futex: bool) {
        let name = format!("/utp-bench-test-{}-slot-{futex}", std::process::id());
        let capacity = 4096;
        let region = Region::create(&name, region_len(capacity)).unwrap();
        let idle = Duration::from_secs(10);
        let mut client = SlotLink::new(Region::open(&name).unwrap(), capacity, false, futex, idle);
        let mut peer = SlotLink::new(region, capacity, true, futex, idle);
        let echo = std::thread::spawn(move || {
            for _ in 0..1000 {
                let request = peer.recv(0).unwrap().to_vec();
                peer.send(&request.iter().rev().copied().collect::<Vec<u8>>())
                    .unwrap();
            }
        });
        for i in 0..1000usize {
            let request: Vec<u8> = (0..i % capacity + 1).map(|j| (i + j) as u8).collect();
            client.send(&request).unwrap();
            let reply = client.recv(0).unwrap();
            assert!(reply.iter().eq(request.iter().rev()), "round trip {i}");
        }
        echo.join().unwrap();
        assert!(client.send(&vec![0; capacity + 1]).is_err());
    }

    #[test]
    fn spinning_mailboxes_answer_in_order() {
        ping_pong(false);
    }

    #[test]
    fn futex_mailboxes_answer_in_order() {
        ping_pong(true);
    }
}
