//! A pub/sub subscriber over a stream transport (`unix://`, `tcp://`):
//! SUBSCRIBE, ACCEPT, then `MESSAGE` frames whose u64 message numbers give
//! the exact loss (see `stream.rs` for the publisher side).

use super::inspect::Report;
use super::stream::STREAM_MAX_PAYLOAD;
use super::wire::{self, Accept, Subscribe};
use crate::channel::Channel;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::frame::{Frame, Header, flags, message_type};
use crate::{DeniedReason, GoneReason, ProtocolReason};
use std::time::Duration;

/// A subscriber over a stream transport.
#[derive(Debug)]
pub struct StreamSubscriber {
    channel: Box<dyn Channel>,
    frame: Frame,
    expected: u64,
    received: u64,
    lost: u64,
    id: u32,
}

impl StreamSubscriber {
    /// Connects and subscribes.
    pub fn connect(endpoint: &Endpoint, request: Subscribe) -> Result<StreamSubscriber> {
        let mut plain = endpoint.clone();
        plain.params.clear();
        let mut channel = crate::connect(&plain.to_string())?;
        channel.send(wire::SUBSCRIBE, flags::CHECKSUM, &request.encode())?;
        let mut frame = Frame::with_capacity(STREAM_MAX_PAYLOAD);
        channel.recv_timeout(&mut frame, Some(super::rendezvous::REQUEST_TIMEOUT * 5))?;
        let accept = match frame.message_type() {
            wire::ACCEPT => Accept::decode(frame.payload())?,
            message_type::ERROR => {
                return Err(Error::denied(
                    DeniedReason::Refused,
                    format!(
                        "the publisher refused: {}",
                        String::from_utf8_lossy(frame.payload())
                    ),
                ));
            }
            other => {
                return Err(Error::protocol(
                    ProtocolReason::Unexpected,
                    format!("expected ACCEPT, got frame type 0x{other:02x}"),
                ));
            }
        };
        Ok(StreamSubscriber {
            channel,
            frame,
            expected: accept.start,
            received: 0,
            lost: 0,
            id: accept.id,
        })
    }

    /// Asks a stream publisher for its report.
    pub fn inspect(endpoint: &Endpoint) -> Result<Report> {
        let mut plain = endpoint.clone();
        plain.params.clear();
        let mut channel = crate::connect(&plain.to_string())?;
        channel.send(wire::INSPECT, flags::CHECKSUM, &[])?;
        let mut frame = Frame::default();
        channel.recv_timeout(&mut frame, Some(Duration::from_secs(2)))?;
        if frame.message_type() != wire::REPORT {
            return Err(Error::protocol(
                ProtocolReason::Unexpected,
                "expected a REPORT frame",
            ));
        }
        Report::decode(&String::from_utf8_lossy(frame.payload()))
    }

    /// Next message number expected.
    pub fn position(&self) -> u64 {
        self.expected
    }

    /// Messages received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Messages lost.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Publisher-assigned id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Receives the next message: (header with the message number as
    /// sequence, payload, messages lost just before it).
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<(Header, &[u8], u64)> {
        self.channel.recv_timeout(&mut self.frame, timeout)?;
        match self.frame.message_type() {
            wire::MESSAGE => {}
            message_type::ERROR => {
                return Err(Error::peer_gone(
                    GoneReason::Evicted,
                    String::from_utf8_lossy(self.frame.payload()),
                ));
            }
            message_type::GOODBYE => {
                return Err(Error::peer_gone(GoneReason::Closed, "the publisher closed"));
            }
            other => {
                return Err(Error::protocol(
                    ProtocolReason::Unexpected,
                    format!("unexpected frame type 0x{other:02x}"),
                ));
            }
        }
        let p = self.frame.payload();
        if p.len() < 9 {
            return Err(Error::protocol(
                ProtocolReason::Corrupt,
                format!("MESSAGE of {} bytes, expected >= 9", p.len()),
            ));
        }
        let n = u64::from_le_bytes(p[..8].try_into().unwrap_or_default());
        if n < self.expected {
            return Err(Error::protocol(
                ProtocolReason::Unexpected,
                format!(
                    "message {n} arrived after {}: the publisher went backwards",
                    self.expected
                ),
            ));
        }
        let gap = n - self.expected;
        self.lost += gap;
        self.received += 1;
        self.expected = n + 1;
        let mut header = self.frame.header;
        header.sequence = n;
        header.message_type = p[8];
        header.payload_length = (p.len() - 9) as u32;
        Ok((header, &self.frame.payload()[9..], gap))
    }
}
