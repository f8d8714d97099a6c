//! The shared-memory subscriber: maps the data region read-only and its
//! own control block read-write, and reads messages in place.

use super::dir;
use super::inspect::Report;
use super::layout::{self, control, data, state};
use super::memory::{self, CONTROL_SEALS, Mapping};
use super::options::{ADAPTIVE_SPIN, Policy, SubscriberOptions, Wait};
use super::protocol;
use super::ring::{Probe, Ring};
use super::wire::{self, Accept, Subscribe};
use crate::error::{Error, Result};
use crate::frame::Header;
use crate::seqlock::futex;
use crate::{DeniedReason, GoneReason, ProtocolReason};
use rustix::event::EventfdFlags;
use rustix::fs::SealFlags;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

/// Longest single futex sleep: liveness is re-checked between slices.
const SLICE: Duration = Duration::from_millis(10);
/// Spin iterations between cheap liveness checks.
const SPIN_CHECK: u32 = 1 << 12;
/// Seals the data region must carry for a subscriber to trust its size.
const REQUIRED_DATA_SEALS: SealFlags = SealFlags::SHRINK.union(SealFlags::GROW);

/// A shared-memory subscriber.
#[derive(Debug)]
pub struct ShmSubscriber {
    ring: Ring,
    control: Mapping,
    socket: UnixStream,
    options: SubscriberOptions,
    cursor: u64,
    received: u64,
    lost: u64,
    id: u32,
    publisher_pid: u32,
    endpoint: String,
    gone: Option<(crate::error::GoneReason, String)>,
    last_check: Instant,
    polls: u32,
    notify: Option<OwnedFd>,
    armed: bool,
    /// The timeout of the call in progress, for its error message.
    timeout: Option<Duration>,
}

/// Connects to publisher `name`'s rendezvous socket and checks that it
/// belongs to our own user.
fn connect_socket(path: &Path, endpoint: &str, owner: u32) -> Result<UnixStream> {
    let timeout = super::rendezvous::REQUEST_TIMEOUT * 5;
    let stream =
        crate::transport::unix::connect_path(path, timeout).map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => Error::Timeout {
                waiting_for: "the publisher to accept (its accept queue stayed full)",
                after: timeout,
            },
            std::io::ErrorKind::PermissionDenied => Error::denied(
                DeniedReason::Untrusted,
                format!("{endpoint}: {} is not ours to reach: {e}", path.display()),
            ),
            _ => Error::NotFound {
                endpoint: endpoint.to_string(),
                reason: format!("no publisher at {}: {e}", path.display()),
            },
        })?;
    let cred = rustix::net::sockopt::socket_peercred(&stream)
        .map_err(|e| Error::io("reading the publisher's credentials", e))?;
    if cred.uid.as_raw() != owner {
        return Err(Error::denied(
            DeniedReason::Untrusted,
            format!(
                "{endpoint}: the publisher runs as uid {}, not {owner}",
                cred.uid.as_raw()
            ),
        ));
    }
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| Error::io("configuring the rendezvous connection", e))?;
    Ok(stream)
}

/// Asks the publisher at a rendezvous socket path for its report.
pub fn inspect_path(path: &Path, owner: u32) -> Result<Report> {
    let stream = connect_socket(path, &path.display().to_string(), owner)?;
    wire::send(&stream, wire::INSPECT, &[], &[])?;
    let (_, text, _) = wire::recv(&stream, Some(wire::REPORT))?;
    Report::decode(&String::from_utf8_lossy(&text))
}

/// Asks publisher `name` (of uid `owner`, our own if `None`) for its report.
pub fn inspect(name: &str, owner: Option<u32>) -> Result<Report> {
    let (path, owner) = locate(name, owner)?;
    inspect_path(&path, owner)
}

