//! Regions in an ordinary file, mapped with `mmap` (`file:///PATH`).

use super::mapping::Mapping;
use crate::error::{Error, Result};
use rustix::fs::{Mode, OFlags, fstat, ftruncate};
use std::path::Path;

/// Creates `path` exclusively with mode 0600, sized to `len`, and maps it.
pub(crate) fn create(path: &Path, len: usize) -> Result<Mapping> {
    let fd = rustix::fs::open(
        path,
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| Error::io(format!("create {} (O_EXCL, 0600)", path.display()), e))?;
    let made = (|| {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))
            .map_err(|e| Error::io(format!("fchmod 0600 {}", path.display()), e))?;
        ftruncate(&fd, len as u64)
            .map_err(|e| Error::io(format!("ftruncate {} to {len}", path.display()), e))?;
        Mapping::map_fd(&fd, len, &path.display().to_string())
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Opens the existing file and maps it, after checking size and mode.
pub(crate) fn open(path: &Path, len: usize) -> Result<Mapping> {
    let what = path.display().to_string();
    let fd = rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io(format!("open {what}"), e))?;
    let st = fstat(&fd).map_err(|e| Error::io(format!("fstat {what}"), e))?;
    super::check_size_and_mode(&what, st.st_size as u64, st.st_mode, len)?;
    Mapping::map_fd(&fd, len, &what)
}

/// Removes the file; a missing file is not an error.
pub(crate) fn unlink(path: &Path) {
    let _ = std::fs::remove_file(path);
}
