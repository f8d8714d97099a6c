//! One link: the zenoh entities that carry one channel between a client
//! and a server, and the frame/credit logic over them.

use super::state::{LinkState, WINDOW_BYTES, WINDOW_FRAMES};
use super::{keys, zenoh_error};
use crate::channel::Deadline;
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::transport::message;
use crate::{GoneReason, ProtocolReason};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::sample::SampleKind;
use zenoh::{Session, Wait};

/// Which end of the link this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// Sends on `c`, receives on `s`.
    Client,
    /// Sends on `s`, receives on `c`.
    Server,
}

impl Role {
    fn mine(self) -> &'static str {
        match self {
            Role::Client => "c",
            Role::Server => "s",
        }
    }
    fn theirs(self) -> &'static str {
        match self {
            Role::Client => "s",
            Role::Server => "c",
        }
    }
}

/// What both halves of a split link hold: the subscriptions that feed the
/// shared state (frames in, credit in, the peer's liveliness) and, once
/// split, the liveliness token, withdrawn when the last half is gone.
struct Shared {
    _data_in: Subscriber<()>,
    _credit_in: Subscriber<()>,
    _peer_watch: Subscriber<()>,
    token: std::sync::OnceLock<LivelinessToken>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            let _ = token.undeclare().wait();
        }
    }
}

/// How often a sender looks again for the peer's subscription to appear.
const MATCH_POLL: Duration = Duration::from_millis(2);

/// The zenoh side of one channel.
pub(super) struct Link {
    /// Printable `utp/KEY/@link/ID`.
    pub name: String,
    state: Arc<LinkState>,
    /// Frames out; `None` in the receive half of a split link.
    data_out: Option<Publisher<'static>>,
    /// Credit out; `None` in the send half of a split link.
    credit_out: Option<Publisher<'static>>,
    /// The subscriptions both directions need (and, once split, the token).
    shared: Arc<Shared>,
    /// Ours to withdraw on close; moved into `shared` when the link is split.
    token: Option<LivelinessToken>,
    closed: bool,
    created: Instant,
    /// How long the peer's token may take to appear.
    attach: Duration,
    /// Frames and bytes sent (for the credit window).
    sent: u64,
    sent_bytes: u64,
    /// Frames and bytes consumed, and the counts last granted to the peer.
    consumed: u64,
    consumed_bytes: u64,
    granted: u64,
    granted_bytes: u64,
    /// The peer's data subscription was seen (puts before that are dropped by zenoh).
    matched: bool,
    max_payload: usize,
    reported_gone: bool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("name", &self.name)
            .field("sent", &self.sent)
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Declares every entity of `role`'s end of link `link_id` of `service`.
    pub(super) fn open(
        session: &Session,
        service: &str,
        link_id: &str,
        role: Role,
        attach: Duration,
        max_payload: usize,
        bell: Option<Arc<crate::wake::Doorbell>>,
    ) -> Result<Link> {
        let base = keys::link(service, link_id);
        let z = |what: &str| {
            let context = format!("declare the zenoh {what} of {base}");
            move |e| zenoh_error(&context, e)
        };
        let state = Arc::new(LinkState::default());
        if let Some(bell) = bell {
            let _ = state.bell.set(bell);
        }
        let (mine, theirs) = (role.mine(), role.theirs());
        // Receive side first, so nothing the peer sends once it sees us is missed.
        let s = state.clone();
        let data_in = session
            .declare_subscriber(format!("{base}/{theirs}"))
            .callback(move |sample| s.deliver(sample.payload().clone()))
            .wait()
            .map_err(z("data subscriber"))?;
        let s = state.clone();
        let credit_in = session
            .declare_subscriber(format!("{base}/{mine}_credit"))
            .callback(move |sample| s.credit(sample.payload()))
            .wait()
            .map_err(z("credit subscriber"))?;
        let s = state.clone();
        let peer_watch = session
            .liveliness()
            .declare_subscriber(format!("{base}/alive_{theirs}"))
            .history(true)
            .callback(move |sample| {
                let kind = sample.kind();
                s.update(|st| match kind {
                    SampleKind::Put => st.peer_seen = true,
                    SampleKind::Delete => {
                        st.peer_lost_at.get_or_insert_with(Instant::now);
                    }
                });
            })
            .wait()
            .map_err(z("liveliness subscriber"))?;
        let data_out = session
            .declare_publisher(format!("{base}/{mine}"))
            .congestion_control(CongestionControl::Block)
            .wait()
            .map_err(z("data publisher"))?;
        let credit_out = session
            .declare_publisher(format!("{base}/{theirs}_credit"))
            .congestion_control(CongestionControl::Block)
            .express(true)
            .wait()
            .map_err(z("credit publisher"))?;
        let token = session
            .liveliness()
            .declare_token(format!("{base}/alive_{mine}"))
            .wait()
            .map_err(z("liveliness token"))?;
        Ok(Link {
            name: base,
            state,
            data_out: Some(data_out),
            credit_out: Some(credit_out),
            shared: Arc::new(Shared {
                _data_in: data_in,
                _credit_in: credit_in,
                _peer_watch: peer_watch,
                token: std::sync::OnceLock::new(),
            }),
            token: Some(token),
            closed: false,
            created: Instant::now(),
            attach,
            sent: 0,
            sent_bytes: 0,
            consumed: 0,
            consumed_bytes: 0,
            granted: 0,
            granted_bytes: 0,
            matched: false,
            max_payload,
            reported_gone: false,
        })
    }

