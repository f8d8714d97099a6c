//! Regions: the shared memory a link (or a seqlock cell) lives in.
//!
//! | kind | used by | created with | removed by |
//! |------|---------|--------------|------------|
//! | memfd | `shm://` links | `memfd_create`, sealed against resizing | the kernel, with the last holder |
//! | POSIX | `shm://` seqlock cells | `shm_open(O_CREAT\|O_EXCL, 0600)` | `shm_unlink` |
//! | System V | `sysv://` | `shmget(IPC_PRIVATE, IPC_CREAT\|IPC_EXCL\|0600)` | `IPC_RMID` right after the creator attaches |
//! | file | `file:///PATH` | `open(O_CREAT\|O_EXCL\|O_NOFOLLOW, 0600)` | `unlink` |
//!
//! A [`Region`] is created by the link's owner (the server) and opened by
//! the client; both map it read-write and shared. Link regions are
//! allocated up front (`fallocate`: a full tmpfs is an error now, not a
//! SIGBUS later) and prefaulted. Opening checks the owner (against the
//! link's [`PeerPolicy`]), that the size is exactly what the handshake
//! announced and that group and others have no access. File mappings,
//! which a peer could truncate, are registered with the SIGBUS guard.

mod file;
mod mapping;
mod memfd;
mod posix;
mod sysv;

use super::guard::Guard;
use crate::error::{Error, Result};
use crate::identity::PeerPolicy;
use crate::{DeniedReason, ProtocolReason};
use mapping::Mapping;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

/// Smallest region accepted: one page.
pub const MIN_REGION_LEN: usize = 4096;
/// Largest region accepted: 4 GiB.
pub const MAX_REGION_LEN: usize = 1 << 32;

/// Where a region lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// A POSIX shared-memory object, by its `shm_open` name (leading `/`).
    Posix(String),
    /// A System V segment, by its id (`shmid`, not the key).
    SysV(i32),
    /// An ordinary file, by its absolute path.
    File(PathBuf),
    /// An anonymous sealed memfd; the name is informational (`/proc` shows
    /// it as `/memfd:NAME`).
    Memfd(String),
}

impl Location {
    /// The kind number used in the handshake: 1 POSIX (not used by v2
    /// links), 2 System V, 3 file, 4 memfd.
    pub fn kind(&self) -> u32 {
        match self {
            Location::Posix(_) => 1,
            Location::SysV(_) => 2,
            Location::File(_) => 3,
            Location::Memfd(_) => 4,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Posix(name) => write!(f, "/dev/shm{name}"),
            Location::SysV(id) => write!(f, "System V shmid {id}"),
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Memfd(name) => write!(f, "memfd:{name}"),
        }
    }
}

/// A mapped region of shared memory.
///
// Invariants:
// - `map` is a live read-write shared mapping of `map.len()` bytes
//   (see `Mapping`), with MIN_REGION_LEN <= len <= MAX_REGION_LEN;
// - `location` names the object that was mapped.
#[derive(Debug)]
pub struct Region {
    /// Registered with the SIGBUS guard (file regions); dropped before `map`.
    guard: Option<Guard>,
    /// The memfd, kept so it can be passed to the client and found through
    /// `/proc/PID/fd` by `utp inspect`.
    fd: Option<OwnedFd>,
    map: Mapping,
    location: Location,
}

/// Allocates `len` bytes of `fd` up front, so a full file system is an
/// error now rather than a SIGBUS on first touch.
fn allocate(fd: impl AsFd, len: usize, what: &str) -> Result<()> {
    match rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, len as u64) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOSPC) => {
            let free = rustix::fs::fstatvfs(&fd)
                .map(|s| s.f_bavail.saturating_mul(s.f_frsize) >> 20)
                .map(|mib| format!("{mib} MiB free"))
                .unwrap_or_else(|_| "free space unknown".into());
            Err(Error::Io {
                context: format!(
                    "no space in the file system of {what} for a {} MiB shm link ({free})",
                    len.div_ceil(1 << 20)
                ),
                source: std::io::Error::from_raw_os_error(libc::ENOSPC),
            })
        }
        // File systems without fallocate: the pages come on first touch.
        Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
        Err(e) => Err(Error::io(format!("fallocate {len} bytes for {what}"), e)),
    }
}

fn check_len(len: usize) -> Result<()> {
    if (MIN_REGION_LEN..=MAX_REGION_LEN).contains(&len) {
        Ok(())
    } else {
        Err(Error::protocol(
            ProtocolReason::Corrupt,
            format!("region size {len} is outside {MIN_REGION_LEN}..={MAX_REGION_LEN} bytes"),
        ))
    }
}

