//! The event-driven half of [`Server`](super::Server): connections that can
//! be waited for without a thread of their own ([`Channel::readiness`]:
//! unix, tcp, fifo, pipe) sit in one epoll set between frames.
//!
//! - One **reactor** thread owns every parked connection and an epoll set
//!   (each descriptor armed one-shot). A readable connection is handed to a
//!   worker; every 100 ms it closes connections whose frame deadline passed
//!   (a started frame that did not finish) or that idled past their idle
//!   timeout.
//! - **Workers** (a pool that grows on demand up to the server's thread
//!   limit) read with a zero timeout, so a connection that has sent only
//!   part of a frame costs one non-blocking read and goes back to the
//!   reactor. After answering, a worker lingers briefly for the same
//!   client's next request, so a busy client is served like a dedicated
//!   thread; after a fair share it goes back into the queue.
//! - Parked connections cost their socket, the channel (a few hundred bytes;
//!   its receive buffer grows only with bytes received) and one epoll entry:
//!   no thread, no stack.
//! - At the connection limit a new client takes the place of the
//!   longest-idle parked connection, which is told why and closed; only when
//!   every connection is busy mid-request is a new one refused ("server busy").

use super::answer::{CloseLog, Limits, Next, answer, describe, refuse};
use super::server::{HandlerDebug, ServerStats, Shutdown};
use crate::channel::Channel;
use crate::error::Error;
use crate::frame::Frame;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::event::{EventfdFlags, Timespec, eventfd};
use rustix::io::Errno;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often parked connections are checked against their deadlines; also
/// the slack with which those deadlines are enforced.
const SWEEP: Duration = Duration::from_millis(100);
/// How long a worker waits for a client's next request before parking it.
const LINGER: Duration = Duration::from_millis(2);
/// Frames a worker answers for one client before letting others go first.
const FAIR_SHARE: u32 = 256;
/// Workers started as soon as jobs wait; more only when the queue stays
/// backed up across a sweep.
const CORE_WORKERS: usize = 4;
/// The epoll token of the wake-up eventfd.
const WAKE: u64 = u64::MAX;

/// Messages to the reactor.
enum ToReactor {
    /// A newly accepted connection.
    New(Box<dyn Channel>),
    /// A connection a worker is done with for now.
    Back {
        token: u64,
        channel: Box<dyn Channel>,
        last_active: Instant,
        /// It has more to read right away (its fair share ran out).
        more: bool,
    },
    /// A connection a worker closed.
    Gone,
    /// The process is out of descriptors: close the longest-idle connection.
    MakeRoom,
}

/// A connection handed to a worker.
struct Job {
    token: u64,
    channel: Box<dyn Channel>,
    last_active: Instant,
}

/// A connection waiting in the epoll set.
struct Parked {
    channel: Box<dyn Channel>,
    last_active: Instant,
}

/// What the accepting thread keeps of the reactor.
pub(super) struct ReactorHandle {
    to_reactor: Sender<ToReactor>,
    wake: Arc<OwnedFd>,
    draining: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ReactorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReactorHandle")
    }
}

/// Everything workers share.
struct Shared {
    close_log: CloseLog,
    handler: Arc<dyn HandlerDebug>,
    stats: Arc<ServerStats>,
    shutdown: Shutdown,
    limits: Limits,
    endpoint: String,
}

/// Settings of the event-driven part.
pub(super) struct ReactorConfig {
    pub(super) handler: Arc<dyn HandlerDebug>,
    pub(super) stats: Arc<ServerStats>,
    pub(super) shutdown: Shutdown,
    pub(super) limits: Limits,
    pub(super) endpoint: String,
    pub(super) max_clients: usize,
    pub(super) max_threads: usize,
}

