//! [`Server`]: serves a [`Handler`] to every client of a [`Listener`].

use super::answer::{Limits, Next, answer, describe, refuse};
use super::reactor::{ReactorConfig, ReactorHandle};
use crate::channel::{Channel, Listener, PeerInfo};
use crate::error::{Error, Result};
use crate::frame::Frame;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often idle loops look at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);
/// Connections held at once unless [`Server::max_clients`] says otherwise.
pub const DEFAULT_MAX_CLIENTS: usize = 16_384;
/// Threads serving clients unless [`Server::max_threads`] says otherwise.
pub const DEFAULT_MAX_THREADS: usize = 256;
/// How long a reply may wait for room unless [`Server::reply_timeout`] says otherwise.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Turns one request payload into one response payload.
///
/// Implemented for closures: `|request: &[u8], peer: &PeerInfo| -> Vec<u8>`.
/// A handler must not panic; if it does, that client's connection is closed
/// and the server goes on serving the others.
pub trait Handler: Send + Sync + 'static {
    /// Answers `request` from the client described by `peer`.
    fn handle(&self, request: &[u8], peer: &PeerInfo) -> Vec<u8>;
}

impl<F> Handler for F
where
    F: Fn(&[u8], &PeerInfo) -> Vec<u8> + Send + Sync + 'static,
{
    fn handle(&self, request: &[u8], peer: &PeerInfo) -> Vec<u8> {
        self(request, peer)
    }
}

/// Counters a running server keeps; read them through [`Server::stats`].
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Clients accepted.
    pub connections: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Connections closed because of invalid input or a failed handler.
    pub client_errors: AtomicU64,
}

/// A stop switch for a running [`Server`], usable from any thread.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// Asks the server to stop: it stops accepting, lets each connection
    /// finish its current request, closes the listener (removing the
    /// endpoint) and returns from [`Server::run`].
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Triggers on SIGINT or SIGTERM.
    pub fn on_signals(&self) -> Result<()> {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, self.0.clone())
                .map_err(|e| Error::io("install the SIGINT/SIGTERM handler", e))?;
        }
        Ok(())
    }
}

/// Serves a handler on a listener.
///
/// Connections that can be waited for without a thread ([`Channel::readiness`]:
/// every transport's channels, see docs/event-loops.md) are served
/// event-driven: between frames they sit in one epoll set and cost no
/// thread, so thousands of idle or trickling clients cannot lock an honest
/// one out, and a small pool of workers answers requests. A channel without
/// readiness (an shm client whose implementation offers no wake-ups) gets a
/// thread of its own, up to [`max_threads`](Self::max_threads). See docs/transports.md, "Servers".
///
/// ```
/// use utp::service::{Client, Server};
/// let listener = utp::listen("inproc://server-doc")?;
/// let mut server = Server::new(listener, |req: &[u8], _: &utp::PeerInfo| req.to_ascii_uppercase());
/// let stop = server.shutdown_handle();
/// let thread = std::thread::spawn(move || server.run());
///
/// let mut client = Client::connect("inproc://server-doc")?;
/// assert_eq!(client.call(b"hello")?, b"HELLO");
/// stop.trigger();
/// thread.join().unwrap()?;
/// # Ok::<(), utp::Error>(())
/// ```
#[derive(Debug)]
pub struct Server {
    listener: Box<dyn Listener>,
    handler: Arc<dyn HandlerDebug>,
    shutdown: Shutdown,
    stats: Arc<ServerStats>,
    max_clients: usize,
    max_threads: usize,
    reply_timeout: Duration,
    idle_timeout: Option<Option<Duration>>,
}

/// `Handler` plus a `Debug` stand-in, so `Server` can derive `Debug`.
pub(crate) trait HandlerDebug: Handler {}
impl<H: Handler> HandlerDebug for H {}
impl std::fmt::Debug for dyn HandlerDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handler")
    }
}

impl Server {
    /// A server for `handler` on `listener`.
    pub fn new(listener: Box<dyn Listener>, handler: impl Handler) -> Self {
        Server {
            listener,
            handler: Arc::new(handler),
            shutdown: Shutdown::default(),
            stats: Arc::default(),
            max_clients: DEFAULT_MAX_CLIENTS,
            max_threads: DEFAULT_MAX_THREADS,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            idle_timeout: None,
        }
    }

