//! The writing end of a ring: reserve room (publishing padding at the wrap),
//! fill (a large record in pieces, each published with a progress stamp,
//! if the consumer agreed), publish the stamp `[STAMP]`, wake a flagged
//! reader `[WAKE]` if it may sleep.

use super::{
    Indices, RECORD_ALIGN, RingBytes, SHOW_POSITION_EVERY, SLACK, STAMP_MORE, STAMP_PAD, StampKey,
    check_capacity, corrupt, notify,
};
use crate::ProtocolReason;
use crate::error::{Error, Result};
use crate::shm::sync::Ordering;

/// The writing end of a ring.
///
// Invariants: `cap` = `bytes.capacity()` is a power of two >= 128;
// `tail` is the position we last published; `tail - head <= cap - SLACK`
// (wrapping), where `head` is the last validated head. Without a key,
// every line-start word in `tail..head + cap` is zero (the ring was
// zero-filled, and the consumer zeroes what it releases before publishing
// `head`); with one, every stamp is stored XORed with `key`.
#[derive(Debug)]
pub struct Producer<B> {
    idx: Indices,
    bytes: B,
    cap: u64,
    tail: u64,
    head: u64,
    peer_sleeps: bool,
    /// Wake-ups sent to a sleeping consumer since [`take_wakes`](Self::take_wakes).
    wakes: u64,
    /// The consumer asked for an event-loop wake-up (its `data_event` word),
    /// which the link sends (see [`take_event_due`](Self::take_event_due)).
    event_due: bool,
    /// The consumer agreed to records published in pieces.
    pieces: bool,
    /// Every stamp stored is XORed with the ring's key if both ends
    /// agreed to keyed stamps.
    key: StampKey,
    /// The position `publish` last stored in the shared `tail` word
    /// (`show_position` may have stored a later one since).
    shown: u64,
    /// Bytes of padding published at the wrap, so far.
    padded: u64,
}

impl<B: RingBytes> Producer<B> {
    /// A producer starting at position 0 (a freshly zeroed ring).
    pub fn new(idx: Indices, bytes: B) -> Result<Self> {
        let cap = check_capacity(bytes.capacity())?;
        Ok(Producer {
            idx,
            bytes,
            cap,
            tail: 0,
            head: 0,
            peer_sleeps: true,
            wakes: 0,
            event_due: false,
            pieces: false,
            key: StampKey::default(),
            shown: 0,
            padded: 0,
        })
    }

    /// Stores every stamp XORed with `key` (both ends agreed to keyed
    /// stamps, `docs/shm-layout.md` 4.1); `None` (the default) stores them
    /// as they are, for a consumer that zeroes what it releases.
    pub fn set_stamp_key(&mut self, key: Option<u64>) {
        self.key = StampKey::new(key);
    }

    /// The key set by [`set_stamp_key`](Self::set_stamp_key).
    pub fn stamp_key(&self) -> Option<u64> {
        self.key.key()
    }

    /// Whether the consumer agreed to records published in pieces
    /// ([`publish_progress`](Self::publish_progress)); default false.
    pub fn set_pieces(&mut self, pieces: bool) {
        self.pieces = pieces;
    }

    /// Whether the consumer agreed to pieces (see [`set_pieces`](Self::set_pieces)).
    #[inline]
    pub fn pieces(&self) -> bool {
        self.pieces
    }

    /// Whether the consumer may sleep on the futex (default true). When
    /// false, publishing skips the `[WAKE]` fence and the waiter word.
    pub fn set_peer_sleeps(&mut self, sleeps: bool) {
        self.peer_sleeps = sleeps;
    }

    /// Whether the consumer may sleep (see [`set_peer_sleeps`](Self::set_peer_sleeps)).
    pub fn peer_sleeps(&self) -> bool {
        self.peer_sleeps
    }

    /// The ring's indices.
    pub fn indices(&self) -> &Indices {
        &self.idx
    }

