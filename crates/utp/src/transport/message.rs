//! One frame per message: the framing of the transports whose kernel object
//! keeps message boundaries (`udp://` datagrams, `mq://` queue messages).
//! An empty message means the sender said goodbye.

use crate::error::{Error, Result};
use crate::frame::{self, Frame, FrameRef, HEADER_LEN, Stamper};

/// Encodes one frame into `out` (cleared first and reused, so sending does
/// not allocate once it has grown), refusing payloads over `limit`. With
/// `answers`, the frame is a reply naming that request (`flags::REPLY`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode(
    stamper: &mut Stamper,
    message_type: u8,
    flags: u16,
    payload: &[u8],
    answers: Option<u64>,
    limit: usize,
    transport: &'static str,
    out: &mut Vec<u8>,
) -> Result<()> {
    if payload.len() > limit {
        return Err(Error::TooLarge {
            len: payload.len(),
            limit,
            transport,
        });
    }
    let mut head = [0u8; HEADER_LEN];
    match answers {
        Some(request) => stamper.stamp_reply(message_type, flags, payload, request, &mut head),
        None => stamper.stamp(message_type, flags, payload, &mut head),
    };
    out.clear();
    out.extend_from_slice(&head);
    crate::copy::extend(out, payload);
    Ok(())
}

/// The frame one received message carries, lent from the message; `None`
/// for the empty goodbye message. An invalid frame spoils only itself
/// (boundaries hold), but it is reported: the protocol makes it fatal for
/// the connection.
pub(crate) fn lend(message: &[u8], max_payload: usize) -> Result<Option<FrameRef<'_>>> {
    if message.is_empty() {
        return Ok(None);
    }
    let (header, payload) = frame::decode(message, max_payload)?;
    Ok(Some(FrameRef { header, payload }))
}

/// [`lend`], copied into `frame`: `false` for the goodbye message.
pub(crate) fn decode(message: &[u8], max_payload: usize, frame: &mut Frame) -> Result<bool> {
    let Some(lent) = lend(message, max_payload)? else {
        return Ok(false);
    };
    frame.set(lent.header, lent.payload);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_over_the_limit_is_refused_and_one_at_it_fits() {
        let mut stamper = Stamper::default();
        let mut out = Vec::new();
        let err = encode(&mut stamper, 1, 0, &[0; 101], None, 100, "test", &mut out).unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 100, .. }), "{err}");
        encode(&mut stamper, 1, 0, &[7; 100], None, 100, "test", &mut out).unwrap();
        assert_eq!(out.len(), HEADER_LEN + 100);
        let mut frame = Frame::default();
        assert!(decode(&out, 100, &mut frame).unwrap());
        assert_eq!(frame.payload(), &[7; 100]);
        assert!(!decode(&[], 100, &mut frame).unwrap());
        let lent = lend(&out, 100).unwrap().expect("a frame");
        assert_eq!((lent.header, lent.payload), (frame.header, &[7; 100][..]));
        assert!(lend(&[], 100).unwrap().is_none());
    }
}
