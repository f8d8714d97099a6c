//! [`AsyncListener`]: accepts clients of any [`Listener`] in tokio.

use super::{AsyncChannel, no_runtime};
use crate::channel::{Channel, Listener};
use crate::error::{Error, Result};
use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;
use ::tokio::sync::{mpsc, oneshot};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the accepting thread of a listener without a readiness
/// descriptor looks whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Accepted clients the accepting thread may hold before `accept` takes them
/// (beyond, it stops accepting: the backlog of the endpoint fills instead).
const ACCEPT_QUEUE: usize = 64;

/// Accepts clients in tokio; each comes as an [`AsyncChannel`].
///
/// A listener with a readiness descriptor ([`Listener::readiness`]) is
/// waited for on tokio's reactor. A listener without one gets **one**
/// thread of its own that accepts with a 100 ms timeout and hands clients
/// over through a queue of 64 (documented in docs/async.md): one thread per
/// endpoint, not per client, so every transport can be served from tokio.
///
/// Dropping the listener stops it and removes its endpoint (within 100 ms
/// on the threaded path); [`close`](Self::close) waits until it is removed.
#[derive(Debug)]
pub struct AsyncListener {
    inner: Inner,
    endpoint: String,
}

#[derive(Debug)]
enum Inner {
    /// Waited for on tokio's reactor.
    Ready(AsyncFd<Registered>),
    /// Accepted by a thread of its own.
    Thread(AcceptThread),
    /// Closed.
    Closed,
}

/// The listener and its own duplicate of its readiness descriptor (see the
/// channel's `Registered` for why a duplicate).
#[derive(Debug)]
struct Registered {
    listener: Box<dyn Listener>,
    fd: OwnedFd,
}

impl AsRawFd for Registered {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[derive(Debug)]
struct AcceptThread {
    incoming: mpsc::Receiver<Result<Box<dyn Channel>>>,
    stop: Arc<AtomicBool>,
    /// Fires when the thread has closed the listener (endpoint removed).
    closed: Option<oneshot::Receiver<Result<()>>>,
}

impl Drop for AcceptThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl AsyncListener {
    /// Serves `listener` from tokio. Must be called inside a tokio runtime.
    pub fn new(listener: Box<dyn Listener>) -> Result<AsyncListener> {
        if ::tokio::runtime::Handle::try_current().is_err() {
            return Err(no_runtime("wrap a listener in utp::tokio::AsyncListener"));
        }
        let endpoint = listener.endpoint();
        let fd = listener
            .readiness()
            .map(|fd| fd.try_clone_to_owned())
            .transpose()
            .map_err(|e| Error::io(format!("duplicate the descriptor of {endpoint}"), e))?;
        let inner = match fd {
            Some(fd) => Inner::Ready(
                super::register(Registered { listener, fd }, Interest::READABLE)
                    .map_err(|e| Error::io(format!("register {endpoint} with tokio"), e))?,
            ),
            None => Inner::Thread(AcceptThread::start(listener)?),
        };
        Ok(AsyncListener { inner, endpoint })
    }

    /// Waits for the next client.
    ///
    /// Cancellation-safe: a client is taken only when this returns it, so
    /// `accept` can sit in a `select!` loop. Errors are per client (refused
    /// peers, a client whose channel cannot be waited for in tokio) except
    /// [`Error::Closed`], which means the listener ended.
    pub async fn accept(&mut self) -> Result<AsyncChannel> {
        let channel = match &mut self.inner {
            Inner::Ready(io) => accept_ready(io).await?,
            Inner::Thread(thread) => match thread.incoming.recv().await {
                Some(accepted) => accepted?,
                None => return Err(Error::Closed),
            },
            Inner::Closed => return Err(Error::Closed),
        };
        AsyncChannel::new(channel)
    }

    /// The endpoint this listener serves, as a URL.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Whether the listener is waited for on tokio's reactor (`true`) or by
    /// a thread of its own (`false`: it has no readiness descriptor).
    pub fn is_event_driven(&self) -> bool {
        matches!(self.inner, Inner::Ready(_))
    }

    /// Stops listening and removes the endpoint; returns once it is removed.
    pub async fn close(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.inner, Inner::Closed) {
            Inner::Ready(io) => io.into_inner().listener.close(),
            Inner::Thread(mut thread) => {
                thread.stop.store(true, Ordering::SeqCst);
                thread.incoming.close();
                match thread.closed.take() {
                    Some(closed) => closed.await.unwrap_or(Ok(())),
                    None => Ok(()),
                }
            }
            Inner::Closed => Ok(()),
        }
    }
}

async fn accept_ready(io: &mut AsyncFd<Registered>) -> Result<Box<dyn Channel>> {
    // The contract: try before waiting (a listener may ask to be woken only
    // in try_accept, as shm's does).
    if let Some(channel) = io.get_mut().listener.try_accept()? {
        return Ok(channel);
    }
    loop {
        let mut guard = io
            .readable_mut()
            .await
            .map_err(|e| Error::io("wait for a client (tokio)", e))?;
        match guard.get_inner_mut().listener.try_accept() {
            Ok(Some(channel)) => return Ok(channel),
            Ok(None) => guard.clear_ready(),
            Err(e) => return Err(e),
        }
    }
}

impl AcceptThread {
    fn start(mut listener: Box<dyn Listener>) -> Result<AcceptThread> {
        let (to_tokio, incoming) = mpsc::channel(ACCEPT_QUEUE);
        let (closed_tx, closed) = oneshot::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let endpoint = listener.endpoint();
        std::thread::Builder::new()
            .name("utp-accept".into())
            .spawn(move || {
                while !stopping.load(Ordering::SeqCst) {
                    let accepted = match listener.accept_timeout(Some(STOP_POLL)) {
                        Err(Error::Timeout { .. }) => continue,
                        other => other,
                    };
                    let ended = matches!(accepted, Err(Error::Closed));
                    let failed = matches!(accepted, Err(Error::Io { .. }));
                    if to_tokio.blocking_send(accepted).is_err() || ended {
                        break;
                    }
                    if failed {
                        // Out of descriptors and the like: do not spin.
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                let _ = closed_tx.send(listener.close());
            })
            .map_err(|e| Error::io(format!("start the accepting thread of {endpoint}"), e))?;
        Ok(AcceptThread {
            incoming,
            stop,
            closed: Some(closed),
        })
    }
}

impl super::OwnsItsFd for Registered {}
