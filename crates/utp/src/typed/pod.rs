//! Plain-old-data values as frames of type [`POD`](crate::frame::message_type::POD).

use super::recv_expected;
use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::frame::{Frame, flags, message_type};
use std::time::Duration;

/// Sends `value`'s bytes as one POD frame, waiting at most `timeout` for room.
///
/// `T: Pod` is checked at compile time: a type with padding, pointers or
/// invalid bit patterns does not compile.
pub fn send_pod<T: bytemuck::Pod, C: Channel + ?Sized>(
    channel: &mut C,
    value: &T,
    timeout: Option<Duration>,
) -> Result<()> {
    channel.send_timeout(
        message_type::POD,
        flags::CHECKSUM,
        bytemuck::bytes_of(value),
        timeout,
    )
}

/// Receives one POD frame and reads it as a `T`.
///
/// A payload whose length is not `size_of::<T>()` is
/// [`Error::Decode`], the frame consumed and the channel still usable.
pub fn recv_pod<T: bytemuck::Pod, C: Channel + ?Sized>(
    channel: &mut C,
    frame: &mut Frame,
    timeout: Option<Duration>,
) -> Result<T> {
    recv_expected(channel, frame, message_type::POD, timeout)?;
    let payload = frame.payload();
    if payload.len() != size_of::<T>() {
        return Err(Error::Decode {
            type_name: std::any::type_name::<T>(),
            reason: format!(
                "payload is {} bytes, the type is {} bytes",
                payload.len(),
                size_of::<T>()
            ),
        });
    }
    // The frame buffer has no alignment guarantee for T: read unaligned.
    Ok(bytemuck::pod_read_unaligned(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Pair {
        a: u64,
        b: u32,
        c: u32,
    }

    fn pair_of_channels(name: &str) -> (Box<dyn Channel>, Box<dyn Channel>) {
        let url = format!("inproc://{name}-{}", std::process::id());
        let mut listener = crate::listen(&url).unwrap();
        let client = crate::connect(&url).unwrap();
        let server = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn round_trip_and_heartbeats_are_skipped() {
        let (mut client, mut server) = pair_of_channels("pod-rt");
        client.send(message_type::HEARTBEAT, 0, b"").unwrap();
        let sent = Pair {
            a: u64::MAX,
            b: 7,
            c: 9,
        };
        send_pod(client.as_mut(), &sent, None).unwrap();
        let mut frame = Frame::default();
        let got: Pair = recv_pod(server.as_mut(), &mut frame, None).unwrap();
        assert_eq!(got, sent);
    }

    #[test]
    fn wrong_length_and_wrong_type_are_clear_errors() {
        let (mut client, mut server) = pair_of_channels("pod-bad");
        client.send(message_type::POD, 0, &[1, 2, 3]).unwrap();
        client.send(message_type::TEXT, 0, b"hi").unwrap();
        let mut frame = Frame::default();
        let err = recv_pod::<Pair, _>(server.as_mut(), &mut frame, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("payload is 3 bytes, the type is 16 bytes"),
            "{err}"
        );
        let err = recv_pod::<Pair, _>(server.as_mut(), &mut frame, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected a POD frame (type 0x31), got TEXT"),
            "{err}"
        );
        // Still usable.
        send_pod(client.as_mut(), &Pair { a: 1, b: 2, c: 3 }, None).unwrap();
        assert_eq!(
            recv_pod::<Pair, _>(server.as_mut(), &mut frame, None)
                .unwrap()
                .c,
            3
        );
    }
}
