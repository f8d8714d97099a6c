//! Pub/sub over zenoh (`zenoh://KEY`, cargo feature `zenoh`): one publisher,
//! any number of subscribers on any host the zenoh network reaches.
//!
//! Key expressions, under `utp/KEY/@pubsub/`:
//!
//! - `msg`: every message, a whole UTP frame whose sequence number is the
//!   message number (0, 1, 2, ...), so a subscriber counts its losses exactly
//!   from the gaps, as on every other pub/sub transport;
//! - `pub`: the publisher's liveliness token. A subscriber that saw it go
//!   (the publisher closed, crashed, or its host became unreachable) reports
//!   [`PeerGone`](crate::Error::PeerGone) once the messages that arrived
//!   before are read. A second publisher on the key is refused;
//! - `sub/ID`: one liveliness token per subscriber, which the publisher
//!   counts.
//!
//! The URL's zenoh options (`connect`, `listen`, `mode`, `config`, `scout`,
//! `lease_ms`) are the ones `zenoh://` channels take (docs/distributed.md).
//! `policy=drop` (default) publishes with zenoh's `CongestionControl::Drop`:
//! a congested link loses messages and its subscribers count them;
//! `policy=block` on the *publisher's* URL uses `CongestionControl::Block`,
//! so a congested link slows the publisher instead. Each subscriber holds
//! at most `queue` (default 1,024) received messages it has not read yet;
//! past that, new ones are dropped and counted as lost.
//!
//! Everything that arrives is untrusted input from the network: a message
//! that is not a valid frame of at most [`STREAM_MAX_PAYLOAD`] bytes is
//! dropped and logged, never delivered.

use super::inspect::{Report, SubscriberStatus};
use super::stream::STREAM_MAX_PAYLOAD;
use crate::GoneReason;
use crate::channel::Options;
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::{self, HEADER_LEN, Header, flags, now_micros};
use crate::transport::zenoh::{session, zenoh_error};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zenoh::liveliness::LivelinessToken;
use zenoh::qos::CongestionControl;
use zenoh::sample::SampleKind;
use zenoh::{Session, Wait};

/// Messages a subscriber holds before dropping new ones, by default.
pub const DEFAULT_QUEUE: usize = 1024;
/// How long `create` asks the network whether the key already has a publisher.
const PUBLISHER_LOOKUP: Duration = Duration::from_millis(500);
/// How often an idle subscriber looks whether the publisher left.
const GONE_POLL: Duration = Duration::from_millis(100);

fn key(endpoint: &Endpoint) -> Result<&str> {
    match &endpoint.address {
        Address::Zenoh(key) => Ok(key),
        _ => Err(Error::BadUrl {
            url: endpoint.to_string(),
            reason: "not a zenoh:// endpoint".into(),
        }),
    }
}

fn keys(topic: &str) -> (String, String, String) {
    let base = format!("utp/{topic}/@pubsub");
    (
        format!("{base}/msg"),
        format!("{base}/pub"),
        format!("{base}/sub"),
    )
}

fn session_for(endpoint: &Endpoint) -> Result<Session> {
    let options = Options {
        max_payload: STREAM_MAX_PAYLOAD,
        ..Options::default()
    };
    session::for_endpoint(endpoint, &options)
}

/// The publisher's end.
pub struct ZenohPublisher {
    endpoint: String,
    publisher: zenoh::pubsub::Publisher<'static>,
    _token: LivelinessToken,
    _watch: zenoh::pubsub::Subscriber<()>,
    subscribers: Arc<Mutex<BTreeSet<String>>>,
    next: u64,
    /// The outgoing frame, reused.
    out: Vec<u8>,
    policy: &'static str,
}