    /// Waits until the peer's liveliness token is seen (the link is up).
    pub(super) fn wait_for_peer(&self, deadline: Deadline) -> Result<()> {
        let until = deadline.remaining().map(|left| Instant::now() + left);
        let mut s = self.state.lock();
        loop {
            if s.peer_seen {
                return Ok(());
            }
            if let Some(why) = s.gone(self.created, self.attach) {
                return Err(self.gone_error(why));
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                return Err(Error::Timeout {
                    waiting_for: "the zenoh server to attach the link",
                    after: self.attach,
                });
            }
            let next = earliest(until, s.next_check(self.created, self.attach));
            s = self.state.wait(s, next);
        }
    }

    /// Whether the peer is known to be gone (no frames left to read from it).
    pub(super) fn is_gone(&self) -> bool {
        let s = self.state.lock();
        s.frames.is_empty() && s.gone(self.created, self.attach).is_some()
    }

    fn gone_error(&self, why: &str) -> Error {
        // `why` is one of LinkState::gone's sentences: an orderly close, or
        // a liveliness token that vanished (process ended or host unreachable).
        let reason = if why == "it closed the channel" {
            GoneReason::Closed
        } else {
            GoneReason::Unreachable
        };
        Error::peer_gone(reason, format!("zenoh peer of {}: {why}", self.name))
    }

    /// Publishes one encoded frame (or the empty goodbye), within the credit window.
    pub(super) fn send(&mut self, encoded: &[u8], timeout: Option<Duration>) -> Result<()> {
        let deadline = Deadline::after(timeout);
        let until = deadline.remaining().map(|left| Instant::now() + left);
        let timed_out = |waiting_for| Error::Timeout {
            waiting_for,
            after: timeout.unwrap_or_default(),
        };
        {
            let mut s = self.state.lock();
            loop {
                if let Some(why) = s.gone(self.created, self.attach) {
                    return Err(self.gone_error(why));
                }
                if self.sent.saturating_sub(s.acked) < WINDOW_FRAMES
                    && self.sent_bytes.saturating_sub(s.acked_bytes) < WINDOW_BYTES
                {
                    break;
                }
                if until.is_some_and(|u| Instant::now() >= u) {
                    return Err(timed_out("credit from the zenoh peer (it is not reading)"));
                }
                let next = earliest(until, s.next_check(self.created, self.attach));
                s = self.state.wait(s, next);
            }
        }
        let data_out = self.data_out.as_ref().ok_or_else(|| {
            Error::protocol(
                crate::ProtocolReason::Unsupported,
                "the receive half of a zenoh link cannot send",
            )
        })?;
        while !self.matched {
            let status = data_out
                .matching_status()
                .wait()
                .map_err(|e| zenoh_error("ask zenoh whether the peer subscribes", e))?;
            if status.matching() {
                self.matched = true;
                break;
            }
            if let Some(why) = self.state.lock().gone(self.created, self.attach) {
                return Err(self.gone_error(why));
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                return Err(timed_out(
                    "the zenoh peer's subscription to reach this host",
                ));
            }
            std::thread::sleep(MATCH_POLL);
        }
        data_out
            .put(encoded.to_vec())
            .wait()
            .map_err(|e| zenoh_error(&format!("publish a frame on {}", self.name), e))?;
        self.sent += 1;
        self.sent_bytes += encoded.len() as u64;
        Ok(())
    }

