//! System V shared memory (`shmget`/`shmat`/`shmdt`/`shmctl`) via `libc`,
//! which rustix does not wrap. The only file of the link that calls libc.
//!
//! Per-link segments are created with `IPC_PRIVATE` (no key to collide
//! with) and marked for removal (`IPC_RMID`) as soon as the creator has
//! attached: Linux lets another process still attach by id, and the kernel
//! frees the segment when the last process detaches or dies. So a crash can
//! never leave a System V segment behind.

use super::mapping::Mapping;
use crate::ProtocolReason;
use crate::error::{Error, Result};
use std::io;
use std::ptr::NonNull;

/// Size and ownership of a segment, from `IPC_STAT`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentInfo {
    pub(crate) size: usize,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Creates a fresh private 0600 segment of `len` bytes, attaches it and
/// marks it for removal. Returns its id and the mapping.
pub(crate) fn create(len: usize) -> Result<(i32, Mapping)> {
    // SAFETY: shmget takes no pointers; IPC_PRIVATE|IPC_EXCL always makes a
    // new segment, so we touch nobody else's.
    let id = unsafe {
        libc::shmget(
            libc::IPC_PRIVATE,
            len,
            libc::IPC_CREAT | libc::IPC_EXCL | 0o600,
        )
    };
    if id < 0 {
        return Err(Error::io(
            format!("shmget(IPC_PRIVATE, {len}) for a System V link segment"),
            io::Error::last_os_error(),
        ));
    }
    let mapping = match attach(id, len) {
        Ok(m) => m,
        Err(e) => {
            remove(id);
            return Err(e);
        }
    };
    remove(id);
    Ok((id, mapping))
}

/// Creates a 0600 segment for `key` exclusively (`IPC_CREAT|IPC_EXCL`) and
/// attaches it. Unlike per-link segments it is *not* marked for removal:
/// keyed segments (seqlock cells) outlive their creator until removed.
pub(crate) fn create_keyed(key: i32, len: usize) -> Result<(i32, Mapping)> {
    // SAFETY: shmget takes no pointers; IPC_EXCL never touches an existing segment.
    let id = unsafe { libc::shmget(key, len, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    if id < 0 {
        return Err(Error::io(
            format!("shmget(0x{key:08x}, {len}, IPC_CREAT|IPC_EXCL)"),
            io::Error::last_os_error(),
        ));
    }
    match attach(id, len) {
        Ok(m) => Ok((id, m)),
        Err(e) => {
            remove(id);
            Err(e)
        }
    }
}

/// The id of the segment with `key`, or `None` if there is none.
pub(crate) fn lookup(key: i32) -> Result<Option<i32>> {
    // SAFETY: shmget without IPC_CREAT only looks the key up.
    let id = unsafe { libc::shmget(key, 0, 0) };
    if id >= 0 {
        return Ok(Some(id));
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOENT) {
        Ok(None)
    } else {
        Err(Error::io(format!("shmget(0x{key:08x}) lookup"), err))
    }
}

/// Attaches segment `id` read-write after checking it holds at least `len` bytes.
pub(crate) fn attach(id: i32, len: usize) -> Result<Mapping> {
    let info = stat(id)?;
    if info.size < len {
        return Err(Error::protocol(
            ProtocolReason::Corrupt,
            format!(
                "System V segment {id} has {} bytes, the link needs {len}",
                info.size
            ),
        ));
    }
    // SAFETY: a null address lets the kernel choose where to attach, so no
    // existing object is overlapped; the result is checked for (void*)-1.
    let ptr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if ptr as isize == -1 {
        return Err(Error::io(
            format!("shmat System V segment {id}"),
            io::Error::last_os_error(),
        ));
    }
    let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| {
        Error::protocol(
            ProtocolReason::Corrupt,
            format!("shmat({id}) returned null"),
        )
    })?;
    // Prefault (the equivalent of MAP_POPULATE for an attach), so the rings
    // never page-fault on the hot path; an old kernel without it just
    // faults lazily.
    // SAFETY: `ptr..ptr+len` is the attach just made (len <= segment size);
    // MADV_POPULATE_WRITE only faults pages in, it changes no contents.
    let _ = unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_POPULATE_WRITE) };
    // SAFETY: `ptr` was just returned by shmat for a read-write attach of a
    // segment of `info.size >= len` bytes.
    Ok(unsafe { Mapping::from_shmat(ptr, len) })
}

/// `IPC_STAT`: size, mode and owner of segment `id`.
pub(crate) fn stat(id: i32) -> Result<SegmentInfo> {
    // SAFETY: shmid_ds is plain old data for which all-zero is valid.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable shmid_ds for IPC_STAT to fill.
    let rc = unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) };
    if rc < 0 {
        return Err(Error::io(
            format!("shmctl(IPC_STAT) on System V segment {id}"),
            io::Error::last_os_error(),
        ));
    }
    Ok(SegmentInfo {
        size: ds.shm_segsz,
        mode: ds.shm_perm.mode as u32 & 0o777,
        uid: ds.shm_perm.uid,
        gid: ds.shm_perm.gid,
    })
}

/// Marks segment `id` for removal (`IPC_RMID`); errors are ignored
/// (it may already be gone).
pub(crate) fn remove(id: i32) {
    // SAFETY: IPC_RMID ignores the buffer argument, null is allowed.
    let _ = unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
}

/// Detaches memory attached by [`attach`].
pub(crate) fn detach(ptr: NonNull<u8>) {
    // SAFETY: only called from `Mapping::drop` for a mapping made by
    // `attach`, i.e. an address shmat returned and nobody detached yet.
    let _ = unsafe { libc::shmdt(ptr.as_ptr().cast()) };
}
