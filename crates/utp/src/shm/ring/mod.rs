//! A single-producer/single-consumer ring of UTP frames in shared memory.
//!
//! Positions (`tail` written by the producer, `head` by the consumer) are
//! byte counts that only grow (mod 2^64); the byte offset in the data area
//! is `position & (capacity - 1)`. Each frame is a *record*: an 8-byte
//! *stamp*, the 32-byte UTP header and the payload, padded to a multiple of
//! [`RECORD_ALIGN`]. The stamp is the position just after the record (bit 0
//! set for padding): the record's lap marker and its publication flag, so a
//! consumer polls one word in the line it is about to read and never needs
//! `tail`. A record never wraps: when it does not fit before the end of the
//! data area the producer publishes padding up to the end, and the record
//! starts at offset 0. One line of slack always stays free. See
//! `docs/shm-layout.md` section 4.
//!
//! Stale bytes of an earlier lap must never be taken for a stamp. Two ways,
//! chosen per link in the handshake (`docs/shm-layout.md` 4.1): the
//! consumer zeroes the line-start word of every line it gives back, so the
//! word at its read position is zero until published; or, between ends that
//! agreed to *keyed stamps*, every stamp is stored XORed with a random
//! 64-bit key of the ring's, and the consumer takes a word for a stamp only
//! if it decodes to a position inside the space it may read. Old stamps
//! decode to positions behind it, and payload bytes would have to guess the
//! key; nothing is zeroed, so the producer's next lap does not have to
//! fetch every line back from the consumer's cache.
//!
//! A large record may be published in pieces, when both ends agreed to it
//! in the handshake: its stamp first holds the position just after the
//! bytes written so far with [`STAMP_MORE`] set, moving forward with each
//! piece, and finally the usual stamp. A consumer that copies records
//! copies each piece as it lands, so the two copies of a large frame
//! overlap instead of following each other (`docs/shm-layout.md` 4.4).
//!
//! Memory ordering, with matching tags at both ends:
//!
//! - `[STAMP]` the producer writes a record, then stores its stamp with
//!   `Release`; the consumer loads the stamp with `Acquire`, then reads the
//!   record. So a published record is fully visible.
//! - `[HEAD]` the consumer finishes reading (and zeroing, unless keyed),
//!   then stores `head` with `Release`; the producer loads `head` with
//!   `Acquire`, then overwrites the freed bytes. So a record is never
//!   overwritten while being read.
//! - `[WAKE]` a side about to sleep stores 1 in its waiter word, issues a
//!   `SeqCst` fence and re-checks the index; a side that publishes an index
//!   issues a `SeqCst` fence and then looks at the peer's waiter word. The
//!   two fences guarantee at least one of them sees the other's store, so a
//!   sleeper is woken or never sleeps. Sleeps are also bounded (see `wait.rs`).
//!   A side whose peer declared it never sleeps skips this step entirely.
//!
//! Everything read from shared memory is validated: the producer's view of
//! `head` must stay within what it published, a stamp must name a length
//! from 64 bytes to the end of the data area, and a record must be a valid
//! UTP header whose padded length is the stamp's; a progress stamp must
//! only move forward and stay inside its record. Violations are
//! [`Error::Protocol`]; nothing is read out of bounds.
//!
//! Files: this one (constants, shared words, the `[WAKE]` helpers),
//! `producer.rs` (writing end), `consumer.rs` (reading end),
//! `read_ahead.rs` (which lines a consumer that has fallen behind asks for).

mod consumer;
mod producer;
pub mod read_ahead;

pub use consumer::{Consumer, Record};
pub use producer::Producer;

use super::sync::{AtomicU32, AtomicU64, Ordering, fence, futex_wake};
use crate::ProtocolReason;
use crate::error::{Error, Result};
use crate::frame::HEADER_LEN;
use std::ptr::NonNull;

