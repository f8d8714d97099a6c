//! A plain single-producer/single-consumer byte ring per direction in shared
//! memory: the raw baseline for streaming. memcpy in, memcpy out, no framing,
//! no padding. When full or empty a side either spins (`spin_loop`) or sleeps
//! on a futex, announcing that it sleeps so the other side wakes it only then.
//!
//! A message that fits the ring carries a stamp in its first word, as utp's
//! record does, and the consumer waits on that word, not on the producer's
//! head: one line crosses between the cores per message, not two (see
//! `RingLink::stamp`). Only messages larger than the ring go by the
//! head, piece by piece.
//!
//! A message whose stride is over utp's `ring::PIECE` (16 KiB) is written
//! in pieces as utp's link writes such a record when its peer agreed: its
//! stamp first says how far it is written (`PROGRESS` set), and the
//! consumer copies each piece as it lands. Otherwise utp's 64 KiB round
//! trips, whose two copies overlap, would beat this "floor".
//!
//! The consumer gives bytes back as utp's ring does: once it has read an
//! eighth of the ring, and whenever it finds the ring empty (so before it
//! waits), not right after each copy. It writes nothing into the lines it
//! read, as utp's consumer with keyed stamps (what utp's links agree to)
//! does not (see `release`).
//!
//! A consumer that has fallen behind asks for the lines ahead of it that
//! are published, as utp's does (`utp::shm::ring::read_ahead`): the
//! producer stores its head each time it has written a sixteenth of the
//! ring, and the consumer reads it with each batch it gives back.

use super::shmem::Region;
use crate::cmd::bench::link::{Fallible, Link, SpinBudget};
use rustix::thread::futex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::Duration;
use utp::shm::ring::read_ahead::{self, ReadAhead};
use utp::shm::ring::{FLUSH_BATCH, PIECE, SHOW_POSITION_EVERY};

/// Bit 63 of a stamp: the message is being written, and the rest of the
/// stamp is the position where the bytes written so far end (a position
/// never comes near 2^63). A finished message's stamp is its start + 1.
const PROGRESS: u64 = 1 << 63;

/// Layout, per direction `d` (0: client to peer, 1: peer to client), from
/// `base = 256 * d`, one cache line per writer and purpose, as utp's ring
/// header: head (bytes written, producer-owned) at `base`; data sequence
/// (bumped by the producer) at `base + 64` beside the consumer-sleeping flag
/// at `base + 68`; tail (bytes read, consumer-owned) at `base + 128`; room
/// sequence (bumped by the consumer) at `base + 192` beside the
/// producer-sleeping flag at `base + 196`. (The flags once shared the index
/// lines: a consumer going to sleep wrote into the line the producer
/// stores its head in on every message, which made the futex ring at 64 B
/// a quarter of utp's speed.) Ring bytes at `512 + d * capacity`.
const DATA: usize = 512;

/// Bytes of shared memory two rings of `capacity` bytes need: the benchmark
/// gives each direction the ring utp's shared-memory link gets at the same
/// point (`plan::ring_bytes`), so both move data through the same memory.
pub fn region_len(capacity: u64) -> Fallible<usize> {
    usize::try_from(capacity)
        .ok()
        .and_then(|c| c.checked_mul(2)?.checked_add(DATA))
        .ok_or_else(|| format!("two rings of {capacity} bytes do not fit in memory").into())
}

/// How long one futex wait sleeps before the idle deadline is checked
/// again: as long as one of utp's (`utp::__bench::SHM_WAIT_SLICE`, 10 ms).
/// With 100 ms, utp's blocking shared-memory round trips were faster than
/// this baseline's in 22 of the 24 cells of the six stored full runs from
/// run 33 (0.93–1.02x); in two alternated `utp bench --only shm` pairs,
/// 10 ms moved them from 0.92–0.99x to 0.98–1.05x, the raw round trip (8 B to 1 KiB) from
/// 65.6–69.0 µs to 61.1–64.0 µs (the same effect as the queue baseline's
/// waits, `raw::mq`).
const FUTEX_SLICE_NS: i64 = utp::__bench::SHM_WAIT_SLICE.as_nanos() as i64;

