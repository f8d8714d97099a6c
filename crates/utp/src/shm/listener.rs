//! `listen`: the rendezvous socket in the per-user directory, the acceptor
//! thread (`accept.rs`) and the queue of finished links.

use super::accept::{self, Config};
use super::handshake::settings;
use super::link::ShmLink;
use super::rendezvous;
use crate::channel::{Channel, Listener, Options};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::identity::PeerPolicy;
use crate::transport::queue;
use crate::wake::Doorbell;
use crossbeam_channel::Receiver;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Accepts shared-memory links at `shm://NAME`, `sysv://KEY` or `file:///PATH`.
///
/// One background thread accepts connections on the rendezvous socket,
/// checks each client's uid and runs all handshakes (non-blocking, bounded
/// in number and time), so a slow, silent or foreign client never delays
/// the others; finished links queue up (at most [`BACKLOG`]) until
/// [`accept`](Listener::accept) takes them.
#[derive(Debug)]
pub struct ShmListener {
    endpoint: Endpoint,
    path: PathBuf,
    incoming: Receiver<ShmLink>,
    /// Rung by the acceptor thread when it queues a link (readiness).
    bell: Arc<Doorbell>,
    acceptor: Option<Acceptor>,
}

#[derive(Debug)]
struct Acceptor {
    socket: Arc<UnixListener>,
    closing: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// Links that finished their handshake and wait for `accept`.
pub const BACKLOG: usize = 128;

/// Binds the rendezvous socket for `endpoint` and reclaims stale links.
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<ShmListener> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options =
        &crate::transport::transport_options(endpoint, options, &["shm", "sysv", "file"])?;
    let settings = settings(endpoint)?;
    let policy = PeerPolicy::from_endpoint(endpoint)?;
    let (path, mode) = rendezvous::listen_path(&endpoint.address, &policy)?;
    let socket = crate::runtime_dir::bind_socket(&path, mode, &endpoint.address.to_string())?;
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("set listener non-blocking", e))?;
    super::reclaim::reclaim_stale(&endpoint.address);
    // Sockets of SIGKILLed servers (the kernel leaves a socket file behind).
    if let Some(dir) = path.parent() {
        crate::runtime_dir::remove_stale_sockets(dir, &["shm.", "sysv.", "file."]);
    }
    let config = Config {
        endpoint: endpoint.clone(),
        settings,
        max_payload: options.max_payload,
        policy,
        idle_timeout: options.idle_timeout,
    };
    let socket = Arc::new(socket);
    let closing = Arc::new(AtomicBool::new(false));
    let (tx, incoming) = crossbeam_channel::bounded(BACKLOG);
    let bell = Arc::new(Doorbell::new()?);
    let thread = std::thread::Builder::new()
        .name(format!("utp-shm-accept {}", endpoint.address))
        .spawn({
            let (socket, closing, bell) = (socket.clone(), closing.clone(), bell.clone());
            move || accept::run(&socket, &closing, &config, &tx, &bell)
        })
        .map_err(|e| Error::io("spawn the shm acceptor thread", e))?;
    Ok(ShmListener {
        endpoint: endpoint.clone(),
        path,
        incoming,
        bell,
        acceptor: Some(Acceptor {
            socket,
            closing,
            thread,
        }),
    })
}

impl ShmListener {
    /// Like [`accept_timeout`](Listener::accept_timeout), but the link itself,
    /// with its zero-copy API ([`ShmLink::reserve`], [`ShmLink::recv_view`]).
    pub fn accept_link(&mut self, timeout: Option<Duration>) -> Result<ShmLink> {
        if self.acceptor.is_none() {
            return Err(Error::Closed);
        }
        queue::recv(&self.incoming, timeout, "a client to connect", || {
            Error::Closed
        })
    }

    /// Like [`try_accept`](Listener::try_accept), but the link itself.
    pub fn try_accept_link(&mut self) -> Result<Option<ShmLink>> {
        if self.acceptor.is_none() {
            return Err(Error::Closed);
        }
        queue::try_take(&self.incoming, &self.bell, || Error::Closed)
    }

    /// The rendezvous socket's path.
    pub fn socket_path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Listener for ShmListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        Ok(Box::new(self.accept_link(timeout)?))
    }

    fn try_accept(&mut self) -> Result<Option<Box<dyn Channel>>> {
        Ok(self
            .try_accept_link()?
            .map(|link| Box::new(link) as Box<dyn Channel>))
    }

    /// An eventfd the acceptor thread rings when a handshake finished (for
    /// a `try_accept` that found nothing once this was handed out).
    fn readiness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.bell.hand_out())
    }

    fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    fn close(&mut self) -> Result<()> {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.closing.store(true, Ordering::Release);
            // Wakes the acceptor's poll at once; it would notice within a
            // slice anyway. Joining it drops the pending handshakes.
            let _ = rustix::net::shutdown(&*acceptor.socket, rustix::net::Shutdown::Both);
            let _ = acceptor.thread.join();
            // Only we can write in our directory, so the path is still ours.
            let _ = std::fs::remove_file(&self.path);
        }
        // Links that finished their handshake but were never accepted.
        while self.incoming.try_recv().is_ok() {}
        Ok(())
    }
}

impl Drop for ShmListener {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