/// Records start at multiples of this many bytes.
pub const RECORD_ALIGN: usize = 64;
/// Bytes of the stamp word at the start of every record.
pub const STAMP_LEN: usize = 8;
/// Offset of the payload in a record: stamp and UTP header.
pub const PAYLOAD_OFFSET: usize = STAMP_LEN + HEADER_LEN;
/// Bit 0 of a stamp: the record is padding, not a frame.
pub const STAMP_PAD: u64 = 1;
/// Bit 1 of a stamp: the record is still being written, and the stamp's
/// position is where the bytes written so far end (a piece of the record,
/// from its stamp, in whole lines). Only between ends that agreed to
/// pieces in the handshake; otherwise a reserved bit.
pub const STAMP_MORE: u64 = 2;
/// Bytes of a record, stamp and header included, that a producer writes
/// between two progress stamps. Records larger than this go in pieces
/// when the consumer agreed to them. Measured with a C pair (two
/// processes, 64 KiB round trips through a ring): 16 KiB pieces took a
/// fifth off the round trip, 8 KiB a little less, 4 KiB half as much,
/// 2 KiB lost it to the hand-offs (docs/benchmarks/journal.md, 2026-12-05).
pub const PIECE: usize = 16 * 1024;
/// The low six bits of a stamp: flags ([`STAMP_PAD`], [`STAMP_MORE`]),
/// the rest reserved. Positions are multiples of [`RECORD_ALIGN`].
pub const STAMP_FLAGS: u64 = RECORD_ALIGN as u64 - 1;
/// The line kept free after every publish.
pub const SLACK: usize = RECORD_ALIGN;
/// Lines after the first that a consumer prefetches when it finds a record.
pub(crate) const PREFETCH_LINES: usize = 4;
/// A consumer reading frame after frame gives space back once it has
/// consumed this fraction of the ring (1/8), not after every frame: one
/// `head` store and one move of its cache line per batch instead of per
/// frame (64-byte streams ran ~1.3x faster). It gives everything back as
/// soon as it finds the ring empty, so a producer waiting for room never
/// waits on a consumer that has nothing left to read.
pub const FLUSH_BATCH: u64 = 8;
/// The producer stores its position in the ring's `tail` word each time
/// it has published this fraction of the ring (1/16) since it last did,
/// not after every record: a consumer that has fallen behind reads it once
/// per batch it gives back, to know which lines it may ask for ahead
/// (`read_ahead`), and `utp inspect` shows it. A store per frame into a
/// line the consumer reads cost a 64-byte stream over a 2 MiB ring about
/// a seventh of its rate (docs/benchmarks/journal.md, 2026-12-05, evening). The
/// link also stores it with each heartbeat, before it waits and at close.
pub const SHOW_POSITION_EVERY: u64 = 16;
/// Smallest ring capacity.
pub const MIN_CAPACITY: usize = 4096;
/// Largest ring capacity.
pub const MAX_CAPACITY: usize = 1 << 30;

/// Bytes a frame with `payload_len` bytes of payload occupies in the ring.
pub fn record_len(payload_len: usize) -> Option<usize> {
    PAYLOAD_OFFSET
        .checked_add(payload_len)?
        .checked_next_multiple_of(RECORD_ALIGN)
}

/// The largest payload a ring of `capacity` bytes carries.
pub fn max_payload(capacity: usize) -> usize {
    capacity.saturating_sub(SLACK + PAYLOAD_OFFSET)
}

/// How one end of a ring encodes or decodes stamps: XORed with the ring's
/// key when both ends agreed to keyed stamps, as they are otherwise
/// (`docs/shm-layout.md` 4.1).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StampKey {
    /// XORed into every stamp: the key, or 0.
    mask: u64,
    keyed: bool,
}

impl StampKey {
    pub(crate) fn new(key: Option<u64>) -> StampKey {
        StampKey {
            mask: key.unwrap_or(0),
            keyed: key.is_some(),
        }
    }

    /// What every stamp is XORed with (0 without keys).
    #[inline(always)]
    pub(crate) fn mask(self) -> u64 {
        self.mask
    }