/// One side of a duplex ring pair.
///
/// Each side keeps a private copy of the other side's index (`tail_seen`,
/// `head_seen`) and reads the shared one only when the copy says "full" or
/// "empty": the other side's cache line moves only when it must, as in any
/// well-made SPSC ring (and in utp's). The consumer publishes its tail
/// lazily (`released` trails `tail` until [`RingLink::release`]).
#[derive(Debug)]
pub struct RingLink {
    region: Region,
    /// Bytes of each direction's ring: a power of two, at least a line, so
    /// a position's offset is one AND (a division per line given back cost
    /// this ring about a sixth of its speed at 64 KiB).
    capacity: usize,
    outgoing: usize,
    futex: bool,
    idle: Duration,
    buf: Vec<u8>,
    /// Producer: bytes written (our own head, mirrored here).
    head: u64,
    /// Producer: the consumer's tail as last read.
    tail_seen: u64,
    /// Producer: the head last stored in the shared word.
    head_shown: u64,
    /// Consumer: bytes read (our own tail, mirrored here).
    tail: u64,
    /// Consumer: bytes given back to the producer (the shared tail).
    released: u64,
    /// Consumer: the producer's head as last read.
    head_seen: u64,
    /// Consumer: which lines ahead to ask for while behind.
    read_ahead: ReadAhead,
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
        data_seq: region.u32_at(base + 64),
        consumer_sleeping: region.u32_at(base + 68),
        tail: region.u64_at(base + 128),
        room_seq: region.u32_at(base + 192),
        producer_sleeping: region.u32_at(base + 196),
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
        // Two more looks, a clock read apart, before raising the flag: what
        // utp's `wait=block` does between finding nothing and sleeping (its
        // wait loop reads the clock to start the wait, polls, reads it again
        // for the deadline checks, then arms). Without them a consumer that
        // keeps up slept after every message and was woken by a system call
        // per message, while utp's caught the next one: utp streamed 64 B at
        // up to 5x this "floor".
        if super::sleep::pre_sleep_looks(&mut ready) {
            return Ok(());
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
        if super::sleep::take_down(sleeping) {
            seq.fetch_add(1, Ordering::Release);
            futex::wake(seq, futex::Flags::empty(), 1)?;
        }
    }
    Ok(())
}

/// Where a message of `len` bytes lies in the ring: where utp's ring puts
/// the payload of a record (after its stamp and header, skipped here, not
/// written), in a stride of utp's record length. Returns (bytes before the
/// payload, bytes of the whole stride).
///
/// So both rings move the same lines. Packed back to back, 4 KiB messages
/// sat at the same offset of every page, and this ring streamed them at
/// anywhere from 0.4x to 2.7x utp's speed between runs (three interleaved
/// pairs, shm and sysv, spinning); at utp's stride, 0.95-1.14x. Likely
/// cause: every load of a message then has the low 12 address bits of a
/// line-start store just made to the previous one ("4K aliasing").
fn stride(len: usize) -> Fallible<(usize, usize)> {
    use utp::shm::ring::{PAYLOAD_OFFSET, record_len};
    let total = record_len(len).ok_or_else(|| format!("{len} bytes have no record length"))?;
    Ok((PAYLOAD_OFFSET, total))
}

/// What a consumer waiting for a message written in pieces has copied of
/// it: the message's payload is `len` bytes at `at` in the region,
/// `before` bytes into the stride that starts at position `start`.
struct Pieces {
    start: u64,
    at: usize,
    before: usize,
    len: usize,
    copied: usize,
}

impl Pieces {
    /// Copies into `buf` what the progress stamp `s` says is written of
    /// the payload and is not yet copied. A progress stamp of an earlier
    /// lap (nothing clears them) names a position outside this message:
    /// ignored.
    fn copy(&mut self, region: &Region, buf: &mut [u8], s: u64) {
        let ahead = (s & !PROGRESS).wrapping_sub(self.start);
        if ahead == 0 || ahead > (self.before + self.len) as u64 {
            return;
        }
        let written = (ahead as usize).saturating_sub(self.before);
        let upto = written.min(self.len);
        if upto > self.copied {
            region.read(self.at + self.copied, &mut buf[self.copied..upto]);
            self.copied = upto;
        }
    }
}

/// The part of `[start, start + n)` that falls in the payload
/// `[before, before + len)`, if any.
fn overlap(start: usize, n: usize, before: usize, len: usize) -> Option<(usize, usize)> {
    let from = start.max(before);
    let to = (start + n).min(before + len);
    (from < to).then_some((from, to))
}