/// Checks an opened object: exact size, no group/other permission bits.
fn check_size_and_mode(what: &str, size: u64, mode: u32, len: usize) -> Result<()> {
    if size != len as u64 {
        return Err(Error::protocol(
            ProtocolReason::Corrupt,
            format!("{what} has {size} bytes, the handshake announced {len}"),
        ));
    }
    if mode & 0o077 != 0 {
        return Err(Error::denied(
            DeniedReason::Unsafe,
            format!(
                "{what} has mode {:o}; utp only maps regions of mode 0600",
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

impl Region {
    /// Creates a new region of `len` bytes, exclusively and with mode 0600.
    ///
    /// For [`Location::SysV`] the id is ignored: a private segment is made
    /// and the returned region's [`location`](Region::location) has its id.
    pub fn create(location: Location, len: usize) -> Result<Region> {
        check_len(len)?;
        Ok(match location {
            Location::Posix(name) => {
                Region::plain(posix::create(&name, len)?, Location::Posix(name))
            }
            Location::File(path) => {
                Region::guarded(file::create(&path, len)?, Location::File(path))
            }
            Location::SysV(_) => {
                let (id, map) = sysv::create(len)?;
                Region::plain(map, Location::SysV(id))
            }
            Location::Memfd(name) => {
                let (fd, map) = memfd::create(&name, len)?;
                Region {
                    fd: Some(fd),
                    ..Region::plain(map, Location::Memfd(name))
                }
            }
        })
    }

    fn plain(map: Mapping, location: Location) -> Region {
        Region {
            guard: None,
            fd: None,
            map,
            location,
        }
    }

    fn guarded(map: Mapping, location: Location) -> Region {
        let guard = Guard::register(map.as_ptr(), map.len());
        if guard.is_none() {
            log::warn!(
                "utp: more than {} guarded shm mappings; {location} is not protected from truncation",
                super::guard::SLOTS
            );
        }
        Region {
            guard,
            ..Region::plain(map, location)
        }
    }

    /// Opens an existing region that must be exactly `len` bytes (seqlock
    /// cells: no owner check beyond the System V one).
    pub fn open(location: Location, len: usize) -> Result<Region> {
        let policy = PeerPolicy::same_user();
        Region::open_trusting(location, len, &policy, "the region")
    }

    /// Opens an existing link region, checking before it is mapped that its
    /// owner is trusted by `policy` (the refusal names `endpoint`), its size
    /// is exactly `len` and its mode is 0600.
    pub fn open_trusting(
        location: Location,
        len: usize,
        policy: &PeerPolicy,
        endpoint: &str,
    ) -> Result<Region> {
        check_len(len)?;
        Ok(match &location {
            Location::Posix(name) => Region::plain(posix::open(name, len)?, location),
            Location::File(path) => {
                let (map, uid, gid) = file::open(path, len)?;
                let region = Region::guarded(map, location);
                policy.check_server(endpoint, "the link file", uid, gid)?;
                region
            }
            Location::SysV(id) => {
                let info = sysv::stat(*id)?;
                policy.check_server(endpoint, "the System V segment", info.uid, info.gid)?;
                if info.mode & 0o077 != 0 {
                    return Err(Error::denied(
                        DeniedReason::Unsafe,
                        format!(
                            "System V segment {id} has mode {:o}; utp only maps 0600 segments",
                            info.mode
                        ),
                    ));
                }
                Region::plain(sysv::attach(*id, len)?, location)
            }
            Location::Memfd(_) => {
                return Err(Error::protocol(
                    ProtocolReason::Unsupported,
                    "a memfd region is opened from its descriptor (Region::from_memfd)",
                ));
            }
        })
    }

    /// Maps a memfd received from a server, after checking (before mapping)
    /// its owner against `policy`, its size and its seals.
    pub fn from_memfd(
        fd: OwnedFd,
        len: usize,
        policy: &PeerPolicy,
        endpoint: &str,
    ) -> Result<Region> {
        check_len(len)?;
        let info = memfd::check(&fd, len)?;
        policy.check_server(endpoint, "the link memory", info.uid, info.gid)?;
        let map = memfd::map(&fd, len)?;
        Ok(Region {
            fd: Some(fd),
            ..Region::plain(map, Location::Memfd(String::new()))
        })
    }

    /// The memfd of a memfd region.
    pub fn memfd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    /// Whether the SIGBUS guard had to replace this mapping (a peer
    /// truncated the file under it). Always false for unguarded kinds.
    #[inline]
    pub fn poisoned(&self) -> bool {
        self.guard.as_ref().is_some_and(Guard::poisoned)
    }

    /// Removes the region's name so nothing is left behind; the mapping
    /// stays valid until the region is dropped. Idempotent.
    pub fn remove(&self) {
        match &self.location {
            Location::Posix(name) => posix::unlink(name),
            Location::File(path) => file::unlink(path),
            Location::SysV(id) => sysv::remove(*id),
            Location::Memfd(_) => {}
        }
    }

    /// Where the region lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Start of the mapped bytes.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    /// Length of the mapped bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: a region has at least [`MIN_REGION_LEN`] bytes.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Region {
    /// Creates a System V segment for `key` (`shmget(key, IPC_CREAT|IPC_EXCL,
    /// 0600)`) that, unlike a link's, persists until [`remove`](Region::remove)d.
    pub fn create_sysv_keyed(key: i32, len: usize) -> Result<Region> {
        check_len(len)?;
        let (id, map) = sysv::create_keyed(key, len)?;
        Ok(Region::plain(map, Location::SysV(id)))
    }

    /// The id and size of the System V segment with `key`, if one exists.
    pub fn sysv_lookup(key: i32) -> Result<Option<(i32, usize)>> {
        match sysv::lookup(key)? {
            Some(id) => Ok(Some((id, sysv::stat(id)?.size))),
            None => Ok(None),
        }
    }
}

/// Marks System V segment `id` for removal (`IPC_RMID`).
pub(crate) fn remove_sysv(id: i32) {
    sysv::remove(id)
}
