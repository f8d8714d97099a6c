//! Typed messages over any [`Channel`]: values in, values out.
//!
//! Two encodings, each with its own message type so that any receiver (in any
//! language) can tell them apart:
//!
//! | message type | payload | for |
//! |---|---|---|
//! | [`TYPED`](crate::frame::message_type::TYPED) (0x30) | the value in [postcard](https://docs.rs/postcard) (serde) | any `Serialize` type; feature `serde` |
//! | [`POD`](crate::frame::message_type::POD) (0x31) | the value's bytes as in memory, little-endian | `#[repr(C)]` plain-old-data ([`bytemuck::Pod`]) |
//!
//! postcard was chosen for its compact varint encoding, a stable documented
//! wire format (its 1.0 specification, implementable from other languages)
//! and no allocation while encoding into a reused buffer. A payload that does
//! not decode as the expected type is [`Error::Decode`],
//! naming the type; the channel stays usable. For two threads or tasks,
//! `TypedChannel::split` gives a `TypedSender` and a `TypedReceiver`
//! (feature `serde`; see [`crate::halves`]). The wire format, for other
//! languages: docs/protocol.md, "Typed messages on the wire".
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use utp::typed::TypedChannel;
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Quote { symbol: String, bid: f64, ask: f64 }
//!
//! let mut listener = utp::listen("inproc://typed-doc")?;
//! let mut client = TypedChannel::<Quote>::new(utp::connect("inproc://typed-doc")?);
//! let mut server = TypedChannel::<Quote>::new(listener.accept()?);
//!
//! client.send(&Quote { symbol: "ACME".into(), bid: 9.5, ask: 10.0 })?;
//! assert_eq!(server.recv()?.symbol, "ACME");
//! # }
//! # Ok::<(), utp::Error>(())
//! ```
//!
//! Plain-old-data needs no serde and no copy beyond the frame:
//!
//! ```
//! use utp::typed::{recv_pod, send_pod};
//!
//! #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Tick { price: f64, size: u32, venue: u32 }
//!
//! let mut listener = utp::listen("inproc://pod-doc")?;
//! let mut client = utp::connect("inproc://pod-doc")?;
//! let mut server = listener.accept()?;
//! let mut frame = utp::frame::Frame::default();
//!
//! send_pod(client.as_mut(), &Tick { price: 10.25, size: 100, venue: 7 }, None)?;
//! let tick: Tick = recv_pod(server.as_mut(), &mut frame, None)?;
//! assert_eq!(tick.size, 100);
//! # Ok::<(), utp::Error>(())
//! ```

mod pod;
#[cfg(feature = "serde")]
mod serde_channel;
#[cfg(feature = "serde")]
mod serde_halves;

pub use pod::{recv_pod, send_pod};
#[cfg(feature = "serde")]
pub use serde_channel::TypedChannel;
#[cfg(feature = "serde")]
pub use serde_halves::{TypedReceiver, TypedSender};

use crate::ProtocolReason;
use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::frame::{Frame, message_type};
use std::time::Duration;

/// Receives the next frame that carries a value: HEARTBEAT frames are
/// skipped; any type other than `expected` is a protocol error.
///
/// The deadline covers the whole wait, however many heartbeats arrive.
fn recv_expected<C: Channel + ?Sized>(
    channel: &mut C,
    frame: &mut Frame,
    expected: u8,
    timeout: Option<Duration>,
) -> Result<()> {
    recv_expected_with(|f, t| channel.recv_timeout(f, t), frame, expected, timeout)
}

/// [`recv_expected`] over any receive call (a channel's or a receive half's).
fn recv_expected_with(
    mut recv: impl FnMut(&mut Frame, Option<Duration>) -> Result<()>,
    frame: &mut Frame,
    expected: u8,
    timeout: Option<Duration>,
) -> Result<()> {
    let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        recv(frame, left.or(timeout))?;
        match frame.header.message_type {
            t if t == expected => return Ok(()),
            message_type::HEARTBEAT => continue,
            other => {
                return Err(Error::protocol(
                    ProtocolReason::Unexpected,
                    format!(
                        "expected a {} frame (type 0x{expected:02x}), got {} (type 0x{other:02x})",
                        message_type::name(expected).unwrap_or("typed"),
                        message_type::name(other).unwrap_or("an unknown type"),
                    ),
                ));
            }
        }
    }
}
