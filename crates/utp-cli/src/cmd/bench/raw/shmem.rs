//! A POSIX shared-memory object (or, for the `file` row, a file in the temp
//! directory beside utp's region) mapped into both processes of a raw
//! baseline, prefaulted (`MAP_POPULATE`) on both sides.
//!
//! The only module of the raw baselines that touches shared memory: it hands
//! out atomics at checked offsets and copies bytes in and out with bounds
//! checks. Which bytes each side may touch when is the protocol's business
//! (`slot`, `ring`); nothing here can go out of bounds whatever the peer does.

use crate::cmd::bench::link::Fallible;
use memmap2::{MmapMut, MmapOptions};
use rustix::fs::Mode;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// A mapped shared-memory object.
///
/// Invariants: `base` points at the start of `map`, which is `len` bytes long
/// and stays mapped for the life of the value; `len` is a multiple of 64.
#[derive(Debug)]
pub struct Region {
    /// Owns the mapping `base` points into (unmapped on drop).
    _map: MmapMut,
    base: *mut u8,
    len: usize,
    name: String,
    unlinked: bool,
}

// SAFETY: `base` points into `map`, which the value owns and moves with it;
// the mapping is valid from any thread, and all access goes through atomics or
// through copies whose exclusivity the protocols arrange.
unsafe impl Send for Region {}

impl Region {
    /// Creates the object `name`, `len` bytes, mode 0600, zeroed: a POSIX
    /// shared-memory object for a name (`/utp-bench-...`), a file for a path
    /// (`/tmp/utp-bench-....region`: the `file` row's baseline maps a file
    /// on the same file system as utp's, so both pay what that costs).
    pub fn create(name: &str, len: usize) -> Fallible<Region> {
        let len = len.next_multiple_of(64);
        let fd = open_fd(name, true).map_err(|e| format!("create {name}: {e}"))?;
        let region = (|| {
            rustix::fs::ftruncate(&fd, len as u64).map_err(|e| format!("size {name}: {e}"))?;
            Region::map(fd, name, len)
        })();
        if region.is_err() {
            remove(name);
        }
        region
    }

    /// Opens the object another process created, maps it and unlinks its name
    /// (both sides hold it mapped; nothing is left in /dev/shm or /tmp).
    pub fn open(name: &str) -> Fallible<Region> {
        let fd = open_fd(name, false).map_err(|e| format!("open {name}: {e}"))?;
        let len = rustix::fs::fstat(&fd)?.st_size as usize;
        let mut region = Region::map(fd, name, len)?;
        region.unlink();
        Ok(region)
    }

    fn map(fd: std::os::fd::OwnedFd, name: &str, len: usize) -> Fallible<Region> {
        if len == 0 || len % 64 != 0 {
            return Err(format!("{name} has a size of {len}, not a multiple of 64").into());
        }
        // MAP_POPULATE: every page is faulted in now, in both processes, so
        // no timed message pays a first-touch fault (~10 µs a page here).
        // SAFETY: the object is ours for this run (unique name, 0600); the
        // mapping may change under us only through the peer, and every access
        // below goes through atomics or bounds-checked copies of plain bytes.
        let mut map = unsafe { MmapOptions::new().len(len).populate().map_mut(&fd) }
            .map_err(|e| format!("mmap {name}: {e}"))?;
        let base = map.as_mut_ptr();
        Ok(Region {
            _map: map,
            base,
            len,
            name: name.to_string(),
            unlinked: false,
        })
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Removes the name; the mapping stays valid.
    pub fn unlink(&mut self) {
        if !std::mem::replace(&mut self.unlinked, true) {
            remove(&self.name);
        }
    }

    fn check(&self, offset: usize, len: usize, align: usize) {
        assert!(
            offset % align == 0 && offset.checked_add(len).is_some_and(|end| end <= self.len),
            "offset {offset}+{len} outside the {}-byte region or misaligned",
            self.len
        );
    }

    /// The 32-bit atomic at `offset` (4-aligned, in bounds).
    pub fn u32_at(&self, offset: usize) -> &AtomicU32 {
        self.check(offset, 4, 4);
        // SAFETY: in bounds and aligned (checked above); the mapping lives as
        // long as `self`; an AtomicU32 may alias memory another process writes.
        unsafe { &*self.base.add(offset).cast::<AtomicU32>() }
    }

    /// The 64-bit atomic at `offset` (8-aligned, in bounds).
    pub fn u64_at(&self, offset: usize) -> &AtomicU64 {
        self.check(offset, 8, 8);
        // SAFETY: as for `u32_at`: in bounds, aligned, mapped while `self` lives.
        unsafe { &*self.base.add(offset).cast::<AtomicU64>() }
    }

    /// Hints the CPU to move the lines of `offset..offset + len` to the
    /// shared cache, as utp's link does with a small answer
    /// (`utp::__bench::demote_lines`).
    pub fn demote(&self, offset: usize, len: usize) {
        self.check(offset, len, 1);
        utp::__bench::demote_lines(self.base.wrapping_add(offset), len);
    }

    /// Asks for the lines of a later message before the one of `len`
    /// bytes at `offset` in the ring of `cap` bytes at `ring` is written,
    /// as utp's producer does (`utp::__bench::claim_ahead`, same rule:
    /// only with `room_after` to spare).
    pub fn claim_ahead(&self, ring: usize, cap: usize, offset: usize, len: usize, room_after: u64) {
        self.check(ring, cap, 1);
        utp::__bench::claim_ahead(self.base.wrapping_add(ring), cap, offset, len, room_after);
    }

    /// Asks for the cache line at `offset` to be read into this core's
    /// cache, as utp's consumer asks for the lines ahead of it
    /// (`utp::shm::ring::read_ahead`). Nothing outside the region.
    #[inline]
    pub fn prefetch(&self, offset: usize) {
        #[cfg(target_arch = "x86_64")]
        if offset < self.len {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: PREFETCHT0 is a hint: it never faults and reads or
            // writes no memory in the language's sense; the address is
            // inside the mapping anyway (checked above).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(self.base.add(offset).cast::<i8>()) }
        }
    }

    /// Copies `bytes` into the region at `offset`.
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        self.check(offset, bytes.len(), 1);
        // SAFETY: the destination is in bounds (checked) and cannot overlap
        // `bytes`, a Rust slice outside the mapping; the protocol gives this
        // side exclusive use of the range until it publishes it with a
        // release store, and plain bytes have no invalid values anyway.
        unsafe {
            utp::__bench::copy_into_shared(bytes.as_ptr(), self.base.add(offset), bytes.len())
        }
    }