    /// Limits how many connections are held at once (default 16,384).
    ///
    /// At the limit, a new client of an event-driven transport takes the
    /// place of the connection idle the longest (which gets an ERROR frame
    /// saying why, and is closed). When none is idle, or on a transport
    /// served by threads, the new client gets an ERROR frame ("server busy")
    /// and is closed.
    pub fn max_clients(mut self, limit: usize) -> Self {
        self.max_clients = limit.max(1);
        self
    }

    /// Limits the threads serving clients (default 256): workers of the
    /// event-driven path, or one per client on transports without readiness.
    pub fn max_threads(mut self, limit: usize) -> Self {
        self.max_threads = limit.max(1);
        self
    }

    /// How long a reply may wait for room (default 5 s). A client that stops
    /// reading its replies loses its connection after this long, and
    /// [`run`](Self::run) returns within it after a shutdown.
    pub fn reply_timeout(mut self, limit: Duration) -> Self {
        self.reply_timeout = limit;
        self
    }

    /// Closes a client that sends nothing for `limit` between requests
    /// (`None`: never), on every transport, with an ERROR frame saying why.
    ///
    /// Unless set, connections use their channel's
    /// [`Options::idle_timeout`](crate::Options::idle_timeout) (default 300 s,
    /// `?idle_timeout_ms=N`; inproc channels and thread-served ones have none).
    pub fn idle_timeout(mut self, limit: Option<Duration>) -> Self {
        self.idle_timeout = Some(limit);
        self
    }

    /// Makes `switch` the one that stops [`run`](Self::run), instead of
    /// the server's own: several servers can share one, or one the program
    /// already has (say, set by [`Shutdown::on_signals`]) can stop this one
    /// with no thread relaying between the two.
    ///
    /// ```
    /// use utp::service::{Server, Shutdown};
    /// let stop = Shutdown::default();
    /// let server = Server::new(utp::listen("inproc://with-shutdown-doc")?, |r: &[u8], _: &utp::PeerInfo| r.to_vec())
    ///     .with_shutdown(stop.clone());
    /// stop.trigger();
    /// assert!(server.shutdown_handle().is_triggered());
    /// # Ok::<(), utp::Error>(())
    /// ```
    pub fn with_shutdown(mut self, switch: Shutdown) -> Self {
        self.shutdown = switch;
        self
    }

