//! A mapped range of shared memory and how to unmap it. All `mmap`/`munmap`
//! calls of the link live here (System V attach/detach lives in `sysv.rs`).

use crate::ProtocolReason;
use crate::error::{Error, Result};
use std::os::fd::AsFd;
use std::ptr::NonNull;

/// How a [`Mapping`] is undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unmap {
    /// `munmap(ptr, len)`.
    Munmap,
    /// `shmdt(ptr)`.
    Shmdt,
}

/// `len` bytes of shared memory mapped read-write at `ptr`.
///
// Invariants:
// - `ptr` is the start of a live shared mapping of exactly `len` bytes,
//   readable and writable, page aligned, until `drop` unmaps it;
// - `len > 0`;
// - nobody else unmaps it: only `Drop` does, once.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    unmap: Unmap,
}

// SAFETY: the mapping is plain shared memory; it is not tied to the thread
// that created it, and all access to it goes through atomics or byte copies
// whose bounds the ring checks.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only hands out the raw pointer.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` from offset 0, shared and read-write. With
    /// `populate`, every page is faulted in now (`MAP_POPULATE`), so the
    /// rings never page-fault on the hot path.
    pub(crate) fn map_fd(fd: impl AsFd, len: usize, what: &str, populate: bool) -> Result<Self> {
        use rustix::mm::{MapFlags, ProtFlags, mmap};
        if len == 0 {
            return Err(Error::protocol(
                ProtocolReason::Unsupported,
                format!("{what}: refusing to map 0 bytes"),
            ));
        }
        // SAFETY: a null hint lets the kernel pick a fresh range, so no
        // existing Rust object is overlapped; the result is checked below.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                if populate {
                    MapFlags::SHARED | MapFlags::POPULATE
                } else {
                    MapFlags::SHARED
                },
                fd,
                0,
            )
        }
        .map_err(|e| Error::io(format!("mmap {len} bytes of {what}"), e))?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| {
            Error::protocol(
                ProtocolReason::Corrupt,
                format!("mmap of {what} returned null"),
            )
        })?;
        Ok(Mapping {
            ptr,
            len,
            unmap: Unmap::Munmap,
        })
    }

    /// Wraps memory attached with `shmat`.
    ///
    /// # Safety
    ///
    /// `ptr` must be the address `shmat` returned for a segment of at least
    /// `len` bytes, attached read-write and not yet detached.
    pub(crate) unsafe fn from_shmat(ptr: NonNull<u8>, len: usize) -> Self {
        Mapping {
            ptr,
            len,
            unmap: Unmap::Shmdt,
        }
    }

    /// Start of the mapping.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match self.unmap {
            Unmap::Munmap => {
                // SAFETY: by the invariants `ptr`/`len` describe a live
                // mapping that only this drop unmaps; every borrow of it ends
                // with the owner (the link keeps the region last in drop order).
                let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
            }
            Unmap::Shmdt => super::sysv::detach(self.ptr),
        }
    }
}
