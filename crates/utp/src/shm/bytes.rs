//! [`RingBytes`] over a mapped data area, and the in-place views the
//! zero-copy API lends ([`ShmSlice`], [`ShmSliceMut`]).

use super::ring::{RECORD_ALIGN, RingBytes};
use super::sync::{AtomicU64, Ordering};
use crate::copy::{copy_into_shared, copy_nonoverlapping};
use std::marker::PhantomData;

/// `cap` bytes of mapped shared memory at `ptr`.
///
// Invariants: `ptr..ptr+cap` is mapped read-write for as long as this value
// lives (the link drops its region after its rings), and `ptr` is 64-byte
// aligned. The bytes may be changed by the other process at any time: they
// are only ever copied in and out through raw pointers (never behind a
// `&[u8]`), or read as atomics (stamps).
#[derive(Debug)]
pub struct MappedBytes {
    ptr: *mut u8,
    cap: usize,
}

// SAFETY: plain shared memory, not tied to a thread.
unsafe impl Send for MappedBytes {}

impl MappedBytes {
    /// # Safety
    ///
    /// `ptr..ptr+cap` must stay mapped read-write while the value lives, and
    /// `ptr` must be 64-byte aligned.
    pub unsafe fn new(ptr: *mut u8, cap: usize) -> Self {
        MappedBytes { ptr, cap }
    }

    fn in_bounds(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.cap)
    }

    /// A view of `offset..offset+len` (empty if out of bounds).
    ///
    /// # Safety
    ///
    /// The view must not outlive the mapping; the caller picks `'a`
    /// accordingly (a borrow of the link).
    pub unsafe fn view<'a>(&self, offset: usize, len: usize) -> ShmSlice<'a> {
        if !self.in_bounds(offset, len) {
            return ShmSlice::empty();
        }
        ShmSlice {
            // SAFETY: in bounds of the mapping (checked; invariants).
            ptr: unsafe { self.ptr.add(offset) },
            len,
            _life: PhantomData,
        }
    }

    /// A writable view of `offset..offset+len` (empty if out of bounds).
    ///
    /// # Safety
    ///
    /// As for [`view`](Self::view).
    pub unsafe fn view_mut<'a>(&self, offset: usize, len: usize) -> ShmSliceMut<'a> {
        if !self.in_bounds(offset, len) {
            return ShmSliceMut {
                ptr: std::ptr::NonNull::dangling().as_ptr(),
                len: 0,
                _life: PhantomData,
            };
        }
        ShmSliceMut {
            // SAFETY: in bounds of the mapping (checked; invariants).
            ptr: unsafe { self.ptr.add(offset) },
            len,
            _life: PhantomData,
        }
    }

    /// Hints the CPU to move the lines of `offset..offset + len` (a record
    /// just published) to the shared cache, where the peer's core finds
    /// them sooner (`crate::demote`). Out of bounds does nothing.
    #[inline]
    pub fn demote(&self, offset: usize, len: usize) {
        if self.in_bounds(offset, len) {
            // Inside the mapping (checked); nothing is accessed through it.
            crate::demote::lines(self.ptr.wrapping_add(offset), len);
        }
    }

    /// Writes the 32 bytes of `header` (as `Header::write_fields` would) at
    /// `offset`, an 8-aligned offset, as four 8-byte stores. Out of bounds
    /// does nothing.
    #[inline]
    pub fn write_header(&self, offset: usize, header: &crate::frame::Header) {
        if offset % 8 != 0 || !self.in_bounds(offset, crate::frame::HEADER_LEN) {
            return;
        }
        let words = header.words();
        for (i, w) in words.iter().enumerate() {
            // SAFETY: in bounds and 8-aligned (checked; `ptr` is 64-aligned);
            // this side owns the reserved record being written.
            unsafe { self.ptr.add(offset + 8 * i).cast::<u64>().write(w.to_le()) };
        }
    }

    /// Writes a frame's payload and header into the record at `offset`
    /// (a multiple of [`RECORD_ALIGN`]): the payload's bytes past the
    /// first line, then those in it, then the header, as four 8-byte
    /// stores straight into the record (no header bytes assembled on the
    /// stack and reloaded). The first line is the one the consumer polls,
    /// so it changes hands once, not once per store; the stamp follows.
    /// One bounds check for the whole record. Out of bounds does nothing.
    #[inline(always)]
    pub fn write_frame(&self, offset: usize, header: &crate::frame::Header, payload: &[u8]) {
        use super::ring::{PAYLOAD_OFFSET, STAMP_LEN};
        if offset % RECORD_ALIGN != 0
            || !offset
                .checked_add(PAYLOAD_OFFSET)
                .is_some_and(|at| self.in_bounds(at, payload.len()))
        {
            return;
        }
        let first = payload.len().min(RECORD_ALIGN - PAYLOAD_OFFSET);
        let words = header.words();
        // SAFETY: `offset + PAYLOAD_OFFSET + payload.len() <= cap` (checked)
        // and `offset` is 64-aligned (so the header's words are 8-aligned);
        // this side owns the reserved record being written; the sources
        // are Rust values, never inside the mapping.
        unsafe {
            let record = self.ptr.add(offset);
            copy_into_shared(
                payload.as_ptr().add(first),
                record.add(PAYLOAD_OFFSET + first),
                payload.len() - first,
            );
            copy_nonoverlapping(payload.as_ptr(), record.add(PAYLOAD_OFFSET), first);
            for (i, w) in words.iter().enumerate() {
                record.add(STAMP_LEN + 8 * i).cast::<u64>().write(w.to_le());
            }
        }
    }

    fn stamp(&self, offset: usize) -> Option<&AtomicU64> {
        if offset % 8 != 0 || !self.in_bounds(offset, 8) {
            return None;
        }
        // SAFETY: in bounds and 8-aligned (`ptr` is 64-aligned, offset a
        // multiple of 8); any bit pattern is a valid u64; the mapping
        // outlives `&self`.
        Some(unsafe { super::sync::atomic_u64_at(self.ptr.add(offset)).as_ref() })
    }
}

