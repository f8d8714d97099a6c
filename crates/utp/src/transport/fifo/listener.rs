//! [`FifoListener`]: creates the pair and starts one session at a time.

use super::slot::SessionSlot;
use super::*;
use crate::DeniedReason;
use std::os::fd::AsFd;

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
    /// Device and inode of the FIFOs this listener created (request, response):
    /// every later open is checked against them, and only they are removed.
    ids: ((u64, u64), (u64, u64)),
    /// `PATH.req` open for reading for the listener's whole life ("a server is here").
    anchor: Option<OwnedFd>,
    /// A fresh reader of `PATH.req` for the next session (fresh, so that
    /// earlier writers leaving do not make it report hang-up).
    probe: Option<OwnedFd>,
    /// `PATH.resp` opened early for a tutorial client that waits for it.
    pending_resp: Option<OwnedFd>,
    /// The session running now, if any (see [`SessionSlot`]).
    session: Arc<SessionSlot>,
    options: Options,
    /// Readiness: the request FIFO (bytes of a new session) and a tick
    /// every [`TICK`] (a tutorial client that opens `PATH.resp` first and
    /// a session's end show on no descriptor).
    ready: (crate::wake::PollSet, crate::wake::Ticker),
    /// Whether `anchor` is in the readiness set. It goes in only once an
    /// event loop asks for [`readiness`](Listener::readiness), and is taken
    /// out while a session runs: the session's own bytes would keep the set
    /// readable (an event loop would spin on a listener that cannot
    /// accept), and a watched FIFO costs the client an epoll callback per
    /// write (measured in C: 96-byte writes streamed 20–35 % slower).
    anchor_watched: AtomicBool,
    /// Whether [`readiness`](Listener::readiness) has been asked for. Until
    /// it has, nothing polls `PATH.req` (see `pipe::holds_bytes`).
    readiness_asked: AtomicBool,
}

/// How often a `fifo://` listener's readiness ticks.
const TICK: Duration = Duration::from_millis(20);