impl std::fmt::Debug for ZenohPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZenohPublisher")
            .field("endpoint", &self.endpoint)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl ZenohPublisher {
    /// Declares the publisher of `zenoh://KEY`; refused with
    /// [`Error::InUse`] when the network already has one.
    pub fn create(endpoint: &Endpoint) -> Result<ZenohPublisher> {
        let topic = key(endpoint)?;
        let (msg, alive, subs) = keys(topic);
        let block = match endpoint.param("policy") {
            None | Some("drop") => false,
            Some("block") => true,
            Some(other) => {
                return Err(Error::BadUrl {
                    url: endpoint.to_string(),
                    reason: format!("policy={other:?}: use drop or block"),
                });
            }
        };
        let session = session_for(endpoint)?;
        let z = |what: &'static str| move |e| zenoh_error(what, e);
        let existing = session
            .liveliness()
            .get(&alive)
            .timeout(PUBLISHER_LOOKUP)
            .wait()
            .map_err(z("ask zenoh for an existing publisher"))?;
        if existing.recv().is_ok() {
            return Err(Error::InUse {
                endpoint: endpoint.to_string(),
                hint: Some("another publisher on the zenoh network has this key".into()),
            });
        }
        let subscribers = Arc::new(Mutex::new(BTreeSet::new()));
        let seen = subscribers.clone();
        let watch = session
            .liveliness()
            .declare_subscriber(format!("{subs}/*"))
            .history(true)
            .callback(move |sample| {
                let mut set = seen.lock().unwrap_or_else(|e| e.into_inner());
                let name = sample.key_expr().as_str().to_string();
                match sample.kind() {
                    SampleKind::Put => set.insert(name),
                    SampleKind::Delete => set.remove(&name),
                };
            })
            .wait()
            .map_err(z("watch zenoh subscribers"))?;
        let publisher = session
            .declare_publisher(msg)
            .congestion_control(if block {
                CongestionControl::Block
            } else {
                CongestionControl::Drop
            })
            .wait()
            .map_err(z("declare the zenoh publisher"))?;
        let token = session
            .liveliness()
            .declare_token(alive)
            .wait()
            .map_err(z("declare the publisher's zenoh token"))?;
        Ok(ZenohPublisher {
            endpoint: endpoint.to_string(),
            publisher,
            _token: token,
            _watch: watch,
            subscribers,
            next: 0,
            out: Vec::new(),
            policy: if block { "block" } else { "drop" },
        })
    }

    /// The URL it publishes at.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Messages published so far.
    pub fn published(&self) -> u64 {
        self.next
    }

    /// Subscribers the zenoh network shows now.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Publishes one message; returns its number.
    pub fn send(&mut self, message_type: u8, payload: &[u8]) -> Result<u64> {
        if payload.len() > STREAM_MAX_PAYLOAD {
            return Err(Error::TooLarge {
                len: payload.len(),
                limit: STREAM_MAX_PAYLOAD,
                transport: "zenoh pub/sub",
            });
        }
        let n = self.next;
        let mut head = [0u8; HEADER_LEN];
        Header::new(message_type, flags::CHECKSUM, n, now_micros()).encode_for(payload, &mut head);
        self.out.clear();
        self.out.extend_from_slice(&head);
        crate::copy::extend(&mut self.out, payload);
        self.publisher
            .put(self.out.as_slice())
            .wait()
            .map_err(|e| zenoh_error("publish on zenoh", e))?;
        self.next = n + 1;
        Ok(n)
    }

    /// What the publisher knows: its count and the subscribers' tokens
    /// (their reading positions stay on their hosts).
    pub fn report(&self) -> Report {
        let count = self.subscriber_count();
        Report {
            publisher_pid: std::process::id(),
            transport: "zenoh".into(),
            slots: 0,
            slot_size: 0,
            published: self.next,
            subscribers: (0..count)
                .map(|i| SubscriberStatus {
                    id: i as u32,
                    pid: 0,
                    policy: self.policy.into(),
                    joined_at: 0,
                    cursor: 0,
                    lag: 0,
                    received: 0,
                    lost: 0,
                })
                .collect(),
            departed: Vec::new(),
        }
    }
}

/// What the zenoh callbacks hand the subscriber.
enum Item {
    /// A checked frame: its header and its bytes (header included).
    Message(Header, Vec<u8>),
    PublisherGone,
}

/// A subscriber's end.
pub struct ZenohSubscriber {
    rx: Receiver<Item>,
    _data: zenoh::pubsub::Subscriber<()>,
    _watch: zenoh::pubsub::Subscriber<()>,
    _token: LivelinessToken,
    /// Set by the liveliness callback when the queue had no room for the marker.
    gone: Arc<AtomicBool>,
    current: Vec<u8>,
    expected: Option<u64>,
    received: u64,
    lost: u64,
    ended: bool,
}

