//! The publisher's rendezvous thread: admits subscribers (credentials
//! checked, control block made, descriptors passed), answers `INSPECT`,
//! and notices departed subscribers within [`LIVENESS_PERIOD`] (socket
//! hang-up, `kill(pid, 0)`, or the subscriber's own `CLOSED` state).

use super::inspect::{Report, SubscriberStatus};
use super::layout::{self, control, state};
use super::member::Member;
use super::memory::{self, CONTROL_SEALS, Mapping};
use super::options::{Policy, Wait};
use super::registry::Registry;
use super::ring::Ring;
use super::wire::{self, Accept, Subscribe};
use crate::error::{Error, Result};
use crate::frame::message_type;
use crate::{DeniedReason, ProtocolReason};
use rustix::event::{PollFd, PollFlags, poll};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// How often liveness is checked: departures are noticed within this (plus scheduling).
pub const LIVENESS_PERIOD: Duration = Duration::from_millis(20);
/// How long a connecting peer has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Most handshakes in progress at once; further connections are closed at once.
pub const MAX_PENDING: usize = 16;

/// Everything the rendezvous thread needs.
#[derive(Debug)]
pub struct Rendezvous {
    /// Bound, non-blocking.
    pub listener: UnixListener,
    /// Shared with the publisher.
    pub registry: Arc<Registry>,
    /// Shared with the publisher (read-only use here: tail, geometry).
    pub ring: Arc<Ring>,
    /// The data region, reopened read-only: what subscribers receive.
    pub data_ro: OwnedFd,
    /// Admission limit.
    pub max_subscribers: usize,
    /// Uids admitted besides our own.
    pub allow_uids: Vec<u32>,
    /// Endpoint, for messages.
    pub endpoint: String,
}

impl Rendezvous {
    /// Runs until the registry's stop flag is set; then hangs up on everyone.
    /// Each request is served on its own short-lived thread (at most
    /// [`MAX_PENDING`] at once), so a peer that connects and says nothing
    /// delays no one's admission and no departure.
    pub fn run(self) {
        let this = Arc::new(self);
        let next_id = Arc::new(AtomicU32::new(1));
        let pending = Arc::new(AtomicUsize::new(0));
        while !this.registry.stopping() {
            let (_, members) = this.registry.snapshot();
            let mut fds = Vec::with_capacity(members.len() + 1);
            fds.push(PollFd::new(&this.listener, PollFlags::IN));
            for m in &members {
                fds.push(PollFd::new(&m.socket, PollFlags::IN | PollFlags::RDHUP));
            }
            let period = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: LIVENESS_PERIOD.as_nanos() as i64,
            };
            let _ = poll(&mut fds, Some(&period));
            let listener_ready = !fds[0].revents().is_empty();
            let hung_up: Vec<bool> = fds[1..].iter().map(|f| !f.revents().is_empty()).collect();
            drop(fds);
            for (m, hup) in members.iter().zip(hung_up) {
                if hup && peer_hung_up(&m.socket) {
                    m.remove(
                        "its rendezvous socket hung up (process exited or closed)",
                        false,
                    );
                }
                check_alive(m);
            }
            if listener_ready {
                while let Ok((stream, _)) = this.listener.accept() {
                    if pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
                        pending.fetch_sub(1, Ordering::AcqRel);
                        continue; // dropped: the peer sees end-of-file
                    }
                    let (me, ids, count) = (this.clone(), next_id.clone(), pending.clone());
                    let spawned = std::thread::Builder::new()
                        .name("utp-pubsub-handshake".into())
                        .spawn(move || {
                            if let Err(e) = me.serve(stream, &ids) {
                                log::debug!("{}: rendezvous request failed: {e}", me.endpoint);
                            }
                            count.fetch_sub(1, Ordering::AcqRel);
                        });
                    if spawned.is_err() {
                        pending.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            }
            this.registry.sweep();
        }
        while pending.load(Ordering::Acquire) > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (_, members) = this.registry.snapshot();
        for m in members {
            m.remove("the publisher closed", true);
        }
        this.registry.sweep();
    }