/// Where publisher `name` listens and which uid it must run as: another
/// user's shared directory, else our private directory, else our own
/// shared directory (a publisher of ours that admits other users too).
fn locate(name: &str, owner: Option<u32>) -> Result<(std::path::PathBuf, u32)> {
    let me = rustix::process::geteuid().as_raw();
    match owner {
        Some(uid) if uid != me => Ok((dir::shared_socket_path(name, uid, false)?, uid)),
        _ => {
            let private = dir::socket_path(name)?;
            if !private.exists()
                && let Ok(shared) = dir::shared_socket_path(name, me, false)
                && shared.exists()
            {
                return Ok((shared, me));
            }
            Ok((private, me))
        }
    }
}

impl ShmSubscriber {
    /// Subscribes to publisher `name`.
    pub fn connect(
        name: &str,
        options: SubscriberOptions,
        endpoint: String,
    ) -> Result<ShmSubscriber> {
        let (path, owner) = locate(name, options.publisher_uid)?;
        let socket = connect_socket(&path, &endpoint, owner)?;
        let (policy, block_timeout_ns) = match options.policy {
            Policy::Drop => (0, 0),
            Policy::Block { timeout } => (1, timeout.as_nanos().min(u64::MAX as u128) as u64),
        };
        let request = Subscribe {
            policy,
            wait: options.wait.code(),
            block_timeout_ns,
            notify: options.notify,
        };
        let notify = if options.notify {
            Some(
                rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                    .map_err(|e| Error::io("creating the notification eventfd", e))?,
            )
        } else {
            None
        };
        let fds: Vec<_> = notify.iter().map(|fd| fd.as_fd()).collect();
        // A refusal (ERROR) may already be on its way while our request
        // fails to go out: read the answer either way, it says why.
        let sent = wire::send(&socket, wire::SUBSCRIBE, &request.encode(), &fds);
        let (_, payload, fds) = match wire::recv(&socket, Some(wire::ACCEPT)) {
            Ok(reply) => reply,
            Err(e @ Error::Denied { .. }) => return Err(e),
            Err(e) => return Err(sent.err().unwrap_or(e)),
        };
        let accept = Accept::decode(&payload)?;
        let [data_fd, control_fd] = <[_; 2]>::try_from(fds).map_err(|fds: Vec<_>| {
            Error::protocol(
                ProtocolReason::Unexpected,
                format!("ACCEPT carried {} descriptors, expected 2", fds.len()),
            )
        })?;
        let len = layout::region_len(accept.slot_count, accept.slot_size)
            .filter(|&l| l == accept.region_len)
            .ok_or_else(|| {
                Error::protocol(
                    ProtocolReason::Corrupt,
                    format!("ACCEPT with a bad geometry: {accept:?}"),
                )
            })?;
        memory::check_sealed(
            data_fd.as_fd(),
            REQUIRED_DATA_SEALS,
            len,
            "pub/sub data region",
        )?;
        memory::check_sealed(
            control_fd.as_fd(),
            CONTROL_SEALS,
            control::LEN as u64,
            "pub/sub control block",
        )?;
        let ring = Ring::attach(
            Mapping::map(&data_fd, len as usize, false)?,
            accept.slot_count,
            accept.slot_size,
        )?;
        let control = Mapping::map(&control_fd, control::LEN, true)?;
        if control.u32(control::MAGIC).load(Ordering::Acquire) != layout::CONTROL_MAGIC {
            return Err(Error::protocol(
                ProtocolReason::Corrupt,
                "the control block has no UTPC magic",
            ));
        }
        socket
            .set_nonblocking(true)
            .map_err(|e| Error::io("configuring the rendezvous connection", e))?;
        Ok(ShmSubscriber {
            ring,
            control,
            socket,
            options,
            cursor: accept.start,
            received: 0,
            lost: 0,
            id: accept.id,
            publisher_pid: accept.publisher_pid,
            endpoint,
            gone: None,
            last_check: Instant::now(),
            polls: 0,
            notify,
            armed: false,
            timeout: None,
        })
    }

