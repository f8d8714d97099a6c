//! `listen`: the rendezvous socket, the acceptor thread that runs one
//! handshake thread per connecting client, and the queue of finished links.

use super::handshake::{Config, HANDSHAKE_TIMEOUT, abstract_addr, handshake, settings};
use super::link::ShmLink;
use super::rendezvous;
use crate::channel::{Channel, Listener, Options};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::transport::queue;
use crossbeam_channel::{Receiver, Sender};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Accepts shared-memory links at `shm://NAME`, `sysv://KEY` or `file:///PATH`.
///
/// A background thread accepts connections on the rendezvous socket and
/// runs each handshake in its own short-lived thread, so a slow or silent
/// client never delays the others; finished links queue up (at most
/// [`BACKLOG`]) until [`accept`](Listener::accept) takes them.
#[derive(Debug)]
pub struct ShmListener {
    endpoint: Endpoint,
    incoming: Receiver<ShmLink>,
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
    let settings = settings(endpoint)?;
    let name = rendezvous::socket_name(&endpoint.address)?;
    let socket = UnixListener::bind_addr(&abstract_addr(&name)?).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            Error::InUse {
                endpoint: endpoint.address.to_string(),
                hint: Some(format!(
                    "abstract socket @{name} is bound by a live process"
                )),
            }
        } else {
            Error::io(format!("bind abstract socket @{name}"), e)
        }
    })?;
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("set listener non-blocking", e))?;
    super::reclaim::reclaim_stale(&endpoint.address);
    let config = Arc::new(Config {
        endpoint: endpoint.clone(),
        settings,
        max_payload: options.max_payload,
    });
    let socket = Arc::new(socket);
    let closing = Arc::new(AtomicBool::new(false));
    let (tx, incoming) = crossbeam_channel::bounded(BACKLOG);
    let thread = std::thread::Builder::new()
        .name(format!("utp-shm-accept {}", endpoint.address))
        .spawn({
            let (socket, closing) = (socket.clone(), closing.clone());
            move || accept_loop(&socket, &closing, &config, &tx)
        })
        .map_err(|e| Error::io("spawn the shm acceptor thread", e))?;
    Ok(ShmListener {
        endpoint: endpoint.clone(),
        incoming,
        acceptor: Some(Acceptor {
            socket,
            closing,
            thread,
        }),
    })
}

/// How often the acceptor looks at the closing flag while idle.
const ACCEPT_SLICE: Duration = Duration::from_millis(20);

fn accept_loop(
    socket: &UnixListener,
    closing: &AtomicBool,
    config: &Arc<Config>,
    tx: &Sender<ShmLink>,
) {
    while !closing.load(Ordering::Acquire) {
        match socket.accept() {
            Ok((stream, _)) => {
                let (config, tx) = (config.clone(), tx.clone());
                let _ = std::thread::Builder::new()
                    .name("utp-shm-handshake".into())
                    .spawn(move || {
                        // A client that fails its handshake is dropped (its
                        // region removed); the listener keeps serving.
                        if let Ok(link) = handshake(&config, stream) {
                            let _ = tx.send_timeout(link, HANDSHAKE_TIMEOUT);
                        }
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let _ = wait_readable(socket.as_fd(), Some(ACCEPT_SLICE));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EMFILE and the like: back off instead of spinning.
            Err(_) => std::thread::sleep(ACCEPT_SLICE),
        }
    }
}

impl Listener for ShmListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        if self.acceptor.is_none() {
            return Err(Error::Closed);
        }
        let link = queue::recv(&self.incoming, timeout, "a client to connect", || {
            Error::Closed
        })?;
        Ok(Box::new(link))
    }

    fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    fn close(&mut self) -> Result<()> {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.closing.store(true, Ordering::Release);
            // Wakes the acceptor's poll at once; it would notice within
            // ACCEPT_SLICE anyway. Joining it closes the socket, so the name
            // is free again when close returns.
            let _ = rustix::net::shutdown(&*acceptor.socket, rustix::net::Shutdown::Both);
            let _ = acceptor.thread.join();
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

fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, timeout: Option<Duration>) -> Result<()> {
    use rustix::event::{PollFd, PollFlags, poll};
    let ts = timeout.map(|t| rustix::time::Timespec {
        tv_sec: t.as_secs() as i64,
        tv_nsec: t.subsec_nanos() as i64,
    });
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    match poll(&mut fds, ts.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(Error::io("poll the shm rendezvous socket", e)),
    }
}
