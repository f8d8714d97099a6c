//! The frame decoder (`utp::frame::decode`, `decode_header`) on arbitrary
//! bytes: never a panic, and whatever it accepts is exactly what it read.
//!
//! Input: one byte choosing the receiver's payload limit, then the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use utp::frame::{self, DecodeError, HEADER_LEN, Header, flags};

/// Payload limits a receiver might use: tiny, the handshake's, the default, none.
const LIMITS: [usize; 4] = [0, 4096, frame::DEFAULT_MAX_PAYLOAD, usize::MAX];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let limit = LIMITS[choice as usize % LIMITS.len()];
    let header = frame::decode_header(bytes, limit);
    match frame::decode(bytes, limit) {
        Ok((decoded, payload)) => {
            // The header check agrees, and the payload is the declared slice.
            assert_eq!(header, Ok(decoded));
            assert_eq!(payload.len(), decoded.payload_length as usize);
            assert!(payload.len() <= limit);
            assert_eq!(&bytes[HEADER_LEN..decoded.frame_len()], payload);
            // Writing the fields back gives the header bytes that were read.
            let mut head = [0u8; HEADER_LEN];
            decoded.write_fields(&mut head);
            assert_eq!(&head[..], &bytes[..HEADER_LEN]);
            // A checksummed frame re-encodes to itself; so does any frame
            // once its checksum field is what encoding would write.
            if decoded.has_checksum() {
                assert_eq!(
                    frame::encode_to_vec(&decoded, payload),
                    &bytes[..decoded.frame_len()]
                );
            }
        }
        Err(error) => {
            assert!(!error.kind().is_empty());
            assert!(!error.to_string().is_empty());
            match (error, header) {
                // Header errors are reported by both, identically.
                (DecodeError::Truncated { needed, available }, Ok(h)) => {
                    assert_eq!(needed, h.frame_len());
                    assert_eq!(available, bytes.len());
                    assert!(available < needed);
                }
                (DecodeError::ChecksumMismatch { expected, actual }, Ok(h)) => {
                    assert!(h.flags & flags::CHECKSUM != 0);
                    assert_eq!(expected, h.checksum);
                    assert_ne!(expected, actual);
                }
                (e, Err(h)) => assert_eq!(e, h),
                (e, Ok(h)) => panic!("decode failed with {e} after the header passed: {h:?}"),
            }
        }
    }
    // Encoding any header with any payload decodes back to it.
    if let Ok(h) = header {
        let payload = &bytes[HEADER_LEN.min(bytes.len())..];
        let payload = &payload[..payload.len().min(limit).min(1 << 16)];
        let encoded = frame::encode_to_vec(
            &Header {
                payload_length: 0,
                ..h
            },
            payload,
        );
        let (again, p) = frame::decode(&encoded, limit).expect("an encoded frame decodes");
        assert_eq!(p, payload);
        assert_eq!(
            (again.message_type, again.flags, again.sequence),
            (h.message_type, h.flags, h.sequence)
        );
    }
});