impl std::fmt::Debug for ZenohSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZenohSubscriber")
            .field("expected", &self.expected)
            .field("received", &self.received)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl ZenohSubscriber {
    /// Subscribes to `zenoh://KEY` (the publisher may come later).
    pub fn connect(endpoint: &Endpoint) -> Result<ZenohSubscriber> {
        let topic = key(endpoint)?;
        let (msg, alive, subs) = keys(topic);
        let capacity = match endpoint.param_number("queue")? {
            None => DEFAULT_QUEUE,
            Some(n @ 1..=1_048_576) => n as usize,
            Some(n) => {
                return Err(Error::BadUrl {
                    url: endpoint.to_string(),
                    reason: format!("queue={n}: expected 1..=1048576"),
                });
            }
        };
        let session = session_for(endpoint)?;
        let z = |what: &'static str| move |e| zenoh_error(what, e);
        let (tx, rx) = bounded(capacity);
        let invalid = Arc::new(AtomicU64::new(0));
        let data = {
            let tx: Sender<Item> = tx.clone();
            let invalid = invalid.clone();
            session
                .declare_subscriber(msg)
                .callback(move |sample| {
                    let bytes = sample.payload().to_bytes();
                    let header = match frame::decode(&bytes, STREAM_MAX_PAYLOAD) {
                        Ok((header, _)) => header,
                        Err(e) => {
                            // Logged at 1, 2, 4, 8, ...: a flood cannot flood the log.
                            let n = invalid.fetch_add(1, Ordering::Relaxed) + 1;
                            if n.is_power_of_two() {
                                log::warn!(
                                    "zenoh pub/sub: dropped an invalid message ({n} so far): {e}"
                                );
                            }
                            return;
                        }
                    };
                    // Full: dropped here, counted as lost from the next number.
                    let _ = tx.try_send(Item::Message(header, bytes.into_owned()));
                })
                .wait()
                .map_err(z("declare the zenoh subscriber"))?
        };
        let gone = Arc::new(AtomicBool::new(false));
        let watch = {
            let gone = gone.clone();
            session
                .liveliness()
                .declare_subscriber(alive)
                .callback(move |sample| {
                    if sample.kind() == SampleKind::Delete {
                        if let Err(TrySendError::Full(_)) = tx.try_send(Item::PublisherGone) {
                            gone.store(true, Ordering::Release);
                        }
                    }
                })
                .wait()
                .map_err(z("watch the zenoh publisher"))?
        };
        let token = session
            .liveliness()
            .declare_token(format!("{subs}/{}", session::unique_id(&session, 's')))
            .wait()
            .map_err(z("declare the subscriber's zenoh token"))?;
        Ok(ZenohSubscriber {
            rx,
            _data: data,
            _watch: watch,
            _token: token,
            gone,
            current: Vec::new(),
            expected: None,
            received: 0,
            lost: 0,
            ended: false,
        })
    }

    /// Next message number expected (0 before the first).
    pub fn position(&self) -> u64 {
        self.expected.unwrap_or(0)
    }

    /// Messages received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Messages lost since the first one received.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    fn publisher_gone(&mut self) -> Error {
        self.ended = true;
        Error::peer_gone(
            GoneReason::Unreachable,
            "the zenoh publisher left (closed, crashed or unreachable)",
        )
    }

    /// Receives the next message: (header with the message number as
    /// sequence, payload, messages lost just before it).
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<(Header, &[u8], u64)> {
        if self.ended {
            return Err(self.publisher_gone());
        }
        let deadline = crate::channel::Deadline::after(timeout);
        let (header, bytes) = loop {
            // The gone flag is only set when the marker found the queue full:
            // look at it between short waits once the queue is empty.
            let slice = deadline
                .remaining()
                .map_or(GONE_POLL, |left| left.min(GONE_POLL));
            match self.rx.recv_timeout(slice) {
                Ok(Item::Message(header, bytes)) => break (header, bytes),
                Ok(Item::PublisherGone) => return Err(self.publisher_gone()),
                Err(RecvTimeoutError::Disconnected) => return Err(self.publisher_gone()),
                Err(RecvTimeoutError::Timeout) if self.gone.load(Ordering::Acquire) => {
                    return Err(self.publisher_gone());
                }
                Err(RecvTimeoutError::Timeout) => {
                    if deadline.remaining().is_some_and(|left| left.is_zero()) {
                        return Err(Error::Timeout {
                            waiting_for: "a message from the zenoh publisher",
                            after: timeout.unwrap_or_default(),
                        });
                    }
                }
            }
        };
        // Decoded (and its checksum checked) once, in the callback.
        self.current = bytes;
        let n = header.sequence;
        let gap = match self.expected {
            Some(expected) if n >= expected => n - expected,
            Some(expected) => {
                // A new publisher numbers from 0 again.
                log::info!("zenoh pub/sub: message {n} after {expected}: the publisher restarted");
                0
            }
            None => 0,
        };
        self.lost += gap;
        self.received += 1;
        self.expected = Some(n + 1);
        Ok((header, &self.current[HEADER_LEN..], gap))
    }
}