impl ReactorHandle {
    /// Starts the reactor thread.
    pub(super) fn start(config: ReactorConfig) -> crate::Result<ReactorHandle> {
        let epoll = epoll::create(CreateFlags::CLOEXEC)
            .map_err(|e| Error::io("create the server's epoll set", e))?;
        let wake = Arc::new(
            eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                .map_err(|e| Error::io("create the server's wake-up eventfd", e))?,
        );
        epoll::add(&epoll, &*wake, EventData::new_u64(WAKE), EventFlags::IN)
            .map_err(|e| Error::io("watch the wake-up eventfd", e))?;
        let (to_reactor, from_outside) = crossbeam_channel::unbounded();
        let draining = Arc::new(AtomicBool::new(false));
        let (jobs, job_queue) = crossbeam_channel::unbounded();
        let reactor = Reactor {
            draining: draining.clone(),
            epoll,
            wake: wake.clone(),
            inbox: from_outside,
            back: to_reactor.clone(),
            jobs: Some(jobs),
            job_queue,
            parked: HashMap::new(),
            in_workers: 0,
            next_token: 0,
            max_clients: config.max_clients,
            max_threads: config.max_threads.max(1),
            workers: Vec::new(),
            idle_workers: Arc::new(AtomicUsize::new(0)),
            shared: Arc::new(Shared {
                close_log: CloseLog::default(),
                handler: config.handler,
                stats: config.stats,
                shutdown: config.shutdown,
                limits: config.limits,
                endpoint: config.endpoint,
            }),
        };
        let thread = std::thread::Builder::new()
            .name("utp-reactor".into())
            .spawn(move || reactor.run())
            .map_err(|e| Error::io("start the server's reactor thread", e))?;
        Ok(ReactorHandle {
            to_reactor,
            wake,
            draining,
            thread: Some(thread),
        })
    }

    /// Asks the reactor to close the longest-idle connection, because
    /// `accept` failed for want of descriptors.
    pub(super) fn make_room(&self) {
        let _ = self.to_reactor.send(ToReactor::MakeRoom);
        poke(&self.wake);
    }

    /// Hands a newly accepted connection to the reactor.
    pub(super) fn admit(&self, channel: Box<dyn Channel>) {
        let _ = self.to_reactor.send(ToReactor::New(channel));
        poke(&self.wake);
    }

