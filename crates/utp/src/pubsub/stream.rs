//! Pub/sub over the stream transports (`unix://`, `tcp://`), publisher
//! side (the subscriber is `stream_subscriber.rs`): the publisher
//! fans each message out to one bounded queue per subscriber, drained by a
//! writer thread per subscriber. Messages are `MESSAGE` frames whose payload
//! starts with the u64 message number, so a subscriber counts exactly what
//! it lost from the gaps. A full queue drops (drop policy) or makes the
//! publisher wait up to the subscriber's timeout, then evicts it (block).

use super::inspect::{Report, SubscriberStatus};
use super::options::{Policy, PublisherOptions};
use super::registry::DEPARTED_KEPT;
use super::wire::{self, Accept, Subscribe};
use crate::channel::{Channel, Listener};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::{Frame, flags, message_type};
use crate::{DeniedReason, ProtocolReason};
use crossbeam_channel::{
    Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError, bounded,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often idle writer threads look for a hung-up subscriber.
const IDLE_CHECK: Duration = Duration::from_millis(50);
/// Largest message payload on a stream transport.
pub const STREAM_MAX_PAYLOAD: usize = 1 << 20;

#[derive(Debug)]
struct StreamMember {
    id: u32,
    pid: u32,
    policy: Policy,
    joined_at: u64,
    tx: Sender<Arc<[u8]>>,
    gone: Arc<AtomicBool>,
    evicted: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    dropped: u64,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    members: Vec<StreamMember>,
    departed: VecDeque<(u32, u32, String)>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
    queue: usize,
    max_subscribers: usize,
}

/// A publisher over a stream transport.
#[derive(Debug)]
pub struct StreamPublisher {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    endpoint: String,
}

impl StreamPublisher {
    /// Listens on `endpoint` (unix:// or tcp://).
    pub fn create(endpoint: &Endpoint, options: &PublisherOptions) -> Result<StreamPublisher> {
        let mut plain = endpoint.clone();
        plain.params.clear();
        let listener = crate::listen(&plain.to_string())?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            queue: options.queue,
            max_subscribers: options.max_subscribers,
        });
        let endpoint = listener.endpoint();
        let accept = std::thread::Builder::new()
            .name("utp-pubsub-accept".into())
            .spawn({
                let shared = shared.clone();
                move || accept_loop(listener, shared)
            })
            .map_err(|e| Error::io("starting the pub/sub accept thread", e))?;
        Ok(StreamPublisher {
            shared,
            accept: Some(accept),
            endpoint,
        })
    }

    /// The endpoint actually bound (a tcp port 0 becomes the real port).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Messages published so far.
    pub fn published(&self) -> u64 {
        self.lock().next
    }

    /// Live subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.lock().members.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes one message to every subscriber's queue.
    pub fn send(&mut self, message_type: u8, payload: &[u8]) -> Result<u64> {
        if payload.len() > STREAM_MAX_PAYLOAD {
            return Err(Error::TooLarge {
                len: payload.len(),
                limit: STREAM_MAX_PAYLOAD,
                transport: "stream pub/sub",
            });
        }
        let mut state = self.lock();
        let n = state.next;
        let mut bytes = Vec::with_capacity(9 + payload.len());
        bytes.extend_from_slice(&n.to_le_bytes());
        bytes.push(message_type);
        crate::copy::extend(&mut bytes, payload);
        let message: Arc<[u8]> = bytes.into();
        for m in state.members.iter_mut() {
            if m.gone.load(Ordering::Acquire) {
                continue;
            }
            match m.policy {
                Policy::Drop => match m.tx.try_send(message.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => m.dropped += 1,
                    Err(TrySendError::Disconnected(_)) => m.gone.store(true, Ordering::Release),
                },
                Policy::Block { timeout } => match m.tx.send_timeout(message.clone(), timeout) {
                    Ok(()) => {}
                    Err(SendTimeoutError::Timeout(_)) => {
                        m.evicted.store(true, Ordering::Release);
                        m.gone.store(true, Ordering::Release);
                    }
                    Err(SendTimeoutError::Disconnected(_)) => m.gone.store(true, Ordering::Release),
                },
            }
        }
        sweep(&mut state);
        state.next = n + 1;
        Ok(n)
    }

    /// The publisher's state.
    pub fn report(&self) -> Report {
        report(&self.lock(), self.shared.queue)
    }
}

fn sweep(state: &mut State) {
    let mut i = 0;
    while i < state.members.len() {
        if state.members[i].gone.load(Ordering::Acquire) {
            let m = state.members.swap_remove(i);
            let why = if m.evicted.load(Ordering::Acquire) {
                "evicted: its queue stayed full past its block timeout"
            } else {
                "its connection ended"
            };
            if state.departed.len() == DEPARTED_KEPT {
                state.departed.pop_front();
            }
            state.departed.push_back((m.id, m.pid, why.into()));
        } else {
            i += 1;
        }
    }
}

fn report(state: &State, queue: usize) -> Report {
    Report {
        publisher_pid: std::process::id(),
        transport: "stream".into(),
        slots: queue as u64,
        slot_size: 0,
        published: state.next,
        subscribers: state
            .members
            .iter()
            .map(|m| {
                let sent = m.sent.load(Ordering::Relaxed);
                let cursor = m.joined_at + sent + m.dropped;
                SubscriberStatus {
                    id: m.id,
                    pid: m.pid,
                    policy: if matches!(m.policy, Policy::Drop) {
                        "drop"
                    } else {
                        "block"
                    }
                    .into(),
                    joined_at: m.joined_at,
                    cursor,
                    lag: state.next.saturating_sub(cursor),
                    received: sent,
                    lost: m.dropped,
                }
            })
            .collect(),
        departed: state.departed.iter().cloned().collect(),
    }
}