impl RingLink {
    /// Wraps a mapped region of [`region_len`] bytes (the capacity follows
    /// from its length); `peer` picks the direction, `futex` whether
    /// full/empty sides sleep instead of spinning.
    pub fn new(region: Region, peer: bool, futex: bool, idle: Duration) -> Fallible<Self> {
        let capacity = region.len().saturating_sub(DATA) / 2;
        if capacity < 64 || !capacity.is_power_of_two() {
            return Err(format!(
                "a ring region of {} bytes: not {DATA} plus two power-of-two rings of whole lines",
                region.len()
            )
            .into());
        }
        Ok(RingLink {
            region,
            capacity,
            outgoing: usize::from(peer),
            futex,
            idle,
            buf: Vec::new(),
            head: 0,
            tail_seen: 0,
            head_shown: 0,
            tail: 0,
            released: 0,
            head_seen: 0,
            read_ahead: ReadAhead::default(),
        })
    }

    /// The offset of a position in the ring: `position & mask`.
    fn mask(&self) -> u64 {
        self.capacity as u64 - 1
    }

    /// Consumer: gives the bytes read since the last call back to the
    /// producer: the tail (release), and a wake-up if the producer sleeps.
    ///
    /// It stores nothing into the lines it read. Until utp's links agreed
    /// to keyed stamps, utp's consumer zeroed a word per line it gave back,
    /// and this one stored into each line as well: a producer overwriting
    /// lines the consumer owns misses, and the hardware streams the misses,
    /// where lines both hold shared hit and wait for the other copy to be
    /// invalidated (64 KiB round trips, far placement: utp/raw 0.61-0.65
    /// without the stores). But the stores cost streams more: without them,
    /// utp streamed 4 KiB to 1 MiB messages 1.25-1.8x as fast, near
    /// placement (docs/benchmarks/journal.md, 2026-12-05, forenoon). The wait on
    /// shared lines is now taken where it arises: both producers ask for a
    /// large write's lines ahead (`Region::write`, through utp's
    /// `copy_into_shared`).
    fn release(&mut self, d: usize) -> Fallible<()> {
        if self.released == self.tail {
            return Ok(());
        }
        self.released = self.tail;
        let w = words(&self.region, d);
        // Release: hands the bytes copied out back to the producer.
        w.tail.store(self.tail, Ordering::Release);
        notify(self.futex, w.room_seq, w.producer_sleeping)
    }
}

impl Link for RingLink {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        let d = self.outgoing;
        let (before, total) = stride(msg.len())?;
        if self.publish_in_known_room(d, msg, before, total) {
            if self.futex {
                let w = words(&self.region, d);
                notify(true, w.data_seq, w.consumer_sleeping)?;
            }
            return Ok(());
        }
        let w = words(&self.region, d);
        let mut budget = SpinBudget::new(self.idle);
        // A message the ring can hold goes in whole: wait for room for all
        // of it, copy, publish once (as utp's producer publishes a record).
        // Only a larger one goes in pieces, each as big as the room.
        let whole = total <= self.capacity;
        let need = if whole { total as u64 } else { 1 };
        let capacity = self.capacity as u64;
        let mut written = 0;
        while written < total {
            let h = self.head;
            if capacity - h.wrapping_sub(self.tail_seen).min(capacity) < need {
                // Not enough room as far as we know: look at the consumer's
                // tail, and wait. Acquire: pairs with the consumer's release
                // of `tail`, so the bytes it read are no longer in use
                // before they are overwritten.
                let tail_seen = &mut self.tail_seen;
                wait(
                    self.futex,
                    || {
                        *tail_seen = w.tail.load(Ordering::Acquire);
                        capacity.saturating_sub(h.wrapping_sub(*tail_seen)) >= need
                    },
                    w.room_seq,
                    w.producer_sleeping,
                    &mut budget,
                    "room in the ring",
                )?;
            }
            let used = h.wrapping_sub(self.tail_seen);
            if used > capacity {
                return Err("the peer's ring tail is ahead of the head: corrupt ring".into());
            }
            let mut room = (capacity - used) as usize;
            let mut at = h;
            // At most two pieces for a whole message (the ring's end splits
            // it); one per wait for a larger one.
            while room > 0 && written < total {
                let offset = (at & self.mask()) as usize;
                let n = room.min(total - written).min(self.capacity - offset);
                // Only the payload's part of this piece is written; the
                // stride's gaps are skipped.
                if let Some((from, to)) = overlap(written, n, before, msg.len()) {
                    self.region.write(
                        DATA + d * self.capacity + offset + (from - written),
                        &msg[from - before..to - before],
                    );
                }
                at += n as u64;
                room -= n;
                written += n;
                if !whole {
                    break;
                }
            }
            if whole {
                // Release: the stamp says the whole message is there; pairs
                // with the consumer's acquire (see `stamp`).
                self.stamp(d, h).store(h + 1, Ordering::Release);
            }
            self.head = at;
            // Release: publishes the bytes just copied; pairs with the consumer's acquire.
            w.head.store(self.head, Ordering::Release);
            self.head_shown = self.head;
            notify(self.futex, w.data_seq, w.consumer_sleeping)?;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize) -> Fallible<&[u8]> {
        let d = 1 - self.outgoing;
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        // What earlier receives read goes back once it makes a batch (an
        // eighth of the ring, utp's `FLUSH_BATCH`): by now this side has
        // done whatever it did with it (sent a reply), so these stores
        // never stand in front of that.
        if self.tail.wrapping_sub(self.released) >= self.capacity as u64 / FLUSH_BATCH {
            self.release(d)?;
            // How far the producer has written, now and then (as utp's
            // consumer reads its producer's `tail`).
            let head = words(&self.region, d).head.load(Ordering::Relaxed);
            self.read_ahead.saw(head);
        }
        // Before waiting: a consumer that keeps pace would wait anyway.
        if let Some((from, to)) = self.read_ahead.due(self.tail) {
            self.ask_for_lines(d, from, to);
        }
        let mut budget = SpinBudget::new(self.idle);
        let (before, total) = stride(len)?;
        // As the producer: a message the ring can hold is read once it is
        // all there, which its stamp says; a larger one piece by piece, as
        // the producer's head says.
        let whole = total <= self.capacity;
        let capacity = self.capacity as u64;
        let mut read = 0;
        // Payload bytes copied from the pieces of a message being written.
        let mut done = 0;
        while read < total {
            let t = self.tail;
            let available = if whole {
                done = self.wait_for_stamp(d, t, before, len, &mut budget)?;
                total as u64
            } else {
                self.wait_for_head(d, t, &mut budget)?
            };
            if available > capacity {
                return Err("the peer's ring head is past its capacity: corrupt ring".into());
            }
            let mut left = available as usize;
            let mut at = t;
            while left > 0 && read < total {
                let offset = (at & self.mask()) as usize;
                let n = left.min(total - read).min(self.capacity - offset);
                if let Some((from, to)) = overlap(read, n, before + done, len - done) {
                    self.region.read(
                        DATA + d * self.capacity + offset + (from - read),
                        &mut self.buf[from - before..to - before],
                    );
                }
                at += n as u64;
                left -= n;
                read += n;
            }
            // Given back to the producer at the next `release`.
            self.tail = at;
        }
        Ok(&self.buf[..len])
    }

