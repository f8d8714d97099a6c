//! eventfd notices for event loops: the writer hands each subscriber an
//! eventfd over a Unix socket (`SCM_RIGHTS`) and increments it on publish.
//!
//! Like `SIGUSR1` ([`signal`](super::signal)) this costs the writer a system
//! call per subscriber per publish, so it suits updates at human or
//! millisecond rates, not millions per second; the futex path
//! ([`SeqReader::wait_next`](super::SeqReader::wait_next)) costs the writer
//! nothing while nobody sleeps.

use crate::ProtocolReason;
use crate::channel::Channel as _;
use crate::channel::Deadline;
use crate::channel::{Options, PeerInfo};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::frame::{Frame, message_type};
use crate::shm::sync::Ordering;
use crate::transport::stream::{Framing, StreamChannel, StreamIo};
use crate::transport::unix;
use crate::transport::wait::{Ready, wait_ready};
use rustix::event::PollFlags;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Payload of the frame that carries a subscriber's eventfd.
const HELLO: &[u8] = b"utp-seqlock-eventfd/1";

/// One subscriber: its eventfd, and its connection (kept open so that the
/// subscriber sees end-of-file when the writer dies), watched for hang-up
/// through a duplicate descriptor.
#[derive(Debug)]
struct Sub {
    watch: OwnedFd,
    efd: OwnedFd,
    conn: Option<StreamChannel>,
}

/// The writer's eventfd subscribers.
#[derive(Debug, Default)]
struct Subscribers {
    count: AtomicUsize,
    list: Mutex<Vec<Sub>>,
    stop: AtomicBool,
}

/// Writer side: a thread accepting subscribers, and `notify` on publish.
#[derive(Debug)]
pub(crate) struct EventHub {
    subs: Arc<Subscribers>,
    thread: Option<JoinHandle<()>>,
}

impl EventHub {
    pub(crate) fn serve(socket_url: &str) -> Result<EventHub> {
        let endpoint = Endpoint::parse(socket_url)?;
        if unix::UnixAddr::of(&endpoint).is_none() {
            return Err(Error::BadUrl {
                url: socket_url.into(),
                reason: "eventfds are handed over a unix:// socket".into(),
            });
        }
        let mut listener = unix::listen(&endpoint, &Options::default())?;
        let subs = Arc::new(Subscribers::default());
        let shared = subs.clone();
        let thread = std::thread::spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                match listener.accept_socket(Some(Duration::from_millis(50))) {
                    Ok((fd, peer)) => {
                        if let Err(e) = hand_over(&shared, fd, peer) {
                            log::warn!("seqlock eventfd subscriber: {e}");
                        }
                    }
                    Err(e) if e.is_timeout() => {}
                    Err(e) => log::warn!("seqlock eventfd listener: {e}"),
                }
                prune(&shared);
            }
        });
        Ok(EventHub {
            subs,
            thread: Some(thread),
        })
    }

    /// Adds 1 to every subscriber's eventfd (non-blocking; a full counter
    /// or a departed subscriber is skipped).
    #[inline]
    pub(crate) fn notify(&self) {
        if self.subs.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        if let Ok(list) = self.subs.list.lock() {
            for sub in list.iter() {
                crate::wake::signal(&sub.efd);
            }
        }
    }
}