    /// Copies `out.len()` bytes from the region at `offset` into `out`.
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        self.check(offset, out.len(), 1);
        // SAFETY: the source is in bounds (checked) and does not overlap
        // `out`; the peer published the range with a release store that this
        // side acquired, and any bytes are valid `u8`s.
        unsafe {
            utp::__bench::copy_nonoverlapping(self.base.add(offset), out.as_mut_ptr(), out.len())
        }
    }
}

/// Whether `name` is a file path rather than a POSIX shared-memory name
/// (`/name`: one slash, at the start).
fn is_path(name: &str) -> bool {
    name.get(1..).is_some_and(|rest| rest.contains('/'))
}

/// Opens the object `name` read-write: a file for a path, a POSIX object
/// for a name; `create` makes a new one (0600, failing if it exists).
fn open_fd(name: &str, create: bool) -> rustix::io::Result<std::os::fd::OwnedFd> {
    let mode = if create {
        Mode::RUSR | Mode::WUSR
    } else {
        Mode::empty()
    };
    if is_path(name) {
        use rustix::fs::OFlags;
        let new = if create {
            OFlags::CREATE | OFlags::EXCL
        } else {
            OFlags::empty()
        };
        rustix::fs::open(name, new | OFlags::RDWR | OFlags::CLOEXEC, mode)
    } else {
        use rustix::shm::OFlags;
        let new = if create {
            OFlags::CREATE | OFlags::EXCL
        } else {
            OFlags::empty()
        };
        rustix::shm::open(name, new | OFlags::RDWR, mode)
    }
}

/// Removes the object's name; a missing one is fine.
fn remove(name: &str) {
    if is_path(name) {
        let _ = std::fs::remove_file(name);
    } else {
        let _ = rustix::shm::unlink(name);
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.unlink();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// A path makes a file-backed region (the `file` row's baseline), a
    /// name a POSIX object; both are shared and both names go once opened.
    #[test]
    fn a_path_maps_a_file_and_a_name_an_object() {
        let pid = std::process::id();
        let path = std::env::temp_dir().join(format!("utp-bench-test-{pid}-shmem.region"));
        let path = path.display().to_string();
        let name = format!("/utp-bench-test-{pid}-shmem");
        for (address, file) in [(path.as_str(), true), (name.as_str(), false)] {
            assert_eq!(is_path(address), file, "{address}");
            let created = Region::create(address, 100).unwrap();
            assert_eq!(created.len(), 128, "rounded up to whole lines");
            let on_disk = if file {
                std::path::PathBuf::from(address)
            } else {
                std::path::PathBuf::from(format!("/dev/shm{address}"))
            };
            assert!(on_disk.exists(), "{address}");
            let opened = Region::open(address).unwrap();
            assert!(
                !on_disk.exists(),
                "{address}: removed once both sides hold it"
            );
            created.u64_at(64).store(0xfeed, Ordering::Relaxed);
            assert_eq!(
                opened.u64_at(64).load(Ordering::Relaxed),
                0xfeed,
                "{address}"
            );
        }
    }
}
