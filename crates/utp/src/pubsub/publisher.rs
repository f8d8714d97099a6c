//! [`Publisher`]: one URL, shared memory or a stream transport.

use super::inspect::Report;
use super::options::PublisherOptions;
use super::shm_publisher::ShmPublisher;
use super::stream::{self, StreamPublisher};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::{message_type, now_micros};

/// The one writer of a pub/sub topic.
#[derive(Debug)]
pub struct Publisher {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Shm(ShmPublisher),
    Stream(StreamPublisher),
    #[cfg(feature = "zenoh")]
    Zenoh(super::zenoh::ZenohPublisher),
}

/// Room for one message in the ring, written in place; nothing is
/// published until [`commit`](Loan::commit). Dropping a loan publishes
/// nothing (the slot is reused by the next loan).
#[derive(Debug)]
pub struct Loan<'a> {
    publisher: &'a mut Publisher,
    len: usize,
    staging: Vec<u8>,
}

impl Publisher {
    /// Creates a publisher: `shm://NAME` (broadcast ring in shared memory),
    /// `unix:///PATH`, `unix://@NAME` or `tcp://HOST:PORT` (fan-out over
    /// streams). Options are described in [`super::options`].
    pub fn create(url: &str) -> Result<Publisher> {
        let endpoint = Endpoint::parse(url)?;
        let options = PublisherOptions::from_endpoint(&endpoint)?;
        let inner = match &endpoint.address {
            Address::Shm(name) => {
                Inner::Shm(ShmPublisher::create(name, &options, url.to_string())?)
            }
            a if stream::is_stream(a) => {
                Inner::Stream(StreamPublisher::create(&endpoint, &options)?)
            }
            #[cfg(feature = "zenoh")]
            Address::Zenoh(_) => Inner::Zenoh(super::zenoh::ZenohPublisher::create(&endpoint)?),
            other => return Err(super::unsupported(url, other)),
        };
        Ok(Publisher { inner })
    }

    /// The endpoint (for tcp port 0, the port actually bound).
    pub fn endpoint(&self) -> String {
        match &self.inner {
            Inner::Shm(p) => p.endpoint().to_string(),
            Inner::Stream(p) => p.endpoint().to_string(),
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(p) => p.endpoint().to_string(),
        }
    }

    /// Largest payload.
    pub fn max_payload(&self) -> usize {
        match &self.inner {
            Inner::Shm(p) => p.max_payload(),
            Inner::Stream(_) => stream::STREAM_MAX_PAYLOAD,
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(_) => stream::STREAM_MAX_PAYLOAD,
        }
    }

    /// Messages published so far: the number the next message gets.
    pub fn published(&self) -> u64 {
        match &self.inner {
            Inner::Shm(p) => p.published(),
            Inner::Stream(p) => p.published(),
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(p) => p.published(),
        }
    }

    /// Subscribers connected now.
    pub fn subscriber_count(&self) -> usize {
        match &self.inner {
            Inner::Shm(p) => p.subscriber_count(),
            Inner::Stream(p) => p.subscriber_count(),
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(p) => p.subscriber_count(),
        }
    }

    /// Publishes a copy of `payload` as a `DATA` message; returns its number.
    pub fn send(&mut self, payload: &[u8]) -> Result<u64> {
        self.send_typed(message_type::DATA, payload)
    }

    /// Publishes `payload` with the given frame message type.
    pub fn send_typed(&mut self, message_type: u8, payload: &[u8]) -> Result<u64> {
        match &mut self.inner {
            Inner::Shm(p) => {
                p.begin(payload.len())?;
                // SAFETY: between begin and commit, no other reference.
                crate::copy::copy_slice(unsafe { p.room(payload.len()) }, payload);
                Ok(p.commit(message_type, 0, payload.len(), now_micros()))
            }
            Inner::Stream(p) => p.send(message_type, payload),
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(p) => p.send(message_type, payload),
        }
    }

    /// Lends room for a `len`-byte message. On shared memory this waits for
    /// block-policy subscribers (at most their timeout) and then the bytes
    /// are written straight into the ring.
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        let staging = match &mut self.inner {
            Inner::Shm(p) => {
                p.begin(len)?;
                Vec::new()
            }
            // Staged, then copied by send: streams and zenoh take owned bytes.
            _ => {
                if len > stream::STREAM_MAX_PAYLOAD {
                    return Err(Error::TooLarge {
                        len,
                        limit: stream::STREAM_MAX_PAYLOAD,
                        transport: "stream pub/sub",
                    });
                }
                vec![0; len]
            }
        };
        Ok(Loan {
            publisher: self,
            len,
            staging,
        })
    }

    /// The publisher's state (subscribers, lag, loss), as `utp inspect` shows it.
    pub fn report(&self) -> Report {
        match &self.inner {
            Inner::Shm(p) => p.report(),
            Inner::Stream(p) => p.report(),
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(p) => p.report(),
        }
    }
}

impl Loan<'_> {
    /// The message's bytes, to fill in place.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        match &self.publisher.inner {
            // SAFETY: the loan holds `&mut Publisher`: begin was called and
            // nothing else can reach the slot until commit or drop.
            Inner::Shm(p) => unsafe { p.room(self.len) },
            _ => &mut self.staging,
        }
    }

    /// Publishes the message as `DATA`, stamped now; returns its number.
    pub fn commit(self) -> Result<u64> {
        self.commit_typed(message_type::DATA, now_micros())
    }

    /// Publishes with an explicit message type and timestamp (µs since the
    /// epoch; 0 to skip the clock read).
    #[inline]
    pub fn commit_typed(self, message_type: u8, timestamp_us: u64) -> Result<u64> {
        let len = self.len;
        match &mut self.publisher.inner {
            Inner::Shm(p) => Ok(p.commit(message_type, 0, len, timestamp_us)),
            Inner::Stream(p) => p.send(message_type, &self.staging),
            #[cfg(feature = "zenoh")]
            Inner::Zenoh(p) => p.send(message_type, &self.staging),
        }
    }
}
