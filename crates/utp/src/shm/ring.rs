//! A single-producer/single-consumer ring of UTP frames in shared memory.
//!
//! Positions (`tail` written by the producer, `head` by the consumer) are
//! byte counts that only grow (mod 2^64); the byte offset in the data area
//! is `position & (capacity - 1)`. Each frame is a *record*: the 32-byte
//! UTP header and the payload, padded to a multiple of [`RECORD_ALIGN`].
//! A record never wraps: when it does not fit before the end of the data
//! area the producer writes a [`PAD_MAGIC`] marker that fills the rest,
//! and the record starts at offset 0. See `docs/shm-layout.md`.
//!
//! Memory ordering, with matching tags at both ends:
//!
//! - `[TAIL]` the producer writes a record, then stores `tail` with
//!   `Release`; the consumer loads `tail` with `Acquire`, then reads the
//!   record. So a published record is fully visible.
//! - `[HEAD]` the consumer finishes reading, then stores `head` with
//!   `Release`; the producer loads `head` with `Acquire`, then overwrites
//!   the freed bytes. So a record is never overwritten while being read.
//! - `[WAKE]` a side about to sleep stores 1 in its waiter word, issues a
//!   `SeqCst` fence and re-checks the index; a side that publishes an index
//!   issues a `SeqCst` fence and then looks at the peer's waiter word. The
//!   two fences guarantee at least one of them sees the other's store, so a
//!   sleeper is woken or never sleeps. Sleeps are also bounded (see `wait.rs`).
//!
//! Everything read from shared memory is validated: the other index must
//! stay within one capacity of ours and never move backwards, a record
//! must be a valid UTP header whose padded length fits both in the
//! published bytes and before the end of the data area. Violations are
//! [`Error::Protocol`]; nothing is read out of bounds.

use super::sync::{AtomicU32, AtomicU64, Ordering, fence, futex_wake};
use crate::error::{Error, Result};
use crate::frame::{HEADER_LEN, Header, decode_header};
use std::ptr::NonNull;

/// Records start at multiples of this many bytes.
pub const RECORD_ALIGN: usize = 64;
/// First four bytes of a padding marker, little-endian (`55 50 41 44`, "UPAD").
pub const PAD_MAGIC: u32 = 0x4441_5055;
/// Smallest ring capacity.
pub const MIN_CAPACITY: usize = 4096;
/// Largest ring capacity.
pub const MAX_CAPACITY: usize = 1 << 30;

/// Bytes a frame with `payload_len` bytes of payload occupies in the ring.
pub fn record_len(payload_len: usize) -> Option<usize> {
    HEADER_LEN
        .checked_add(payload_len)?
        .checked_next_multiple_of(RECORD_ALIGN)
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Protocol(format!("shared-memory ring is corrupt: {what}"))
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
        }
    }

    /// Indices over a ring header in shared memory: `tail` at +0, `head` at
    /// +64, the data waiter word at +128, the space waiter word at +192.
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
            }
        }
    }

    fn tail(&self) -> &AtomicU64 {
        // SAFETY: by the invariants the pointee is live and aligned.
        unsafe { self.tail.as_ref() }
    }
    fn head(&self) -> &AtomicU64 {
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

    /// Current `(head, tail)`, for inspection only (unvalidated).
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.head().load(Ordering::Relaxed),
            self.tail().load(Ordering::Relaxed),
        )
    }
}

/// Marks `word` as "someone sleeps here" before the final re-check (`[WAKE]`).
pub fn arm(word: &AtomicU32) {
    word.store(1, Ordering::Relaxed);
    fence(Ordering::SeqCst); // [WAKE] pairs with the fence in `notify`
}

/// After publishing an index: wakes the peer if it flagged itself (`[WAKE]`).
fn notify(word: &AtomicU32) {
    fence(Ordering::SeqCst); // [WAKE] pairs with the fence in `arm`
    if word.load(Ordering::Relaxed) != 0 && word.swap(0, Ordering::Relaxed) != 0 {
        futex_wake(word);
    }
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
}