impl RingBytes for MappedBytes {
    fn capacity(&self) -> usize {
        self.cap
    }

    fn write(&self, offset: usize, src: &[u8]) {
        if self.in_bounds(offset, src.len()) {
            // SAFETY: destination in bounds (checked); the source is a Rust
            // slice, which never points into the shared mapping (we hand
            // out no `&[u8]` of it).
            unsafe { copy_into_shared(src.as_ptr(), self.ptr.add(offset), src.len()) }
        }
    }

    fn read(&self, offset: usize, dst: &mut [u8]) {
        if self.in_bounds(offset, dst.len()) {
            // SAFETY: source in bounds (checked); `dst` is a distinct Rust slice.
            unsafe { copy_nonoverlapping(self.ptr.add(offset), dst.as_mut_ptr(), dst.len()) }
        }
    }

    #[inline(always)]
    fn append(&self, offset: usize, len: usize, out: &mut Vec<u8>) {
        if !self.in_bounds(offset, len) {
            return;
        }
        // SAFETY: `offset..offset+len` is in bounds of the mapping (checked),
        // which never overlaps a Rust allocation.
        unsafe { crate::copy::extend_from_raw(out, self.ptr.add(offset), len) }
    }

    #[inline]
    fn read_words(&self, offset: usize) -> [u64; 4] {
        if offset % 8 != 0 || !self.in_bounds(offset, crate::frame::HEADER_LEN) {
            return [0; 4];
        }
        std::array::from_fn(|i| {
            // SAFETY: in bounds and 8-aligned (checked; `ptr` is 64-aligned);
            // any bit pattern is a valid u64; each word is loaded once and
            // only its value is used (the peer may change the bytes after).
            u64::from_le(unsafe { self.ptr.add(offset + 8 * i).cast::<u64>().read() })
        })
    }

    #[inline]
    fn load_stamp(&self, offset: usize) -> u64 {
        self.stamp(offset).map_or(0, |w| w.load(Ordering::Acquire))
    }