    fn serve(&self, stream: UnixStream, next_id: &AtomicU32) -> Result<()> {
        stream
            .set_nonblocking(false)
            .and_then(|_| stream.set_read_timeout(Some(REQUEST_TIMEOUT)))
            .and_then(|_| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
            .map_err(|e| Error::io("configuring a rendezvous connection", e))?;
        let cred = rustix::net::sockopt::socket_peercred(&stream)
            .map_err(|e| Error::io("reading the subscriber's credentials", e))?;
        let me = rustix::process::geteuid();
        if cred.uid != me && !self.allow_uids.contains(&cred.uid.as_raw()) {
            let why = format!(
                "uid {} may not subscribe to a publisher of uid {}",
                cred.uid.as_raw(),
                me.as_raw()
            );
            let _ = wire::send(&stream, message_type::ERROR, why.as_bytes(), &[]);
            return Err(Error::denied(DeniedReason::Untrusted, why));
        }
        let (header, payload, fds) = wire::recv(&stream, None)?;
        match header.message_type {
            wire::INSPECT => {
                let text = self.report().encode();
                wire::send(&stream, wire::REPORT, text.as_bytes(), &[])
            }
            wire::SUBSCRIBE => {
                let request = match Subscribe::decode(&payload) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ =
                            wire::send(&stream, message_type::ERROR, e.to_string().as_bytes(), &[]);
                        return Err(e);
                    }
                };
                if self.registry.count() >= self.max_subscribers {
                    let why = format!(
                        "{} already has {} subscribers",
                        self.endpoint, self.max_subscribers
                    );
                    let _ = wire::send(&stream, message_type::ERROR, why.as_bytes(), &[]);
                    return Err(Error::denied(DeniedReason::Refused, why));
                }
                let notify = match (request.notify, fds.into_iter().next()) {
                    (false, _) => None,
                    (true, Some(fd)) => match checked_eventfd(fd) {
                        Ok(fd) => Some(fd),
                        Err(e) => {
                            let _ = wire::send(
                                &stream,
                                message_type::ERROR,
                                e.to_string().as_bytes(),
                                &[],
                            );
                            return Err(e);
                        }
                    },
                    (true, None) => {
                        let why = "SUBSCRIBE asked for notification but carried no eventfd";
                        let _ = wire::send(&stream, message_type::ERROR, why.as_bytes(), &[]);
                        return Err(Error::protocol(ProtocolReason::Unexpected, why));
                    }
                };
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                self.admit(
                    stream,
                    request,
                    id,
                    cred.pid.as_raw_nonzero().get() as u32,
                    notify,
                )
            }
            other => {
                let why = format!("unexpected rendezvous frame type 0x{other:02x}");
                let _ = wire::send(&stream, message_type::ERROR, why.as_bytes(), &[]);
                Err(Error::protocol(ProtocolReason::Unexpected, why))
            }
        }
    }

    fn admit(
        &self,
        stream: UnixStream,
        request: Subscribe,
        id: u32,
        pid: u32,
        notify: Option<OwnedFd>,
    ) -> Result<()> {
        let fd = memory::create_memfd(&format!("utp-pubsub-control-{id}"), control::LEN as u64)?;
        let map = Mapping::map(&fd, control::LEN, true)?;
        memory::seal(fd.as_fd(), CONTROL_SEALS)?;
        let start = self.ring.tail();
        map.u32(control::VERSION)
            .store(layout::LAYOUT_VERSION, Ordering::Relaxed);
        map.u32(control::ID).store(id, Ordering::Relaxed);
        map.u32(control::POLICY)
            .store(request.policy, Ordering::Relaxed);
        map.u32(control::WAIT)
            .store(request.wait, Ordering::Relaxed);
        map.u32(control::PID).store(pid, Ordering::Relaxed);
        map.u64(control::BLOCK_TIMEOUT_NS)
            .store(request.block_timeout_ns, Ordering::Relaxed);
        map.u32(control::STATE)
            .store(state::ACTIVE, Ordering::Relaxed);
        map.u64(control::CURSOR).store(start, Ordering::Relaxed);
        map.u32(control::MAGIC)
            .store(layout::CONTROL_MAGIC, Ordering::Release);
        let accept = Accept {
            id,
            slot_count: self.ring.slot_count(),
            slot_size: self.ring.slot_size(),
            region_len: self.ring.map().byte_len() as u64,
            start,
            publisher_pid: std::process::id(),
        };
        wire::send(
            &stream,
            wire::ACCEPT,
            &accept.encode(),
            &[self.data_ro.as_fd(), fd.as_fd()],
        )?;
        stream
            .set_nonblocking(true)
            .map_err(|e| Error::io("configuring a subscriber connection", e))?;
        let policy = if request.policy == 1 {
            Policy::Block {
                timeout: Duration::from_nanos(request.block_timeout_ns),
            }
        } else {
            Policy::Drop
        };
        let wait = Wait::from_code(request.wait).unwrap_or(Wait::Adaptive);
        let member = Member::new(id, pid, policy, wait, map, stream, start, notify);
        self.registry.add(Arc::new(member));
        log::debug!(
            "{}: subscriber {id} (pid {pid}) joined at {start}",
            self.endpoint
        );
        Ok(())
    }

    fn report(&self) -> Report {
        let tail = self.ring.tail();
        let (_, members) = self.registry.snapshot();
        Report {
            publisher_pid: std::process::id(),
            transport: "shm".into(),
            slots: self.ring.slot_count() as u64,
            slot_size: self.ring.slot_size() as u64,
            published: tail,
            subscribers: members
                .iter()
                .map(|m| {
                    let (received, lost) = m.counts();
                    let cursor = m.cursor();
                    SubscriberStatus {
                        id: m.id,
                        pid: m.pid,
                        policy: match m.policy {
                            Policy::Drop => "drop".into(),
                            Policy::Block { .. } => "block".into(),
                        },
                        joined_at: m.joined_at,
                        cursor,
                        lag: tail.saturating_sub(cursor),
                        received,
                        lost,
                    }
                })
                .collect(),
            departed: self
                .registry
                .departed()
                .into_iter()
                .map(|d| (d.id, d.pid, d.reason))
                .collect(),
        }
    }
}