    /// Waits for the reactor. After a shutdown it closes every parked
    /// connection, waits for the workers' current requests and joins them;
    /// when the listener ended by itself (`pipe:` serves one client) it
    /// serves the connections it has until they end.
    pub(super) fn finish(mut self) {
        self.draining.store(true, Ordering::SeqCst);
        poke(&self.wake);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn poke(wake: &OwnedFd) {
    let _ = rustix::io::write(wake, &1u64.to_ne_bytes());
}

struct Reactor {
    /// No more connections will come: stop once the last one ends.
    draining: Arc<AtomicBool>,
    epoll: OwnedFd,
    wake: Arc<OwnedFd>,
    inbox: Receiver<ToReactor>,
    back: Sender<ToReactor>,
    jobs: Option<Sender<Job>>,
    job_queue: Receiver<Job>,
    parked: HashMap<u64, Parked>,
    in_workers: usize,
    next_token: u64,
    max_clients: usize,
    max_threads: usize,
    workers: Vec<JoinHandle<()>>,
    idle_workers: Arc<AtomicUsize>,
    shared: Arc<Shared>,
}

impl Reactor {
    fn run(mut self) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        let mut next_sweep = Instant::now() + SWEEP;
        while !self.shared.shutdown.is_triggered() {
            if self.draining.load(Ordering::SeqCst)
                && self.parked.is_empty()
                && self.in_workers == 0
                && self.inbox.is_empty()
            {
                break;
            }
            let left = next_sweep.saturating_duration_since(Instant::now());
            let timeout = Timespec {
                tv_sec: 0,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                Some(&timeout),
            ) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => {
                    log::error!("{}: epoll_wait failed: {e}", self.shared.endpoint);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            for event in events.drain(..) {
                let token = event.data.u64();
                if token == WAKE {
                    let mut count = [0u8; 8];
                    let _ = rustix::io::read(&*self.wake, &mut count);
                } else if let Some(parked) = self.parked.remove(&token) {
                    self.dispatch(token, parked.channel, parked.last_active);
                }
            }
            self.take_messages();
            if Instant::now() >= next_sweep {
                self.sweep();
                next_sweep = Instant::now() + SWEEP;
            }
        }
        self.stop();
    }

    /// Handles new connections and connections coming back from workers.
    fn take_messages(&mut self) {
        loop {
            match self.inbox.try_recv() {
                Ok(ToReactor::New(channel)) => self.admit(channel),
                Ok(ToReactor::Back {
                    token,
                    channel,
                    last_active,
                    more,
                }) => {
                    self.in_workers -= 1;
                    if more {
                        self.dispatch(token, channel, last_active);
                    } else {
                        self.park(token, channel, last_active, false);
                    }
                }
                Ok(ToReactor::Gone) => self.in_workers -= 1,
                Ok(ToReactor::MakeRoom) => {
                    self.evict_longest_idle();
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    fn admit(&mut self, mut channel: Box<dyn Channel>) {
        if self.parked.len() + self.in_workers >= self.max_clients && !self.evict_longest_idle() {
            let who = describe(&channel.peer());
            log::warn!(
                "{}: refused client {who}: {} connections, all busy",
                self.shared.endpoint,
                self.max_clients
            );
            let reason = format!(
                "server busy: it holds at most {} connections and all are busy",
                self.max_clients
            );
            self.shared
                .stats
                .client_errors
                .fetch_add(1, Ordering::Relaxed);
            refuse(&mut *channel, &reason);
            return;
        }
        if log::log_enabled!(log::Level::Debug) {
            log::debug!("client {} connected", describe(&channel.peer()));
        }
        self.shared
            .stats
            .connections
            .fetch_add(1, Ordering::Relaxed);
        self.next_token += 1;
        let token = self.next_token;
        // A worker serves what is already there and ends with `try_recv`,
        // after which the readiness descriptor signals the next frame (the
        // contract of `Channel::readiness`; shm links arm their wake-up
        // only there). It then comes back to be parked.
        self.dispatch(token, channel, Instant::now());
    }

    /// Closes the parked connection idle the longest to make room; false
    /// when nothing is parked.
    fn evict_longest_idle(&mut self) -> bool {
        let Some((&token, _)) = self
            .parked
            .iter()
            .filter(|(_, p)| {
                p.channel
                    .readiness()
                    .is_some_and(|r| r.frame_deadline.is_none())
            })
            .min_by_key(|(_, p)| p.last_active)
            .or_else(|| self.parked.iter().min_by_key(|(_, p)| p.last_active))
        else {
            return false;
        };
        let mut parked = self.parked.remove(&token).expect("token just found");
        self.forget(&*parked.channel);
        let who = describe(&parked.channel.peer());
        let idle_for = parked.last_active.elapsed();
        self.shared
            .close_log
            .log(log::Level::Info, &self.shared.endpoint, || {
                format!("at the connection limit: closing {who}, idle for {idle_for:?}, to admit a new client")
            });
        refuse(
            &mut *parked.channel,
            "server full: closing the connection that was idle the longest to admit a new client",
        );
        true
    }

    /// Puts a connection in the epoll set until it is readable.
    fn park(&mut self, token: u64, channel: Box<dyn Channel>, last_active: Instant, new: bool) {
        let armed = {
            let Some(ready) = channel.readiness() else {
                log::error!("a channel without readiness reached the reactor");
                return;
            };
            let flags = EventFlags::IN | EventFlags::RDHUP | EventFlags::ONESHOT;
            let data = EventData::new_u64(token);
            let result = if new {
                epoll::add(&self.epoll, ready.fd, data, flags)
            } else {
                epoll::modify(&self.epoll, ready.fd, data, flags)
            };
            match result {
                Err(Errno::EXIST) => epoll::modify(&self.epoll, ready.fd, data, flags),
                Err(Errno::NOENT) => epoll::add(&self.epoll, ready.fd, data, flags),
                other => other,
            }
        };
        match armed {
            Ok(()) => {
                self.parked.insert(
                    token,
                    Parked {
                        channel,
                        last_active,
                    },
                );
            }
            Err(e) => log::warn!(
                "{}: cannot watch a connection ({e}); closing it",
                self.shared.endpoint
            ),
        }
    }

    /// Removes a connection's descriptor from the epoll set.
    fn forget(&self, channel: &dyn Channel) {
        if let Some(ready) = channel.readiness() {
            let _ = epoll::delete(&self.epoll, ready.fd);
        }
    }

    /// Hands a connection to a worker.
    fn dispatch(&mut self, token: u64, channel: Box<dyn Channel>, last_active: Instant) {
        if self.jobs.is_none() {
            return;
        }
        self.grow_pool(false);
        self.in_workers += 1;
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job {
                token,
                channel,
                last_active,
            });
        }
    }

    /// Starts a worker when jobs wait and every worker is busy. Up to
    /// [`CORE_WORKERS`] that happens at once; beyond, at most once per sweep
    /// (100 ms) while the queue stays backed up, i.e. only when handlers are
    /// slow: reads of partial frames take microseconds, so a handful of
    /// workers serves thousands of connections.
    fn grow_pool(&mut self, sweeping: bool) {
        let starved = self.idle_workers.load(Ordering::SeqCst) == 0 && !self.job_queue.is_empty();
        let allowed = if sweeping {
            self.max_threads
        } else {
            CORE_WORKERS.min(self.max_threads)
        };
        if (self.workers.is_empty() || starved) && self.workers.len() < allowed {
            self.workers.retain(|w| !w.is_finished());
            let queue = self.job_queue.clone();
            let back = self.back.clone();
            let wake = self.wake.clone();
            let idle = self.idle_workers.clone();
            let shared = self.shared.clone();
            match std::thread::Builder::new()
                .name("utp-worker".into())
                .spawn(move || work(&queue, &back, &wake, &idle, &shared))
            {
                Ok(worker) => self.workers.push(worker),
                Err(e) if self.workers.is_empty() => {
                    log::error!("{}: cannot start a worker: {e}", self.shared.endpoint);
                }
                Err(_) => {} // the running workers take it in turn
            }
        }
    }

    /// Closes connections past their deadlines.
    fn sweep(&mut self) {
        self.grow_pool(true);
        self.shared.close_log.flush(&self.shared.endpoint);
        let now = Instant::now();
        let mut stalled = Vec::new();
        let mut idle = Vec::new();
        for (&token, parked) in &self.parked {
            let Some(ready) = parked.channel.readiness() else {
                continue;
            };
            let idle_limit = self
                .shared
                .limits
                .idle_timeout
                .unwrap_or(ready.idle_timeout);
            if ready.frame_deadline.is_some_and(|due| now >= due) {
                stalled.push(token);
            } else if ready.frame_deadline.is_none()
                && idle_limit
                    .is_some_and(|limit| now.saturating_duration_since(parked.last_active) >= limit)
            {
                idle.push(token);
            }
        }
        for token in stalled {
            // The worker's receive reports the overrun and closes it.
            let parked = self.parked.remove(&token).expect("token just found");
            self.dispatch(token, parked.channel, parked.last_active);
        }
        for token in idle {
            let mut parked = self.parked.remove(&token).expect("token just found");
            self.forget(&*parked.channel);
            let limit = self
                .shared
                .limits
                .idle_timeout
                .unwrap_or_else(|| parked.channel.readiness().and_then(|r| r.idle_timeout))
                .unwrap_or_default();
            self.shared
                .close_log
                .log(log::Level::Info, &self.shared.endpoint, || {
                    format!(
                        "closing {}: idle for {limit:?} (idle_timeout)",
                        describe(&parked.channel.peer())
                    )
                });
            let reason = format!(
                "closing an idle connection: nothing received for {limit:?} (idle_timeout)"
            );
            refuse(&mut *parked.channel, &reason);
        }
    }

    /// Shutdown: closes parked connections, waits for the workers' current
    /// requests, stops the workers.
    fn stop(&mut self) {
        // Dropping a channel closes its descriptor, which leaves the epoll set.
        self.parked.clear();
        while self.in_workers > 0 {
            match self.inbox.recv_timeout(SWEEP) {
                Ok(ToReactor::New(channel)) => drop(channel),
                Ok(ToReactor::Back { .. } | ToReactor::Gone) => self.in_workers -= 1,
                Ok(ToReactor::MakeRoom) | Err(_) => {}
            }
        }
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// A worker: serves connections handed to it until the reactor stops.
fn work(
    queue: &Receiver<Job>,
    back: &Sender<ToReactor>,
    wake: &OwnedFd,
    idle: &AtomicUsize,
    shared: &Shared,
) {
    let mut frame = Frame::with_capacity(4096);
    loop {
        idle.fetch_add(1, Ordering::SeqCst);
        let job = queue.recv();
        idle.fetch_sub(1, Ordering::SeqCst);
        let Ok(mut job) = job else {
            return;
        };
        let outcome = serve_some(&mut job, &mut frame, queue, shared);
        let message = match outcome {
            Some(more) => ToReactor::Back {
                token: job.token,
                channel: job.channel,
                last_active: job.last_active,
                more,
            },
            None => {
                drop(job.channel);
                ToReactor::Gone
            }
        };
        let _ = back.send(message);
        poke(wake);
    }
}

/// Serves what a connection has to offer right now. `Some(more)` to park
/// it again (`more`: it still has requests waiting), `None` when it ended.
fn serve_some(
    job: &mut Job,
    frame: &mut Frame,
    queue: &Receiver<Job>,
    shared: &Shared,
) -> Option<bool> {
    let mut served = 0;
    let outcome = serve_turn(&mut *job.channel, frame, queue, shared, &mut served);
    // Once per turn, not per request (a clock read would add to every
    // call's latency): the last reply went out at most a linger ago.
    if served > 0 {
        job.last_active = Instant::now();
    }
    outcome
}

/// [`serve_some`]'s loop; counts the requests answered in `served`.
fn serve_turn(
    channel: &mut dyn Channel,
    frame: &mut Frame,
    queue: &Receiver<Job>,
    shared: &Shared,
    served: &mut u32,
) -> Option<bool> {
    let mut wait = Duration::ZERO;
    let mut identity: Option<(crate::channel::PeerInfo, String)> = None;
    loop {
        let received = match channel.recv_timeout(frame, Some(wait)) {
            // Nothing more: `try_recv` makes the readiness descriptor signal
            // the next frame (transports such as shm arm their wake-up only
            // there), and returns a frame that slipped in meanwhile.
            Err(Error::Timeout { .. }) => match channel.try_recv(frame) {
                Ok(true) => Ok(()),
                Ok(false) => return Some(false),
                Err(e) => Err(e),
            },
            other => other,
        };
        match received {
            Ok(()) => {
                // Once per turn, not per request: `peer()` clones strings.
                let (peer, who) = identity.get_or_insert_with(|| {
                    let peer = channel.peer();
                    let who = describe(&peer);
                    (peer, who)
                });
                let next = answer(
                    channel,
                    frame,
                    &*shared.handler,
                    peer,
                    who,
                    &shared.stats,
                    shared.limits,
                );
                if next == Next::Close {
                    return None;
                }
                *served += 1;
                if shared.shutdown.is_triggered() {
                    return None;
                }
                if *served >= FAIR_SHARE && !queue.is_empty() {
                    return Some(true);
                }
                wait = LINGER;
            }
            Err(Error::Timeout { .. }) => return Some(false),
            Err(Error::PeerGone { detail: reason, .. }) => {
                log::debug!("client {} left: {reason}", describe(&channel.peer()));
                return None;
            }
            Err(e) => {
                let who = describe(&channel.peer());
                shared
                    .close_log
                    .log(log::Level::Warn, &shared.endpoint, || {
                        format!("client {who}: {e}; closing its connection")
                    });
                shared.stats.client_errors.fetch_add(1, Ordering::Relaxed);
                refuse(channel, &e.to_string());
                return None;
            }
        }
    }
}