    #[inline]
    fn store_stamp(&self, offset: usize, value: u64, publish: bool) {
        if let Some(w) = self.stamp(offset) {
            let order = if publish {
                Ordering::Release
            } else {
                Ordering::Relaxed
            };
            w.store(value, order);
        }
    }

    /// One bounds check for the whole run, not one per line: at 64 KiB a
    /// check per line cost a ring's consumer a tenth of its throughput.
    #[inline]
    fn zero_stamps(&self, offset: usize, len: usize) {
        if offset % RECORD_ALIGN != 0 || !self.in_bounds(offset, len) {
            return;
        }
        let mut line = 0;
        while line < len {
            // SAFETY: `offset + line` is 64-aligned (`ptr` is 64-aligned,
            // `offset` and `line` multiples of 64) and below `offset + len
            // <= cap`, a multiple of 64, so its 8 bytes are mapped; any bit
            // pattern is a valid u64; the mapping outlives `&self`.
            unsafe { super::sync::atomic_u64_at(self.ptr.add(offset + line)).as_ref() }
                .store(0, Ordering::Relaxed);
            line += RECORD_ALIGN;
        }
    }

    #[inline(always)]
    fn claim_ahead(&self, offset: usize, len: usize, room_after: u64) {
        crate::claim::ahead(self.ptr, self.cap, offset, len, room_after);
    }

    #[inline]
    fn prefetch(&self, offset: usize) {
        #[cfg(target_arch = "x86_64")]
        if offset < self.cap {
            use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: PREFETCH never faults and is not a memory access in
            // the language's sense; the address is inside the mapping anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(self.ptr.add(offset).cast::<i8>()) }
        }
    }
}

/// Bytes in shared memory that the peer process may change at any moment,
/// lent in place (the pattern of vm-memory's `VolatileSlice`).
///
/// There is deliberately no safe `&[u8]` of them: a reference promises the
/// compiler the bytes do not change, which another process can break (a
/// check on the bytes followed by a second read would see other bytes).
/// Copy them out ([`copy_to`](Self::copy_to), [`to_vec`](Self::to_vec)) and
/// work on the copy, compare them ([`eq_bytes`](Self::eq_bytes)), read
/// single bytes ([`get`](Self::get)); or, if you trust the peer, use
/// [`as_slice_unchecked`](Self::as_slice_unchecked).
///
// Invariants: `ptr..ptr+len` stays mapped for `'a` (a borrow of the link
// that owns the mapping); it is only read through raw pointers.
#[derive(Clone, Copy)]
pub struct ShmSlice<'a> {
    ptr: *const u8,
    len: usize,
    _life: PhantomData<&'a [u8]>,
}

impl std::fmt::Debug for ShmSlice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShmSlice({} bytes)", self.len)
    }
}

/// Bytes compared per stack buffer by [`ShmSlice::eq_bytes`].
const CHUNK: usize = 256;

impl<'a> ShmSlice<'a> {
    fn empty() -> Self {
        ShmSlice {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            len: 0,
            _life: PhantomData,
        }
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `dst.len()` bytes (at most [`len`](Self::len)) from the start
    /// into `dst`; returns how many were copied. Each byte is read once.
    pub fn copy_to(&self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len);
        // SAFETY: `ptr..ptr+n` is mapped (invariants, n <= len); `dst` is a
        // private Rust buffer, never inside the mapping. A concurrent write
        // by the peer makes the copied bytes arbitrary, never invalid: any
        // bit pattern is a valid u8, and the copy is what we use afterwards.
        unsafe { copy_nonoverlapping(self.ptr, dst.as_mut_ptr(), n) };
        n
    }