    fn try_recv(&mut self, len: usize) -> Fallible<Option<&[u8]>> {
        let d = 1 - self.outgoing;
        let (_, total) = stride(len)?;
        let t = self.tail;
        // Acquire: pairs with the producer's release of the stamp (a whole
        // message) or of its head (a message larger than the ring).
        let there = if total <= self.capacity {
            self.stamp(d, t).load(Ordering::Acquire) == t + 1
        } else {
            head_is_past(words(&self.region, d).head.load(Ordering::Acquire), t)
        };
        if !there {
            // As `recv` does before it waits: what was read goes back.
            self.release(d)?;
            return Ok(None);
        }
        self.recv(len).map(Some)
    }
}

impl RingLink {
    /// Producer, the common case: a message that fits in the room already
    /// known to be free, before the ring's end, is copied, stamped and
    /// published at once; false (nothing done) for anything else, which
    /// `send`'s general path handles (waiting, wrapping, pieces).
    ///
    /// Why a path of its own: through the general one (closures, piece
    /// loop, six index words located and bounds-checked per message) this
    /// ring's producer was slower than its consumer, so at 64 B the
    /// consumer kept catching up (about 45,000 times in a 5-million-message
    /// run, where utp's found its ring empty twice) and waited on the very
    /// line the producer was writing. In the "far" placement every catch-up
    /// costs a line round trip between the cores, and utp streamed 64 B at
    /// 2.6-3.3x this "floor" (2026-12-03, run 16); with this path the ring
    /// stays ahead of its consumer and carries 64 B at about twice utp's
    /// rate near, 1.2-1.8x far (once 0.9x far in a full run: see
    /// docs/benchmarks/journal.md, 2026-12-03).
    #[inline(always)]
    fn publish_in_known_room(&mut self, d: usize, msg: &[u8], before: usize, total: usize) -> bool {
        let h = self.head;
        let offset = (h & self.mask()) as usize;
        let used = h.wrapping_sub(self.tail_seen);
        let fits = total <= self.capacity - offset
            && used <= self.capacity as u64
            && self.capacity as u64 - used >= total as u64;
        if !fits {
            return false;
        }
        let room_after = self.capacity as u64 - used - total as u64;
        self.region.claim_ahead(
            DATA + d * self.capacity,
            self.capacity,
            offset,
            total,
            room_after,
        );
        let at = DATA + d * self.capacity + offset + before;
        if total <= PIECE {
            self.region.write(at, msg);
        } else {
            self.write_in_pieces(d, h, at, before, msg);
        }
        // Release: the stamp says the whole message is there; pairs with the
        // consumer's acquire (see `stamp`).
        self.stamp(d, h).store(h + 1, Ordering::Release);
        // The head word is stored only each time a sixteenth of the ring
        // is written (as utp's producer stores its `tail`), for the
        // consumer's read-ahead: the consumer of a message that fits reads
        // its stamp, and one of a larger message waits for the head the
        // general path stores with each piece. Release: the bytes before
        // it are written.
        self.head = h + total as u64;
        if self.head.wrapping_sub(self.head_shown) >= self.capacity as u64 / SHOW_POSITION_EVERY {
            self.head_shown = self.head;
            words(&self.region, d)
                .head
                .store(self.head, Ordering::Release);
        }
        true
    }

