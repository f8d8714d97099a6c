//! Regions in an ordinary file, mapped with `mmap` (`file:///PATH`).

use super::mapping::Mapping;
use crate::DeniedReason;
use crate::error::{Error, Result};
use rustix::fs::{Mode, OFlags, fstat, ftruncate};
use std::path::Path;

/// Creates `path` exclusively with mode 0600 (never following a symlink),
/// allocates `len` bytes up front and maps them, prefaulted.
pub(crate) fn create(path: &Path, len: usize) -> Result<Mapping> {
    let fd = rustix::fs::open(
        path,
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| Error::io(format!("create {} (O_EXCL, 0600)", path.display()), e))?;
    let made = (|| {
        let what = path.display().to_string();
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))
            .map_err(|e| Error::io(format!("fchmod 0600 {what}"), e))?;
        ftruncate(&fd, len as u64)
            .map_err(|e| Error::io(format!("ftruncate {what} to {len}"), e))?;
        super::allocate(&fd, len, &what)?;
        Mapping::map_fd(&fd, len, &what, true)
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Opens the existing file (not through a symlink) and maps it, after
/// checking size and mode. Returns the mapping and the file's owner uid/gid.
pub(crate) fn open(path: &Path, len: usize) -> Result<(Mapping, u32, u32)> {
    let what = path.display().to_string();
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| Error::io(format!("open {what}"), e))?;
    let st = fstat(&fd).map_err(|e| Error::io(format!("fstat {what}"), e))?;
    if st.st_mode & 0o170000 != 0o100000 {
        return Err(Error::denied(
            DeniedReason::Unsafe,
            format!("{what} is not a regular file"),
        ));
    }
    super::check_size_and_mode(&what, st.st_size as u64, st.st_mode, len)?;
    Ok((
        Mapping::map_fd(&fd, len, &what, true)?,
        st.st_uid,
        st.st_gid,
    ))
}

/// Removes the file; a missing file is not an error.
pub(crate) fn unlink(path: &Path) {
    let _ = std::fs::remove_file(path);
}
