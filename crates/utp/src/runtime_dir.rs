//! Per-user directories for utp's rendezvous sockets (and anything else a
//! feature must name without letting another user take or squat the name).
//!
//! - [`private_dir`]: `$XDG_RUNTIME_DIR/utp` if that variable is set,
//!   absolute and owned by us, else `/tmp/utp-UID`; mode `0700`.
//! - [`shared_dir`]: `/tmp/utp-UID.shared`, mode `0711`: other users can
//!   reach an entry by its exact name but can neither list nor create one.
//!   For listeners that admit other uids.
//!
//! Every directory is checked with `lstat` before use (a directory, not a
//! symlink, owned by the expected uid, no group/other bits beyond its mode);
//! anything else is refused with an error naming it, and never repaired or
//! removed. [`bind_socket`] binds a Unix socket in such a directory,
//! replacing a stale socket (one that refuses connections) and refusing a
//! live one or anything that is not a socket. Specified in
//! `docs/shm-layout.md` section 2.2.

use crate::DeniedReason;
use crate::error::{Error, Result};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest socket path (`sun_path` is 108 bytes including the final NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Which of a user's two directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Mode 0700: only the owner (and root) can reach entries.
    Private,
    /// Mode 0711: others can reach an entry by name, not list or create.
    Shared,
}

impl Kind {
    fn mode(self) -> u32 {
        match self {
            Kind::Private => 0o700,
            Kind::Shared => 0o711,
        }
    }
    /// Permission bits that must be clear.
    fn forbidden(self) -> u32 {
        match self {
            Kind::Private => 0o077,
            Kind::Shared => 0o066,
        }
    }
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The path of `uid`'s directory of `kind`, without creating or checking it.
/// `$XDG_RUNTIME_DIR` is only consulted for our own private directory.
pub fn path_of(uid: u32, kind: Kind) -> PathBuf {
    if kind == Kind::Private && uid == euid() {
        if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
            && xdg.is_absolute()
            && std::fs::symlink_metadata(&xdg)
                .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0)
        {
            return xdg.join("utp");
        }
        return PathBuf::from(format!("/tmp/utp-{uid}"));
    }
    match kind {
        Kind::Private => PathBuf::from(format!("/tmp/utp-{uid}")),
        Kind::Shared => PathBuf::from(format!("/tmp/utp-{uid}.shared")),
    }
}

/// Checks that `dir` is a real directory (not a symlink) owned by `uid`
/// whose mode grants group/others nothing beyond `kind`'s mode.
pub fn check(dir: &Path, uid: u32, kind: Kind) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| Error::io(format!("lstat {}", dir.display()), e))?;
    let refuse = |why: String| {
        Err(Error::denied(
            DeniedReason::Unsafe,
            format!(
                "refusing {}: {why}; utp keeps its sockets only in a directory of mode {:o} \
             owned by uid {uid} (remove or fix it)",
                dir.display(),
                kind.mode()
            ),
        ))
    };
    if meta.file_type().is_symlink() {
        return refuse("it is a symlink".into());
    }
    if !meta.is_dir() {
        return refuse("it is not a directory".into());
    }
    if meta.uid() != uid {
        return refuse(format!("it is owned by uid {}", meta.uid()));
    }
    if meta.mode() & kind.forbidden() != 0 {
        return refuse(format!("its mode is {:o}", meta.mode() & 0o7777));
    }
    Ok(())
}

/// Our own directory of `kind`, created (mode exact) if missing, checked.
pub fn ensure(kind: Kind) -> Result<PathBuf> {
    let uid = euid();
    let dir = path_of(uid, kind);
    ensure_at(&dir, uid, kind)?;
    Ok(dir)
}

/// Creates `dir` with `kind`'s exact mode if it is missing, then checks it.
fn ensure_at(dir: &Path, uid: u32, kind: Kind) -> Result<()> {
    match std::fs::DirBuilder::new().mode(kind.mode()).create(dir) {
        Ok(()) => {
            // The umask may have narrowed the mode (never widened it, so
            // `kind`'s own check holds). A directory we just made in a
            // sticky /tmp cannot have been swapped, but chmod through the
            // path only after checking it is ours.
            check(dir, uid, kind)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(kind.mode()))
                .map_err(|e| Error::io(format!("chmod {:o} {}", kind.mode(), dir.display()), e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(format!("mkdir {}", dir.display()), e)),
    }
    check(dir, uid, kind)
}

/// Our private directory (created and checked).
pub fn private_dir() -> Result<PathBuf> {
    ensure(Kind::Private)
}

/// Our shared directory (created and checked).
pub fn shared_dir() -> Result<PathBuf> {
    ensure(Kind::Shared)
}

/// `dir/file`, refused if longer than [`MAX_SOCKET_PATH`] bytes.
pub fn socket_path(dir: &Path, file: &str) -> Result<PathBuf> {
    let path = dir.join(file);
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(Error::BadUrl {
            url: file.to_string(),
            reason: format!(
                "the socket path {} is {len} bytes, over the {MAX_SOCKET_PATH}-byte limit of \
                 a Unix socket address; use a shorter name (or a shorter XDG_RUNTIME_DIR)",
                path.display()
            ),
        });
    }
    Ok(path)
}

/// How long a socket file that refuses connections is given to start
/// listening before it is judged stale: a server binds (the file appears) a
/// moment before it listens, and a connect in between is refused exactly as
/// if its server were dead.
pub(crate) const STARTING_GRACE: Duration = Duration::from_millis(100);