    /// A private copy of the bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        self.copy_to(&mut out);
        out
    }

    /// Appends a private copy of the bytes to `out` (one copy, no zeroing).
    pub fn extend_vec(&self, out: &mut Vec<u8>) {
        // SAFETY: `ptr..ptr+len` is mapped (invariants) and never overlaps
        // a Rust allocation.
        unsafe { crate::copy::extend_from_raw(out, self.ptr, self.len) }
    }

    /// The byte at `index`, read once.
    pub fn get(&self, index: usize) -> Option<u8> {
        // SAFETY: in bounds (checked); a volatile read of one mapped byte.
        (index < self.len).then(|| unsafe { self.ptr.add(index).read_volatile() })
    }

    /// Whether the bytes equal `other` (compared on copies, chunk by chunk).
    pub fn eq_bytes(&self, other: &[u8]) -> bool {
        if other.len() != self.len {
            return false;
        }
        let mut buf = [0u8; CHUNK];
        other.chunks(CHUNK).enumerate().all(|(i, want)| {
            let n = self
                .sub(i * CHUNK, want.len())
                .copy_to(&mut buf[..want.len()]);
            buf[..n] == *want
        })
    }

    /// The bytes `start..start+len` (clamped to this slice).
    pub fn sub(&self, start: usize, len: usize) -> ShmSlice<'a> {
        let start = start.min(self.len);
        let len = len.min(self.len - start);
        ShmSlice {
            // SAFETY: start <= self.len, so the result stays inside the mapping.
            ptr: unsafe { self.ptr.add(start) },
            len,
            _life: PhantomData,
        }
    }

    /// The bytes as a plain slice, without copying.
    ///
    /// # Safety
    ///
    /// The peer process must not write these bytes while the returned
    /// slice lives (true of a correct utp peer: a received frame is not
    /// touched until it is released). A peer that does write them makes the
    /// slice's contents change under you, which Rust treats as undefined
    /// behaviour. Only for peers you trust.
    pub unsafe fn as_slice_unchecked(&self) -> &'a [u8] {
        // SAFETY: mapped for 'a (invariants); the caller guarantees no writes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Start of the bytes, for FFI.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }
}

/// Room in shared memory that this side is filling (a reserved record),
/// lent in place. Write with [`copy_from`](Self::copy_from),
/// [`write_at`](Self::write_at) or [`fill`](Self::fill); no safe `&mut [u8]`
/// is handed out, since the peer process can reach the same memory.
///
// Invariants: `ptr..ptr+len` stays mapped for `'a` and is reserved by the
// borrowing `Reservation` (not yet published); written through raw pointers.
pub struct ShmSliceMut<'a> {
    ptr: *mut u8,
    len: usize,
    _life: PhantomData<&'a mut [u8]>,
}

impl std::fmt::Debug for ShmSliceMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShmSliceMut({} bytes)", self.len)
    }
}

impl<'a> ShmSliceMut<'a> {
    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `src` to the start; returns false (writing nothing) if it is
    /// longer than the room.
    pub fn copy_from(&mut self, src: &[u8]) -> bool {
        self.write_at(0, src)
    }

    /// Copies `src` to `offset`; returns false (writing nothing) if it does
    /// not fit.
    pub fn write_at(&mut self, offset: usize, src: &[u8]) -> bool {
        if offset
            .checked_add(src.len())
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        // SAFETY: in bounds (checked); `src` is a Rust slice, which never
        // points into the shared mapping.
        unsafe { copy_nonoverlapping(src.as_ptr(), self.ptr.add(offset), src.len()) };
        true
    }

    /// Sets every byte to `value`.
    pub fn fill(&mut self, value: u8) {
        // SAFETY: `ptr..ptr+len` is mapped and reserved (invariants).
        unsafe { std::ptr::write_bytes(self.ptr, value, self.len) }
    }

    /// A read view of what has been written so far.
    pub fn as_shm_slice(&self) -> ShmSlice<'_> {
        ShmSlice {
            ptr: self.ptr,
            len: self.len,
            _life: PhantomData,
        }
    }

    /// The room as a plain mutable slice, to fill in place.
    ///
    /// # Safety
    ///
    /// The peer process must not read or write these bytes while the slice
    /// lives (true of a correct utp peer: reserved room is unpublished). Only
    /// for peers you trust.
    pub unsafe fn as_mut_slice_unchecked(&mut self) -> &mut [u8] {
        // SAFETY: mapped and reserved (invariants); `&mut self` makes it the
        // only Rust view; the caller vouches for the peer.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Start of the room, for FFI.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
}
