//! [`Subscriber`]: one URL, shared memory or a stream transport.

use super::inspect::Report;
use super::options::{Policy, SubscriberOptions};
use super::shm_subscriber::{self, ShmSubscriber};
use super::stream;
use super::stream_subscriber::StreamSubscriber;
use super::view::View;
use super::wire::Subscribe;
use crate::ProtocolReason;
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// One reader of a pub/sub topic, with its own cursor.
#[derive(Debug)]
pub struct Subscriber {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Shm(ShmSubscriber),
    Stream(StreamSubscriber),
    #[cfg(feature = "zenoh")]
    Zenoh(super::zenoh::ZenohSubscriber),
}

/// What [`Subscriber::recv`] delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The message number.
    pub sequence: u64,
    /// Messages lost just before this one.
    pub lost_before: u64,
    /// The frame's message type.
    pub message_type: u8,
    /// Publish time, µs since the Unix epoch (0 if not stamped).
    pub timestamp_us: u64,
    /// Payload length.
    pub len: usize,
}

impl Subscriber {
    /// Subscribes to the publisher at `url` (see [`Publisher::create`](super::Publisher::create));
    /// options `?policy=drop|block&block_timeout_ms=N&wait=spin|block|adaptive`.
    /// The first message received is the next one published.
    pub fn connect(url: &str) -> Result<Subscriber> {
        let endpoint = Endpoint::parse(url)?;
        let options = SubscriberOptions::from_endpoint(&endpoint)?;
        let inner = match &endpoint.address {
            Address::Shm(name) => {
                Inner::Shm(ShmSubscriber::connect(name, options, url.to_string())?)
            }
            a if stream::is_stream(a) => {
                let (policy, block_timeout_ns) = match options.policy {
                    Policy::Drop => (0, 0),
                    Policy::Block { timeout } => {
                        (1, timeout.as_nanos().min(u64::MAX as u128) as u64)
                    }
                };
                let request = Subscribe {
                    policy,
                    wait: options.wait.code(),
                    block_timeout_ns,
                    notify: false,
                };
                Inner::Stream(StreamSubscriber::connect(&endpoint, request)?)
            }
            #[cfg(feature = "zenoh")]
            Address::Zenoh(_) => Inner::Zenoh(super::zenoh::ZenohSubscriber::connect(&endpoint)?),
            other => return Err(super::unsupported(url, other)),
        };
        Ok(Subscriber { inner })
    }