    /// Whether stamps are keyed.
    #[inline(always)]
    pub(crate) fn keyed(self) -> bool {
        self.keyed
    }

    /// The key, if stamps are keyed.
    pub(crate) fn key(self) -> Option<u64> {
        self.keyed.then_some(self.mask)
    }
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::protocol(
        ProtocolReason::Corrupt,
        format!("shared-memory ring is corrupt: {what}"),
    )
}

/// The four shared words of one ring.
///
// Invariants: each pointer refers to a live, aligned atomic that outlives
// this value (the link keeps its region alive longer than its rings; loom
// models leak them).
#[derive(Debug)]
pub struct Indices {
    tail: NonNull<AtomicU64>,
    head: NonNull<AtomicU64>,
    data_waiters: NonNull<AtomicU32>,
    space_waiters: NonNull<AtomicU32>,
    data_event: NonNull<AtomicU32>,
}

// SAFETY: the pointees are atomics (Sync); the pointers are only dereferenced
// to shared references, so moving `Indices` to another thread is fine.
unsafe impl Send for Indices {}

impl Indices {
    /// Indices over leaked (or otherwise `'static`) atomics: for models and tests.
    pub fn from_static(
        tail: &'static AtomicU64,
        head: &'static AtomicU64,
        data_waiters: &'static AtomicU32,
        space_waiters: &'static AtomicU32,
    ) -> Self {
        Indices {
            tail: NonNull::from(tail),
            head: NonNull::from(head),
            data_waiters: NonNull::from(data_waiters),
            space_waiters: NonNull::from(space_waiters),
            data_event: NonNull::from(&*Box::leak(Box::new(AtomicU32::new(0)))),
        }
    }

    /// Indices over a ring header in shared memory: `tail` at +0, `head` at
    /// +64, the data waiter word at +128, the data event word at +132, the
    /// space waiter word at +192.
    ///
    /// # Safety
    ///
    /// `base` must be 64-byte aligned and point to 256 bytes of mapped
    /// memory that stay mapped as long as the returned value lives.
    #[cfg(not(loom))]
    pub unsafe fn from_raw(base: *mut u8) -> Self {
        // SAFETY: the caller guarantees 256 mapped, 64-aligned bytes at
        // `base`; every offset below is inside them and suitably aligned.
        unsafe {
            Indices {
                tail: super::sync::atomic_u64_at(base),
                head: super::sync::atomic_u64_at(base.add(64)),
                data_waiters: super::sync::atomic_u32_at(base.add(128)),
                space_waiters: super::sync::atomic_u32_at(base.add(192)),
                data_event: super::sync::atomic_u32_at(base.add(132)),
            }
        }
    }

    pub(crate) fn tail(&self) -> &AtomicU64 {
        // SAFETY: by the invariants the pointee is live and aligned.
        unsafe { self.tail.as_ref() }
    }
    pub(crate) fn head(&self) -> &AtomicU64 {
        // SAFETY: by the invariants the pointee is live and aligned.
        unsafe { self.head.as_ref() }
    }
    /// The word a consumer waiting for data sleeps on.
    pub fn data_waiters(&self) -> &AtomicU32 {
        // SAFETY: by the invariants the pointee is live and aligned.
        unsafe { self.data_waiters.as_ref() }
    }
    /// The word a producer waiting for space sleeps on.
    pub fn space_waiters(&self) -> &AtomicU32 {
        // SAFETY: by the invariants the pointee is live and aligned.
        unsafe { self.space_waiters.as_ref() }
    }

    /// The word a consumer that waits in an event loop sets: non-zero asks
    /// the producer for a wake-up byte on the link's socket (`[WAKE]`, the
    /// same fences as `data_waiters`; see `shm/link/events.rs`).
    pub fn data_event(&self) -> &AtomicU32 {
        // SAFETY: by the invariants the pointee is live and aligned.
        unsafe { self.data_event.as_ref() }
    }

    /// Current `(head, tail)`, for inspection only (unvalidated).
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.head().load(Ordering::Relaxed),
            self.tail().load(Ordering::Relaxed),
        )
    }
}