    /// Consumer: asks for the lines of positions `from..to` of direction
    /// `d`'s ring (a hint, see `utp::shm::ring::read_ahead`).
    #[cold]
    #[inline(never)]
    fn ask_for_lines(&self, d: usize, from: u64, to: u64) {
        for offset in read_ahead::line_offsets(from, to, self.capacity) {
            self.region.prefetch(DATA + d * self.capacity + offset);
        }
    }

    /// Writes `msg`, whose payload starts at `at` in the region and whose
    /// stride starts at position `h`, `before` bytes earlier, in pieces of
    /// [`PIECE`] bytes of stride, storing a progress stamp after each, as
    /// utp's link writes a record of more than a piece (the first piece
    /// ends at `PIECE` from the stride's start, the next ones `PIECE`
    /// further each, every one short of the message's end).
    fn write_in_pieces(&self, d: usize, h: u64, at: usize, before: usize, msg: &[u8]) {
        let stamp = self.stamp(d, h);
        let mut done = PIECE - before;
        self.region.write(at, &msg[..done]);
        // Release: the bytes up to the progress are written; pairs with
        // the consumer's acquire (see `Pieces::copy`).
        stamp.store(PROGRESS | (h + PIECE as u64), Ordering::Release);
        while msg.len() - done > PIECE {
            self.region.write(at + done, &msg[done..done + PIECE]);
            done += PIECE;
            stamp.store(PROGRESS | (h + (before + done) as u64), Ordering::Release);
        }
        self.region.write(at + done, &msg[done..]);
    }

    /// The stamp of the message starting at position `at`: its first
    /// word, which utp's record keeps for its stamp too (the payload starts
    /// after stamp and header, as `stride` places it). The producer stores
    /// `at + 1` there once the whole message is written. Nothing zeroes
    /// it: an older lap's stamp holds another position, so it never
    /// matches, and the bench's payloads are runs of one byte value, never
    /// a position + 1 (utp, whose payloads are anyone's, keys its stamps).
    ///
    /// Why a stamp: a consumer that keeps pace and learns of each message
    /// from the producer's head polls the head's line while the producer
    /// stores to it once per message, so two lines cross between the cores
    /// per message (head, then data). utp's consumer polls the record's own
    /// stamp, one line, and streamed 64 B messages at 1.2-7x this ring
    /// (2026-12-03, runs 14 and 15) while it read the head.
    fn stamp(&self, d: usize, at: u64) -> &AtomicU64 {
        self.region
            .u64_at(DATA + d * self.capacity + (at & self.mask()) as usize)
    }

    /// Consumer: waits until the message of `len` payload bytes, `before`
    /// bytes into the stride starting at `t`, is stamped, copying the
    /// pieces a progress stamp says are written while it waits. Returns
    /// how many payload bytes it copied so.
    fn wait_for_stamp(
        &mut self,
        d: usize,
        t: u64,
        before: usize,
        len: usize,
        budget: &mut SpinBudget,
    ) -> Fallible<usize> {
        if self.stamp(d, t).load(Ordering::Acquire) == t + 1 {
            return Ok(0);
        }
        // Not there yet: give back everything read so far, as utp's
        // consumer does when it finds its ring empty, and wait.
        self.release(d)?;
        let start = DATA + d * self.capacity + (t & self.mask()) as usize;
        let (region, buf, futex) = (&self.region, &mut self.buf, self.futex);
        let stamp = region.u64_at(start);
        let w = words(region, d);
        let mut pieces = Pieces {
            start: t,
            at: start + before,
            before,
            len,
            copied: 0,
        };
        wait(
            futex,
            || {
                let s = stamp.load(Ordering::Acquire);
                if s & PROGRESS != 0 {
                    pieces.copy(region, buf, s);
                }
                s == t + 1
            },
            w.data_seq,
            w.consumer_sleeping,
            budget,
            "bytes in the ring",
        )?;
        Ok(pieces.copied)
    }

