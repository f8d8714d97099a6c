//! POSIX shared memory: `shm_open` + `ftruncate` + `mmap`, names under `/dev/shm`.

use super::mapping::Mapping;
use crate::error::{Error, Result};
use rustix::fs::{Mode, fstat, ftruncate};
use rustix::shm;

/// Creates `name` (e.g. `/utp.calc.123.1`) exclusively with mode 0600,
/// sized to `len` bytes, and maps it.
pub(crate) fn create(name: &str, len: usize) -> Result<Mapping> {
    let fd = shm::open(
        name,
        shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| Error::io(format!("shm_open({name}, O_CREAT|O_EXCL, 0600)"), e))?;
    let made = (|| {
        // The umask may have narrowed the mode; make it exactly 0600.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))
            .map_err(|e| Error::io(format!("fchmod 0600 {name}"), e))?;
        ftruncate(&fd, len as u64)
            .map_err(|e| Error::io(format!("ftruncate {name} to {len}"), e))?;
        Mapping::map_fd(&fd, len, name, false)
    })();
    if made.is_err() {
        let _ = shm::unlink(name);
    }
    made
}

/// Opens the existing `name` and maps it, after checking it is exactly
/// `len` bytes and not accessible to group or others.
pub(crate) fn open(name: &str, len: usize) -> Result<Mapping> {
    let fd = shm::open(name, shm::OFlags::RDWR, Mode::empty())
        .map_err(|e| Error::io(format!("shm_open({name}, O_RDWR)"), e))?;
    let st = fstat(&fd).map_err(|e| Error::io(format!("fstat {name}"), e))?;
    super::check_size_and_mode(name, st.st_size as u64, st.st_mode, len)?;
    Mapping::map_fd(&fd, len, name, false)
}

/// `shm_unlink(name)`; a missing name is not an error.
pub(crate) fn unlink(name: &str) {
    let _ = shm::unlink(name);
}
