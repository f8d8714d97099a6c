//! [`Server`]: serves a [`Handler`] to every client of a [`Listener`].

use crate::channel::{Channel, Listener, PeerInfo};
use crate::error::{Error, Result};
use crate::frame::{Frame, flags, message_type};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often idle loops look at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);
/// Clients served at once unless [`Server::max_clients`] says otherwise.
pub const DEFAULT_MAX_CLIENTS: usize = 256;

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

/// Serves a handler on a listener: one thread per client, so a slow or
/// misbehaving client never holds up the others.
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
}

/// `Handler` plus a `Debug` stand-in, so `Server` can derive `Debug`.
trait HandlerDebug: Handler {}
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
        }
    }

    /// Limits how many clients are served at once (default 256). A client
    /// beyond the limit gets an ERROR frame ("server busy") and is closed, so
    /// a flood of connections cannot exhaust the server's threads.
    pub fn max_clients(mut self, limit: usize) -> Self {
        self.max_clients = limit.max(1);
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
    /// listener (removing its endpoint) and waits for the client threads.
    pub fn run(&mut self) -> Result<()> {
        let mut workers: Vec<JoinHandle<()>> = Vec::new();
        let endpoint = self.listener.endpoint();
        log::info!("serving on {endpoint}");
        while !self.shutdown.is_triggered() {
            match self.listener.accept_timeout(Some(SHUTDOWN_POLL)) {
                Ok(mut channel) => {
                    workers.retain(|w| !w.is_finished());
                    if workers.len() >= self.max_clients {
                        self.stats.client_errors.fetch_add(1, Ordering::Relaxed);
                        log::warn!(
                            "{endpoint}: refused a client: {} clients already served",
                            workers.len()
                        );
                        let reason = format!(
                            "server busy: it serves at most {} clients at once",
                            self.max_clients
                        );
                        let _ = channel.send_timeout(
                            message_type::ERROR,
                            flags::CHECKSUM,
                            reason.as_bytes(),
                            Some(SHUTDOWN_POLL),
                        );
                        let _ = channel.close();
                        continue;
                    }
                    self.stats.connections.fetch_add(1, Ordering::Relaxed);
                    let handler = self.handler.clone();
                    let shutdown = self.shutdown.clone();
                    let stats = self.stats.clone();
                    let worker = std::thread::Builder::new()
                        .name("utp-client".into())
                        .spawn(move || serve_client(channel, &*handler, &shutdown, &stats));
                    match worker {
                        Ok(handle) => workers.push(handle),
                        Err(e) => log::error!("{endpoint}: cannot start a client thread: {e}"),
                    }
                }
                Err(Error::Timeout { .. }) => {}
                Err(Error::Closed) => break,
                Err(e @ Error::Denied(_)) => log::warn!("{endpoint}: {e}"),
                Err(e) => {
                    log::warn!("{endpoint}: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            workers.retain(|w| !w.is_finished());
        }
        log::info!("shutting down {endpoint}");
        let closed = self.listener.close();
        for worker in workers {
            let _ = worker.join();
        }
        closed
    }
}

/// Answers one client's requests until it leaves, misbehaves or the server stops.
fn serve_client(
    mut channel: Box<dyn Channel>,
    handler: &dyn HandlerDebug,
    shutdown: &Shutdown,
    stats: &ServerStats,
) {
    let peer = channel.peer();
    let who = describe(&peer);
    let mut frame = Frame::with_capacity(4096);
    log::debug!("client {who} connected");
    while !shutdown.is_triggered() {
        match channel.recv_timeout(&mut frame, Some(SHUTDOWN_POLL)) {
            Ok(()) => {}
            Err(Error::Timeout { .. }) => continue,
            Err(Error::PeerGone(reason)) => {
                log::debug!("client {who} left: {reason}");
                return;
            }
            Err(e) => {
                stats.client_errors.fetch_add(1, Ordering::Relaxed);
                log::warn!("client {who}: {e}; closing its connection");
                let reason = e.to_string();
                let _ = channel.send_timeout(
                    message_type::ERROR,
                    flags::CHECKSUM,
                    reason.as_bytes(),
                    Some(SHUTDOWN_POLL),
                );
                return;
            }
        }
        let reply = match frame.message_type() {
            message_type::REQUEST => {
                let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handler.handle(frame.payload(), &peer)
                }));
                match answered {
                    Ok(response) => {
                        stats.requests.fetch_add(1, Ordering::Relaxed);
                        (message_type::RESPONSE, response)
                    }
                    Err(_) => {
                        stats.client_errors.fetch_add(1, Ordering::Relaxed);
                        log::error!("client {who}: the handler panicked; closing its connection");
                        return;
                    }
                }
            }
            message_type::HEARTBEAT => continue,
            message_type::GOODBYE => return,
            other => (
                message_type::ERROR,
                format!("unexpected message type 0x{other:02x}: this server answers REQUEST (0x10) frames")
                    .into_bytes(),
            ),
        };
        match channel.send(reply.0, flags::CHECKSUM, &reply.1) {
            Ok(()) => {}
            // A reply the link cannot carry (e.g. larger than a shm ring):
            // the client gets an ERROR saying so, not a silent close.
            Err(Error::TooLarge { len, limit, .. }) => {
                let reason = format!(
                    "reply of {len} bytes is too large for this link (limit {limit}); \
                     ask for a bigger ring with ?ring= or a smaller reply"
                );
                log::warn!("client {who}: {reason}");
                if channel
                    .send(message_type::ERROR, flags::CHECKSUM, reason.as_bytes())
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                log::debug!("client {who}: reply not delivered: {e}");
                return;
            }
        }
    }
}

fn describe(peer: &PeerInfo) -> String {
    match (peer.pid, &peer.address) {
        (Some(pid), _) => format!("pid {pid}"),
        (None, Some(address)) => address.clone(),
        (None, None) => "(unknown)".into(),
    }
}
