//! Memory no one else can name: sealed memfds, their read-only reopening,
//! and prefaulted shared mappings with atomic accessors.
//!
//! A [`Mapping`] never hands out `&[u8]` over its bytes: the other process
//! may change them at any time. Fields are read through atomics, payloads
//! through [`Mapping::copy_out`] (word-wise atomic loads).

use crate::error::{Error, Result};
use crate::{DeniedReason, ProtocolReason};
use rustix::fs::{MemfdFlags, OFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Seals of the data region: its size is fixed and, once the publisher has
/// mapped it, no new writable mapping or `write(2)` is possible, not even
/// through a reopened `/proc/PID/fd/N`.
pub const DATA_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::FUTURE_WRITE)
    .union(SealFlags::SEAL);
/// Seals of a control block: fixed size (no `SIGBUS` by truncation).
pub const CONTROL_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// A new memfd of `len` bytes, sealable.
pub fn create_memfd(name: &str, len: u64) -> Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(|e| Error::io("creating a memfd for pub/sub", e))?;
    rustix::fs::ftruncate(&fd, len).map_err(|e| Error::io("sizing a pub/sub memfd", e))?;
    Ok(fd)
}

/// Adds `seals` to a memfd.
pub fn seal(fd: BorrowedFd<'_>, seals: SealFlags) -> Result<()> {
    rustix::fs::fcntl_add_seals(fd, seals).map_err(|e| Error::io("sealing a pub/sub memfd", e))
}

/// Fails unless `fd` carries every seal in `required` and is exactly `len` bytes.
pub fn check_sealed(fd: BorrowedFd<'_>, required: SealFlags, len: u64, what: &str) -> Result<()> {
    let seals = rustix::fs::fcntl_get_seals(fd).map_err(|e| {
        Error::denied(
            DeniedReason::Unsafe,
            format!("the {what} is not a sealed memfd: {e}"),
        )
    })?;
    if !seals.contains(required) {
        return Err(Error::denied(
            DeniedReason::Unsafe,
            format!("the {what} lacks seals {:?}", required.difference(seals)),
        ));
    }
    let size = rustix::fs::fstat(fd)
        .map_err(|e| Error::io(format!("checking the {what}"), e))?
        .st_size;
    if size as u64 != len {
        return Err(Error::protocol(
            ProtocolReason::Corrupt,
            format!("the {what} is {size} bytes, the handshake said {len}"),
        ));
    }
    Ok(())
}

/// A second descriptor of the same memfd that only allows reading: mapping
/// it writable fails with `EACCES`, and `mprotect` cannot add write.
pub fn reopen_read_only(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::open(
        path.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io("reopening the pub/sub region read-only", e))
}

/// A shared mapping, prefaulted, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
    writable: bool,
}

