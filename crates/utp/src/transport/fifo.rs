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
/// Slice used to wait "forever" on a pipe whose writer may not be open yet.
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

/// Either end of a FIFO conversation.
#[derive(Debug)]
pub struct FifoChannel {
    inner: StreamChannel,
    /// Client side: the `flock`ed descriptor that keeps other clients out.
    lock: Option<OwnedFd>,
    /// Server side: cleared when this session ends, letting the next client in.
    busy: Option<Arc<AtomicBool>>,
}

impl FifoChannel {
    /// The framing in use (server side: decided by the client's first bytes).
    pub fn framing(&self) -> Framing {
        self.inner.framing()
    }

    /// Client side: waits until the server has closed its end, discarding
    /// anything it still sends, so the next client starts on a clean pair.
    fn drain_until_server_closes(&mut self) {
        let StreamIo::Pair { read, .. } = self.inner.io() else {
            return;
        };
        let deadline = Deadline::after(Some(CLOSE_GRACE));
        let mut scratch = [0u8; 4096];
        loop {
            match rustix::io::read(read, &mut scratch) {
                Ok(0) => return,
                Ok(_) | Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => {
                    let left = deadline.remaining().unwrap_or_default();
                    if left.is_zero() {
                        return;
                    }
                    let timeout = Timespec {
                        tv_sec: left.as_secs() as i64,
                        tv_nsec: i64::from(left.subsec_nanos()),
                    };
                    let mut fds = [PollFd::new(read, PollFlags::IN)];
                    if !matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }
}

impl Channel for FifoChannel {
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.inner
            .send_timeout(message_type, flags, payload, timeout)
    }

    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        if timeout.is_some() {
            return self.inner.recv_timeout(frame, timeout);
        }
        // A FIFO read with no writer yet returns end-of-file at once, while
        // poll() waits for the writer: always go through poll.
        loop {
            match self.inner.recv_timeout(frame, Some(FOREVER_SLICE)) {
                Err(Error::Timeout { .. }) => continue,
                other => return other,
            }
        }
    }

    fn close(&mut self) -> Result<()> {
        let closed = self.inner.close();
        if self.lock.is_some() {
            self.drain_until_server_closes();
            self.lock = None;
        }
        if let Some(busy) = self.busy.take() {
            busy.store(false, Ordering::SeqCst);
        }
        closed
    }

    fn peer(&self) -> PeerInfo {
        self.inner.peer()
    }
}

impl Drop for FifoChannel {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Connects to a `fifo://` server (see the module docs for the protocol).
pub fn connect(endpoint: &Endpoint, options: &Options) -> Result<FifoChannel> {
    let Address::Fifo(base) = &endpoint.address else {
        unreachable!(
            "fifo::connect called with a {} endpoint",
            endpoint.address.scheme()
        );
    };
    let (req, resp) = paths(base);
    let url = endpoint.address.to_string();
    let not_found = |reason: String| Error::NotFound {
        endpoint: url.clone(),
        reason,
    };
    match is_fifo(&req) {
        None => {
            return Err(not_found(format!(
                "{} does not exist (is the server running?)",
                req.display()
            )));
        }
        Some(false) => return Err(not_found(format!("{} is not a FIFO", req.display()))),
        Some(true) => {}
    }
    // Is anybody reading requests? (Dropped at once: holding a writer while
    // waiting would keep the current client's session from ending.)
    match open(&req, OFlags::WRONLY) {
        Ok(_) => {}
        Err(Errno::NXIO) => {
            return Err(not_found(format!(
                "nobody reads {}: the server is not running (the FIFOs are stale)",
                req.display()
            )));
        }
        Err(e) => return Err(Error::io(format!("open {}", req.display()), e)),
    }
    let lock =
        open(&req, OFlags::RDONLY).map_err(|e| Error::io(format!("open {}", req.display()), e))?;
    let deadline = Deadline::after(Some(options.connect_timeout));
    loop {
        match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(Errno::WOULDBLOCK | Errno::INTR) => {
                if !sleep_within(deadline) {
                    return Err(Error::Timeout {
                        waiting_for: "the FIFO pair to be free (it serves one client at a time and another client is connected)",
                        after: options.connect_timeout,
                    });
                }
            }
            Err(e) => return Err(Error::io(format!("lock {}", req.display()), e)),
        }
    }
    let write = open(&req, OFlags::WRONLY)
        .map_err(|e| Error::io(format!("open {} for writing", req.display()), e))?;
    let read = open(&resp, OFlags::RDONLY).map_err(|e| match e {
        Errno::NOENT => not_found(format!("{} does not exist", resp.display())),
        e => Error::io(format!("open {} for reading", resp.display()), e),
    })?;
    Ok(FifoChannel {
        inner: StreamChannel::new(
            StreamIo::Pair {
                read,
                write: Some(write),
            },
            client_framing(endpoint),
            options.max_payload,
            url.clone(),
            PeerInfo {
                address: Some(url),
                ..PeerInfo::default()
            },
        ),
        lock: Some(lock),
        busy: None,
    })
}

/// Owns the FIFO pair and hands out one session at a time.
///
/// A session starts when request bytes are waiting in `PATH.req`. A utp
/// client holds the `flock` from before it opens `PATH.resp` until after the
/// server closed its end, and sends first; so the listener opens
/// `PATH.resp` for writing early only when it sees a reader there and
/// nobody holds the lock: a tutorial client, which opens `PATH.resp` (and
/// blocks until a writer appears) before it sends anything.
#[derive(Debug)]
pub struct FifoListener {
    base: PathBuf,
    req: PathBuf,
    resp: PathBuf,
    /// `PATH.req` open for reading for the listener's whole life ("a server is here").
    anchor: Option<OwnedFd>,
    /// A fresh reader of `PATH.req` for the next session (fresh, so that
    /// earlier writers leaving do not make it report hang-up).
    probe: Option<OwnedFd>,
    /// `PATH.resp` opened early for a tutorial client that waits for it.
    pending_resp: Option<OwnedFd>,
    busy: Arc<AtomicBool>,
    max_payload: usize,
}

/// Creates the FIFO pair at `PATH` (replacing stale FIFOs, never live ones).
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<FifoListener> {
    let Address::Fifo(base) = &endpoint.address else {
        unreachable!(
            "fifo::listen called with a {} endpoint",
            endpoint.address.scheme()
        );
    };
    let (req, resp) = paths(base);
    let url = endpoint.address.to_string();
    for path in [&req, &resp] {
        match is_fifo(path) {
            None => {}
            Some(false) => {
                return Err(Error::InUse {
                    endpoint: url,
                    hint: Some(format!(
                        "{} exists and is not a FIFO; remove it yourself",
                        path.display()
                    )),
                });
            }
            Some(true) if path == &req && open(&req, OFlags::WRONLY).is_ok() => {
                return Err(Error::InUse {
                    endpoint: url,
                    hint: Some(format!("a live server reads {}", req.display())),
                });
            }
            Some(true) => {
                log::info!("replacing stale FIFO {}", path.display());
                let _ = std::fs::remove_file(path);
            }
        }
    }
    for path in [&req, &resp] {
        match rustix::fs::mkfifoat(rustix::fs::CWD, path, Mode::from_raw_mode(0o600)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                return Err(Error::InUse {
                    endpoint: url,
                    hint: Some("another server created the FIFOs at the same moment".into()),
                });
            }
            Err(e) => {
                let _ = std::fs::remove_file(&req);
                return Err(Error::io(format!("mkfifo {}", path.display()), e));
            }
        }
    }
    let anchor =
        open(&req, OFlags::RDONLY).map_err(|e| Error::io(format!("open {}", req.display()), e))?;
    Ok(FifoListener {
        base: base.clone(),
        req,
        resp,
        anchor: Some(anchor),
        probe: None,
        pending_resp: None,
        busy: Arc::default(),
        max_payload: options.max_payload,
    })
}

