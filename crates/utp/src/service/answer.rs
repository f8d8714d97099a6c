//! Answering one received frame: shared by the thread-per-client path and
//! the event-driven workers of [`Server`](super::Server).

use super::server::{HandlerDebug, ServerStats};
use crate::channel::{Channel, PeerInfo};
use crate::error::Error;
use crate::frame::{Frame, flags, message_type};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What the connection does after a frame was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Keep serving it.
    Continue,
    /// Close it (the client said goodbye, the reply could not be delivered,
    /// or the handler panicked).
    Close,
}

/// The per-server settings a connection is served with.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Longest a reply may wait for room before the connection is given up.
    pub(super) reply_timeout: Duration,
    /// Set by [`Server::idle_timeout`](super::Server::idle_timeout): replaces
    /// the channel's own idle limit (`None`: keep the channel's).
    pub(super) idle_timeout: Option<Option<Duration>>,
}

/// What a server does with one received frame.
#[derive(Debug)]
pub(crate) enum Response {
    /// Send this reply (message type, payload), naming the request.
    Reply(u8, Vec<u8>),
    /// Nothing to send (a heartbeat).
    Nothing,
    /// Close the connection (a goodbye, or the handler panicked).
    Close,
}

/// Decides the reply to `frame`: the handler's answer to a REQUEST, an
/// ERROR for a message type the server does not serve. Shared by the
/// blocking server and the async one ([`crate::tokio::service`]).
pub(crate) fn respond(
    frame: &Frame,
    handler: &dyn HandlerDebug,
    peer: &PeerInfo,
    who: &str,
    stats: &ServerStats,
) -> Response {
    match frame.message_type() {
        message_type::REQUEST => {
            let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handler.handle(frame.payload(), peer)
            }));
            match answered {
                Ok(response) => {
                    stats.requests.fetch_add(1, Ordering::Relaxed);
                    Response::Reply(message_type::RESPONSE, response)
                }
                Err(_) => {
                    stats.client_errors.fetch_add(1, Ordering::Relaxed);
                    log::error!("client {who}: the handler panicked; closing its connection");
                    Response::Close
                }
            }
        }
        message_type::HEARTBEAT => Response::Nothing,
        message_type::GOODBYE => Response::Close,
        other => Response::Reply(
            message_type::ERROR,
            format!(
                "unexpected message type 0x{other:02x}: this server answers REQUEST (0x10) frames"
            )
            .into_bytes(),
        ),
    }
}

/// The ERROR text for a reply the link cannot carry.
pub(crate) fn too_large_reason(len: usize, limit: usize) -> String {
    format!(
        "reply of {len} bytes is too large for this link (limit {limit}); \
         ask for a bigger ring with ?ring= or a smaller reply"
    )
}

/// Answers `frame` (a REQUEST, HEARTBEAT, GOODBYE or anything else) on `channel`.
///
/// A reply names the request it answers ([`Channel::reply_timeout`]) and
/// waits at most `limits.reply_timeout` for room: a client that stops
/// reading loses its connection instead of pinning the server.
pub(super) fn answer(
    channel: &mut dyn Channel,
    frame: &Frame,
    handler: &dyn HandlerDebug,
    peer: &PeerInfo,
    who: &str,
    stats: &ServerStats,
    limits: Limits,
) -> Next {
    let reply = match respond(frame, handler, peer, who, stats) {
        Response::Reply(message_type, payload) => (message_type, payload),
        Response::Nothing => return Next::Continue,
        Response::Close => return Next::Close,
    };
    let sent = channel.reply_timeout(
        reply.0,
        flags::CHECKSUM,
        &reply.1,
        frame.header.sequence,
        Some(limits.reply_timeout),
    );
    match sent {
        Ok(()) => Next::Continue,
        // A reply the link cannot carry (e.g. larger than a shm ring): the
        // client gets an ERROR saying so, not a silent close.
        Err(Error::TooLarge { len, limit, .. }) => {
            let reason = too_large_reason(len, limit);
            log::warn!("client {who}: {reason}");
            match channel.reply_timeout(
                message_type::ERROR,
                flags::CHECKSUM,
                reason.as_bytes(),
                frame.header.sequence,
                Some(limits.reply_timeout),
            ) {
                Ok(()) => Next::Continue,
                Err(_) => Next::Close,
            }
        }
        Err(e @ Error::Timeout { .. }) => {
            stats.client_errors.fetch_add(1, Ordering::Relaxed);
            log::warn!("client {who}: {e} (it does not read its replies); closing its connection");
            Next::Close
        }
        Err(e) => {
            log::debug!("client {who}: reply not delivered: {e}");
            Next::Close
        }
    }
}

/// Tells a client why its connection ends (without waiting: a client that
/// does not read never holds the server here) and closes it.
pub(crate) fn refuse(channel: &mut dyn Channel, reason: &str) {
    let _ = channel.send_timeout(
        message_type::ERROR,
        flags::CHECKSUM,
        reason.as_bytes(),
        Some(Duration::ZERO),
    );
    let _ = channel.close();
}

/// Lines a server writes per second about connections it closes; beyond
/// that they are counted and summed up in one line, so thousands of
/// stalled or idle connections closing at once cannot flood the log.
const CLOSE_LINES_PER_SECOND: u32 = 10;

/// A rate limit for "closing a connection" log lines.
#[derive(Debug)]
pub(crate) struct CloseLog {
    window: std::sync::Mutex<(std::time::Instant, u32, u64)>,
}

impl Default for CloseLog {
    fn default() -> Self {
        CloseLog {
            window: std::sync::Mutex::new((std::time::Instant::now(), 0, 0)),
        }
    }
}

impl CloseLog {
    /// Logs `line()` at `level` unless ten lines were written this second;
    /// counts it otherwise, and reports the count when a new second starts.
    pub(crate) fn log(&self, level: log::Level, endpoint: &str, line: impl FnOnce() -> String) {
        let mut window = self.flushed(endpoint);
        if window.1 < CLOSE_LINES_PER_SECOND {
            window.1 += 1;
            drop(window);
            log::log!(level, "{endpoint}: {}", line());
        } else {
            window.2 += 1;
        }
    }

    /// Reports the lines not written once their second is over.
    pub(crate) fn flush(&self, endpoint: &str) {
        drop(self.flushed(endpoint));
    }

    fn flushed(&self, endpoint: &str) -> std::sync::MutexGuard<'_, (std::time::Instant, u32, u64)> {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if window.0.elapsed() >= Duration::from_secs(1) {
            if window.2 > 0 {
                log::warn!(
                    "{endpoint}: {} more connections closed in the last second (not logged one by one)",
                    window.2
                );
            }
            *window = (std::time::Instant::now(), 0, 0);
        }
        window
    }
}

/// A short description of a peer for log lines.
pub(crate) fn describe(peer: &PeerInfo) -> String {
    match (peer.pid, &peer.address) {
        (Some(pid), _) => format!("pid {pid}"),
        (None, Some(address)) => address.clone(),
        (None, None) => "(unknown)".into(),
    }
}