// SAFETY: a plain shared mapping; all access goes through atomics or
// copies, none of which is tied to a thread.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only offers atomic access and copies.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` shared, read-write or read-only, with every
    /// page faulted in now (`MAP_POPULATE`) so the hot path never faults.
    pub fn map(fd: impl AsFd, len: usize, writable: bool) -> Result<Mapping> {
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a fresh mapping at an address the kernel picks: it aliases
        // no Rust object. The fd's size was checked by the caller (sealed
        // against shrinking), so every byte of `len` stays backed.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                MapFlags::SHARED | MapFlags::POPULATE,
                fd,
                0,
            )
        }
        .map_err(|e| Error::io("mapping a pub/sub region", e))?;
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
            writable,
        })
    }

    /// Length in bytes.
    pub fn byte_len(&self) -> usize {
        self.len
    }

    fn check(&self, offset: usize, size: usize) {
        assert!(
            offset % size == 0 && offset.checked_add(size).is_some_and(|e| e <= self.len),
            "pub/sub field at {offset} outside the {}-byte mapping",
            self.len
        );
    }

    /// The u32 at `offset` (aligned, in bounds: panics otherwise, which
    /// only a bug in this crate's offset arithmetic can cause).
    pub fn u32(&self, offset: usize) -> &AtomicU32 {
        self.check(offset, 4);
        // SAFETY: aligned and in bounds (checked); the mapping lives as long
        // as `self`; shared memory is only ever accessed atomically here.
        unsafe { &*self.ptr.add(offset).cast::<AtomicU32>() }
    }

    /// The u64 at `offset`; as [`u32`](Self::u32).
    pub fn u64(&self, offset: usize) -> &AtomicU64 {
        self.check(offset, 8);
        // SAFETY: as in `u32`.
        unsafe { &*self.ptr.add(offset).cast::<AtomicU64>() }
    }

    /// Raw address of `offset`, for futex calls (which read it in the kernel).
    pub fn addr(&self, offset: usize) -> *const u32 {
        self.check(offset, 4);
        // SAFETY: in bounds (checked).
        unsafe { self.ptr.add(offset).cast::<u32>() }
    }

    /// Copies `dst.len()` bytes from `offset` with relaxed 8-byte atomic
    /// loads. `offset` must be 8-aligned and the range, rounded up to 8,
    /// inside the mapping; returns false (copying nothing) otherwise.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) -> bool {
        let words = dst.len().div_ceil(8);
        if offset % 8 != 0 || offset.checked_add(words * 8).is_none_or(|e| e > self.len) {
            return false;
        }
        let mut chunks = dst.chunks_mut(8);
        for (i, chunk) in (&mut chunks).enumerate() {
            // SAFETY: 8-aligned and in bounds (checked above for all words).
            let word = unsafe { &*self.ptr.add(offset + i * 8).cast::<AtomicU64>() };
            let bytes = word.load(Ordering::Relaxed).to_ne_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        true
    }

    /// The four 8-byte words at `offset` (8-aligned, in bounds; zeros
    /// otherwise), each one relaxed atomic load: a frame header read as the
    /// values it decodes from, with no copy through a byte buffer.
    pub fn load_words(&self, offset: usize) -> [u64; 4] {
        if offset % 8 != 0 || offset.checked_add(32).is_none_or(|e| e > self.len) {
            return [0; 4];
        }
        std::array::from_fn(|i| {
            // SAFETY: 8-aligned and in bounds (checked above for all four).
            let word = unsafe { &*self.ptr.add(offset + i * 8).cast::<AtomicU64>() };
            u64::from_le(word.load(Ordering::Relaxed))
        })
    }

    /// Stores four 8-byte words at `offset` (8-aligned, in bounds of a
    /// writable mapping; nothing otherwise) with relaxed atomic stores.
    pub fn store_words(&self, offset: usize, words: &[u64; 4]) {
        if !self.writable || offset % 8 != 0 || offset.checked_add(32).is_none_or(|e| e > self.len)
        {
            return;
        }
        for (i, w) in words.iter().enumerate() {
            // SAFETY: 8-aligned and in bounds of a writable mapping (checked).
            let word = unsafe { &*self.ptr.add(offset + i * 8).cast::<AtomicU64>() };
            word.store(w.to_le(), Ordering::Relaxed);
        }
    }

    /// Whether `len` bytes at `offset` equal `other`, compared word by word
    /// through atomic loads (no `&[u8]` over shared memory).
    pub fn equals(&self, offset: usize, other: &[u8]) -> bool {
        let mut buf = [0u8; 256];
        let mut done = 0;
        while done < other.len() {
            let n = (other.len() - done).min(buf.len());
            if !self.copy_out(offset + done, &mut buf[..n]) || buf[..n] != other[done..done + n] {
                return false;
            }
            done += n;
        }
        true
    }

    /// `len` bytes at `offset` for writing, or `None` out of bounds or on a
    /// read-only mapping.
    ///
    /// # Safety
    ///
    /// The caller must be the only writer of that range in this process and
    /// hold no other reference to it while the slice lives. Other processes
    /// can only read it (the data region is sealed against new writers).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn bytes_mut(&self, offset: usize, len: usize) -> Option<&mut [u8]> {
        if !self.writable || offset.checked_add(len).is_none_or(|e| e > self.len) {
            return None;
        }
        // SAFETY: in bounds of a writable mapping (checked); exclusivity is
        // the caller's contract.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset), len) })
    }

    /// `len` bytes at `offset` as a slice, or `None` out of bounds.
    ///
    /// # Safety
    ///
    /// Another process may write the bytes while the slice lives; the
    /// caller must accept that the contents can change under it and must
    /// re-validate (the ring's stamp re-check) before trusting them.
    pub unsafe fn bytes(&self, offset: usize, len: usize) -> Option<&[u8]> {
        if offset.checked_add(len).is_none_or(|e| e > self.len) {
            return None;
        }
        // SAFETY: in bounds (checked); the content caveat is the caller's.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.add(offset), len) })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+len` is our mapping; every reference handed out
        // borrows `self`, so none outlives this.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}
