//! Raw ping-pong in shared memory: one mailbox per direction, its sequence
//! word and length in the first line beside the data, waiting by spinning
//! (`spin_loop`) or on a futex.
//!
//! This is the floor under utp's shared-memory link: the same copies in and
//! out, the same acquire/release hand-off, no frame header, no ring.
//! Only one message per direction may be in flight, which round trips and
//! calculator calls (strictly alternating) guarantee.
//!
//! Sequence, length and the first 48 bytes of data share a line, so a
//! message of up to 48 bytes moves one line between the cores, as utp's
//! record (stamp, header and payload) moves one line for up to 24. The
//! sequence word used to have a line of its own and the length another:
//! three lines for the smallest message where utp's record moves one, and
//! utp's calls over shared memory ran at 1.04-1.17x that "floor" in some
//! full runs. (A C program measured the three-line layout at 126-146 ns a
//! round trip and the one-line layout at 105-119 ns; in the bench, three
//! alternated pairs of runs showed no difference beyond noise.)

use super::shmem::Region;
use crate::cmd::bench::link::{Fallible, Link, SpinBudget};
use rustix::thread::futex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::Duration;

/// Layout: the receiver's sleeping flag of direction `d` (0: client to peer,
/// 1: peer to client) at `64 * d`, a line each (futex mode: the sender wakes
/// the receiver only when its flag is up, as utp's waiter flag); the
/// mailbox of direction `d` at `MAILBOXES + d * stride`: sequence word at
/// +0, length at +8, data at +[`HEAD`].
const MAILBOXES: usize = 128;

/// Bytes before a mailbox's data: sequence word and length.
const HEAD: usize = 16;

/// How long one futex wait sleeps before the idle deadline is checked
/// again: as long as one of utp's (see `RingLink`'s `FUTEX_SLICE_NS` for
/// what the length changed).
const FUTEX_SLICE: Duration = utp::__bench::SHM_WAIT_SLICE;

/// One side of a mailbox pair.
#[derive(Debug)]
pub struct SlotLink {
    region: Region,
    /// Largest message.
    capacity: usize,
    /// Bytes from one mailbox to the next: whole lines.
    stride: usize,
    outgoing: usize,
    sent: u32,
    seen: u32,
    futex: bool,
    idle: Duration,
    buf: Vec<u8>,
}

/// Bytes of one mailbox for messages up to `capacity` bytes.
fn stride(capacity: usize) -> usize {
    (HEAD + capacity).next_multiple_of(64)
}

/// Bytes of shared memory for messages up to `capacity` bytes.
pub fn region_len(capacity: usize) -> usize {
    MAILBOXES + 2 * stride(capacity)
}

impl SlotLink {
    /// Wraps a mapped region of [`region_len`]`(capacity)` bytes. `peer`
    /// picks the direction; `futex` the way to wait.
    pub fn new(region: Region, capacity: usize, peer: bool, futex: bool, idle: Duration) -> Self {
        SlotLink {
            region,
            capacity,
            stride: stride(capacity),
            outgoing: usize::from(peer),
            sent: 0,
            seen: 0,
            futex,
            idle,
            buf: vec![0; capacity],
        }
    }

    /// Where the mailbox of `direction` starts (its sequence word).
    fn mailbox(&self, direction: usize) -> usize {
        MAILBOXES + direction * self.stride
    }

    fn sequence(&self, direction: usize) -> &AtomicU32 {
        self.region.u32_at(self.mailbox(direction))
    }

    fn length(&self, direction: usize) -> &AtomicU64 {
        self.region.u64_at(self.mailbox(direction) + 8)
    }

    /// Where the data of `direction`'s mailbox starts.
    fn data(&self, direction: usize) -> usize {
        self.mailbox(direction) + HEAD
    }

    fn sleeping(&self, direction: usize) -> &AtomicU32 {
        self.region.u32_at(64 * direction)
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
        self.length(d).store(msg.len() as u64, Ordering::Relaxed);
        self.sent = self.sent.wrapping_add(1);
        // Release: pairs with the receiver's acquire load of the sequence word,
        // publishing the data and length written above.
        let word = self.sequence(d);
        word.store(self.sent, Ordering::Release);
        // As utp's link after a receive (each message here answers one, or
        // is answered): a small message goes to the shared cache, so the
        // polling receiver does not snoop this core for it.
        if msg.len() <= utp::__bench::SHM_DEMOTE_PAYLOAD_UP_TO {
            self.region.demote(self.mailbox(d), HEAD + msg.len());
        }
        if self.futex {
            // SeqCst fence: pairs with the receiver's (see `recv`): either it
            // sees the new sequence before sleeping, or we see its flag.
            fence(Ordering::SeqCst);
            if super::sleep::take_down(self.sleeping(d)) {
                futex::wake(word, futex::Flags::empty(), 1)?;
            }
        }
        Ok(())
    }

    fn recv(&mut self, _len: usize) -> Fallible<&[u8]> {
        let d = 1 - self.outgoing;
        let word = self.sequence(d);
        let mut budget = SpinBudget::new(self.idle);
        // Acquire: pairs with the sender's release store of the sequence word.
        let sleeping = self.sleeping(d);
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
        let len = self.length(d).load(Ordering::Relaxed) as usize;
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

    fn try_recv(&mut self, len: usize) -> Fallible<Option<&[u8]>> {
        // Acquire: as in `recv`, which reads the message this says is there.
        if self.sequence(1 - self.outgoing).load(Ordering::Acquire) == self.seen {
            return Ok(None);
        }
        self.recv(len).map(Some)
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

    /// A message of up to 48 bytes shares its line with the sequence word
    /// and length (as utp's record with its stamp and header), in both
    /// directions, and the sleeping flags are on lines of their own.
    #[test]
    fn a_small_message_travels_in_the_line_of_its_sequence_word() {
        let name = format!("/utp-bench-test-{}-slot-line", std::process::id());
        let capacity = 4096;
        let link = SlotLink::new(
            Region::create(&name, region_len(capacity)).unwrap(),
            capacity,
            false,
            false,
            Duration::from_secs(1),
        );
        for d in 0..2 {
            let start = link.mailbox(d);
            assert_eq!(start % 64, 0, "direction {d}");
            assert_eq!((link.data(d) + 47) / 64, start / 64, "direction {d}");
            assert!(64 * d + 4 <= MAILBOXES, "a flag shares a mailbox line");
        }
        assert!(link.mailbox(1) >= link.data(0) + capacity);
        assert!(link.data(1) + capacity <= region_len(capacity));
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
