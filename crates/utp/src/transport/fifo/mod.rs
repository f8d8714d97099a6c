//! `fifo:///PATH`: a pair of named pipes, `PATH.req` (client → server) and
//! `PATH.resp` (server → client).
//!
//! The listener creates both FIFOs (mode 0600) and removes them when closed
//! or dropped. A FIFO pair is one byte stream each way, so it serves **one
//! client at a time**:
//!
//! - A utp client takes an exclusive `flock` on `PATH.req` before it opens
//!   the pair; a second client waits for the lock, bounded by its connect
//!   timeout, and then fails with a [`Error::Timeout`] that says why.
//! - On close, a utp client closes `PATH.req`, waits (up to a second) for the
//!   server to close `PATH.resp` in answer, and only then releases the lock,
//!   so the next client starts on a clean pair.
//! - The server holds an exclusive `flock` on `PATH.resp` while a session
//!   lasts; a client waits for it before sending its first bytes. The
//!   server only ever tries that lock: while another process holds one, it
//!   looks again later, so `accept` keeps its deadline.
//! - A session the server ends while its client still has `PATH.req` open
//!   for writing leaves a tail: the slot stays taken, nothing reads
//!   `PATH.req`, and a reader of `PATH.resp` holds its lock, until that
//!   writer is closed; the client's sends fail with [`Error::PeerGone`]
//!   within half a pipe (see `slot`).
//! - A client's writes never wait in the kernel: a full `PATH.req` is
//!   waited for in a `poll` that also watches `PATH.resp` hang up, so a
//!   server that dies while the pipe is full ends the send with
//!   [`Error::PeerGone`] (its own lock descriptor reads `PATH.req`, so a
//!   blocking write would never fail; see `stream::hangup`).
//! - The tutorial's own client (open `PATH.req` for writing, then `PATH.resp`
//!   for reading, 4-byte length framing) works too; it takes no lock, so run
//!   such clients one at a time.
//!
//! Nothing blocks forever on open: every FIFO is opened `O_NONBLOCK`.
//! Connecting to a path that does not exist, or whose `PATH.req` nobody
//! reads (no server), fails at once with [`Error::NotFound`]. The server keeps
//! `PATH.req` open for reading for its whole life; that open descriptor is
//! what "a server is running" means, both to clients and to a new listener
//! deciding whether FIFOs left at the path are stale (replaced) or live
//! (refused with [`Error::InUse`]).
//!
//! # Identity
//!
//! A FIFO says nothing about who writes to it, but its owner is known:
//!
//! - Every FIFO is opened `O_NOFOLLOW` and checked with `fstat` on the open
//!   descriptor: a symlink, or anything but a FIFO, is refused.
//! - A client talks only to FIFOs owned by a uid its [`PeerPolicy`] trusts
//!   (its own, root, `?allow_uid=` / `?allow_gid=`): a pair created by
//!   another user is refused with an error naming that uid.
//! - The listener creates the pair itself (0600, so only its own uid and
//!   root can open them) and refuses to start over FIFOs it does not own,
//!   even stale ones. It cannot tell which user opened a FIFO, so it takes no
//!   `allow_uid` / `allow_gid` (an error on a listener's URL).

mod client;
mod listener;
mod slot;

pub use client::{FifoChannel, connect};
pub use listener::{FifoListener, listen};

use super::stream::{Framing, StreamChannel, StreamIo, client_framing};
use crate::DeniedReason;
use crate::channel::{Channel, Deadline, Listener, Options, PeerInfo};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::{Frame, FrameRef};
use crate::identity::PeerPolicy;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often waits that cannot be expressed as a poll look again.
const RETRY: Duration = Duration::from_millis(2);
/// How long a closing client waits for the server to end the session.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Slice used to wait "forever" on a pipe whose writer may not be open yet
/// (only before a session has started; see `FifoChannel::recv_timeout`).
const FOREVER_SLICE: Duration = Duration::from_secs(3600);

