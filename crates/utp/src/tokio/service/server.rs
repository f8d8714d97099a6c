//! The async [`Server`]: one task per client on the caller's runtime.

use crate::error::{Error, Result};
use crate::frame::{Frame, flags, message_type};
use crate::service::answer::{CloseLog, Response, describe, refuse, respond, too_large_reason};
use crate::service::{
    DEFAULT_MAX_CLIENTS, DEFAULT_REPLY_TIMEOUT, Handler, HandlerDebug, ServerStats,
};
use crate::tokio::channel::within;
use crate::tokio::{AsyncChannel, AsyncListener};
use ::tokio::sync::{Semaphore, watch};
use ::tokio::task::JoinSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Serves a [`Handler`] to every client of an [`AsyncListener`], each
/// client a task on the runtime that runs [`run_until`](Self::run_until).
///
/// The limits are the blocking [`crate::service::Server`]'s: at most
/// [`max_clients`](Self::max_clients) connections (a client beyond gets an
/// ERROR frame "server busy" and is closed); a reply waits at most
/// [`reply_timeout`](Self::reply_timeout) for room, then the client that
/// does not read is closed; a frame that started arriving must finish
/// within the channel's frame timeout; a client idle between requests for
/// its idle timeout (the channel's [`Options::idle_timeout`](crate::Options),
/// or [`idle_timeout`](Self::idle_timeout)) is told why and closed. A
/// handler that panics closes its client's connection only.
///
/// The handler runs on the runtime's worker thread: it should answer in
/// microseconds, as the calculator does. A slow handler holds one worker
/// per request in progress.
#[derive(Debug)]
pub struct Server {
    listener: AsyncListener,
    shared: Arc<Shared>,
    max_clients: usize,
}

#[derive(Debug)]
struct Shared {
    handler: Arc<dyn HandlerDebug>,
    stats: Arc<ServerStats>,
    reply_timeout: Duration,
    idle_timeout: Option<Option<Duration>>,
    endpoint: String,
    close_log: CloseLog,
}

impl Server {
    /// A server for `handler` on `listener`.
    pub fn new(listener: AsyncListener, handler: impl Handler) -> Server {
        let endpoint = listener.endpoint();
        Server {
            listener,
            shared: Arc::new(Shared {
                handler: Arc::new(handler),
                stats: Arc::default(),
                reply_timeout: DEFAULT_REPLY_TIMEOUT,
                idle_timeout: None,
                endpoint,
                close_log: CloseLog::default(),
            }),
            max_clients: DEFAULT_MAX_CLIENTS,
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.shared).expect("settings are changed before the server runs")
    }

