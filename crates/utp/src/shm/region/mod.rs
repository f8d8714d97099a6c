//! Regions: the shared memory a link lives in, whatever kind it is.
//!
//! | kind | URL | created with | removed by |
//! |------|-----|--------------|------------|
//! | POSIX | `shm://NAME` | `shm_open(O_CREAT\|O_EXCL, 0600)` | `shm_unlink` |
//! | System V | `sysv://KEY` | `shmget(IPC_PRIVATE, IPC_CREAT\|IPC_EXCL\|0600)` | `IPC_RMID` right after the creator attaches |
//! | file | `file:///PATH` | `open(O_CREAT\|O_EXCL, 0600)` | `unlink` |
//!
//! A [`Region`] is created by the link's owner (the server) and opened by
//! the client; both map it read-write and shared. Opening checks that the
//! size is exactly what the handshake announced and that group and others
//! have no access.

mod file;
mod mapping;
mod posix;
mod sysv;

use crate::error::{Error, Result};
use mapping::Mapping;
use std::fmt;
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
}

impl Location {
    /// The kind number used in the handshake: 1 POSIX, 2 System V, 3 file.
    pub fn kind(&self) -> u32 {
        match self {
            Location::Posix(_) => 1,
            Location::SysV(_) => 2,
            Location::File(_) => 3,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Posix(name) => write!(f, "/dev/shm{name}"),
            Location::SysV(id) => write!(f, "System V shmid {id}"),
            Location::File(path) => write!(f, "{}", path.display()),
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
    map: Mapping,
    location: Location,
}

fn check_len(len: usize) -> Result<()> {
    if (MIN_REGION_LEN..=MAX_REGION_LEN).contains(&len) {
        Ok(())
    } else {
        Err(Error::Protocol(format!(
            "region size {len} is outside {MIN_REGION_LEN}..={MAX_REGION_LEN} bytes"
        )))
    }
}

/// Checks an opened object: exact size, no group/other permission bits.
fn check_size_and_mode(what: &str, size: u64, mode: u32, len: usize) -> Result<()> {
    if size != len as u64 {
        return Err(Error::Protocol(format!(
            "{what} has {size} bytes, the handshake announced {len}"
        )));
    }
    if mode & 0o077 != 0 {
        return Err(Error::Denied(format!(
            "{what} has mode {:o}; utp only maps regions of mode 0600",
            mode & 0o777
        )));
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
            Location::Posix(name) => Region {
                map: posix::create(&name, len)?,
                location: Location::Posix(name),
            },
            Location::File(path) => Region {
                map: file::create(&path, len)?,
                location: Location::File(path),
            },
            Location::SysV(_) => {
                let (id, map) = sysv::create(len)?;
                Region {
                    map,
                    location: Location::SysV(id),
                }
            }
        })
    }

    /// Opens an existing region that must be exactly `len` bytes.
    pub fn open(location: Location, len: usize) -> Result<Region> {
        check_len(len)?;
        let map = match &location {
            Location::Posix(name) => posix::open(name, len)?,
            Location::File(path) => file::open(path, len)?,
            Location::SysV(id) => {
                let info = sysv::stat(*id)?;
                if info.mode & 0o077 != 0 || info.uid != rustix::process::geteuid().as_raw() {
                    return Err(Error::Denied(format!(
                        "System V segment {id} has mode {:o} and owner {}; utp only maps its own 0600 segments",
                        info.mode, info.uid
                    )));
                }
                sysv::attach(*id, len)?
            }
        };
        Ok(Region { map, location })
    }

    /// Removes the region's name so nothing is left behind; the mapping
    /// stays valid until the region is dropped. Idempotent.
    pub fn remove(&self) {
        match &self.location {
            Location::Posix(name) => posix::unlink(name),
            Location::File(path) => file::unlink(path),
            Location::SysV(id) => sysv::remove(*id),
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

/// Removes a POSIX shared-memory name (used to reclaim stale links).
pub(crate) fn unlink_posix(name: &str) {
    posix::unlink(name)
}