/// Creates the FIFO pair at `PATH` (replacing stale FIFOs, never live ones).
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<FifoListener> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["fifo"])?;
    let Address::Fifo(base) = &endpoint.address else {
        unreachable!(
            "fifo::listen called with a {} endpoint",
            endpoint.address.scheme()
        );
    };
    let (req, resp) = paths(base);
    let url = endpoint.address.to_string();
    if let Some(key) = ["allow_uid", "allow_gid"]
        .into_iter()
        .find(|key| endpoint.param(key).is_some())
    {
        return Err(Error::BadUrl {
            url: endpoint.to_string(),
            reason: format!(
                "{key} is for fifo:// clients: a FIFO does not tell its server who opened it, \
                 so a fifo:// server admits only its own uid and root (its FIFOs are 0600)"
            ),
        });
    }
    let own_uid = rustix::process::geteuid().as_raw();
    for path in [&req, &resp] {
        match lookup(path) {
            None => {}
            Some(Found::Symlink) => return Err(symlink_refused(&url, path)),
            Some(Found::Other) => {
                return Err(Error::InUse {
                    endpoint: url,
                    hint: Some(format!(
                        "{} exists and is not a FIFO; remove it yourself",
                        path.display()
                    )),
                });
            }
            Some(Found::Fifo { uid, .. }) if uid != own_uid => {
                return Err(Error::denied(
                    DeniedReason::Unsafe,
                    format!(
                        "{url}: {} is a FIFO owned by uid {uid}, not by this server (uid {own_uid}); \
                     utp does not serve on (or replace) FIFOs another user created: remove it \
                     yourself if you trust it",
                        path.display()
                    ),
                ));
            }
            Some(Found::Fifo { .. }) if path == &req && open(&req, OFlags::WRONLY).is_ok() => {
                return Err(Error::InUse {
                    endpoint: url,
                    hint: Some(format!("a live server reads {}", req.display())),
                });
            }
            Some(Found::Fifo { .. }) => {
                log::info!("replacing stale FIFO {}", path.display());
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(Error::io(
                            format!(
                                "remove the stale FIFO {} (left by a server that is gone)",
                                path.display()
                            ),
                            e,
                        ));
                    }
                }
            }
        }
    }
    // What this call created, removed again if a later step fails.
    let mut created: Vec<&PathBuf> = Vec::new();
    let undo = |created: &[&PathBuf]| {
        for path in created {
            let _ = std::fs::remove_file(path);
        }
    };
    for path in [&req, &resp] {
        match rustix::fs::mkfifoat(rustix::fs::CWD, path, Mode::from_raw_mode(0o600)) {
            Ok(()) => created.push(path),
            Err(Errno::EXIST) => {
                undo(&created);
                let what = match lookup(path) {
                    Some(Found::Fifo { .. }) => {
                        "a FIFO appeared there while this server was starting \
                                   (another server starting at the same moment?)"
                            .to_string()
                    }
                    Some(Found::Other | Found::Symlink) => {
                        "a file that is not a FIFO appeared there while this \
                                    server was starting"
                            .to_string()
                    }
                    None => "it existed a moment ago and is gone again".to_string(),
                };
                return Err(Error::InUse {
                    endpoint: url,
                    hint: Some(format!("cannot create {}: {what}", path.display())),
                });
            }
            Err(e) => {
                undo(&created);
                return Err(Error::io(format!("mkfifo {}", path.display()), e));
            }
        }
    }
    // Still the FIFOs this call made (not swapped right after mkfifo)?
    let created_id = |path: &Path| match lookup(path) {
        Some(Found::Fifo { uid, id, .. }) if uid == own_uid => Ok(id),
        _ => Err(Error::InUse {
            endpoint: url.clone(),
            hint: Some(format!(
                "{} was replaced right after mkfifo",
                path.display()
            )),
        }),
    };
    let ids = (created_id(&req)?, created_id(&resp)?);
    let anchor = open(&req, OFlags::RDONLY)
        .map_err(|e| Error::io(format!("open {}", req.display()), e))
        .and_then(|fd| same_fifo(fd, &req, ids.0))
        .inspect_err(|_| undo(&created))?;
    let ticker = crate::wake::Ticker::new(TICK).inspect_err(|_| undo(&created))?;
    let set = crate::wake::PollSet::new(&[ticker.fd()]).inspect_err(|_| undo(&created))?;
    let session = Arc::new(SessionSlot::new(resp.clone(), ids.1));
    Ok(FifoListener {
        ready: (set, ticker),
        base: base.clone(),
        req,
        resp,
        ids,
        anchor: Some(anchor),
        probe: None,
        pending_resp: None,
        session,
        options: options.clone(),
        anchor_watched: AtomicBool::new(false),
        readiness_asked: AtomicBool::new(false),
    })
}

impl FifoListener {
    /// Paths of the request and response FIFOs.
    pub fn paths(&self) -> (&Path, &Path) {
        (&self.req, &self.resp)
    }

    /// Whether no client holds the hand-off lock.
    fn lock_free(&self) -> bool {
        self.anchor.as_ref().is_some_and(unlocked)
    }