    /// Waits for the next message and lends it in place (zero-copy on
    /// shared memory); the subscriber moves past it when the view drops.
    /// `None` waits for ever (still failing promptly if the publisher dies).
    #[inline]
    pub fn recv_view(&mut self, timeout: Option<Duration>) -> Result<View<'_>> {
        match &mut self.inner {
            Inner::Shm(s) => {
                let (header, lost) = s.next(timeout)?;
                Ok(View::shm(s, header, lost))
            }
            Inner::Stream(s) => {
                let (header, payload, lost) = s.next(timeout)?;
                Ok(View::owned(payload, header, lost))
            }
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(s) => {
                let (header, payload, lost) = s.next(timeout)?;
                Ok(View::owned(payload, header, lost))
            }
        }
    }

    /// The next message if one is there now, lent as by
    /// [`recv_view`](Self::recv_view); `Ok(None)` if not. The call for a
    /// subscriber that polls in its own loop: the same as `recv_view` with
    /// a zero timeout, but an empty poll is a `None`, not an
    /// [`Error::Timeout`] to build and match.
    ///
    /// ```no_run
    /// let mut sub = utp::pubsub::Subscriber::connect("shm://prices")?;
    /// loop {
    ///     if let Some(view) = sub.try_recv_view()? {
    ///         let mut price = [0u8; 8];
    ///         view.copy_to(&mut price)?;
    ///         break;
    ///     }
    ///     std::hint::spin_loop(); // or other work
    /// }
    /// # Ok::<(), utp::Error>(())
    /// ```
    #[inline]
    pub fn try_recv_view(&mut self) -> Result<Option<View<'_>>> {
        match &mut self.inner {
            Inner::Shm(s) => Ok(s
                .try_next()?
                .map(|(header, lost)| View::shm(s, header, lost))),
            Inner::Stream(s) => poll_owned(s.next(Some(Duration::ZERO))),
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(s) => poll_owned(s.next(Some(Duration::ZERO))),
        }
    }

    /// Receives the next message into `buf` (replacing its contents).
    /// A message overwritten while it was copied counts as lost and the
    /// next one is returned instead.
    pub fn recv(&mut self, buf: &mut Vec<u8>, timeout: Option<Duration>) -> Result<Received> {
        let mut carried = 0;
        loop {
            let view = self.recv_view(timeout)?;
            buf.clear();
            match view.extend_into(buf) {
                Ok(()) => {
                    return Ok(Received {
                        sequence: view.sequence(),
                        lost_before: carried + view.lost_before(),
                        message_type: view.message_type(),
                        timestamp_us: view.timestamp_us(),
                        len: view.len(),
                    });
                }
                Err(Error::Overwritten) => carried += view.lost_before() + 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The eventfd of `?notify=eventfd` (shm only): after [`arm`](Self::arm)
    /// returned false it becomes readable when a message arrives.
    pub fn notify_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.inner {
            Inner::Shm(s) => s.notify_fd(),
            _ => None,
        }
    }

    /// A descriptor that becomes readable (or hangs up) when the publisher
    /// goes away, to poll beside [`notify_fd`](Self::notify_fd) (shm only).
    pub fn liveness_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.inner {
            Inner::Shm(s) => Some(s.liveness_fd()),
            _ => None,
        }
    }

    /// For event loops: drains the notification eventfd and asks the
    /// publisher to signal it at the next message. Returns true if a
    /// message (or the publisher's end) is already there — receive instead
    /// of polling. Needs `?notify=eventfd`.
    pub fn arm(&mut self) -> Result<bool> {
        match &mut self.inner {
            Inner::Shm(s) => s.arm(),
            _ => Err(Error::protocol(
                ProtocolReason::Unsupported,
                "notification descriptors exist for shm:// subscribers only",
            )),
        }
    }

    /// The next message number this subscriber will read.
    pub fn position(&self) -> u64 {
        match &self.inner {
            Inner::Shm(s) => s.position(),
            Inner::Stream(s) => s.position(),
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(s) => s.position(),
        }
    }

    /// Messages received.
    pub fn received(&self) -> u64 {
        match &self.inner {
            Inner::Shm(s) => s.received(),
            Inner::Stream(s) => s.received(),
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(s) => s.received(),
        }
    }

    /// Messages lost (the publisher overran this subscriber, or its queue
    /// was full on a stream transport). Exact: counted from message numbers.
    pub fn lost(&self) -> u64 {
        match &self.inner {
            Inner::Shm(s) => s.lost(),
            Inner::Stream(s) => s.lost(),
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(s) => s.lost(),
        }
    }

    /// The publisher's id for this subscriber.
    pub fn id(&self) -> u32 {
        match &self.inner {
            Inner::Shm(s) => s.id(),
            Inner::Stream(s) => s.id(),
            // Zenoh subscribers are anonymous to the publisher.
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(_) => 0,
        }
    }
}

/// Asks the publisher at `url` for its state (`utp inspect`).
pub fn inspect(url: &str) -> Result<Report> {
    let endpoint = Endpoint::parse(url)?;
    match &endpoint.address {
        Address::Shm(name) => {
            let owner = SubscriberOptions::from_endpoint(&endpoint)?.publisher_uid;
            shm_subscriber::inspect(name, owner)
        }
        a if stream::is_stream(a) => StreamSubscriber::inspect(&endpoint),
        Address::Zenoh(_) => Err(Error::BadUrl {
            url: url.to_string(),
            reason: "a zenoh publisher's state is not served over the network; \
                     ask the publisher's process (Publisher::report)"
                .into(),
        }),
        other => Err(super::unsupported(url, other)),
    }
}

/// A zero-timeout receive of a stream or zenoh subscriber as a poll: its
/// timeout is `None`.
fn poll_owned(next: Result<(crate::frame::Header, &[u8], u64)>) -> Result<Option<View<'_>>> {
    match next {
        Ok((header, payload, lost)) => Ok(Some(View::owned(payload, header, lost))),
        Err(e) if e.is_timeout() => Ok(None),
        Err(e) => Err(e),
    }
}