impl FifoListener {
    /// Paths of the request and response FIFOs.
    pub fn paths(&self) -> (&Path, &Path) {
        (&self.req, &self.resp)
    }

    /// Whether no client holds the hand-off lock.
    fn lock_free(&self) -> bool {
        let Some(anchor) = &self.anchor else {
            return false;
        };
        match rustix::fs::flock(anchor, FlockOperation::NonBlockingLockShared) {
            Ok(()) => {
                let _ = rustix::fs::flock(anchor, FlockOperation::Unlock);
                true
            }
            Err(_) => false,
        }
    }

    fn session(&mut self, req: OwnedFd, resp: OwnedFd) -> Box<dyn Channel> {
        self.busy.store(true, Ordering::SeqCst);
        let url = format!("fifo://{}", self.base.display());
        Box::new(FifoChannel {
            inner: StreamChannel::new(
                StreamIo::Pair {
                    read: req,
                    write: Some(resp),
                },
                Framing::Detect,
                self.max_payload,
                url.clone(),
                PeerInfo {
                    address: Some(url),
                    ..PeerInfo::default()
                },
            ),
            lock: None,
            busy: Some(self.busy.clone()),
        })
    }

    /// One look for a client; `Some` when a session starts.
    fn look(&mut self) -> Result<Option<Box<dyn Channel>>> {
        if self.probe.is_none() {
            let probe = open(&self.req, OFlags::RDONLY)
                .map_err(|e| Error::io(format!("open {}", self.req.display()), e))?;
            self.probe = Some(probe);
        }
        let probe = self.probe.as_ref().expect("probe just opened");
        if poll_now(probe, PollFlags::IN).contains(PollFlags::IN) {
            let resp = match self.pending_resp.take() {
                Some(resp) => Ok(resp),
                None => open(&self.resp, OFlags::WRONLY),
            };
            return match resp {
                Ok(resp) => {
                    let req = self.probe.take().expect("probe");
                    Ok(Some(self.session(req, resp)))
                }
                Err(Errno::NXIO) => {
                    log::warn!(
                        "{}: discarded bytes from a client that left without reading replies",
                        self.req.display()
                    );
                    discard(probe);
                    Ok(None)
                }
                Err(e) => Err(Error::io(format!("open {}", self.resp.display()), e)),
            };
        }
        if let Some(resp) = &self.pending_resp {
            if poll_now(resp, PollFlags::empty()).intersects(PollFlags::ERR | PollFlags::HUP) {
                log::debug!(
                    "a client left {} before sending anything",
                    self.req.display()
                );
                self.pending_resp = None;
            }
        } else if self.lock_free() {
            match open(&self.resp, OFlags::WRONLY) {
                Ok(resp) => self.pending_resp = Some(resp),
                Err(Errno::NXIO) => {}
                Err(e) => return Err(Error::io(format!("open {}", self.resp.display()), e)),
            }
        }
        Ok(None)
    }
}