    /// Limits how many clients are served at once (default 16,384); a
    /// client beyond gets an ERROR frame ("server busy") and is closed.
    pub fn max_clients(mut self, limit: usize) -> Self {
        self.max_clients = limit.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// How long a reply may wait for room (default 5 s).
    pub fn reply_timeout(mut self, limit: Duration) -> Self {
        self.shared_mut().reply_timeout = limit;
        self
    }

    /// Closes a client that sends nothing for `limit` between requests
    /// (`None`: never), replacing the channel's own idle timeout.
    pub fn idle_timeout(mut self, limit: Option<Duration>) -> Self {
        self.shared_mut().idle_timeout = Some(limit);
        self
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<ServerStats> {
        self.shared.stats.clone()
    }

    /// The endpoint being served.
    pub fn endpoint(&self) -> String {
        self.listener.endpoint()
    }

    /// Serves until the listener ends.
    pub async fn run(self) -> Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes (e.g. `tokio::signal::ctrl_c()`,
    /// a oneshot), then stops accepting, closes the listener (removing the
    /// endpoint), lets each client finish the request it is in and closes
    /// the idle ones; returns when every client task has ended (within the
    /// reply timeout plus the handler's time for a request in progress).
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let endpoint = self.listener.endpoint();
        let slots = Arc::new(Semaphore::new(self.max_clients));
        let (stop, stopping) = watch::channel(false);
        let mut clients = JoinSet::new();
        let mut last_warning: Option<Instant> = None;
        log::info!("serving on {endpoint} (tokio)");
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            ::tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = clients.join_next(), if !clients.is_empty() => {}
                accepted = self.listener.accept() => match accepted {
                    Ok(mut channel) => match slots.clone().try_acquire_owned() {
                        Ok(slot) => {
                            self.shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                            let shared = self.shared.clone();
                            let stopping = stopping.clone();
                            clients.spawn(async move {
                                serve(channel, &shared, stopping).await;
                                drop(slot);
                            });
                        }
                        Err(_) => {
                            self.shared.stats.client_errors.fetch_add(1, Ordering::Relaxed);
                            let limit = self.max_clients;
                            self.shared.close_log.log(log::Level::Warn, &endpoint, || {
                                format!("refused a client: {limit} clients already served")
                            });
                            let reason =
                                format!("server busy: it serves at most {limit} clients at once");
                            refuse(channel.get_mut(), &reason);
                        }
                    },
                    Err(Error::Closed) => break,
                    Err(e) => {
                        let now = Instant::now();
                        if last_warning.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                            log::warn!("{endpoint}: accept failed: {e}");
                            last_warning = Some(now);
                        }
                        if matches!(e, Error::Io { .. }) {
                            // Out of descriptors and the like: look again soon, do not spin.
                            ::tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                },
            }
        }
        log::info!("shutting down {endpoint}");
        let closed = self.listener.close().await;
        let _ = stop.send(true);
        while clients.join_next().await.is_some() {}
        closed
    }
}

/// Serves one client until it leaves, misbehaves or the server stops.
async fn serve(mut channel: AsyncChannel, shared: &Shared, mut stopping: watch::Receiver<bool>) {
    let peer = channel.get_ref().peer();
    let who = describe(&peer);
    let idle_limit = shared.idle_timeout.unwrap_or_else(|| {
        channel
            .get_ref()
            .readiness()
            .and_then(|ready| ready.idle_timeout)
    });
    let mut frame = Frame::with_capacity(4096);
    let mut last_active = Instant::now();
    loop {
        let received = ::tokio::select! {
            biased;
            _ = stopping.wait_for(|stop| *stop) => return,
            received = recv_or_idle(&mut channel, &mut frame, idle_limit, last_active) => received,
        };
        match received {
            Ok(true) => last_active = Instant::now(),
            Ok(false) => {
                let limit = idle_limit.unwrap_or_default();
                shared
                    .close_log
                    .log(log::Level::Info, &shared.endpoint, || {
                        format!("closing {who}: idle for {limit:?} (idle_timeout)")
                    });
                let reason = format!(
                    "closing an idle connection: nothing received for {limit:?} (idle_timeout)"
                );
                refuse(channel.get_mut(), &reason);
                return;
            }
            Err(Error::PeerGone { detail, .. }) => {
                log::debug!("client {who} left: {detail}");
                return;
            }
            Err(e) => {
                shared.stats.client_errors.fetch_add(1, Ordering::Relaxed);
                shared
                    .close_log
                    .log(log::Level::Warn, &shared.endpoint, || {
                        format!("client {who}: {e}; closing its connection")
                    });
                refuse(channel.get_mut(), &e.to_string());
                return;
            }
        }
        let (reply_type, reply) =
            match respond(&frame, &*shared.handler, &peer, &who, &shared.stats) {
                Response::Reply(reply_type, reply) => (reply_type, reply),
                Response::Nothing => continue,
                Response::Close => return,
            };
        if !deliver(&mut channel, &frame, reply_type, &reply, shared, &who).await {
            return;
        }
    }
}

/// Receives the next frame: `Ok(false)` when the client stayed idle (no
/// frame started) for `idle_limit` since `last_active`. A frame that has
/// started is governed by its own frame deadline, not the idle limit.
async fn recv_or_idle(
    channel: &mut AsyncChannel,
    frame: &mut Frame,
    idle_limit: Option<Duration>,
    last_active: Instant,
) -> Result<bool> {
    // A limit too far away to represent (Duration::MAX) is no limit.
    let Some(due) = idle_limit.and_then(|limit| last_active.checked_add(limit)) else {
        return channel.recv(frame).await.map(|()| true);
    };
    let due = ::tokio::time::Instant::from_std(due);
    match ::tokio::time::timeout_at(due, channel.recv(frame)).await {
        Ok(received) => received.map(|()| true),
        Err(_) => {
            let started = channel
                .get_ref()
                .readiness()
                .is_some_and(|ready| ready.frame_deadline.is_some());
            if started {
                // The receive is cancellation-safe: go on with the frame.
                channel.recv(frame).await.map(|()| true)
            } else {
                Ok(false)
            }
        }
    }
}

/// Sends the reply to `request`; false when the connection must end.
async fn deliver(
    channel: &mut AsyncChannel,
    request: &Frame,
    reply_type: u8,
    reply: &[u8],
    shared: &Shared,
    who: &str,
) -> bool {
    let answers = request.header.sequence;
    let limit = shared.reply_timeout;
    let waiting = "room for a reply (the client does not read its replies)";
    let sent = within(
        limit,
        waiting,
        channel.reply(reply_type, flags::CHECKSUM, reply, answers),
    )
    .await;
    match sent {
        Ok(()) => true,
        Err(Error::TooLarge {
            len, limit: most, ..
        }) => {
            let reason = too_large_reason(len, most);
            log::warn!("client {who}: {reason}");
            let refusal = channel.reply(
                message_type::ERROR,
                flags::CHECKSUM,
                reason.as_bytes(),
                answers,
            );
            within(limit, waiting, refusal).await.is_ok()
        }
        Err(e @ Error::Timeout { .. }) => {
            shared.stats.client_errors.fetch_add(1, Ordering::Relaxed);
            shared
                .close_log
                .log(log::Level::Warn, &shared.endpoint, || {
                    format!("client {who}: {e}; closing its connection")
                });
            false
        }
        Err(e) => {
            log::debug!("client {who}: reply not delivered: {e}");
            false
        }
    }
}
