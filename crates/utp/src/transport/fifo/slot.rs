//! [`SessionSlot`]: the one session a FIFO pair serves at a time, and the
//! tail of a session its server ended while the client still writes.

use super::*;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Whether a session holds the FIFO pair, and a way to wait for it to end.
///
/// The listener waits on it while a session runs, instead of looking again
/// every few milliseconds: the session ends on another thread (its channel
/// closed or dropped), which wakes the listener at once. A listener that
/// woke every 2 ms for nothing also made the session's own wake-ups faster
/// on a virtual machine (a vCPU woken often is woken sooner), so the FIFO
/// calculator ran 3–16 % ahead of a plain FIFO server.
///
/// # A session the server ends while its client still writes
///
/// The client learns of the end from `PATH.resp` (end-of-file, hang-up),
/// but its writes to `PATH.req` go on succeeding: the listener reads that
/// FIFO for its whole life. Were the listener to take those bytes for a
/// new session, each would start mid-frame and fail at once ("bad magic").
/// So such a session leaves a *tail*: the slot stays taken, what arrives
/// in `PATH.req` is thrown away, and a reader of `PATH.resp` holds the lock
/// the next client waits for (a reader, so the client still sees
/// end-of-file). The old client's sends fail within half a pipe (it looks
/// for the hang-up of `PATH.resp` as it writes: `stream::hangup`); once
/// its writer is closed (it saw the end, or died) or its lock let go, the
/// listener frees the slot. A utp client keeps its lock on `PATH.req`
/// until then anyway, so the tail keeps out nobody who could have come in.
#[derive(Debug)]
pub(super) struct SessionSlot {
    state: Mutex<State>,
    changed: Condvar,
    /// `PATH.resp` and the identity of the FIFO the listener created there.
    resp: (PathBuf, (u64, u64)),
}

/// How often a listener waiting through a tail looks whether its client is gone.
const TAIL_LOOK: Duration = Duration::from_millis(10);

#[derive(Debug)]
enum State {
    Free,
    /// A session runs. `req` is a non-blocking reader of `PATH.req` (the
    /// listener's lasting one), through which its end looks.
    Running {
        req: OwnedFd,
        /// Whether a utp client held the hand-off lock as the session
        /// started (its own client: a lockless client's session may start
        /// while a utp client holds the lock waiting for its turn).
        locked: bool,
    },
    /// The server ended the session while its client still had `PATH.req`
    /// open for writing; `hold` (a reader of `PATH.resp`) holds the lock
    /// that keeps the next client from sending.
    Tail {
        req: OwnedFd,
        _hold: OwnedFd,
    },
}

/// What the first half of a session's end found (see [`SessionSlot::begin_end`]).
#[derive(Debug)]
struct Ending {
    /// A reader of `PATH.resp` to hold the lock with, if the client still writes.
    hold: Option<OwnedFd>,
}

/// Throws away what waits in `PATH.req` (through `req`) and says whether
/// the client of a session that has ended is gone: nobody has `PATH.req`
/// open for writing (a read of end-of-file), or nobody holds the hand-off
/// lock on it (a utp client lets go of it only after closing its writer;
/// a client that takes no lock, such as the tutorial's, leaves no tail: a
/// tail would keep a second such client, which may come at any time,
/// waiting for ever to open `PATH.resp`).
fn discard_and_see_client_gone(req: &OwnedFd) -> bool {
    discard(req) || unlocked(req)
}