/// The writing end of a ring.
///
// Invariants: `cap` = `bytes.capacity()` is a power of two in
// MIN_CAPACITY..=MAX_CAPACITY (checked by `new`... by the link's layout);
// `tail` is the position we last published or will publish next;
// `tail - head <= cap` (wrapping), where `head` is the last validated head.
#[derive(Debug)]
pub struct Producer<B> {
    idx: Indices,
    bytes: B,
    cap: u64,
    tail: u64,
    head: u64,
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
        })
    }

    /// The ring's indices.
    pub fn indices(&self) -> &Indices {
        &self.idx
    }

    /// The data area.
    pub fn bytes(&self) -> &B {
        &self.bytes
    }

    /// Largest record that fits: the capacity.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Finds room for a record of `record_len` bytes (a multiple of
    /// [`RECORD_ALIGN`], at most the capacity), writing and publishing a
    /// padding marker first if the record would cross the end. Returns the
    /// record's offset, or `None` if the ring is too full right now.
    pub fn try_reserve(&mut self, record_len: usize) -> Result<Option<usize>> {
        let rec = record_len as u64;
        if rec > self.cap || rec % RECORD_ALIGN as u64 != 0 || rec == 0 {
            return Err(Error::Protocol(format!(
                "record of {record_len} bytes does not fit a ring of {}",
                self.cap
            )));
        }
        let mut refreshed = false;
        loop {
            let free = self.cap - self.tail.wrapping_sub(self.head);
            let offset = self.tail & (self.cap - 1);
            let contiguous = self.cap - offset;
            if rec <= contiguous {
                if rec <= free {
                    return Ok(Some(offset as usize));
                }
            } else if contiguous <= free {
                let mut marker = [0u8; 8];
                marker[..4].copy_from_slice(&PAD_MAGIC.to_le_bytes());
                marker[4..].copy_from_slice(&(contiguous as u32).to_le_bytes());
                self.bytes.write(offset as usize, &marker);
                self.tail = self.tail.wrapping_add(contiguous);
                self.publish();
                continue;
            }
            if refreshed || !self.refresh_head()? {
                return Ok(None);
            }
            refreshed = true;
        }
    }

    /// Copies `src` into the ring at `offset` (inside a reserved record).
    pub fn write(&self, offset: usize, src: &[u8]) {
        self.bytes.write(offset, src);
    }

    /// Publishes the record of `record_len` bytes reserved by `try_reserve`.
    pub fn commit(&mut self, record_len: usize) {
        self.tail = self.tail.wrapping_add(record_len as u64);
        self.publish();
    }

    fn publish(&self) {
        self.idx.tail().store(self.tail, Ordering::Release); // [TAIL]
        notify(self.idx.data_waiters());
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

    /// Bytes published and not yet consumed, as last seen.
    pub fn used(&self) -> u64 {
        self.tail.wrapping_sub(self.head)
    }
}

/// A record found by [`Consumer::peek`].
#[derive(Clone, Copy, Debug)]
pub struct Record {
    /// Offset of the header in the data area.
    pub offset: usize,
    /// The validated header (payload checksum not yet verified).
    pub header: Header,
    /// The header bytes as read, for checksum verification.
    pub header_bytes: [u8; HEADER_LEN],
    /// Bytes the record occupies, padding included.
    pub len: usize,
}

/// The reading end of a ring.
///
// Invariants: `cap` as for `Producer`; `head` is the position after the
// last record we released; `tail` is the last validated tail, with
// `tail - head <= cap` (wrapping).
#[derive(Debug)]
pub struct Consumer<B> {
    idx: Indices,
    bytes: B,
    cap: u64,
    head: u64,
    tail: u64,
    max_payload: usize,
}