/// Marks `word` as "someone sleeps here" before the final re-check (`[WAKE]`).
/// (The loom models drive the ring without the link's waiting code.)
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn arm(word: &AtomicU32) {
    word.store(1, Ordering::Relaxed);
    fence(Ordering::SeqCst); // [WAKE] pairs with the fence in `notify`
}

/// After publishing an index: wakes the peer if it flagged itself
/// (`[WAKE]`); true if it did.
pub(crate) fn notify(word: &AtomicU32) -> bool {
    fence(Ordering::SeqCst); // [WAKE] pairs with the fence in `arm`
    if word.load(Ordering::Relaxed) != 0 && word.swap(0, Ordering::Relaxed) != 0 {
        futex_wake(word);
        return true;
    }
    false
}

/// The data area of a ring: `capacity()` bytes that may be written by another
/// process at any time.
///
/// Implementations must bounds-check: callers keep `offset + len <=
/// capacity()`, but a violation must do nothing rather than touch other memory.
pub trait RingBytes: Send {
    /// Size of the data area; a power of two.
    fn capacity(&self) -> usize;
    /// Copies `src` to `offset`.
    fn write(&self, offset: usize, src: &[u8]);
    /// Copies `dst.len()` bytes from `offset`.
    fn read(&self, offset: usize, dst: &mut [u8]);
    /// The 32 bytes at `offset` (a multiple of 8) as four little-endian
    /// words, each loaded once: how the consumer reads a record's header.
    /// Out of bounds reads as zeros.
    fn read_words(&self, offset: usize) -> [u64; 4] {
        let mut bytes = [0u8; HEADER_LEN];
        self.read(offset, &mut bytes);
        crate::frame::words_of(&bytes)
    }
    /// Appends the `len` bytes at `offset` to `out` (nothing if out of
    /// bounds): how the copying receive takes a payload.
    fn append(&self, offset: usize, len: usize, out: &mut Vec<u8>) {
        if offset
            .checked_add(len)
            .is_some_and(|end| end <= self.capacity())
        {
            let start = out.len();
            out.resize(start + len, 0);
            self.read(offset, &mut out[start..]);
        }
    }
    /// Loads the stamp word at `offset` (a multiple of [`RECORD_ALIGN`])
    /// with `Acquire` (`[STAMP]`). Out of bounds reads as 0.
    fn load_stamp(&self, offset: usize) -> u64;
    /// Stores the stamp word at `offset`: `Release` when `publish`
    /// (`[STAMP]`), `Relaxed` otherwise (zeroing).
    fn store_stamp(&self, offset: usize, value: u64, publish: bool);
    /// Stores 0 (`Relaxed`) in the stamp word of every line from `offset`
    /// for `len` bytes (both multiples of [`RECORD_ALIGN`]): how a consumer
    /// without keyed stamps gives back released space. Out of bounds does
    /// nothing.
    fn zero_stamps(&self, offset: usize, len: usize) {
        for line in (offset..offset.saturating_add(len)).step_by(RECORD_ALIGN) {
            self.store_stamp(line, 0, false);
        }
    }
    /// Hints that the cache line at `offset` will be read soon. Not a
    /// memory access; the default does nothing.
    fn prefetch(&self, _offset: usize) {}
    /// Asks for the lines of a later record before the one of `len` bytes
    /// at `offset` is written, if `room_after` allows it
    /// (`crate::claim::ahead`). Not a memory access; the default does
    /// nothing.
    fn claim_ahead(&self, _offset: usize, _len: usize, _room_after: u64) {}
}

pub(crate) fn check_capacity(cap: usize) -> Result<u64> {
    if cap.is_power_of_two() && (2 * RECORD_ALIGN..=MAX_CAPACITY).contains(&cap) {
        Ok(cap as u64)
    } else {
        Err(Error::protocol(
            ProtocolReason::Corrupt,
            format!("ring capacity {cap} is not a power of two in 128..={MAX_CAPACITY}"),
        ))
    }
}