    /// Consumer, messages larger than the ring: waits until the producer's
    /// head is past `t`, and returns how many bytes are there.
    ///
    /// The head last seen may be from before messages since read by their
    /// stamps (the producer stores the head only with pieces of large
    /// messages): see [`head_is_past`].
    fn wait_for_head(&mut self, d: usize, t: u64, budget: &mut SpinBudget) -> Fallible<u64> {
        let past = move |head: u64| head_is_past(head, t);
        if !past(self.head_seen) {
            // Nothing known to be there: look at the producer's head.
            // Acquire: pairs with the producer's release of `head`.
            self.head_seen = words(&self.region, d).head.load(Ordering::Acquire);
        }
        if !past(self.head_seen) {
            // Still nothing: give back everything read so far (a message
            // larger than the free space must not wait for itself), and wait.
            self.release(d)?;
            let w = words(&self.region, d);
            let head_seen = &mut self.head_seen;
            wait(
                self.futex,
                || {
                    *head_seen = w.head.load(Ordering::Acquire);
                    past(*head_seen)
                },
                w.data_seq,
                w.consumer_sleeping,
                budget,
                "bytes in the ring",
            )?;
        }
        Ok(self.head_seen.wrapping_sub(t))
    }
}

/// Whether the producer's `head` is past position `t`: a signed comparison
/// of positions (which never come near 2^63), not an equality, since a head
/// read earlier may be from before messages read since by their stamps.
fn head_is_past(head: u64, t: u64) -> bool {
    (head.wrapping_sub(t) as i64) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rings of these tests: 2 MiB, as the benchmark's smallest.
    const TEST_CAPACITY: u64 = 2 << 20;

    /// Streams messages whose size does not divide the ring, so copies wrap,
    /// and checks every byte; spinning and futex modes alike.
    fn stream_intact(futex: bool) {
        let name = format!("/utp-bench-test-{}-ring-{futex}", std::process::id());
        let region = Region::create(&name, region_len(TEST_CAPACITY).unwrap()).unwrap();
        let idle = Duration::from_secs(10);
        let mut producer = RingLink::new(Region::open(&name).unwrap(), false, futex, idle).unwrap();
        let mut consumer = RingLink::new(region, true, futex, idle).unwrap();
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

    /// The consumer gives bytes back once it has read an eighth of the ring
    /// or finds the ring empty, not after each copy, and writes nothing
    /// into the lines it gives back.
    #[test]
    fn the_tail_goes_back_in_batches_and_when_the_ring_is_empty() {
        let name = format!("/utp-bench-test-{}-ring-lazy", std::process::id());
        let region = Region::create(&name, region_len(TEST_CAPACITY).unwrap()).unwrap();
        let idle = Duration::from_secs(10);
        let mut producer = RingLink::new(Region::open(&name).unwrap(), false, false, idle).unwrap();
        let mut consumer = RingLink::new(region, true, false, idle).unwrap();
        // Read through the producer's own mapping, so a consumer blocked
        // in `recv` on another thread can be watched.
        let shared_tail = |p: &RingLink| words(&p.region, 0).tail.load(Ordering::Acquire);
        let word_at = |p: &RingLink, at: usize| p.region.u64_at(DATA + at).load(Ordering::Relaxed);
        // A 100-byte message takes a 192-byte stride, its payload at 40..140.
        producer.send(&[0xff; 100]).unwrap();
        producer.send(&[0xee; 100]).unwrap();
        assert_eq!(consumer.recv(100).unwrap(), [0xff; 100]);
        assert_eq!(consumer.recv(100).unwrap(), [0xee; 100]);
        assert_eq!(shared_tail(&producer), 0, "given back while reading on");
        // Each message's first word is its stamp (its position + 1); the
        // rest of the gap before the payload is not written.
        assert_eq!(word_at(&producer, 0), 1, "the first message's stamp");
        assert_eq!(word_at(&producer, 192), 193, "the second's");
        assert_eq!(word_at(&producer, 8), 0, "the gap is not written");
        assert_eq!(word_at(&producer, 64), u64::from_le_bytes([0xff; 8]));
        // The next receive finds the ring empty: both go back before it waits.
        std::thread::scope(|s| {
            let reader = s.spawn(|| consumer.recv(100).unwrap().to_vec());
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while shared_tail(&producer) != 384 {
                assert!(std::time::Instant::now() < deadline, "never given back");
                std::thread::yield_now();
            }
            // Given back as they were: stamps and payload stay.
            assert_eq!(word_at(&producer, 0), 1);
            assert_eq!(word_at(&producer, 192), 193);
            assert_eq!(word_at(&producer, 64), u64::from_le_bytes([0xff; 8]));
            producer.send(&[0xdd; 100]).unwrap();
            assert_eq!(reader.join().unwrap(), [0xdd; 100]);
        });
        // Reading on: given back once an eighth of the ring has been read.
        let batch = (TEST_CAPACITY / FLUSH_BATCH) as usize;
        let big = vec![0xcc; batch / 4 - 40];
        for _ in 0..5 {
            producer.send(&big).unwrap();
        }
        for _ in 0..4 {
            assert_eq!(consumer.recv(big.len()).unwrap(), &big[..]);
        }
        assert_eq!(shared_tail(&producer), 384, "less than a batch read");
        assert_eq!(consumer.recv(big.len()).unwrap(), &big[..]);
        assert_eq!(shared_tail(&producer), (576 + batch) as u64);
        assert_eq!(
            word_at(&producer, 576 + 64),
            u64::from_le_bytes([0xcc; 8]),
            "the first, given back, as it was"
        );
    }

    /// The capacity follows from the region; a region that is not two rings
    /// of whole lines is refused, not used.
    #[test]
    fn the_region_sets_the_capacity() {
        let name = format!("/utp-bench-test-{}-ring-len", std::process::id());
        let idle = Duration::from_secs(1);
        let region = Region::create(&name, region_len(8192).unwrap()).unwrap();
        assert_eq!(
            RingLink::new(region, true, false, idle).unwrap().capacity,
            8192
        );
        let region = Region::create(&name, DATA + 2 * 192).unwrap();
        let refused = RingLink::new(region, true, false, idle).unwrap_err();
        assert!(refused.to_string().contains("whole lines"), "{refused}");
        assert!(region_len(u64::MAX).is_err());
    }

    /// A message that fits the ring is published whole: a producer short of
    /// room waits rather than publishing the part that fits, as utp's
    /// producer waits for room for a whole record. (Publishing parts made
    /// the consumer chase the producer inside each message, and utp's
    /// shared-memory streams ran 1.5-1.9x this "floor" at 4 KiB to 1 MiB.)
    #[test]
    fn a_message_that_fits_is_published_whole() {
        let name = format!("/utp-bench-test-{}-ring-whole", std::process::id());
        let region = Region::create(&name, region_len(8192).unwrap()).unwrap();
        let idle = Duration::from_secs(10);
        let mut producer = RingLink::new(Region::open(&name).unwrap(), false, false, idle).unwrap();
        let mut consumer = RingLink::new(region, true, false, idle).unwrap();
        // 3000-byte messages take 3072-byte strides: two fit, a third has
        // 2048 bytes of room until the consumer gives one back.
        let sender = std::thread::spawn(move || {
            for i in 0..3u8 {
                producer.send(&[i; 3000]).unwrap();
            }
        });
        // The first two are published by their stamps (the head word says
        // where they end, every sixteenth of the ring); the third, which
        // wraps, by the general path, which stores the head with each part.
        let shared_head = |c: &RingLink| words(&c.region, 0).head.load(Ordering::Acquire);
        let stamp = |c: &RingLink, at: u64| c.stamp(0, at).load(Ordering::Acquire);
        let deadline = std::time::Instant::now() + Duration::from_millis(200);
        while std::time::Instant::now() < deadline {
            assert!(
                shared_head(&consumer) <= 6144,
                "a part of the third was published"
            );
            assert_eq!(
                stamp(&consumer, 6144),
                0,
                "the third was stamped without room"
            );
            std::thread::yield_now();
        }
        assert_eq!((stamp(&consumer, 0), stamp(&consumer, 3072)), (1, 3073));
        for i in 0..3u8 {
            assert_eq!(consumer.recv(3000).unwrap(), [i; 3000]);
        }
        sender.join().unwrap();
        assert_eq!(
            shared_head(&consumer),
            9216,
            "the third went in whole, wrapping"
        );
    }

    /// Messages lie at utp's record stride: 40 bytes in, padded to 64.
    #[test]
    fn messages_take_the_stride_of_a_utp_record() {
        for (len, total) in [(1, 64), (24, 64), (25, 128), (100, 192), (4096, 4160)] {
            assert_eq!(stride(len).unwrap(), (40, total), "{len}");
        }
        assert!(stride(usize::MAX).is_err());
        assert_eq!(overlap(0, 64, 40, 100), Some((40, 64)));
        assert_eq!(overlap(64, 64, 40, 100), Some((64, 128)));
        assert_eq!(overlap(128, 64, 40, 100), Some((128, 140)));
        assert_eq!(overlap(140, 52, 40, 100), None);
        assert_eq!(overlap(0, 40, 40, 100), None);
    }

    /// A message larger than the ring: the consumer must give back what it
    /// has read of it before waiting for the rest.
    #[test]
    fn a_message_larger_than_the_ring_goes_through_between_small_ones() {
        for futex in [false, true] {
            let name = format!("/utp-bench-test-{}-ring-big-{futex}", std::process::id());
            let region = Region::create(&name, region_len(TEST_CAPACITY).unwrap()).unwrap();
            let idle = Duration::from_secs(10);
            let mut producer =
                RingLink::new(Region::open(&name).unwrap(), false, futex, idle).unwrap();
            let mut consumer = RingLink::new(region, true, futex, idle).unwrap();
            let message: Vec<u8> = (0..2 * TEST_CAPACITY as usize + 12_345)
                .map(|i| (i % 251) as u8)
                .collect();
            // Small messages go by their stamps, large ones by the head, which
            // the producer stores only with large ones: a head seen before
            // the small ones must not be taken for the next large one's.
            let small = |i: usize| vec![i as u8; 100];
            let expected = message.clone();
            let receiver = std::thread::spawn(move || {
                for round in 0..2 {
                    assert!(consumer.recv(expected.len()).unwrap() == expected.as_slice());
                    for i in 0..1000 {
                        assert_eq!(consumer.recv(100).unwrap(), small(i), "round {round}");
                    }
                }
            });
            for _ in 0..2 {
                producer.send(&message).unwrap();
                for i in 0..1000 {
                    producer.send(&small(i)).unwrap();
                }
            }
            receiver.join().unwrap();
        }
    }

    /// A message over a piece: the producer's fast path stamps progress
    /// after each piece, and a waiting consumer copies up to it.
    #[test]
    fn a_message_over_a_piece_is_copied_as_its_progress_stamps_say() {
        let name = format!("/utp-bench-test-{}-ring-pieces", std::process::id());
        let region = Region::create(&name, region_len(TEST_CAPACITY).unwrap()).unwrap();
        let idle = Duration::from_secs(10);
        let producer = RingLink::new(Region::open(&name).unwrap(), false, false, idle).unwrap();
        let len = 3 * PIECE;
        let (before, _) = stride(len).unwrap();
        let message: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        producer.write_in_pieces(0, 0, DATA + before, before, &message);
        // Not stamped whole: the last progress says all but the last piece.
        let stamp = producer.stamp(0, 0).load(Ordering::Acquire);
        assert_eq!(stamp, PROGRESS | (3 * PIECE) as u64);
        let mut buf = vec![0u8; len];
        let mut pieces = Pieces {
            start: 0,
            at: DATA + before,
            before,
            len,
            copied: 0,
        };
        // Progress stamps of an earlier lap (nothing clears them) name
        // positions outside this message: nothing is copied for them.
        for old in [0u64.wrapping_sub(64), 0u64.wrapping_sub(TEST_CAPACITY)] {
            pieces.copy(&region, &mut buf, PROGRESS | (old & !PROGRESS));
            assert_eq!(pieces.copied, 0, "an old progress stamp at {old:#x}");
        }
        pieces.copy(&region, &mut buf, PROGRESS | PIECE as u64);
        assert_eq!(pieces.copied, PIECE - before, "the first piece");
        pieces.copy(&region, &mut buf, stamp);
        let copied = pieces.copied;
        assert_eq!(copied, 3 * PIECE - before, "up to the last progress");
        assert_eq!(buf[..copied], message[..copied]);
        assert!(buf[copied..].iter().all(|&b| b == 0), "nothing past it");
        // A consumer then takes the whole once it is stamped.
        producer.stamp(0, 0).store(1, Ordering::Release);
        let mut consumer = RingLink::new(region, true, false, idle).unwrap();
        assert!(consumer.recv(len).unwrap() == message.as_slice());
        drop((producer, consumer));
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