impl<B: RingBytes> Consumer<B> {
    /// A consumer starting at position 0, refusing payloads over `max_payload`.
    pub fn new(idx: Indices, bytes: B, max_payload: usize) -> Result<Self> {
        let cap = check_capacity(bytes.capacity())?;
        Ok(Consumer {
            idx,
            bytes,
            cap,
            head: 0,
            tail: 0,
            max_payload,
        })
    }

    /// The ring's indices.
    pub fn indices(&self) -> &Indices {
        &self.idx
    }

    /// The data area.
    pub fn bytes(&self) -> &B {
        &self.bytes
    }

    /// Whether a record (or padding) is published, re-reading the tail.
    pub fn has_data(&mut self) -> Result<bool> {
        if self.tail == self.head {
            self.refresh_tail()?;
        }
        Ok(self.tail != self.head)
    }

    fn refresh_tail(&mut self) -> Result<()> {
        let tail = self.idx.tail().load(Ordering::Acquire); // [TAIL]
        if tail.wrapping_sub(self.head) > self.cap {
            return Err(corrupt(format_args!(
                "write position {tail} is more than {} bytes past the read position {}",
                self.cap, self.head
            )));
        }
        if tail.wrapping_sub(self.head) < self.tail.wrapping_sub(self.head) {
            return Err(corrupt(format_args!(
                "write position moved backwards from {} to {tail}",
                self.tail
            )));
        }
        self.tail = tail;
        Ok(())
    }

    /// The next record, skipping padding; `None` if nothing is published.
    pub fn peek(&mut self) -> Result<Option<Record>> {
        loop {
            if !self.has_data()? {
                return Ok(None);
            }
            let available = self.tail.wrapping_sub(self.head);
            let offset = (self.head & (self.cap - 1)) as usize;
            let contiguous = self.cap as usize - offset;
            if available < RECORD_ALIGN as u64 {
                return Err(corrupt(format_args!("only {available} bytes published")));
            }
            let mut first = [0u8; 8];
            self.bytes.read(offset, &mut first);
            if u32::from_le_bytes([first[0], first[1], first[2], first[3]]) == PAD_MAGIC {
                let pad = u32::from_le_bytes([first[4], first[5], first[6], first[7]]) as usize;
                if pad != contiguous || pad as u64 > available {
                    return Err(corrupt(format_args!(
                        "padding of {pad} bytes at offset {offset} (expected {contiguous}, {available} published)"
                    )));
                }
                self.release(pad);
                continue;
            }
            if contiguous < HEADER_LEN || available < HEADER_LEN as u64 {
                return Err(corrupt(format_args!(
                    "no room for a header at offset {offset} ({available} bytes published)"
                )));
            }
            let mut header_bytes = [0u8; HEADER_LEN];
            self.bytes.read(offset, &mut header_bytes);
            let header = decode_header(&header_bytes, self.max_payload)?;
            let len = record_len(header.payload_length as usize).unwrap_or(usize::MAX);
            if len > contiguous || len as u64 > available {
                return Err(corrupt(format_args!(
                    "frame of {len} bytes at offset {offset} exceeds the {} bytes published or the {contiguous} before the end",
                    available.min(contiguous as u64)
                )));
            }
            return Ok(Some(Record {
                offset,
                header,
                header_bytes,
                len,
            }));
        }
    }

    /// Frees `len` bytes (a record returned by `peek`) for the producer.
    pub fn release(&mut self, len: usize) {
        self.head = self.head.wrapping_add(len as u64);
        self.idx.head().store(self.head, Ordering::Release); // [HEAD]
        notify(self.idx.space_waiters());
    }
}

fn check_capacity(cap: usize) -> Result<u64> {
    if cap.is_power_of_two() && (64..=MAX_CAPACITY).contains(&cap) {
        Ok(cap as u64)
    } else {
        Err(Error::Protocol(format!(
            "ring capacity {cap} is not a power of two in 64..={MAX_CAPACITY}"
        )))
    }
}
