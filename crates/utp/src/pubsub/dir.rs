//! The per-user private directory that holds rendezvous sockets:
//! `$XDG_RUNTIME_DIR/utp/` when that exists and is ours, else
//! `/tmp/utp-UID/`. Either is created mode 0700 and checked on every use to
//! be a real directory (not a symlink) owned by us with no group or other
//! access, so another user can neither reach our sockets nor squat a name.

use crate::error::{Error, Result};
use rustix::fs::{FileType, Mode};
use std::path::{Path, PathBuf};

/// Longest socket path (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The private directory, created if missing, checked either way.
pub fn private_dir() -> Result<PathBuf> {
    let uid = rustix::process::geteuid().as_raw();
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && runtime.is_absolute()
        && check_owned(&runtime, uid, false).is_ok()
        && rustix::fs::lstat(&runtime).is_ok_and(|st| st.st_mode & 0o022 == 0)
    {
        let dir = runtime.join("utp");
        ensure(&dir, uid)?;
        return Ok(dir);
    }
    let dir = PathBuf::from(format!("/tmp/utp-{uid}"));
    ensure(&dir, uid)?;
    Ok(dir)
}

/// The rendezvous socket of publisher `name`.
pub fn socket_path(name: &str) -> Result<PathBuf> {
    let path = private_dir()?.join(format!("pubsub.{name}.sock"));
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(Error::BadUrl {
            url: format!("shm://{name}"),
            reason: format!(
                "the rendezvous socket path {} is longer than {MAX_SOCKET_PATH} bytes; use a shorter name",
                path.display()
            ),
        });
    }
    Ok(path)
}

/// The directory of publishers that admit other users (`?allow_uid=`):
/// `/tmp/utp-UID.shared/`, mode 0711 — others may reach a socket whose
/// name they know, but neither list nor create entries, so they can
/// neither squat a name nor replace a socket. Created by its owner only.
pub fn shared_dir(owner: u32, create: bool) -> Result<PathBuf> {
    let dir = PathBuf::from(format!("/tmp/utp-{owner}.shared"));
    if create {
        match rustix::fs::mkdir(&dir, Mode::from_raw_mode(0o711)) {
            Ok(()) => rustix::fs::chmod(&dir, Mode::from_raw_mode(0o711))
                .map_err(|e| Error::io(format!("setting the mode of {}", dir.display()), e))?,
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
        }
    }
    check_owned(&dir, owner, false)?;
    let mode = rustix::fs::lstat(&dir)
        .map_err(|e| Error::io(format!("checking {}", dir.display()), e))?
        .st_mode;
    if mode & 0o066 != 0 {
        return Err(Error::Denied(format!(
            "{} has mode {:o}: others could list it, or create or replace sockets in it",
            dir.display(),
            mode & 0o777
        )));
    }
    Ok(dir)
}

/// The rendezvous socket of a publisher of uid `owner` that admits other users.
pub fn shared_socket_path(name: &str, owner: u32, create: bool) -> Result<PathBuf> {
    let path = shared_dir(owner, create)?.join(format!("pubsub.{name}.sock"));
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(Error::BadUrl {
            url: format!("shm://{name}"),
            reason: format!("the rendezvous socket path {} is too long", path.display()),
        });
    }
    Ok(path)
}

fn ensure(dir: &Path, uid: u32) -> Result<()> {
    match rustix::fs::mkdir(dir, Mode::RWXU) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
    }
    check_owned(dir, uid, true)
}

/// Fails unless `dir` is a directory (not a symlink) owned by `uid`, and,
/// when `private`, without any group or other permission bits.
pub fn check_owned(dir: &Path, uid: u32, private: bool) -> Result<()> {
    let st =
        rustix::fs::lstat(dir).map_err(|e| Error::io(format!("checking {}", dir.display()), e))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::Directory {
        return Err(Error::Denied(format!(
            "{} is a {kind:?}, not a directory (a symlink here could redirect our sockets)",
            dir.display()
        )));
    }
    if st.st_uid != uid {
        return Err(Error::Denied(format!(
            "{} belongs to uid {}, not to us (uid {uid}); another user may have squatted it",
            dir.display(),
            st.st_uid
        )));
    }
    if private && st.st_mode & 0o077 != 0 {
        return Err(Error::Denied(format!(
            "{} has mode {:o}; it must be 0700 so no other user reaches our sockets",
            dir.display(),
            st.st_mode & 0o777
        )));
    }
    Ok(())
}