    /// The switch that stops [`run`](Self::run).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<ServerStats> {
        self.stats.clone()
    }

    /// The endpoint being served.
    pub fn endpoint(&self) -> String {
        self.listener.endpoint()
    }

    /// Serves until the [`Shutdown`] handle is triggered, then closes the
    /// listener (removing its endpoint), closes idle connections and waits
    /// for the requests in progress.
    ///
    /// Shutdown completes within about 100 ms plus the reply timeout plus
    /// the time the handler takes for a request already started.
    pub fn run(&mut self) -> Result<()> {
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let mut reactor: Option<ReactorHandle> = None;
        let mut last_accept_warning: Option<std::time::Instant> = None;
        let mut last_denial_warning: Option<std::time::Instant> = None;
        let endpoint = self.listener.endpoint();
        let limits = Limits {
            reply_timeout: self.reply_timeout,
            idle_timeout: self.idle_timeout,
        };
        log::info!("serving on {endpoint}");
        while !self.shutdown.is_triggered() {
            match self.listener.accept_timeout(Some(SHUTDOWN_POLL)) {
                Ok(channel) if channel.readiness().is_some() => {
                    if reactor.is_none() {
                        reactor = Some(ReactorHandle::start(ReactorConfig {
                            handler: self.handler.clone(),
                            stats: self.stats.clone(),
                            shutdown: self.shutdown.clone(),
                            limits,
                            endpoint: endpoint.clone(),
                            max_clients: self.max_clients,
                            max_threads: self.max_threads,
                        })?);
                    }
                    if let Some(reactor) = &reactor {
                        reactor.admit(channel);
                    }
                }
                Ok(mut channel) => {
                    threads.retain(|w| !w.is_finished());
                    let limit = self.max_clients.min(self.max_threads);
                    if threads.len() >= limit {
                        self.stats.client_errors.fetch_add(1, Ordering::Relaxed);
                        log::warn!(
                            "{endpoint}: refused a client: {} clients already served",
                            threads.len()
                        );
                        let reason =
                            format!("server busy: it serves at most {limit} clients at once");
                        refuse(&mut *channel, &reason);
                        continue;
                    }
                    self.stats.connections.fetch_add(1, Ordering::Relaxed);
                    let handler = self.handler.clone();
                    let shutdown = self.shutdown.clone();
                    let stats = self.stats.clone();
                    let worker = std::thread::Builder::new()
                        .name("utp-client".into())
                        .spawn(move || serve_client(channel, &*handler, &shutdown, &stats, limits));
                    match worker {
                        Ok(handle) => threads.push(handle),
                        Err(e) => log::error!("{endpoint}: cannot start a client thread: {e}"),
                    }
                }
                Err(Error::Timeout { .. }) => {}
                Err(Error::Closed) => break,
                Err(e @ Error::Denied { .. }) => {
                    // Refused peers (allow_uid) are logged once a second at most.
                    let now = std::time::Instant::now();
                    if last_denial_warning
                        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                    {
                        log::warn!("{endpoint}: {e}");
                        last_denial_warning = Some(now);
                    }
                }
                Err(e) => {
                    let out_of_descriptors = matches!(
                        &e,
                        Error::Io { source, .. }
                            if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                    );
                    match &reactor {
                        // The descriptor limit is the connection limit:
                        // make room as at max_clients.
                        Some(reactor) if out_of_descriptors => reactor.make_room(),
                        _ => {}
                    }
                    let now = std::time::Instant::now();
                    if last_accept_warning
                        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                    {
                        log::warn!("{endpoint}: accept failed: {e}");
                        last_accept_warning = Some(now);
                    }
                    // Room is being made: look again soon.
                    let pause = if out_of_descriptors { 1 } else { 10 };
                    std::thread::sleep(Duration::from_millis(pause));
                }
            }
            threads.retain(|w| !w.is_finished());
        }
        log::info!("shutting down {endpoint}");
        let closed = self.listener.close();
        if let Some(reactor) = reactor {
            reactor.finish();
        }
        for thread in threads {
            let _ = thread.join();
        }
        closed
    }
}

/// Answers one client's requests on a thread of its own, until it leaves,
/// misbehaves or the server stops.
fn serve_client(
    mut channel: Box<dyn Channel>,
    handler: &dyn HandlerDebug,
    shutdown: &Shutdown,
    stats: &ServerStats,
    limits: Limits,
) {
    let peer = channel.peer();
    let who = describe(&peer);
    let mut frame = Frame::with_capacity(4096);
    log::debug!("client {who} connected");
    let idle_limit = limits.idle_timeout.flatten();
    let mut last_active = std::time::Instant::now();
    let mut answered_since_wait = false;
    while !shutdown.is_triggered() {
        match channel.recv_timeout(&mut frame, Some(SHUTDOWN_POLL)) {
            Ok(()) => {}
            Err(Error::Timeout { .. }) => {
                // The wait that just ended began after the last reply, if
                // there was one since the last such wait, and lasted the
                // whole poll: so the reply went out no later than a poll
                // ago, and idleness is never counted early. Taking the time
                // here, not after every reply, keeps the clock off each
                // call's path.
                if std::mem::take(&mut answered_since_wait) {
                    let now = std::time::Instant::now();
                    last_active = now.checked_sub(SHUTDOWN_POLL).unwrap_or(now);
                }
                if let Some(limit) = idle_limit.filter(|l| last_active.elapsed() >= *l) {
                    log::info!("closing {who}: idle for {limit:?} (idle_timeout)");
                    let reason = format!(
                        "closing an idle connection: nothing received for {limit:?} (idle_timeout)"
                    );
                    refuse(&mut *channel, &reason);
                    return;
                }
                continue;
            }
            Err(Error::PeerGone { detail: reason, .. }) => {
                log::debug!("client {who} left: {reason}");
                return;
            }
            Err(e) => {
                stats.client_errors.fetch_add(1, Ordering::Relaxed);
                log::warn!("client {who}: {e}; closing its connection");
                refuse(&mut *channel, &e.to_string());
                return;
            }
        }
        if answer(&mut *channel, &frame, handler, &peer, &who, stats, limits) == Next::Close {
            return;
        }
        answered_since_wait = true;
    }
}