/// How long a probe of an existing socket file waits for its server to
/// accept. A server whose accept queue stays full this long is alive (a
/// dead one refuses at once) but not accepting.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Connects with `connect`; if `refused` says the attempt was refused, tries
/// once more after [`STARTING_GRACE`], so a server that is just starting is
/// not taken for a dead one. Only a second refusal is returned.
pub(crate) fn connect_with_grace<T, E>(
    connect: impl Fn() -> std::result::Result<T, E>,
    refused: impl Fn(&E) -> bool,
) -> std::result::Result<T, E> {
    match connect() {
        Err(e) if refused(&e) => {
            std::thread::sleep(STARTING_GRACE);
            connect()
        }
        other => other,
    }
}

/// Binds a listening Unix socket at `path` (in a directory checked by
/// [`ensure`]) with file mode `mode`. A stale socket (its server is gone:
/// connecting is refused) is replaced; a live one is `InUse`; anything that
/// is not a socket is refused and left alone.
pub fn bind_socket(path: &Path, mode: u32, endpoint: &str) -> Result<UnixListener> {
    for _ in 0..3 {
        match UnixListener::bind(path) {
            Ok(listener) => {
                // Safe by path: only we can write in this directory.
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| Error::io(format!("chmod {mode:o} {}", path.display()), e))?;
                return Ok(listener);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let meta = std::fs::symlink_metadata(path)
                    .map_err(|e| Error::io(format!("lstat {}", path.display()), e))?;
                use std::os::unix::fs::FileTypeExt;
                if !meta.file_type().is_socket() {
                    return Err(Error::denied(
                        DeniedReason::Unsafe,
                        format!(
                            "{} exists and is not a socket; refusing to replace it",
                            path.display()
                        ),
                    ));
                }
                let probe = connect_with_grace(
                    || crate::transport::unix::connect_path(path, PROBE_TIMEOUT),
                    |e| e.kind() == std::io::ErrorKind::ConnectionRefused,
                );
                match probe {
                    Ok(_) => {
                        return Err(Error::InUse {
                            endpoint: endpoint.to_string(),
                            hint: Some(format!("{} is served by a live process", path.display())),
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        return Err(Error::InUse {
                            endpoint: endpoint.to_string(),
                            hint: Some(format!(
                                "{} is served by a live process that is not accepting ({e})",
                                path.display()
                            )),
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        log::info!("replacing stale socket {}", path.display());
                        let _ = std::fs::remove_file(path);
                    }
                    Err(e) => return Err(Error::io(format!("probe {}", path.display()), e)),
                }
            }
            Err(e) => return Err(Error::io(format!("bind {}", path.display()), e)),
        }
    }
    Err(Error::InUse {
        endpoint: endpoint.to_string(),
        hint: Some(format!("{} keeps being re-created", path.display())),
    })
}

/// Removes the sockets in `dir` whose file name starts with one of
/// `prefixes` and whose server is gone (a connection is refused): what
/// SIGKILLed servers leave behind. Sockets that accept, other files and
/// other names are left alone. Returns how many were removed.
pub fn remove_stale_sockets(dir: &Path, prefixes: &[&str]) -> usize {
    use std::os::unix::fs::FileTypeExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !prefixes.iter().any(|p| name.starts_with(p))
            || !entry.file_type().is_ok_and(|t| t.is_socket())
        {
            continue;
        }
        // A socket bound a moment ago may not be listening yet (bind, then
        // listen): only sockets older than a second can be stale.
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < std::time::Duration::from_secs(1));
        if young {
            continue;
        }
        let path = entry.path();
        if let Err(e) = crate::transport::unix::connect_path(&path, PROBE_TIMEOUT)
            && e.kind() == std::io::ErrorKind::ConnectionRefused
            && std::fs::remove_file(&path).is_ok()
        {
            log::debug!("removed stale socket {}", path.display());
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_private_dir_is_0700_and_ours() {
        let dir = private_dir().unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o077, 0);
        assert_eq!(meta.uid(), euid());
    }

    #[test]
    fn symlinks_and_foreign_modes_are_refused() {
        let base = std::env::temp_dir().join(format!("utp-rtdir-test-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let real = base.join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        check(&real, euid(), Kind::Private).unwrap();
        let link = base.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = check(&link, euid(), Kind::Private).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = check(&real, euid(), Kind::Private).unwrap_err().to_string();
        assert!(err.contains("mode is 755"), "{err}");
        let err = check(&real, euid() + 1, Kind::Private)
            .unwrap_err()
            .to_string();
        assert!(err.contains("owned by uid"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_missing_directory_is_created_with_its_exact_mode() {
        // The first use on a machine creates the directory: with the usual
        // umask (022) a shared one comes out 0711 from mkdir, which must pass.
        let base = std::env::temp_dir().join(format!("utp-rtdir-create-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        for (name, kind, mode) in [
            ("shared", Kind::Shared, 0o711),
            ("private", Kind::Private, 0o700),
        ] {
            let dir = base.join(name);
            ensure_at(&dir, euid(), kind).unwrap();
            let meta = std::fs::symlink_metadata(&dir).unwrap();
            assert_eq!(meta.mode() & 0o7777, mode, "{name}");
            // Existing and right: accepted again as it is.
            ensure_at(&dir, euid(), kind).unwrap();
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn long_socket_paths_are_refused() {
        let err = socket_path(Path::new("/tmp/utp-0"), &"x".repeat(100)).unwrap_err();
        assert!(err.to_string().contains("107-byte limit"), "{err}");
    }
}