    /// The data area.
    pub fn bytes(&self) -> &B {
        &self.bytes
    }

    /// Largest record that fits: the capacity minus the slack line.
    pub fn capacity(&self) -> usize {
        self.cap as usize - SLACK
    }

    /// Finds room for a record of `record_len` bytes (a multiple of
    /// [`RECORD_ALIGN`], at most [`capacity`](Self::capacity)), publishing
    /// padding first if the record would cross the end. Returns the
    /// record's offset, or `None` if the ring is too full right now.
    #[inline(always)]
    pub fn try_reserve(&mut self, record_len: usize) -> Result<Option<usize>> {
        // The common case first, inline: the record fits before the end of
        // the data area in the room last seen.
        let rec = record_len as u64;
        let offset = self.tail & (self.cap - 1);
        if rec <= self.cap - offset
            && rec <= self.room()
            && rec % RECORD_ALIGN as u64 == 0
            && rec != 0
        {
            return Ok(Some(offset as usize));
        }
        self.try_reserve_slow(record_len)
    }

    /// Bytes a record may take as last seen: the capacity less the slack
    /// line and what is published and not yet given back (never negative:
    /// `tail - head <= cap - SLACK`, the invariants).
    #[inline(always)]
    fn room(&self) -> u64 {
        self.cap - SLACK as u64 - self.used()
    }

    /// [`try_reserve`](Self::try_reserve) when the record does not fit as
    /// last seen: validates it, publishes padding, re-reads `head`.
    #[cold]
    fn try_reserve_slow(&mut self, record_len: usize) -> Result<Option<usize>> {
        let rec = record_len as u64;
        if rec > self.cap - SLACK as u64 || rec % RECORD_ALIGN as u64 != 0 || rec == 0 {
            return Err(Error::protocol(
                ProtocolReason::Corrupt,
                format!(
                    "record of {record_len} bytes does not fit a ring of {}",
                    self.cap
                ),
            ));
        }
        let mut refreshed = false;
        loop {
            let room = self.room();
            let offset = self.tail & (self.cap - 1);
            let contiguous = self.cap - offset;
            if rec <= contiguous {
                if rec <= room {
                    return Ok(Some(offset as usize));
                }
            } else if contiguous <= room {
                self.publish(contiguous, STAMP_PAD);
                self.padded = self.padded.wrapping_add(contiguous);
                continue;
            }
            if refreshed || !self.refresh_head()? {
                return Ok(None);
            }
            refreshed = true;
        }
    }

    /// Asks for the lines a later record will take before the record of
    /// `record_len` bytes reserved at `offset` is written (a hint, see
    /// `crate::claim::ahead`): only lines the consumer has given back, as
    /// last seen.
    #[inline(always)]
    pub fn claim_ahead(&self, offset: usize, record_len: usize) {
        let room_after = self.room().saturating_sub(record_len as u64);
        self.bytes.claim_ahead(offset, record_len, room_after);
    }

    /// Copies `src` into the ring at `offset` (inside a reserved record).
    pub fn write(&self, offset: usize, src: &[u8]) {
        self.bytes.write(offset, src);
    }

    /// Says that the first `written` bytes of the record reserved by
    /// `try_reserve` (stamp and header included) are written: a progress
    /// stamp ([`STAMP_MORE`], `Release` `[STAMP]`), so a consumer can copy
    /// them while the rest is written. `written` is a multiple of
    /// [`RECORD_ALIGN`], at least one line and less than the record, and
    /// only grows until [`commit`](Self::commit); only when the consumer
    /// agreed to [`pieces`](Self::set_pieces). No wake-up: a consumer that
    /// sleeps wakes for the whole record.
    #[inline]
    pub fn publish_progress(&self, written: usize) {
        debug_assert!(self.pieces && written >= RECORD_ALIGN && written % RECORD_ALIGN == 0);
        let offset = (self.tail & (self.cap - 1)) as usize;
        let at = self.tail.wrapping_add(written as u64);
        self.bytes
            .store_stamp(offset, (at | STAMP_MORE) ^ self.key.mask(), true); // [STAMP]
    }