fn paths(base: &Path) -> (PathBuf, PathBuf) {
    let with = |suffix: &str| {
        let mut p = base.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    (with(".req"), with(".resp"))
}

/// Opens `path` non-blocking without following a symlink (`ELOOP` if it is one).
fn open(path: &Path, flags: OFlags) -> std::result::Result<OwnedFd, Errno> {
    loop {
        match rustix::fs::open(
            path,
            flags | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        ) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// What is at a FIFO path, seen with `lstat` (never following a symlink).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// A FIFO, with its owner and identity.
    Fifo { uid: u32, gid: u32, id: (u64, u64) },
    /// A symbolic link.
    Symlink,
    /// Something else (a regular file, a directory, a socket...).
    Other,
}

fn lookup(path: &Path) -> Option<Found> {
    let stat = rustix::fs::lstat(path).ok()?;
    Some(match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
        rustix::fs::FileType::Fifo => Found::Fifo {
            uid: stat.st_uid,
            gid: stat.st_gid,
            id: (stat.st_dev, stat.st_ino),
        },
        rustix::fs::FileType::Symlink => Found::Symlink,
        _ => Found::Other,
    })
}

/// The owner and identity of the FIFO open at `fd`; an error if it is not a FIFO.
fn fifo_owner(fd: &OwnedFd, path: &Path) -> Result<(u32, u32, (u64, u64))> {
    let stat =
        rustix::fs::fstat(fd).map_err(|e| Error::io(format!("fstat {}", path.display()), e))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Fifo {
        return Err(Error::denied(
            DeniedReason::Unsafe,
            format!("{} is not a FIFO", path.display()),
        ));
    }
    Ok((stat.st_uid, stat.st_gid, (stat.st_dev, stat.st_ino)))
}

/// The error for a symlink where a FIFO should be.
fn symlink_refused(url: &str, path: &Path) -> Error {
    Error::denied(
        DeniedReason::Unsafe,
        format!(
            "{url}: {} is a symbolic link; utp neither follows nor removes a symlink at a FIFO \
         path (remove it yourself if it is yours)",
            path.display()
        ),
    )
}

/// `fd` if it is the FIFO the listener created at `path` (`id`), else an error.
fn same_fifo(fd: OwnedFd, path: &Path, id: (u64, u64)) -> Result<OwnedFd> {
    let (_, _, found) = fifo_owner(&fd, path)?;
    if found != id {
        return Err(Error::denied(
            DeniedReason::Unsafe,
            format!(
                "{} is no longer the FIFO this server created (someone replaced it)",
                path.display()
            ),
        ));
    }
    Ok(fd)
}

/// Whether no other open file holds a `flock` on the FIFO behind `fd` (a
/// client's hand-off lock on `PATH.req`, or a session's on `PATH.resp`).
fn unlocked(fd: &OwnedFd) -> bool {
    match rustix::fs::flock(fd, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = rustix::fs::flock(fd, FlockOperation::Unlock);
            true
        }
        Err(_) => false,
    }
}

/// Reads and drops whatever is buffered in the FIFO behind `fd` (a
/// non-blocking reader), up to a few pipes' worth: a writer that keeps
/// writing cannot keep this going. `true` when it read end-of-file: the
/// pipe is empty and nobody has it open for writing.
///
/// That is also how the session slot tells whether a client's writer is
/// gone: not by `poll`, because a pipe that has been polled once wakes its
/// wait queue at every write for the rest of its life (see
/// `pipe::holds_bytes`), and `PATH.req` lives as long as the listener.
fn discard(fd: &OwnedFd) -> bool {
    const AT_MOST: usize = 4 * crate::transport::pipe::DEFAULT_PIPE_SIZE;
    let mut scratch = [0u8; 4096];
    let mut dropped = 0;
    while dropped < AT_MOST {
        match rustix::io::read(fd, &mut scratch) {
            Ok(0) => return true,
            Ok(n) => dropped += n,
            Err(Errno::INTR) => {}
            Err(_) => break,
        }
    }
    false
}

fn sleep_within(deadline: Deadline) -> bool {
    match deadline.remaining() {
        Some(left) if left.is_zero() => false,
        Some(left) => {
            std::thread::sleep(left.min(RETRY));
            true
        }
        None => {
            std::thread::sleep(RETRY);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_paths_add_suffixes() {
        let (req, resp) = paths(Path::new("/tmp/calc"));
        assert_eq!(req, Path::new("/tmp/calc.req"));
        assert_eq!(resp, Path::new("/tmp/calc.resp"));
    }

    #[test]
    fn lookup_tells_fifos_symlinks_and_others_apart() {
        let base = format!("/tmp/utp-fifo-kind-{}", std::process::id());
        let fifo = PathBuf::from(format!("{base}.fifo"));
        let link = PathBuf::from(format!("{base}.link"));
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        assert!(matches!(lookup(&fifo), Some(Found::Fifo { .. })));
        assert_eq!(lookup(&link), Some(Found::Symlink));
        assert_eq!(lookup(Path::new("/tmp")), Some(Found::Other));
        assert_eq!(lookup(Path::new(&format!("{base}.none"))), None);
        assert_eq!(open(&link, OFlags::RDONLY).unwrap_err(), Errno::LOOP);
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_file(&fifo).unwrap();
    }

    #[test]
    fn connecting_without_a_server_fails_fast() {
        let url = format!("fifo:///tmp/utp-fifo-unit-{}", std::process::id());
        let started = std::time::Instant::now();
        let err = crate::connect(&url).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
