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
//!   lasts; a client waits for it before sending its first bytes.
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

mod client;
mod listener;

pub use client::{FifoChannel, connect};
pub use listener::{FifoListener, listen};

use super::stream::{Framing, StreamChannel, StreamIo, client_framing};
use crate::channel::{Channel, Deadline, Listener, Options, PeerInfo};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::Frame;
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

fn open(path: &Path, flags: OFlags) -> std::result::Result<OwnedFd, Errno> {
    loop {
        match rustix::fs::open(
            path,
            flags | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

fn is_fifo(path: &Path) -> Option<bool> {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| m.file_type().is_fifo())
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
    fn connecting_without_a_server_fails_fast() {
        let url = format!("fifo:///tmp/utp-fifo-unit-{}", std::process::id());
        let started = std::time::Instant::now();
        let err = crate::connect(&url).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
