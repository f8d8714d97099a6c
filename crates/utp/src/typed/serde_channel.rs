//! Serde values as frames of type [`TYPED`](crate::frame::message_type::TYPED), in postcard.

use super::recv_expected;
use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::frame::{Frame, flags, message_type};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// A channel that sends and receives values of type `T`.
///
/// Wraps any [`Channel`] (by default the `Box<dyn Channel>` that
/// [`connect`](crate::connect) and [`Listener::accept`](crate::Listener::accept)
/// return). Buffers are reused: after the first messages, sending and
/// receiving allocate only what `T` itself needs.
pub struct TypedChannel<T, C: ?Sized = Box<dyn Channel>> {
    encoded: Vec<u8>,
    frame: Frame,
    _value: PhantomData<fn(T) -> T>,
    channel: C,
}

impl<T, C: ?Sized + fmt::Debug> fmt::Debug for TypedChannel<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedChannel")
            .field("type", &std::any::type_name::<T>())
            .field("channel", &&self.channel)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned, C: Channel> TypedChannel<T, C> {
    /// Wraps `channel`.
    pub fn new(channel: C) -> Self {
        TypedChannel {
            encoded: Vec::new(),
            frame: Frame::default(),
            _value: PhantomData,
            channel,
        }
    }

    /// The channel underneath, for frames of other types.
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.channel
    }

    /// Unwraps the channel.
    pub fn into_inner(self) -> C {
        self.channel
    }
}

impl<T: Serialize + DeserializeOwned, C: Channel + ?Sized> TypedChannel<T, C> {
    /// Sends `value`, waiting as long as it takes for room.
    pub fn send(&mut self, value: &T) -> Result<()> {
        self.send_timeout(value, None)
    }

    /// Sends `value`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, value: &T, timeout: Option<Duration>) -> Result<()> {
        let encoded = encode(value, std::mem::take(&mut self.encoded))?;
        let result =
            self.channel
                .send_timeout(message_type::TYPED, flags::CHECKSUM, &encoded, timeout);
        self.encoded = encoded;
        result
    }

    /// Receives the next value, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<T> {
        self.recv_timeout(None)
    }

    /// Receives the next value, waiting at most `timeout` (heartbeats do not
    /// extend it).
    ///
    /// A payload that is not a `T` in postcard is [`Error::Decode`]; the
    /// frame is consumed and the next call receives the next one.
    pub fn recv_timeout(&mut self, timeout: Option<Duration>) -> Result<T> {
        recv_expected(
            &mut self.channel,
            &mut self.frame,
            message_type::TYPED,
            timeout,
        )?;
        decode(self.frame.payload())
    }
}

impl<T: Serialize + DeserializeOwned> TypedChannel<T> {
    /// Splits into a typed send half and a typed receive half, for two
    /// threads or tasks (see [`Channel::split`] and [`crate::halves`]).
    ///
    /// ```
    /// # fn main() -> utp::Result<()> {
    /// use utp::typed::TypedChannel;
    /// let mut listener = utp::listen("inproc://typed-split-doc")?;
    /// let client = TypedChannel::<(u32, String)>::new(utp::connect("inproc://typed-split-doc")?);
    /// let mut server = TypedChannel::<(u32, String)>::new(listener.accept()?);
    /// let (mut tx, mut rx) = client.split()?;
    /// let sender = std::thread::spawn(move || tx.send(&(7, "seven".into())));
    /// let value = server.recv()?;
    /// server.send(&value)?;
    /// assert_eq!(rx.recv()?, (7, "seven".to_string()));
    /// sender.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn split(self) -> Result<(super::TypedSender<T>, super::TypedReceiver<T>)> {
        let (tx, rx) = self.channel.split()?;
        Ok((super::TypedSender::new(tx), super::TypedReceiver::new(rx)))
    }
}

/// `value` in postcard, appended to `buf` (cleared first).
pub(super) fn encode<T: Serialize>(value: &T, mut buf: Vec<u8>) -> Result<Vec<u8>> {
    buf.clear();
    postcard::to_extend(value, buf).map_err(|e| Error::Decode {
        type_name: std::any::type_name::<T>(),
        reason: format!("cannot encode: {e}"),
    })
}

/// Exactly one `T` in postcard, nothing left over.
pub(super) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(Error::Decode {
            type_name: std::any::type_name::<T>(),
            reason: format!("{} bytes left over after the value", rest.len()),
        }),
        Err(e) => Err(Error::Decode {
            type_name: std::any::type_name::<T>(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Command {
        Move { x: i32, y: i32 },
        Say(String),
        Stop,
    }

    fn pair(name: &str) -> (TypedChannel<Command>, TypedChannel<Command>) {
        let url = format!("inproc://{name}-{}", std::process::id());
        let mut listener = crate::listen(&url).unwrap();
        let client = TypedChannel::new(crate::connect(&url).unwrap());
        let server = TypedChannel::new(listener.accept().unwrap());
        (client, server)
    }

    #[test]
    fn values_round_trip_in_order() {
        let (mut a, mut b) = pair("typed-rt");
        let sent = [
            Command::Move { x: -3, y: 40_000 },
            Command::Say("héllo".into()),
            Command::Stop,
        ];
        for c in &sent {
            a.send(c).unwrap();
        }
        for c in &sent {
            assert_eq!(&b.recv().unwrap(), c);
        }
    }

    #[test]
    fn garbage_is_a_decode_error_naming_the_type_and_the_channel_goes_on() {
        let (mut a, mut b) = pair("typed-bad");
        a.get_mut()
            .send(message_type::TYPED, 0, &[0xff, 0xff, 0xff])
            .unwrap();
        a.send(&Command::Stop).unwrap();
        let err = b.recv().unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
        assert!(err.to_string().contains("Command"), "{err}");
        assert_eq!(b.recv().unwrap(), Command::Stop);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let (mut a, mut b) = pair("typed-trail");
        // Stop is variant 2: one byte; a second byte is left over.
        a.get_mut().send(message_type::TYPED, 0, &[2, 0]).unwrap();
        let err = b.recv().unwrap_err().to_string();
        assert!(err.contains("1 bytes left over"), "{err}");
    }

    #[test]
    fn the_deadline_holds_across_heartbeats() {
        let (mut a, mut b) = pair("typed-deadline");
        let sender = std::thread::spawn(move || {
            for _ in 0..20 {
                if a.get_mut().send(message_type::HEARTBEAT, 0, b"").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            a
        });
        let started = std::time::Instant::now();
        let err = b
            .recv_timeout(Some(Duration::from_millis(100)))
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        drop(sender.join());
    }

    /// The example of docs/protocol.md ("Typed messages on the wire"), byte for byte.
    #[test]
    fn the_documented_wire_example() {
        #[derive(Serialize, Deserialize)]
        struct Order {
            id: u64,
            symbol: String,
        }
        let url = format!("inproc://typed-wire-{}", std::process::id());
        let mut listener = crate::listen(&url).unwrap();
        let mut client = TypedChannel::new(crate::connect(&url).unwrap());
        let mut server = listener.accept().unwrap();
        client
            .send(&Order {
                id: 300,
                symbol: "AB".into(),
            })
            .unwrap();
        let mut frame = Frame::default();
        server.recv(&mut frame).unwrap();
        assert_eq!(frame.message_type(), message_type::TYPED);
        assert_eq!(frame.header.flags, flags::CHECKSUM);
        assert_eq!(frame.payload(), [0xac, 0x02, 0x02, 0x41, 0x42]);
    }
}