impl Drop for StreamPublisher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        // Dropping the senders ends each writer thread after its queue drains.
        self.lock().members.clear();
    }
}

fn accept_loop(mut listener: Box<dyn Listener>, shared: Arc<Shared>) {
    let mut next_id = 1u32;
    let mut writers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::Acquire) {
        let channel = match listener.accept_timeout(Some(IDLE_CHECK)) {
            Ok(c) => c,
            Err(e) if e.is_timeout() => continue,
            Err(e) => {
                log::debug!("pub/sub accept failed: {e}");
                std::thread::sleep(IDLE_CHECK);
                continue;
            }
        };
        match admit(channel, &shared, next_id) {
            Ok(Some(handle)) => {
                next_id = next_id.wrapping_add(1).max(1);
                writers.push(handle);
            }
            Ok(None) => {}
            Err(e) => log::debug!("pub/sub request failed: {e}"),
        }
        writers.retain(|w| !w.is_finished());
    }
    let _ = listener.close();
    shared
        .state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .members
        .clear();
    for w in writers {
        let _ = w.join();
    }
}

fn refuse(channel: &mut Box<dyn Channel>, why: &str) {
    let _ = channel.send(message_type::ERROR, flags::CHECKSUM, why.as_bytes());
}

fn admit(
    mut channel: Box<dyn Channel>,
    shared: &Arc<Shared>,
    id: u32,
) -> Result<Option<JoinHandle<()>>> {
    let peer = channel.peer();
    let me = rustix::process::geteuid().as_raw();
    if let Some(uid) = peer.uid
        && uid != me
    {
        let why = format!("uid {uid} may not subscribe to a publisher of uid {me}");
        refuse(&mut channel, &why);
        return Err(Error::denied(DeniedReason::Untrusted, why));
    }
    let mut frame = Frame::default();
    channel.recv_timeout(&mut frame, Some(super::rendezvous::REQUEST_TIMEOUT))?;
    match frame.message_type() {
        wire::INSPECT => {
            let text = report(
                &shared.state.lock().unwrap_or_else(|p| p.into_inner()),
                shared.queue,
            )
            .encode();
            channel.send(wire::REPORT, flags::CHECKSUM, text.as_bytes())?;
            return Ok(None);
        }
        wire::SUBSCRIBE => {}
        other => {
            let why = format!("unexpected frame type 0x{other:02x}");
            refuse(&mut channel, &why);
            return Err(Error::protocol(ProtocolReason::Unexpected, why));
        }
    }
    let request = match Subscribe::decode(frame.payload()) {
        Ok(r) => r,
        Err(e) => {
            refuse(&mut channel, &e.to_string());
            return Err(e);
        }
    };
    let policy = if request.policy == 1 {
        Policy::Block {
            timeout: Duration::from_nanos(request.block_timeout_ns),
        }
    } else {
        Policy::Drop
    };
    let (tx, rx) = bounded(shared.queue);
    let gone = Arc::new(AtomicBool::new(false));
    let evicted = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let accept = {
        let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.members.len() >= shared.max_subscribers {
            drop(state);
            let why = format!(
                "the publisher already has {} subscribers",
                shared.max_subscribers
            );
            refuse(&mut channel, &why);
            return Err(Error::denied(DeniedReason::Refused, why));
        }
        let start = state.next;
        state.members.push(StreamMember {
            id,
            pid: peer.pid.unwrap_or(0),
            policy,
            joined_at: start,
            tx,
            gone: gone.clone(),
            evicted: evicted.clone(),
            sent: sent.clone(),
            dropped: 0,
        });
        Accept {
            id,
            slot_count: shared.queue as u32,
            slot_size: 0,
            region_len: 0,
            start,
            publisher_pid: std::process::id(),
        }
    };
    let handle = std::thread::Builder::new()
        .name(format!("utp-pubsub-writer-{id}"))
        .spawn(move || writer(channel, accept, rx, gone, evicted, sent))
        .map_err(|e| Error::io("starting a pub/sub writer thread", e))?;
    Ok(Some(handle))
}

fn writer(
    mut channel: Box<dyn Channel>,
    accept: Accept,
    rx: Receiver<Arc<[u8]>>,
    gone: Arc<AtomicBool>,
    evicted: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    if channel
        .send(wire::ACCEPT, flags::CHECKSUM, &accept.encode())
        .is_err()
    {
        gone.store(true, Ordering::Release);
        return;
    }
    let mut probe = Frame::default();
    loop {
        match rx.recv_timeout(IDLE_CHECK) {
            Ok(message) => {
                if channel.send(wire::MESSAGE, 0, &message).is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(RecvTimeoutError::Timeout) => {
                if evicted.load(Ordering::Acquire) {
                    refuse(
                        &mut channel,
                        "evicted: the subscriber's queue stayed full past its block timeout",
                    );
                    break;
                }
                // A subscriber never speaks after SUBSCRIBE: end-of-file means it is gone.
                match channel.recv_timeout(&mut probe, Some(Duration::from_millis(1))) {
                    Err(e) if e.is_timeout() => {}
                    _ => break,
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = channel.send(message_type::GOODBYE, flags::CHECKSUM, b"publisher closed");
                break;
            }
        }
    }
    gone.store(true, Ordering::Release);
    let _ = channel.close();
}

/// Whether `address` is a stream transport pub/sub runs on.
pub fn is_stream(address: &Address) -> bool {
    matches!(
        address,
        Address::Unix(_) | Address::UnixAbstract(_) | Address::Tcp(_)
    )
}