impl SessionSlot {
    /// A free slot for the pair whose response FIFO is `resp`.
    pub(super) fn new(resp: PathBuf, id: (u64, u64)) -> Self {
        SessionSlot {
            state: Mutex::new(State::Free),
            changed: Condvar::new(),
            resp: (resp, id),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the state half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a session (or its tail) holds the pair now.
    pub(super) fn is_taken(&self) -> bool {
        !matches!(*self.state(), State::Free)
    }

    /// A session starts; `req` is a non-blocking reader of `PATH.req` (a
    /// duplicate of the listener's lasting one), `locked` whether its
    /// hand-off lock is held now (by the session's client, a utp one).
    pub(super) fn take(&self, req: OwnedFd, locked: bool) {
        *self.state() = State::Running { req, locked };
    }

    /// A session ends: `close_writer` closes its `PATH.resp` (and so lets
    /// go of its lock), between the two halves below. Returns what
    /// `close_writer` returned.
    pub(super) fn end<R>(&self, close_writer: impl FnOnce() -> R) -> R {
        let ending = self.begin_end();
        let closed = close_writer();
        self.finish_end(ending);
        closed
    }

    /// The first half of a session's end, called while the session still
    /// holds `PATH.resp` open for writing (and so its lock): whatever the
    /// client sent that the session did not read is thrown away (nobody
    /// else can have written it), and if the client still has `PATH.req`
    /// open for writing, a reader of `PATH.resp` is opened to hold the
    /// lock in [`finish_end`](Self::finish_end).
    fn begin_end(&self) -> Ending {
        let state = self.state();
        let State::Running { req, locked } = &*state else {
            return Ending { hold: None };
        };
        // A client that took no lock leaves no tail (see
        // `discard_and_see_client_gone`): the lock held now may be a
        // waiting utp client's.
        if discard_and_see_client_gone(req) || !locked {
            return Ending { hold: None };
        }
        let (path, id) = &self.resp;
        let hold = match open(path, OFlags::RDONLY) {
            // The listener has closed and removed the pair: no next client.
            Err(Errno::NOENT) => return Ending { hold: None },
            opened => opened
                .map_err(|e| Error::io(format!("open {}", path.display()), e))
                .and_then(|fd| same_fifo(fd, path, *id)),
        };
        match hold {
            Ok(hold) => Ending { hold: Some(hold) },
            Err(error) => {
                log::warn!(
                    "{}: cannot hold the next client back while the last one still writes \
                     ({error}); its later bytes may start a session that fails",
                    path.display()
                );
                Ending { hold: None }
            }
        }
    }

    /// The second half, once the session has closed `PATH.resp` (its
    /// client reads end-of-file): the slot is free, or in its tail until
    /// the client's writer is closed.
    fn finish_end(&self, ending: Ending) {
        let mut state = self.state();
        let taken = std::mem::replace(&mut *state, State::Free);
        if let (State::Running { req, .. }, Some(hold)) = (taken, ending.hold) {
            // Refused while a new client tests the lock: that client holds
            // `PATH.req`'s lock, so the last one has let go of it, and of
            // its writer before that. No tail then.
            if rustix::fs::flock(&hold, FlockOperation::NonBlockingLockExclusive).is_ok() {
                *state = State::Tail { req, _hold: hold };
            }
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Waits until no session holds the pair, ending a tail whose client has
    /// gone (looking every [`TAIL_LOOK`]); `false` if `deadline` passes first.
    pub(super) fn wait_free(&self, deadline: Deadline) -> bool {
        loop {
            let mut state = self.state();
            if matches!(*state, State::Running { .. }) {
                let running = |s: &mut State| matches!(s, State::Running { .. });
                state = match deadline.remaining() {
                    None => self
                        .changed
                        .wait_while(state, running)
                        .unwrap_or_else(PoisonError::into_inner),
                    Some(left) => {
                        self.changed
                            .wait_timeout_while(state, left, running)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                };
                if matches!(*state, State::Running { .. }) {
                    return false;
                }
            }
            match &*state {
                State::Free => return true,
                State::Running { .. } => continue,
                State::Tail { req, .. } if discard_and_see_client_gone(req) => {
                    // Nobody else can have written: the next client waits
                    // for the lock the tail's `hold` lets go of here.
                    *state = State::Free;
                    drop(state);
                    self.changed.notify_all();
                    return true;
                }
                State::Tail { .. } => {}
            }
            drop(state);
            // Neither the writer's end nor the lock let go wakes anything
            // that is not a `poll` (see `discard`): look again in a while.
            let look = deadline.remaining().map_or(TAIL_LOOK, |d| d.min(TAIL_LOOK));
            if look.is_zero() {
                return false;
            }
            std::thread::sleep(look);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    /// A slot for a scratch FIFO pair, and that pair's request FIFO opened
    /// for reading (the listener's lasting reader) and for writing (a client).
    struct Pair {
        base: String,
        slot: Arc<SessionSlot>,
    }

    impl Pair {
        fn new(name: &str) -> Pair {
            static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = COUNT.fetch_add(1, Ordering::Relaxed);
            let base = format!("/tmp/utp-slot-{name}-{}-{n}", std::process::id());
            for suffix in [".req", ".resp"] {
                rustix::fs::mkfifoat(
                    rustix::fs::CWD,
                    format!("{base}{suffix}").as_str(),
                    Mode::from_raw_mode(0o600),
                )
                .unwrap();
            }
            let resp = PathBuf::from(format!("{base}.resp"));
            let Some(Found::Fifo { id, .. }) = lookup(&resp) else {
                panic!("no FIFO at {}", resp.display());
            };
            Pair {
                slot: Arc::new(SessionSlot::new(resp, id)),
                base,
            }
        }

        fn open(&self, suffix: &str, flags: OFlags) -> OwnedFd {
            open(Path::new(&format!("{}{suffix}", self.base)), flags).unwrap()
        }

        /// A session starts: the listener's lasting reader of `PATH.req`
        /// (returned) goes to the slot, and a client opens `PATH.req` for
        /// writing, with a utp client's hand-off lock if `locked`.
        fn start(&self, locked: bool) -> (OwnedFd, Client) {
            let reader = self.open(".req", OFlags::RDONLY);
            let lock = locked.then(|| {
                let lock = self.open(".req", OFlags::RDONLY);
                rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).unwrap();
                lock
            });
            let writer = self.open(".req", OFlags::WRONLY);
            self.slot.take(reader.try_clone().unwrap(), locked);
            (
                reader,
                Client {
                    _lock: lock,
                    writer,
                },
            )
        }
    }

    /// A client's descriptors of `PATH.req`.
    struct Client {
        _lock: Option<OwnedFd>,
        writer: OwnedFd,
    }

    impl Drop for Pair {
        fn drop(&mut self) {
            for suffix in [".req", ".resp"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.base));
            }
        }
    }

    fn zero() -> Deadline {
        Deadline::after(Some(Duration::ZERO))
    }

    #[test]
    fn a_free_slot_is_free_at_once_and_a_taken_one_times_out() {
        let pair = Pair::new("free");
        let slot = &pair.slot;
        assert!(slot.wait_free(zero()));
        slot.take(pair.open(".req", OFlags::RDONLY), false);
        assert!(slot.is_taken());
        let started = Instant::now();
        assert!(!slot.wait_free(Deadline::after(Some(Duration::from_millis(20)))));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    /// The waiter wakes when the session ends, not at its deadline.
    #[test]
    fn the_end_of_a_session_wakes_the_waiter() {
        let pair = Pair::new("wake");
        let slot = pair.slot.clone();
        slot.take(pair.open(".req", OFlags::RDONLY), false);
        // A client came and went.
        drop(pair.open(".req", OFlags::WRONLY));
        let ender = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                slot.end(|| ());
            })
        };
        let started = Instant::now();
        assert!(slot.wait_free(Deadline::after(Some(Duration::from_secs(30)))));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(!slot.is_taken());
        ender.join().unwrap();
    }

    /// A session ended while its client still writes leaves a tail: the
    /// slot stays taken and `PATH.resp` locked (the next client waits),
    /// the old client's later bytes are not read, and once its writer is
    /// closed the slot is free, the bytes gone and the lock let go.
    #[test]
    fn a_session_ended_under_a_writing_client_frees_the_slot_when_it_leaves() {
        let pair = Pair::new("tail");
        let slot = pair.slot.clone();
        let (reader, client) = pair.start(true);
        let client_resp = pair.open(".resp", OFlags::RDONLY);
        rustix::io::write(&client.writer, b"unread before the end").unwrap();
        let server_resp = pair.open(".resp", OFlags::WRONLY);
        rustix::fs::flock(&server_resp, FlockOperation::NonBlockingLockExclusive).unwrap();

        slot.end(|| {
            assert_eq!(rustix::io::ioctl_fionread(&reader).unwrap(), 0, "discarded");
            drop(server_resp);
        });
        assert!(slot.is_taken(), "a tail while the client writes");
        rustix::io::write(&client.writer, b"sent after the end").unwrap();
        assert!(!slot.wait_free(zero()));
        let locked = rustix::fs::flock(&client_resp, FlockOperation::NonBlockingLockShared);
        assert_eq!(locked, Err(Errno::WOULDBLOCK), "the next client waits");
        assert_eq!(
            rustix::io::ioctl_fionread(&reader).unwrap(),
            0,
            "thrown away"
        );
        rustix::io::write(&client.writer, b"more").unwrap();

        let waiter = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                slot.wait_free(Deadline::after(Some(Duration::from_secs(30))))
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        drop(client.writer);
        assert!(waiter.join().unwrap(), "free once the writer is closed");
        assert!(!slot.is_taken());
        assert_eq!(
            rustix::io::ioctl_fionread(&reader).unwrap(),
            0,
            "thrown away"
        );
        rustix::fs::flock(&client_resp, FlockOperation::NonBlockingLockShared)
            .expect("the lock is let go");
    }

    /// A client that holds no hand-off lock (the tutorial's) leaves no
    /// tail, writer or not: the next such client could come before it
    /// goes, and would wait for ever to open `PATH.resp`. Nor when a utp
    /// client holds the lock as the session ends, waiting for its turn:
    /// the tail would wait for the lockless writer while the utp client
    /// waited for the tail.
    #[test]
    fn a_session_of_a_client_without_the_lock_leaves_no_tail() {
        for utp_client_waits in [false, true] {
            let pair = Pair::new("nolock");
            let slot = &pair.slot;
            let (_reader, lockless) = pair.start(false);
            let waiting = utp_client_waits.then(|| {
                let lock = pair.open(".req", OFlags::RDONLY);
                rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).unwrap();
                lock
            });
            slot.end(|| ());
            assert!(!slot.is_taken(), "a utp client waiting: {utp_client_waits}");
            drop((lockless, waiting));
        }
    }

    /// The slot never polls `PATH.req`: a pipe polled once makes every
    /// later write into it wake its wait queue (slower streams).
    #[test]
    fn ending_a_session_does_not_poll_the_request_fifo() {
        let pair = Pair::new("nopoll");
        let slot = &pair.slot;
        let (_reader, client) = pair.start(true);
        let polls = || crate::transport::wait::POLLS.with(|n| n.get());
        let before = polls();
        slot.end(|| ());
        assert!(slot.is_taken());
        assert!(!slot.wait_free(zero()));
        drop(client.writer);
        assert!(slot.wait_free(zero()));
        assert_eq!(polls(), before);
    }

    /// A client whose writer was already closed leaves no tail.
    #[test]
    fn a_session_ended_after_its_client_left_frees_the_slot_at_once() {
        let pair = Pair::new("gone");
        let slot = &pair.slot;
        let (reader, client) = pair.start(true);
        rustix::io::write(&client.writer, b"last words").unwrap();
        drop(client);
        slot.end(|| ());
        assert!(!slot.is_taken());
        assert!(slot.wait_free(zero()));
        assert_eq!(rustix::io::ioctl_fionread(&reader).unwrap(), 0, "discarded");
    }
}
