//! Where a cell lives: `shm://NAME` (`/dev/shm/utp.cell.NAME`),
//! `sysv://KEY` (a keyed System V segment) or `file:///PATH` (the file
//! itself). Cells persist until removed: creating one that exists opens it.

use crate::ProtocolReason;
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::shm::region::{Location, MAX_REGION_LEN, MIN_REGION_LEN, Region};
use std::time::{Duration, Instant};

/// How long an opener waits for a concurrent creator to size the object.
const SIZE_WAIT: Duration = Duration::from_millis(500);

/// A cell's place, from its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// POSIX shared memory, by `shm_open` name (leading `/`).
    Posix(String),
    /// System V, by key.
    SysV(i32),
    /// A file, by absolute path.
    File(std::path::PathBuf),
}

impl Place {
    /// Parses `shm://NAME`, `sysv://KEY` or `file:///PATH`.
    pub fn parse(url: &str) -> Result<Place> {
        let endpoint = Endpoint::parse(url)?;
        Ok(match endpoint.address {
            Address::Shm(name) => Place::Posix(format!("/utp.cell.{name}")),
            Address::SysV(key) => Place::SysV(key),
            Address::File(path) => Place::File(path),
            other => {
                return Err(Error::BadUrl {
                    url: url.into(),
                    reason: format!(
                        "a seqlock cell lives in shm://, sysv:// or file:///, not {}://",
                        other.scheme()
                    ),
                });
            }
        })
    }

    /// Size of the existing object, or `None` if there is none.
    pub fn existing_len(&self) -> Result<Option<usize>> {
        let meta = match self {
            Place::SysV(key) => return Ok(Region::sysv_lookup(*key)?.map(|(_, len)| len)),
            Place::Posix(name) => std::fs::metadata(format!("/dev/shm{name}")),
            Place::File(path) => std::fs::metadata(path),
        };
        match meta {
            Ok(m) => Ok(Some(m.len() as usize)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("stat {self}"), e)),
        }
    }

    /// Creates the object exclusively with `len` bytes (zero-filled, 0600).
    /// `Ok(None)` if it already exists.
    pub fn create(&self, len: usize) -> Result<Option<Region>> {
        let made = match self {
            Place::Posix(name) => Region::create(Location::Posix(name.clone()), len),
            Place::File(path) => Region::create(Location::File(path.clone()), len),
            Place::SysV(key) => Region::create_sysv_keyed(*key, len),
        };
        match made {
            Ok(region) => Ok(Some(region)),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the existing object, which must be `len` bytes; waits briefly
    /// for a creator that has not sized it yet.
    pub fn open(&self, len: usize) -> Result<Region> {
        let start = Instant::now();
        loop {
            let found = self.existing_len()?.ok_or_else(|| Error::NotFound {
                endpoint: self.to_string(),
                reason: "no seqlock cell there (start its writer first)".into(),
            })?;
            if found == 0 && start.elapsed() < SIZE_WAIT {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            if found != len {
                return Err(Error::protocol(
                    ProtocolReason::Corrupt,
                    format!(
                        "{self} has {found} bytes, a cell of this value type has {len}: \
                     it holds another type or is not a seqlock cell"
                    ),
                ));
            }
            if !(MIN_REGION_LEN..=MAX_REGION_LEN).contains(&len) {
                return Err(Error::protocol(
                    ProtocolReason::Corrupt,
                    format!("{self}: bad size {len}"),
                ));
            }
            return match self {
                Place::Posix(name) => Region::open(Location::Posix(name.clone()), len),
                Place::File(path) => Region::open(Location::File(path.clone()), len),
                Place::SysV(key) => {
                    let (id, _) = Region::sysv_lookup(*key)?.ok_or_else(|| Error::NotFound {
                        endpoint: self.to_string(),
                        reason: "the segment was removed".into(),
                    })?;
                    Region::open(Location::SysV(id), len)
                }
            };
        }
    }

    /// Removes the object (name, file or segment); a missing one is fine.
    /// Processes that have it mapped keep their mapping.
    pub fn remove(&self) -> Result<()> {
        match self {
            Place::Posix(name) => {
                let _ = rustix::shm::unlink(name.as_str());
            }
            Place::File(path) => {
                let _ = std::fs::remove_file(path);
            }
            Place::SysV(key) => {
                if let Some((id, _)) = Region::sysv_lookup(*key)? {
                    crate::shm::region::remove_sysv(id);
                }
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Posix(name) => write!(f, "/dev/shm{name}"),
            Place::SysV(key) => write!(f, "System V key 0x{key:08x}"),
            Place::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Writes the mapped region back to its file and waits for the disk
/// (`msync(MS_SYNC)`); for POSIX and System V memory it only costs a call.
pub fn flush(region: &Region) -> Result<()> {
    // SAFETY: `region` maps `len()` bytes at `as_ptr()` (page aligned) for
    // as long as it lives; msync reads the range, it does not change it.
    unsafe {
        rustix::mm::msync(
            region.as_ptr().cast(),
            region.len(),
            rustix::mm::MsyncFlags::SYNC,
        )
    }
    .map_err(|e| Error::io(format!("msync {}", region.location()), e))
}