    /// Publishes the record of `record_len` bytes reserved by `try_reserve`.
    pub fn commit(&mut self, record_len: usize) {
        self.publish(record_len as u64, 0);
    }

    /// Publishes `n` bytes at `tail` (a record, or padding if `pad`).
    fn publish(&mut self, n: u64, pad: u64) {
        let offset = (self.tail & (self.cap - 1)) as usize;
        let next = self.tail.wrapping_add(n);
        // Without a key the consumer zeroed every line-start word of the
        // space it released ([HEAD] orders that before our writes), so the
        // stamp word of the next position is zero until we publish there;
        // with one, what is there decodes to no position it may read.
        self.bytes
            .store_stamp(offset, (next | pad) ^ self.key.mask(), true); // [STAMP]
        self.tail = next;
        // A hint for the consumer's read-ahead and for inspection, once
        // per sixteenth of the ring (see `SHOW_POSITION_EVERY`).
        if next.wrapping_sub(self.shown) >= self.cap / SHOW_POSITION_EVERY {
            self.shown = next;
            self.idx.tail().store(next, Ordering::Relaxed);
        }
        if self.peer_sleeps {
            self.wake_consumer();
        }
    }

    /// The `[WAKE]` step after a publish: wakes a consumer sleeping on the
    /// futex, and notes whether it asked for an event-loop wake-up. The
    /// fence in `notify` orders both loads after the stamp.
    #[inline]
    pub fn wake_consumer(&mut self) {
        if notify(self.idx.data_waiters()) {
            self.wakes += 1;
        }
        let event = self.idx.data_event();
        if event.load(Ordering::Relaxed) != 0 && event.swap(0, Ordering::Relaxed) != 0 {
            self.event_due = true;
        }
    }

    /// Whether the consumer asked for an event-loop wake-up since the last
    /// call; the caller sends it (the ring has no descriptor).
    #[inline]
    pub fn take_event_due(&mut self) -> bool {
        // Stores only when set: this runs twice per frame sent.
        if self.event_due {
            self.event_due = false;
            return true;
        }
        false
    }

    /// Stores the position published so far in the shared `tail` word,
    /// which [`commit`](Self::commit) only does once per sixteenth of the
    /// ring ([`SHOW_POSITION_EVERY`]): for inspection, at heartbeats,
    /// before a wait and at close.
    pub fn show_position(&self) {
        self.idx.tail().store(self.tail, Ordering::Relaxed);
    }

    /// Re-reads the consumer's head; true if it moved.
    fn refresh_head(&mut self) -> Result<bool> {
        let head = self.idx.head().load(Ordering::Acquire); // [HEAD]
        let moved = head.wrapping_sub(self.head);
        if moved > self.tail.wrapping_sub(self.head) {
            return Err(corrupt(format_args!(
                "read position {head} is outside {}..={}",
                self.head, self.tail
            )));
        }
        self.head = head;
        Ok(moved != 0)
    }

    /// Whether wake-ups were sent since the last [`take_wakes`](Self::take_wakes).
    #[inline]
    pub fn has_wakes(&self) -> bool {
        self.wakes != 0
    }

    /// Wake-ups sent since the last call (for counters).
    pub fn take_wakes(&mut self) -> u64 {
        std::mem::take(&mut self.wakes)
    }

    /// The lengths of the records published so far, the padding at the
    /// wrap not counted (what a side's counters line calls bytes sent).
    pub fn record_bytes(&self) -> u64 {
        self.tail.wrapping_sub(self.padded)
    }

    /// Bytes published and not yet consumed, as last seen.
    #[inline]
    pub fn used(&self) -> u64 {
        self.tail.wrapping_sub(self.head)
    }
}