/// True when the subscriber's socket is at end-of-file or broken; bytes it
/// sent (it has nothing to say) are read and discarded.
/// At most 16 reads per round, so a subscriber that floods its socket
/// cannot keep this thread from everyone else.
pub(super) fn peer_hung_up(socket: &UnixStream) -> bool {
    let mut buf = [0u8; 256];
    for _ in 0..16 {
        match rustix::io::read(socket, &mut buf) {
            Ok(0) => return true,
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return false,
            Err(_) => return true,
        }
    }
    false
}

/// Accepts only an eventfd (a pipe or socket here could block the
/// publisher's writes), and makes it non-blocking.
fn checked_eventfd(fd: OwnedFd) -> Result<OwnedFd> {
    let link = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .map_err(|e| Error::io("checking the subscriber's notification descriptor", e))?;
    if link.as_os_str() != "anon_inode:[eventfd]" {
        return Err(Error::protocol(
            ProtocolReason::Unexpected,
            format!(
                "the notification descriptor is {}, not an eventfd",
                link.display()
            ),
        ));
    }
    let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| Error::io("reading eventfd flags", e))?;
    rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| Error::io("making the eventfd non-blocking", e))?;
    Ok(fd)
}

fn check_alive(m: &Member) {
    if m.state() == state::CLOSED {
        m.remove("it unsubscribed", false);
    } else if let Some(pid) = rustix::process::Pid::from_raw(m.pid as i32)
        && rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
    {
        m.remove("its process no longer exists", false);
    }
}
