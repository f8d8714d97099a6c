//! How messages are delimited on a stream: UTP frames, or the original
//! tutorial's 4-byte little-endian length prefix.

use crate::frame::{DecodeError, MAGIC_BYTES};

/// Byte framing of a stream connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// UTP frames (the default).
    Utp,
    /// The tutorial's `[u32 LE length][bytes]`. Incoming messages are presented
    /// as frames of `incoming_type`; outgoing frames are written as their payload.
    LengthPrefixed {
        /// Message type given to incoming messages (REQUEST on a server, RESPONSE on a client).
        incoming_type: u8,
    },
    /// Server side: decide from the first four bytes of the connection.
    Detect,
}

impl Framing {
    /// Decides the framing of a connection from its first four bytes.
    ///
    /// A UTP frame starts with the magic `42 50 54 55`; read as a length that
    /// would be 1,431,588,930 bytes, far above any limit, so the two cannot be
    /// confused. Anything else is a tutorial length prefix if it is within the
    /// limit, and garbage otherwise.
    pub fn detect(first: [u8; 4], max_payload: usize) -> Result<Framing, DecodeError> {
        if first == MAGIC_BYTES {
            return Ok(Framing::Utp);
        }
        let length = u32::from_le_bytes(first);
        if length as usize <= max_payload {
            Ok(Framing::LengthPrefixed {
                incoming_type: crate::frame::message_type::REQUEST,
            })
        } else {
            Err(DecodeError::BadMagic {
                found: u32::from_le_bytes(first),
            })
        }
    }
}

/// The framing a client uses for `endpoint`: UTP, or the tutorial's length
/// prefix with `?framing=length` (to talk to an old server).
pub(crate) fn client_framing(endpoint: &crate::endpoint::Endpoint) -> Framing {
    match endpoint.param("framing") {
        Some("length") => Framing::LengthPrefixed {
            incoming_type: crate::frame::message_type::RESPONSE,
        },
        _ => Framing::Utp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_means_utp_and_small_lengths_mean_tutorial() {
        assert_eq!(Framing::detect(MAGIC_BYTES, 1 << 20), Ok(Framing::Utp));
        assert!(matches!(
            Framing::detect(9u32.to_le_bytes(), 1 << 20),
            Ok(Framing::LengthPrefixed { .. })
        ));
        assert_eq!(
            Framing::detect(*b"GET ", 1 << 20).unwrap_err().kind(),
            "bad_magic"
        );
    }
}
