//! A received frame lent by its channel instead of copied into a [`Frame`].

use super::header::Header;
use super::owned::Frame;

/// A received frame whose payload the channel lends rather than copies:
/// what [`Channel::recv_ref`](crate::Channel::recv_ref) returns. It borrows
/// the channel (and the spare frame given to that call), so it lives until
/// the next call on the channel; keep what must outlive it with
/// [`to_frame`](Self::to_frame) or a copy of the payload.
///
/// ```
/// use utp::frame::{Frame, FrameRef, Header};
/// let mut frame = Frame::default();
/// frame.set(Header::default(), b"abc");
/// let lent: FrameRef<'_> = frame.as_frame_ref();
/// assert_eq!(lent.payload, b"abc");
/// assert_eq!(lent.to_frame(), frame);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// The decoded header.
    pub header: Header,
    /// The payload bytes, checked against the header's checksum when it has one.
    pub payload: &'a [u8],
}

impl FrameRef<'_> {
    /// The message type.
    pub fn message_type(&self) -> u8 {
        self.header.message_type
    }

    /// An owned copy, to keep past the next receive.
    pub fn to_frame(&self) -> Frame {
        let mut frame = Frame::with_capacity(self.payload.len());
        frame.set(self.header, self.payload);
        frame
    }
}

impl Frame {
    /// This frame as a [`FrameRef`]: what a channel that cannot lend its own
    /// memory returns from [`Channel::recv_ref`](crate::Channel::recv_ref).
    pub fn as_frame_ref(&self) -> FrameRef<'_> {
        FrameRef {
            header: self.header,
            payload: self.payload(),
        }
    }
}