    /// Takes the next frame into `frame`, waiting at most `timeout`.
    pub(super) fn recv(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        let deadline = Deadline::after(timeout);
        let until = deadline.remaining().map(|left| Instant::now() + left);
        let message = {
            let mut s = self.state.lock();
            loop {
                if s.overflow {
                    return Err(Error::protocol(
                        ProtocolReason::Unexpected,
                        format!(
                            "zenoh peer of {} sent more than its window \
                         ({WINDOW_FRAMES} frames, {WINDOW_BYTES} bytes)",
                            self.name
                        ),
                    ));
                }
                if let Some(message) = LinkState::pop(&mut s) {
                    break message;
                }
                if let Some(why) = s.gone(self.created, self.attach) {
                    self.reported_gone = true;
                    return Err(self.gone_error(why));
                }
                if until.is_some_and(|u| Instant::now() >= u) {
                    return Err(Error::Timeout {
                        waiting_for: "a frame from the zenoh peer",
                        after: timeout.unwrap_or_default(),
                    });
                }
                let next = earliest(until, s.next_check(self.created, self.attach));
                s = self.state.wait(s, next);
            }
        };
        self.consumed += 1;
        self.consumed_bytes += message.len() as u64;
        if self.consumed - self.granted >= WINDOW_FRAMES / 4
            || self.consumed_bytes - self.granted_bytes >= WINDOW_BYTES / 4
        {
            self.grant();
        }
        let bytes = message.to_bytes();
        if !message::decode(&bytes, self.max_payload, frame)? {
            // The peer said goodbye: treat as gone from now on.
            self.state.update(|s| s.closed = true);
            self.reported_gone = true;
            return Err(self.gone_error("it closed the channel"));
        }
        Ok(())
    }

    /// Tells the peer how many of its frames and bytes were consumed (returns credit).
    fn grant(&mut self) {
        let Some(credit_out) = &self.credit_out else {
            return;
        };
        let mut credit = self.consumed.to_le_bytes().to_vec();
        credit.extend_from_slice(&self.consumed_bytes.to_le_bytes());
        if credit_out.put(credit).wait().is_ok() {
            self.granted = self.consumed;
            self.granted_bytes = self.consumed_bytes;
        }
    }

    /// Whether a receive already reported this link's end.
    pub(super) fn reported_gone(&self) -> bool {
        self.reported_gone
    }

    /// Says goodbye (in order with the data; not from a receive half) and
    /// withdraws the token (a split link's, when both halves are gone).
    pub(super) fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        if let Some(data_out) = &self.data_out {
            let matched =
                self.matched || (data_out.matching_status().wait()).is_ok_and(|m| m.matching());
            if matched && self.state.lock().gone(self.created, self.attach).is_none() {
                let _ = data_out.put(Vec::<u8>::new()).wait();
            }
        }
        if let Some(token) = self.token.take() {
            let _ = token.undeclare().wait();
        }
    }

    /// Makes this link the receive half and returns the send half: the
    /// send half publishes frames (and reads the credit the shared state
    /// collects), the receive half takes frames and grants credit. The
    /// token is withdrawn when both are gone.
    pub(super) fn split_off_sender(&mut self) -> Link {
        if let Some(token) = self.token.take() {
            // Set once: a link splits once (its halves do not split again).
            let _ = self.shared.token.set(token);
        }
        Link {
            name: self.name.clone(),
            state: self.state.clone(),
            data_out: self.data_out.take(),
            credit_out: None,
            shared: self.shared.clone(),
            token: None,
            closed: self.closed,
            created: self.created,
            attach: self.attach,
            sent: self.sent,
            sent_bytes: self.sent_bytes,
            consumed: 0,
            consumed_bytes: 0,
            granted: 0,
            granted_bytes: 0,
            matched: self.matched,
            max_payload: self.max_payload,
            reported_gone: false,
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.close();
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