    /// Puts `anchor` in the readiness set (`true`, only once readiness has
    /// been asked for) or takes it out, if it is not so already.
    fn watch_anchor(&self, watched: bool) -> Result<()> {
        let Some(anchor) = &self.anchor else {
            return Ok(());
        };
        let watched = watched && self.readiness_asked.load(Ordering::Relaxed);
        if self.anchor_watched.load(Ordering::Relaxed) != watched {
            let set = &self.ready.0;
            if watched {
                set.add(anchor.as_fd(), 1)?;
            } else {
                set.remove(anchor.as_fd())?;
            }
            self.anchor_watched.store(watched, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Starts the session of the client whose bytes wait in `req`; `None`
    /// (both descriptors kept for the next look) while the session lock
    /// cannot be taken.
    fn session(&mut self, req: OwnedFd, resp: OwnedFd) -> Result<Option<Box<dyn Channel>>> {
        // Held until the session closes PATH.resp: a new client waits for it
        // (see `connect`). utp clients only test this lock, for an instant;
        // anything holding it longer (another process of this user) must
        // not hold the listener: never wait for it, look again later, so
        // `accept` keeps its deadline.
        match rustix::fs::flock(&resp, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK | Errno::INTR) => {
                log::debug!(
                    "{} is locked by another process; looking again",
                    self.resp.display()
                );
                self.probe = Some(req);
                self.pending_resp = Some(resp);
                return Ok(None);
            }
            Err(e) => return Err(Error::io(format!("lock {}", self.resp.display()), e)),
        }
        // The slot's reader of PATH.req, through which the session's end
        // looks (see `SessionSlot`).
        let Some(anchor) = &self.anchor else {
            return Err(Error::Closed);
        };
        let lasting = anchor
            .try_clone()
            .map_err(|e| Error::io(format!("duplicate a reader of {}", self.req.display()), e))?;
        let locked = !self.lock_free();
        self.watch_anchor(false)?;
        self.session.take(lasting, locked);
        // Room for a 64 KiB frame at once (see `pipe::DEFAULT_PIPE_SIZE`).
        for fd in [req.as_fd(), resp.as_fd()] {
            crate::transport::pipe::grow_pipe(fd);
        }
        let url = format!("fifo://{}", self.base.display());
        Ok(Some(Box::new(FifoChannel {
            inner: StreamChannel::new(
                StreamIo::Pair {
                    read: req,
                    write: Some(resp),
                },
                Framing::Detect,
                self.options.max_payload,
                url.clone(),
                PeerInfo {
                    address: Some(url),
                    ..PeerInfo::default()
                },
            )
            .with_deadlines(&self.options),
            lock: None,
            heard: true,
            busy: Some(self.session.clone()),
            client: false,
        })))
    }

    /// Replaces a watched `anchor` that reports hang-up by a fresh reader
    /// of `PATH.req`. A FIFO's reader that has seen writers come and all go
    /// reports hang-up until the next writer opens it, and epoll reports
    /// hang-up whatever it was asked for: after every session (and every
    /// client that left before one started) an event loop would find the
    /// listener readable with nobody to accept, and spin. A reader opened
    /// after they left reports nothing until a new client comes. The new
    /// one is open before the old one closes: the FIFO always has a reader
    /// ("a server is here").
    fn renew_hung_up_anchor(&mut self) -> Result<()> {
        let Some(anchor) = &self.anchor else {
            return Ok(());
        };
        if !self.anchor_watched.load(Ordering::Relaxed)
            || !crate::transport::wait::poll_now(anchor, PollFlags::empty())
                .is_some_and(|got| got.contains(PollFlags::HUP))
        {
            return Ok(());
        }
        let fresh = open(&self.req, OFlags::RDONLY)
            .map_err(|e| Error::io(format!("open {}", self.req.display()), e))
            .and_then(|fd| same_fifo(fd, &self.req, self.ids.0))?;
        let set = &self.ready.0;
        set.remove(anchor.as_fd())?;
        set.add(fresh.as_fd(), 1)?;
        self.anchor = Some(fresh);
        Ok(())
    }

    /// One look for a client; `Some` when a session starts.
    fn look(&mut self) -> Result<Option<Box<dyn Channel>>> {
        self.renew_hung_up_anchor()?;
        if self.probe.is_none() {
            let probe = open(&self.req, OFlags::RDONLY)
                .map_err(|e| Error::io(format!("open {}", self.req.display()), e))
                .and_then(|fd| same_fifo(fd, &self.req, self.ids.0))?;
            self.probe = Some(probe);
        }
        let probe = self.probe.as_ref().expect("probe just opened");
        if crate::transport::pipe::holds_bytes(probe.as_fd()) {
            let resp = match self.pending_resp.take() {
                Some(resp) => Ok(resp),
                None => open(&self.resp, OFlags::WRONLY),
            };
            return match resp {
                Ok(resp) => {
                    let resp = same_fifo(resp, &self.resp, self.ids.1)?;
                    let req = self.probe.take().expect("probe");
                    self.session(req, resp)
                }
                Err(Errno::NXIO) => {
                    log::warn!(
                        "{}: discarded bytes from a client that left without reading replies",
                        self.req.display()
                    );
                    let _ = discard(probe);
                    Ok(None)
                }
                Err(e) => Err(Error::io(format!("open {}", self.resp.display()), e)),
            };
        }
        if let Some(resp) = &self.pending_resp {
            if crate::transport::wait::poll_now(resp, PollFlags::empty())
                .is_some_and(|got| got.intersects(PollFlags::ERR | PollFlags::HUP))
            {
                log::debug!(
                    "a client left {} before sending anything",
                    self.req.display()
                );
                self.pending_resp = None;
            }
        } else if self.lock_free() {
            match open(&self.resp, OFlags::WRONLY) {
                Ok(resp) => self.pending_resp = Some(same_fifo(resp, &self.resp, self.ids.1)?),
                Err(Errno::NXIO) => {}
                Err(e) => return Err(Error::io(format!("open {}", self.resp.display()), e)),
            }
        }
        Ok(None)
    }
}

impl Listener for FifoListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        if self.anchor.is_none() {
            return Err(Error::Closed);
        }
        let deadline = Deadline::after(timeout);
        let timed_out = || Error::Timeout {
            waiting_for: "a client to open the FIFO pair",
            after: timeout.unwrap_or_default(),
        };
        loop {
            // While a session runs, sleep until it ends (not looking).
            if !self.session.wait_free(deadline) {
                return Err(timed_out());
            }
            self.watch_anchor(true)?;
            if let Some(session) = self.look()? {
                return Ok(session);
            }
            if !sleep_within(deadline) {
                return Err(timed_out());
            }
        }
    }

