//! Property tests of the frame codec: round trips and robustness.

use proptest::prelude::*;
use utp::frame::{self, Header};

proptest! {
    #[test]
    fn arbitrary_frames_round_trip(
        message_type: u8,
        flags: u16,
        sequence: u64,
        timestamp_us: u64,
        payload in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let header = Header::new(message_type, flags, sequence, timestamp_us);
        let wire = frame::encode_to_vec(&header, &payload);
        let (decoded, body) = frame::decode(&wire, frame::DEFAULT_MAX_PAYLOAD).unwrap();
        prop_assert_eq!(decoded.message_type, message_type);
        prop_assert_eq!(decoded.flags, flags);
        prop_assert_eq!(decoded.sequence, sequence);
        prop_assert_eq!(decoded.timestamp_us, timestamp_us);
        prop_assert_eq!(decoded.payload_length as usize, payload.len());
        prop_assert_eq!(body, &payload[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), limit in 0usize..2048) {
        let _ = frame::decode(&bytes, limit);
        let _ = frame::decode_header(&bytes, limit);
    }

    #[test]
    fn valid_headers_with_garbage_bodies_never_panic(
        length in any::<u32>(),
        flags: u16,
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = frame::encode_to_vec(&Header::new(1, flags, 1, 1), b"");
        bytes[8..12].copy_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(&tail);
        if let Ok((header, payload)) = frame::decode(&bytes, usize::MAX) {
            prop_assert_eq!(payload.len(), header.payload_length as usize);
        }
    }

    #[test]
    fn any_single_bit_flip_is_caught_by_the_checksum(
        payload in proptest::collection::vec(any::<u8>(), 1..256),
        bit in any::<prop::sample::Index>(),
    ) {
        let header = Header::new(5, frame::flags::CHECKSUM, 7, 8);
        let mut wire = frame::encode_to_vec(&header, &payload);
        // Flip a bit in the covered area other than magic/version/length/flags,
        // which have their own checks: the sequence, timestamp, type or payload.
        let covered: Vec<usize> = (5..6).chain(12..28).chain(32..wire.len()).collect();
        let at = covered[bit.index(covered.len())];
        wire[at] ^= 1 << (at % 8);
        prop_assert_eq!(frame::decode(&wire, 1 << 20).unwrap_err().kind(), "checksum_mismatch");
    }
}
