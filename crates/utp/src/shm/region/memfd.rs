//! Anonymous, sealed regions (`memfd_create`) for `shm://` links: no name
//! anyone can open, freed by the kernel with the last holder, and sealed
//! against shrinking and growing, so no peer can make our mapping fault.

use super::mapping::Mapping;
use crate::error::{Error, Result};
use crate::{DeniedReason, ProtocolReason};
use rustix::fs::{MemfdFlags, Mode, SealFlags, fstat, ftruncate};
use std::os::fd::{AsFd, OwnedFd};

/// The seals every link memfd carries.
pub const REQUIRED_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// Creates a memfd named `name` (informational, shown in /proc), allocates
/// `len` bytes, seals it and maps it prefaulted.
pub(crate) fn create(name: &str, len: usize) -> Result<(OwnedFd, Mapping)> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(|e| Error::io(format!("memfd_create({name})"), e))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))
        .map_err(|e| Error::io(format!("fchmod 0600 memfd {name}"), e))?;
    ftruncate(&fd, len as u64).map_err(|e| Error::io(format!("ftruncate memfd {name}"), e))?;
    super::allocate(&fd, len, &format!("memfd {name}"))?;
    rustix::fs::fcntl_add_seals(&fd, REQUIRED_SEALS)
        .map_err(|e| Error::io(format!("seal memfd {name}"), e))?;
    let map = Mapping::map_fd(&fd, len, name, true)?;
    Ok((fd, map))
}

/// What a received memfd is, checked before it is mapped.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MemfdInfo {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Checks a received memfd (regular file of exactly `len` bytes, sealed
/// against resizing, writable) and returns its owner.
pub(crate) fn check(fd: impl AsFd, len: usize) -> Result<MemfdInfo> {
    let st = fstat(&fd).map_err(|e| Error::io("fstat the link memfd", e))?;
    if st.st_mode & 0o170000 != 0o100000 {
        return Err(Error::denied(
            DeniedReason::Unsafe,
            "the server passed a descriptor that is not a memory file",
        ));
    }
    if st.st_size as u64 != len as u64 {
        return Err(Error::protocol(
            ProtocolReason::Corrupt,
            format!(
                "the link memfd has {} bytes, the handshake announced {len}",
                st.st_size
            ),
        ));
    }
    let seals = rustix::fs::fcntl_get_seals(&fd)
        .map_err(|e| Error::io("F_GET_SEALS on the link memfd (is it a memfd?)", e))?;
    if !seals.contains(REQUIRED_SEALS) {
        return Err(Error::denied(
            DeniedReason::Unsafe,
            format!(
                "the link memfd is not sealed against resizing (seals {seals:?}); \
             a peer could make our mapping fault"
            ),
        ));
    }
    if seals.intersects(SealFlags::WRITE | SealFlags::FUTURE_WRITE) {
        return Err(Error::protocol(
            ProtocolReason::Corrupt,
            "the link memfd is sealed read-only",
        ));
    }
    Ok(MemfdInfo {
        uid: st.st_uid,
        gid: st.st_gid,
    })
}

/// Maps a checked memfd, prefaulted.
pub(crate) fn map(fd: impl AsFd, len: usize) -> Result<Mapping> {
    Mapping::map_fd(fd, len, "the link memfd", true)
}
