//! The UTP v1 frame: a fixed 32-byte header followed by the payload.
//!
//! This module does no I/O at all. It encodes headers, decodes and validates
//! frames in the order `docs/frame.md` prescribes, and computes the CRC-32C
//! checksum. Every transport in the crate moves exactly these bytes.
//!
//! | offset | size | field            |
//! |-------:|-----:|------------------|
//! | 0      | 4    | magic `0x55545042` (bytes `42 50 54 55`) |
//! | 4      | 1    | version (`1`)    |
//! | 5      | 1    | message type     |
//! | 6      | 2    | flags            |
//! | 8      | 4    | payload length   |
//! | 12     | 8    | sequence         |
//! | 20     | 8    | timestamp (µs since the Unix epoch) |
//! | 28     | 4    | CRC-32C of bytes 0..28 and the payload, when flag bit 0 is set |
//!
//! # Example
//!
//! ```
//! use utp::frame::{self, Header, flags, message_type};
//!
//! let header = Header::new(message_type::TEXT, flags::CHECKSUM, 1, 1_700_000_000_000_000);
//! let bytes = frame::encode_to_vec(&header, b"hello");
//! let (decoded, payload) = frame::decode(&bytes, frame::DEFAULT_MAX_PAYLOAD).unwrap();
//! assert_eq!(decoded.sequence, 1);
//! assert_eq!(payload, b"hello");
//!
//! // Any corruption is reported, never a panic.
//! let mut bad = bytes.clone();
//! bad[33] ^= 1; // a payload byte
//! assert_eq!(frame::decode(&bad, 1024).unwrap_err().kind(), "checksum_mismatch");
//! ```

mod checksum;
mod decode;
mod header;
mod lent;
mod owned;
mod stamp;

pub use checksum::{crc32c, frame_checksum};
pub(crate) use checksum::{crc32c_append, header_crc};
pub use decode::{DecodeError, decode, decode_header};
pub(crate) use decode::{decode_header_words, verify_checksum};
pub(crate) use header::words_of;
pub use header::{
    DEFAULT_MAX_PAYLOAD, HEADER_LEN, Header, MAGIC, MAGIC_BYTES, VERSION, encode_to_vec, flags,
    message_type,
};
pub use lent::FrameRef;
pub use owned::Frame;
#[cfg(test)]
pub(crate) use stamp::CLOCK_READS;
pub(crate) use stamp::random_sequence_start;
pub use stamp::{Stamper, coarse_micros, now_micros};