impl Drop for EventHub {
    fn drop(&mut self) {
        self.subs.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Registers a subscriber, then sends it its eventfd: registering first
/// means every publish after the subscriber holds the eventfd reaches it.
fn hand_over(subs: &Subscribers, fd: OwnedFd, peer: PeerInfo) -> Result<()> {
    let efd = crate::wake::new_eventfd()?;
    let watch = fd.try_clone().map_err(|e| Error::io("dup", e))?;
    let mine = efd.try_clone().map_err(|e| Error::io("dup", e))?;
    let key = std::os::fd::AsRawFd::as_raw_fd(&mine);
    {
        let mut list = subs.list.lock().map_err(|_| Error::Closed)?;
        list.push(Sub {
            watch,
            efd: mine,
            conn: None,
        });
        subs.count.store(list.len(), Ordering::Relaxed);
    }
    let io = StreamIo::Socket {
        fd,
        passes_fds: true,
    };
    let mut ch = StreamChannel::new(io, Framing::Utp, 4096, "seqlock eventfd".into(), peer);
    let sent = ch.send_with_fds(
        message_type::DATA,
        0,
        HELLO,
        &[efd.as_fd()],
        Some(Duration::from_secs(1)),
    );
    let mut list = subs.list.lock().map_err(|_| Error::Closed)?;
    let is_mine = |sub: &Sub| std::os::fd::AsRawFd::as_raw_fd(&sub.efd) == key;
    if sent.is_err() {
        list.retain(|sub| !is_mine(sub));
        subs.count.store(list.len(), Ordering::Relaxed);
    } else if let Some(sub) = list.iter_mut().find(|sub| is_mine(sub)) {
        sub.conn = Some(ch);
    }
    sent
}

/// Drops subscribers whose connection hung up.
fn prune(subs: &Subscribers) {
    let Ok(mut list) = subs.list.lock() else {
        return;
    };
    list.retain(|sub| {
        // The subscriber never writes: readable means end of file (gone).
        crate::transport::wait::poll_now(&sub.watch, PollFlags::IN).is_none_or(|got| got.is_empty())
    });
    subs.count.store(list.len(), Ordering::Relaxed);
}

/// A reader's eventfd from a writer's [`serve_eventfds`](super::SeqWriter::serve_eventfds).
///
/// Register [`fd`](Self::fd) in an event loop (epoll, mio, tokio's
/// `AsyncFd`): it is readable after one or more publishes; [`take`](Self::take)
/// reads and resets the count. Then read the cell as usual. The writer
/// registers a subscriber before handing the eventfd over, so every publish
/// after [`subscribe_eventfd`] returns is counted.
#[derive(Debug)]
pub struct EventfdSubscription {
    efd: OwnedFd,
    _conn: StreamChannel,
}

/// Connects to a writer's eventfd socket and receives an eventfd.
pub fn subscribe_eventfd(socket_url: &str, timeout: Duration) -> Result<EventfdSubscription> {
    let endpoint = Endpoint::parse(socket_url)?;
    if unix::UnixAddr::of(&endpoint).is_none() {
        return Err(Error::BadUrl {
            url: socket_url.into(),
            reason: "eventfds are handed over a unix:// socket".into(),
        });
    }
    let mut conn = unix::connect(&endpoint, &Options::default())?;
    let mut frame = Frame::default();
    conn.recv_timeout(&mut frame, Some(timeout))?;
    let mut fds = conn.take_fds();
    if frame.payload() != HELLO || fds.len() != 1 {
        return Err(Error::protocol(
            ProtocolReason::Unexpected,
            format!(
                "{socket_url} did not hand over one eventfd ({} descriptors)",
                fds.len()
            ),
        ));
    }
    let efd = fds.remove(0);
    Ok(EventfdSubscription { efd, _conn: conn })
}

impl EventfdSubscription {
    /// The eventfd, for an event loop (readable when a publish happened).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.efd.as_fd()
    }

    /// Publishes since the last `take` (0 if none); does not block.
    pub fn take(&self) -> u64 {
        crate::wake::drain(&self.efd)
    }

    /// Waits until at least one publish happened or `timeout` passed;
    /// returns the number of publishes (0 on timeout).
    /// (A signal that interrupts the wait does not end it early.)
    pub fn wait(&self, timeout: Duration) -> u64 {
        // Ready or timed out, both end the wait; an error reads as nothing.
        let _ = wait_ready(
            &self.efd,
            Ready::Read,
            Deadline::after(Some(timeout)),
            "a seqlock publish",
            Some(timeout),
        );
        self.take()
    }
}