/// The events of `fd` right now (no waiting).
fn poll_now(fd: &OwnedFd, events: PollFlags) -> PollFlags {
    let mut fds = [PollFd::new(fd, events)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(n) if n > 0 => fds[0].revents(),
        _ => PollFlags::empty(),
    }
}

/// Reads and drops whatever is buffered in the FIFO behind `fd`.
fn discard(fd: &OwnedFd) {
    let mut scratch = [0u8; 4096];
    while matches!(rustix::io::read(fd, &mut scratch), Ok(n) if n > 0) {}
}

impl Listener for FifoListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        if self.anchor.is_none() {
            return Err(Error::Closed);
        }
        let deadline = Deadline::after(timeout);
        loop {
            if !self.busy.load(Ordering::SeqCst) {
                if let Some(session) = self.look()? {
                    return Ok(session);
                }
            }
            if !sleep_within(deadline) {
                return Err(Error::Timeout {
                    waiting_for: "a client to open the FIFO pair",
                    after: timeout.unwrap_or_default(),
                });
            }
        }
    }

    fn endpoint(&self) -> String {
        format!("fifo://{}", self.base.display())
    }

    fn close(&mut self) -> Result<()> {
        self.pending_resp = None;
        self.probe = None;
        if self.anchor.take().is_some() {
            for path in [&self.req, &self.resp] {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(format!("remove {}", path.display()), e)),
                }
            }
        }
        Ok(())
    }
}

impl Drop for FifoListener {
    fn drop(&mut self) {
        let _ = self.close();
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
