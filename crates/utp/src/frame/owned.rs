//! An owned, reusable frame buffer for receiving.

use super::header::Header;

/// A received frame: its header and an owned payload.
///
/// Channels receive *into* a `Frame`, reusing its allocation, so a receive
/// loop allocates only when a payload is larger than any before it.
///
/// ```
/// let mut frame = utp::frame::Frame::default();
/// assert!(frame.payload().is_empty());
/// frame.payload_mut().extend_from_slice(b"abc");
/// assert_eq!(frame.payload(), b"abc");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// The decoded header.
    pub header: Header,
    payload: Vec<u8>,
}

impl Frame {
    /// An empty frame whose payload buffer can hold `capacity` bytes without reallocating.
    pub fn with_capacity(capacity: usize) -> Self {
        Frame {
            header: Header::default(),
            payload: Vec::with_capacity(capacity),
        }
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The header and the payload buffer at once, for transports that
    /// fill both.
    pub(crate) fn parts_mut(&mut self) -> (&mut Header, &mut Vec<u8>) {
        (&mut self.header, &mut self.payload)
    }

    /// The payload buffer, for transports that fill it.
    pub fn payload_mut(&mut self) -> &mut Vec<u8> {
        &mut self.payload
    }

    /// The message type.
    pub fn message_type(&self) -> u8 {
        self.header.message_type
    }

    /// Replaces header and payload with a copy of the given ones, reusing the buffer.
    pub fn set(&mut self, header: Header, payload: &[u8]) {
        self.header = header;
        self.payload.clear();
        crate::copy::extend(&mut self.payload, payload);
    }

    /// Takes the payload out, leaving an empty buffer behind.
    pub fn take_payload(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.payload)
    }
}