    fn try_accept(&mut self) -> Result<Option<Box<dyn Channel>>> {
        self.ready.1.reset();
        match self.accept_timeout(Some(Duration::ZERO)) {
            Ok(channel) => Ok(Some(channel)),
            Err(Error::Timeout { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An epoll set of `PATH.req` and a 20 ms tick: FIFOs have no accept
    /// event, so the loop also comes back to look (one session at a time;
    /// while one runs, `try_accept` returns `None` and the set holds the
    /// tick alone, until a `try_accept` after the session's end).
    /// `PATH.req` joins the set at the first call: watching a pipe slows
    /// every later write into it (see `pipe::holds_bytes`), so a listener that
    /// only blocks in `accept` never has it watched.
    fn readiness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.ready.1.hand_out();
        if !self.readiness_asked.swap(true, Ordering::Relaxed)
            && !self.session.is_taken()
            && let Err(error) = self.watch_anchor(true)
        {
            // The tick still brings the loop back to look.
            log::warn!(
                "{}: cannot watch {} ({error}); new clients are noticed at the next tick",
                self.endpoint(),
                self.req.display()
            );
        }
        Some(self.ready.0.fd())
    }

    fn endpoint(&self) -> String {
        format!("fifo://{}", self.base.display())
    }

    fn close(&mut self) -> Result<()> {
        self.pending_resp = None;
        self.probe = None;
        if self.anchor.take().is_some() {
            for (path, id) in [(&self.req, self.ids.0), (&self.resp, self.ids.1)] {
                // Only the FIFOs this listener created.
                if !matches!(lookup(path), Some(Found::Fifo { id: found, .. }) if found == id) {
                    continue;
                }
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
    use std::os::fd::{AsRawFd, BorrowedFd};

    /// The descriptors an epoll set watches, from the kernel's own account
    /// of it (`/proc/self/fdinfo`: one `tfd:` line per member).
    fn watched(set: BorrowedFd<'_>) -> Vec<i32> {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", set.as_raw_fd()))
            .expect("fdinfo of the epoll set");
        info.lines()
            .filter_map(|line| line.strip_prefix("tfd:"))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect()
    }

    /// A listener polled with `try_accept` alone leaves its tick alone (a
    /// read of the timer per call saved); once the descriptor is out, each
    /// `try_accept` consumes the tick that brought the loop back.
    #[test]
    fn try_accept_consumes_the_tick_only_once_readiness_is_asked_for() {
        let base = format!("/tmp/utp-fifo-tick-{}", std::process::id());
        let url = format!("fifo://{base}");
        let mut listener = listen(&url.parse().unwrap(), &Options::default()).unwrap();
        std::thread::sleep(TICK + TICK / 2);
        assert!(listener.try_accept().unwrap().is_none());
        let ticked = crate::wake::readable(listener.ready.1.fd());
        assert!(ticked, "a poller's tick was consumed");
        listener.readiness().unwrap();
        assert!(listener.try_accept().unwrap().is_none());
        let ticked = crate::wake::readable(listener.ready.1.fd());
        assert!(!ticked, "the event loop's tick stays readable");
        listener.close().unwrap();
    }

    /// Nothing polls `PATH.req` until an event loop asks for readiness:
    /// the epoll set holds the tick alone; the first `readiness()` adds the
    /// request FIFO, and a new client's bytes then make the set readable.
    #[test]
    fn the_request_fifo_is_watched_only_once_readiness_is_asked_for() {
        let base = format!("/tmp/utp-fifo-watch-{}", std::process::id());
        let url = format!("fifo://{base}");
        let mut listener = listen(&url.parse().unwrap(), &Options::default()).unwrap();
        let anchor = listener.anchor.as_ref().unwrap().as_raw_fd();
        let ticker = listener.ready.1.fd().as_raw_fd();
        let set = listener.ready.0.fd();
        assert_eq!(watched(set), [ticker]);
        // A blocking accept that times out leaves the set as it was.
        let err = listener
            .accept_timeout(Some(Duration::from_millis(1)))
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert_eq!(watched(listener.ready.0.fd()), [ticker]);

        let ready = listener.readiness().unwrap().try_clone_to_owned().unwrap();
        let mut members = watched(listener.ready.0.fd());
        members.sort_unstable();
        let mut expected = vec![anchor, ticker];
        expected.sort_unstable();
        assert_eq!(members, expected);
        // A second call adds nothing twice.
        listener.readiness().unwrap();
        assert_eq!(watched(listener.ready.0.fd()).len(), 2);

        let mut client = crate::connect(&url).unwrap();
        client.send(1, 0, b"hello").unwrap();
        listener.ready.1.reset();
        let mut fds = [PollFd::new(&ready, PollFlags::IN)];
        let second = Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        assert_eq!(poll(&mut fds, Some(&second)).unwrap(), 1);
        let mut session = listener.try_accept().unwrap().expect("a session");
        // While it runs the set holds the tick alone again.
        assert_eq!(watched(listener.ready.0.fd()), [ticker]);
        let mut frame = Frame::default();
        session.recv(&mut frame).unwrap();
        assert_eq!(frame.payload(), b"hello");
        drop(session);
        drop(client);
        listener.close().unwrap();
    }

    /// A client that came and went leaves the request FIFO with no writer,
    /// which a reader that saw writers reports as hung up for good: the
    /// set must not turn readable for that, or an event loop whose
    /// `try_accept` finds nobody would spin until the next client.
    #[test]
    fn a_finished_session_does_not_leave_the_listener_readable() {
        let base = format!("/tmp/utp-fifo-after-{}", std::process::id());
        let url = format!("fifo://{base}");
        let mut listener = listen(&url.parse().unwrap(), &Options::default()).unwrap();
        let ready = listener.readiness().unwrap().try_clone_to_owned().unwrap();
        for round in 0..2 {
            let mut client = crate::connect(&url).unwrap();
            client.send(1, 0, b"hello").unwrap();
            assert!(crate::wake::readable_within(
                ready.as_fd(),
                Duration::from_secs(5)
            ));
            let mut session = listener.try_accept().unwrap().expect("a session");
            let mut frame = Frame::default();
            session.recv(&mut frame).unwrap();
            drop(client);
            drop(session);
            // The session's end shows at the next look (the tick brings the
            // loop back); that look finds nobody and leaves nothing readable.
            assert!(listener.try_accept().unwrap().is_none(), "round {round}");
            assert!(
                !crate::wake::readable(ready.as_fd()),
                "round {round}: readable with no client and the tick consumed"
            );
        }
        listener.close().unwrap();
    }
}
