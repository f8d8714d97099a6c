//! [`RingBytes`] over a mapped data area, with in-place slices for the
//! zero-copy API.

use super::ring::RingBytes;

/// `cap` bytes of mapped shared memory at `ptr`.
///
// Invariants: `ptr..ptr+cap` is mapped read-write for as long as this value
// lives (the link drops its region after its rings). The bytes may be
// changed by the other process at any time: they are only ever copied or
// lent out as `[u8]` whose *contents* are untrusted, never as typed data.
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
    /// `ptr..ptr+cap` must stay mapped read-write while the value lives.
    pub unsafe fn new(ptr: *mut u8, cap: usize) -> Self {
        MappedBytes { ptr, cap }
    }

    fn in_bounds(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.cap)
    }

    /// The bytes `offset..offset+len`, or an empty slice if out of bounds.
    ///
    /// # Safety
    ///
    /// The caller must own that range under the ring protocol (a published
    /// record not yet released), so the peer does not legitimately write it
    /// while the slice lives. A misbehaving peer can still change the
    /// contents; callers treat them as untrusted bytes.
    pub unsafe fn slice(&self, offset: usize, len: usize) -> &[u8] {
        if !self.in_bounds(offset, len) {
            return &[];
        }
        // SAFETY: in bounds of the mapping (checked above; invariants).
        unsafe { std::slice::from_raw_parts(self.ptr.add(offset), len) }
    }

    /// The bytes `offset..offset+len` for writing, or empty if out of bounds.
    ///
    /// # Safety
    ///
    /// The caller must own that range under the ring protocol (reserved,
    /// not yet committed) and hold no other slice of it.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        if !self.in_bounds(offset, len) {
            return &mut [];
        }
        // SAFETY: in bounds of the mapping; exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset), len) }
    }
}

impl RingBytes for MappedBytes {
    fn capacity(&self) -> usize {
        self.cap
    }

    fn write(&self, offset: usize, src: &[u8]) {
        if self.in_bounds(offset, src.len()) {
            // SAFETY: destination in bounds (checked); the source is a Rust
            // slice, which cannot overlap the shared mapping we write to
            // except through our own reservation, which we own.
            unsafe { std::ptr::copy(src.as_ptr(), self.ptr.add(offset), src.len()) }
        }
    }

    fn read(&self, offset: usize, dst: &mut [u8]) {
        if self.in_bounds(offset, dst.len()) {
            // SAFETY: source in bounds (checked); `dst` is a distinct Rust slice.
            unsafe {
                std::ptr::copy_nonoverlapping(self.ptr.add(offset), dst.as_mut_ptr(), dst.len())
            }
        }
    }
}
