//! Byte layout of a seqlock cell region (normative text: section 14 of
//! `docs/shm-layout.md`).
//!
//! ```text
//! 0    u32 magic "USQL"     4   u32 layout version   8  u64 type tag
//! 16   u32 value size       20  u32 data offset      24 u32 writer pid
//! 28   u32 reserved         32  u64 last update, µs since the Unix epoch
//! 40   u64 region length    48  reserved to 64
//! 64   u64 sequence (own cache line)                 72 u32 waiters
//! 76   u32 signal flag      80  u32 x 8 signal subscriber pids, to 112
//! 128  value words: size rounded up to 8 bytes; region rounded up to 4096
//! ```

use crate::ProtocolReason;
use crate::error::{Error, Result};
use crate::shm::sync::{AtomicU32, AtomicU64, Ordering};
use std::ptr::NonNull;

/// `magic` at offset 0: bytes `55 53 51 4C` ("USQL").
pub const CELL_MAGIC: u32 = 0x4C51_5355;
/// `layout version` at offset 4.
pub const CELL_VERSION: u32 = 1;
/// Offset of the value words.
pub const DATA_OFFSET: usize = 128;
/// Largest value a cell holds: 16 MiB.
pub const MAX_VALUE_SIZE: usize = 16 << 20;
/// Number of signal subscriber slots.
pub const SIGNAL_SLOTS: usize = 8;

pub(crate) const OFF_TAG: usize = 8;
pub(crate) const OFF_SIZE: usize = 16;
pub(crate) const OFF_DATA: usize = 20;
pub(crate) const OFF_WRITER: usize = 24;
pub(crate) const OFF_UPDATED: usize = 32;
pub(crate) const OFF_LEN: usize = 40;
pub(crate) const OFF_SEQ: usize = 64;
pub(crate) const OFF_WAITERS: usize = 72;
pub(crate) const OFF_SIGNAL_FLAG: usize = 76;
pub(crate) const OFF_SIGNALS: usize = 80;

/// Number of 8-byte words holding a value of `size` bytes.
pub const fn words_for(size: usize) -> usize {
    size.div_ceil(8)
}

/// Region length for a value of `size` bytes: header plus words, rounded
/// up to a whole number of 4096-byte pages.
pub fn region_len(size: usize) -> Result<usize> {
    if size == 0 || size > MAX_VALUE_SIZE {
        return Err(Error::protocol(
            ProtocolReason::Unsupported,
            format!("a seqlock value must be 1..={MAX_VALUE_SIZE} bytes, not {size}"),
        ));
    }
    Ok((DATA_OFFSET + 8 * words_for(size)).next_multiple_of(4096))
}

/// Typed access to a mapped cell header and its value words.
///
// Invariants:
// - `base` points to `len` mapped, read-write, page-aligned bytes that
//   stay mapped for as long as this value lives (its owner holds the
//   region and drops it after this value);
// - `len >= region_len(size)`, and `size` is the value size this process
//   expects, so `DATA_OFFSET + 8 * words_for(size) <= len`;
// - every field is accessed through atomics only: another process may
//   write any of them at any time, and everything read is validated.
#[derive(Debug)]
pub struct Header {
    base: NonNull<u8>,
    len: usize,
    size: usize,
}

// SAFETY: only atomics are accessed through `base`; the mapping is not tied
// to a thread.
unsafe impl Send for Header {}
// SAFETY: as above; shared access goes through atomics.
unsafe impl Sync for Header {}

impl Header {
    /// # Safety
    ///
    /// `base` and `len` must satisfy the invariants above for the value's
    /// lifetime, with `len >= region_len(size)`.
    pub unsafe fn new(base: NonNull<u8>, len: usize, size: usize) -> Self {
        debug_assert!(region_len(size).is_ok_and(|need| need <= len));
        Header { base, len, size }
    }