    /// The next message number this subscriber will read.
    pub fn position(&self) -> u64 {
        self.cursor
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Messages lost so far (overrun by the publisher).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The publisher's id for this subscriber.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The ring (for views).
    pub(super) fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Waits for the message at the cursor; returns its header and the
    /// number of messages skipped just before it (overrun).
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<(Header, u64)> {
        if timeout == Some(Duration::ZERO) {
            return self.try_next()?.ok_or(Error::Timeout {
                waiting_for: "a published message",
                after: Duration::ZERO,
            });
        }
        self.timeout = timeout;
        let mut skipped = 0u64;
        // The clock is read only once there is something to wait for: a
        // message already there, or a poll, costs no clock read.
        let mut clock: Option<(Option<Instant>, Instant)> = None;
        let mut spins = 0u32;
        loop {
            if let Some(h) = self.look(&mut skipped)? {
                return Ok((h, skipped));
            }
            let (deadline, started) = *clock.get_or_insert_with(|| {
                let now = Instant::now();
                (timeout.map(|t| now + t), now)
            });
            spins = spins.wrapping_add(1);
            let sleep = match self.options.wait {
                Wait::Spin => false,
                Wait::Block => true,
                Wait::Adaptive => started.elapsed() >= ADAPTIVE_SPIN,
            };
            if sleep {
                self.sleep(deadline)?;
            } else if spins % SPIN_CHECK == 0 {
                self.check(deadline)?;
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// The message at the cursor if it is there now (its header and the
    /// messages skipped just before it), `None` if not: a poll, without
    /// the timeout error a zero-timeout [`next`](Self::next) builds.
    #[inline]
    pub fn try_next(&mut self) -> Result<Option<(Header, u64)>> {
        self.timeout = Some(Duration::ZERO);
        let mut skipped = 0u64;
        if let Some(h) = self.look(&mut skipped)? {
            return Ok(Some((h, skipped)));
        }
        // Nothing there now. Liveness is still checked every SPIN_CHECK
        // polls, so a poller learns of a dead publisher.
        self.polls = self.polls.wrapping_add(1);
        if self.polls % SPIN_CHECK == 0 {
            self.check(None)?;
        }
        Ok(None)
    }

    /// One look at the cursor: the message's header if it is there (past
    /// any lap, counted into `skipped`), `None` if not yet, an error if
    /// the publisher is known to be gone.
    #[inline]
    fn look(&mut self, skipped: &mut u64) -> Result<Option<Header>> {
        loop {
            match self.ring.probe(self.cursor) {
                Probe::Ready(h) => {
                    if std::mem::take(&mut self.armed) {
                        self.control.u64(control::SLEEP).store(0, Ordering::Relaxed);
                    }
                    return Ok(Some(h));
                }
                Probe::Lapped => *skipped += self.skip(),
                Probe::Empty => break,
            }
        }
        if let Some((reason, why)) = &self.gone {
            return Err(Error::peer_gone(*reason, why.clone()));
        }
        Ok(None)
    }

    /// The notification eventfd, if subscribed with `?notify=eventfd`.
    pub fn notify_fd(&self) -> Option<BorrowedFd<'_>> {
        self.notify.as_ref().map(|fd| fd.as_fd())
    }

    /// The rendezvous socket: readable or hung up when the publisher ends.
    pub fn liveness_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Drains the eventfd and arms the publisher's signal (the same
    /// Dekker pairing as a futex sleep). True if a message is already there.
    pub fn arm(&mut self) -> Result<bool> {
        let Some(fd) = &self.notify else {
            return Err(Error::protocol(
                ProtocolReason::Unsupported,
                "arm needs a subscriber connected with ?notify=eventfd",
            ));
        };
        let mut counter = [0u8; 8];
        let _ = rustix::io::read(fd, &mut counter);
        if self.ring.closed() || self.gone.is_some() {
            return Ok(true);
        }
        let sleep_word = self.control.u64(control::SLEEP);
        protocol::prepare_sleep(self.ring.wake(), sleep_word);
        if self.ring.probe(self.cursor) != Probe::Empty {
            sleep_word.store(0, Ordering::Relaxed);
            return Ok(true);
        }
        self.armed = true;
        Ok(false)
    }

    /// Skips past a lap: resumes at the oldest message a quarter ring
    /// away from being overwritten, and counts what was skipped.
    fn skip(&mut self) -> u64 {
        let resume = self.ring.resume_after_lap(self.cursor);
        let skipped = resume - self.cursor;
        self.lost += skipped;
        self.cursor = resume;
        self.control
            .u64(control::LOST)
            .store(self.lost, Ordering::Relaxed);
        self.control
            .u64(control::CURSOR)
            .store(self.cursor, Ordering::Release);
        skipped
    }

    /// Moves past the message at the cursor: received if it was intact
    /// when the caller finished reading, lost otherwise.
    pub fn advance(&mut self, intact: bool) {
        if intact {
            self.received += 1;
            self.control
                .u64(control::RECEIVED)
                .store(self.received, Ordering::Relaxed);
        } else {
            self.lost += 1;
            self.control
                .u64(control::LOST)
                .store(self.lost, Ordering::Relaxed);
        }
        self.cursor += 1;
        self.control
            .u64(control::CURSOR)
            .store(self.cursor, Ordering::Release);
        if matches!(self.options.policy, Policy::Block { .. }) {
            fence(Ordering::SeqCst);
            if self
                .control
                .u32(control::PUBLISHER_WAITING)
                .load(Ordering::Relaxed)
                != 0
            {
                futex::wake_all(self.control.addr(control::CURSOR));
            }
        }
    }

    /// Whether message `n` is still intact (not overwritten).
    pub fn intact(&self, n: u64) -> bool {
        self.ring.intact(n)
    }

    fn sleep(&mut self, deadline: Option<Instant>) -> Result<()> {
        self.check(deadline)?;
        let sleep_word = self.control.u64(control::SLEEP);
        let wake = protocol::prepare_sleep(self.ring.wake(), sleep_word);
        if self.ring.probe(self.cursor) == Probe::Empty && !self.ring.closed() {
            let slice = deadline.map_or(SLICE, |d| {
                d.saturating_duration_since(Instant::now()).min(SLICE)
            });
            futex::wait(self.ring.map().addr(data::WAKE), wake, slice);
        }
        sleep_word.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Deadline and liveness: the cheap checks every time, the system
    /// calls at most every millisecond.
    fn check(&mut self, deadline: Option<Instant>) -> Result<()> {
        if self.ring.closed() {
            return Err(self.gone(GoneReason::Closed, "the publisher closed".into()));
        }
        if self.control.u32(control::STATE).load(Ordering::Acquire) == state::EVICTED {
            return Err(self.gone(
                GoneReason::Evicted,
                "the publisher evicted this subscriber (block-policy timeout)".into(),
            ));
        }
        if let Some(d) = deadline
            && Instant::now() >= d
        {
            return Err(Error::Timeout {
                waiting_for: "a published message",
                after: self.timeout.unwrap_or_default(),
            });
        }
        if self.last_check.elapsed() < Duration::from_millis(1) {
            return Ok(());
        }
        self.last_check = Instant::now();
        let mut buf = [0u8; 64];
        match rustix::io::read(&self.socket, &mut buf) {
            Ok(0) => {
                return Err(self.gone(
                    GoneReason::Died,
                    "the publisher hung up (it exited or died)".into(),
                ));
            }
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) | Ok(_) => {}
            Err(e) => {
                return Err(self.gone(
                    GoneReason::Died,
                    format!("the publisher's socket failed: {e}"),
                ));
            }
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.publisher_pid as i32)
            && rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
        {
            return Err(self.gone(
                GoneReason::Died,
                format!("the publisher (pid {pid}) no longer exists"),
            ));
        }
        Ok(())
    }

    fn gone(&mut self, reason: GoneReason, why: String) -> Error {
        let msg = format!("{}: {why}", self.endpoint);
        self.gone = Some((reason, msg.clone()));
        Error::peer_gone(reason, msg)
    }
}

impl Drop for ShmSubscriber {
    fn drop(&mut self) {
        self.control
            .u32(control::STATE)
            .store(state::CLOSED, Ordering::Release);
        fence(Ordering::SeqCst);
        if self
            .control
            .u32(control::PUBLISHER_WAITING)
            .load(Ordering::Relaxed)
            != 0
        {
            futex::wake_all(self.control.addr(control::CURSOR));
        }
    }
}