    pub(crate) fn u32_at(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset + 4 <= DATA_OFFSET && offset % 4 == 0);
        // SAFETY: constant offsets inside the 128-byte header, 4-aligned in
        // a page-aligned mapping that outlives `self` (invariants).
        unsafe { crate::shm::sync::atomic_u32_at(self.base.as_ptr().add(offset)).as_ref() }
    }

    pub(crate) fn u64_at(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset + 8 <= DATA_OFFSET && offset % 8 == 0);
        // SAFETY: as for `u32_at`, 8-aligned.
        unsafe { crate::shm::sync::atomic_u64_at(self.base.as_ptr().add(offset)).as_ref() }
    }

    /// The value words (`words_for(size)` of them).
    pub fn words(&self) -> &[AtomicU64] {
        let n = words_for(self.size);
        // SAFETY: DATA_OFFSET + 8n <= len (invariants), DATA_OFFSET is
        // 8-aligned in a page-aligned mapping, AtomicU64 has the layout of
        // u64 and any bit pattern is valid; the slice lives no longer than self.
        unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(DATA_OFFSET).cast::<AtomicU64>(), n)
        }
    }

    /// The sequence word.
    pub fn seq(&self) -> &AtomicU64 {
        self.u64_at(OFF_SEQ)
    }

    /// The waiter flag of the `[WAKE]` protocol.
    pub fn waiters(&self) -> &AtomicU32 {
        self.u32_at(OFF_WAITERS)
    }

    /// The writer claim: pid of the writer, 0 if none.
    pub fn writer(&self) -> &AtomicU32 {
        self.u32_at(OFF_WRITER)
    }

    /// Time of the last publish, µs since the Unix epoch (coarse clock).
    pub fn updated(&self) -> &AtomicU64 {
        self.u64_at(OFF_UPDATED)
    }

    /// Signal subscriber slot `i` (pid, or 0 if free).
    pub fn signal_slot(&self, i: usize) -> &AtomicU32 {
        self.u32_at(OFF_SIGNALS + 4 * (i % SIGNAL_SLOTS))
    }

    /// Address of the low 32 bits of the sequence word, for futex calls.
    pub(crate) fn seq_futex_addr(&self) -> *const u32 {
        let low = if cfg!(target_endian = "big") { 4 } else { 0 };
        // SAFETY: OFF_SEQ + low + 4 <= DATA_OFFSET, inside the mapping
        // (invariants), 4-aligned: the low half of the sequence word.
        unsafe { self.base.as_ptr().add(OFF_SEQ + low).cast::<u32>() }
    }

    /// Writes the fields of a fresh, zero-filled region; magic last (Release).
    pub fn init(&self, tag: u64) {
        self.u64_at(OFF_TAG).store(tag, Ordering::Relaxed);
        self.u32_at(OFF_SIZE)
            .store(self.size as u32, Ordering::Relaxed);
        self.u32_at(OFF_DATA)
            .store(DATA_OFFSET as u32, Ordering::Relaxed);
        self.u64_at(OFF_LEN)
            .store(self.len as u64, Ordering::Relaxed);
        self.u32_at(4).store(CELL_VERSION, Ordering::Relaxed);
        self.u32_at(0).store(CELL_MAGIC, Ordering::Release);
    }

    /// Whether the magic is still zero (a region nobody initialised yet).
    pub fn is_blank(&self) -> bool {
        self.u32_at(0).load(Ordering::Acquire) == 0
    }

    /// Checks magic, version, sizes and the type tag against what this
    /// process expects. `what` names the cell in errors.
    pub fn validate(&self, tag: u64, what: &str) -> Result<()> {
        let magic = self.u32_at(0).load(Ordering::Acquire);
        let version = self.u32_at(4).load(Ordering::Relaxed);
        let bad = |m: String| {
            Err(Error::protocol(
                ProtocolReason::Corrupt,
                format!("{what}: {m}"),
            ))
        };
        if magic != CELL_MAGIC {
            return bad(format!(
                "not a utp seqlock cell (magic 0x{magic:08x}, expected 0x{CELL_MAGIC:08x})"
            ));
        }
        if version != CELL_VERSION {
            return bad(format!(
                "cell layout version {version}, this build speaks {CELL_VERSION}"
            ));
        }
        let size = self.u32_at(OFF_SIZE).load(Ordering::Relaxed) as usize;
        if size != self.size {
            return bad(format!(
                "the cell holds values of {size} bytes, this type has {} bytes",
                self.size
            ));
        }
        let data = self.u32_at(OFF_DATA).load(Ordering::Relaxed);
        let len = self.u64_at(OFF_LEN).load(Ordering::Relaxed);
        if data as usize != DATA_OFFSET || len != self.len as u64 {
            return bad(format!(
                "data offset {data} / length {len}, expected {DATA_OFFSET} / {}",
                self.len
            ));
        }
        let found = self.u64_at(OFF_TAG).load(Ordering::Relaxed);
        if found != tag {
            return bad(format!(
                "type tag 0x{found:016x}, the reader's type has 0x{tag:016x}: \
                 the cell holds another type"
            ));
        }
        Ok(())
    }
}

/// The default type tag of `T`: FNV-1a over its type name and size. Both
/// sides must be built from the same definition (the type name includes
/// the crate path); pass an explicit tag to share a cell across programs.
pub fn type_tag<T>() -> u64 {
    let name = std::any::type_name::<T>();
    let size = std::mem::size_of::<T>() as u64;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain(size.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A value's bytes as words, `word(i)` for `i < words_for(bytes.len())`;
/// the last word is zero-padded.
#[inline]
pub(crate) fn word_of(bytes: &[u8], i: usize) -> u64 {
    let start = i * 8;
    match bytes.get(start..start + 8) {
        Some(chunk) => u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8])),
        None => {
            let mut w = [0u8; 8];
            let tail = bytes.get(start..).unwrap_or(&[]);
            w[..tail.len()].copy_from_slice(tail);
            u64::from_ne_bytes(w)
        }
    }
}

/// Stores word `i` into a value's bytes (the inverse of [`word_of`]).
#[inline]
pub(crate) fn set_word(bytes: &mut [u8], i: usize, w: u64) {
    let start = i * 8;
    let w = w.to_ne_bytes();
    if let Some(chunk) = bytes.get_mut(start..start + 8) {
        chunk.copy_from_slice(&w);
    } else if let Some(tail) = bytes.get_mut(start..) {
        let n = tail.len();
        tail.copy_from_slice(&w[..n]);
    }
}

/// Refuses at compile time a value type no cell can hold: zero-sized, or
/// larger than [`MAX_VALUE_SIZE`]. Readers and writers call it on open.
pub(crate) const fn assert_value_fits<T>() {
    const {
        assert!(
            std::mem::size_of::<T>() > 0,
            "a seqlock value cannot be zero-sized"
        );
        assert!(
            std::mem::size_of::<T>() <= MAX_VALUE_SIZE,
            "a seqlock value is at most 16 MiB"
        );
    }
}
