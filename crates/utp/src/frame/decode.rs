//! Decoding with the checks of docs/frame.md, in its order.

use super::checksum::{crc32c_append, header_crc};
use super::header::{HEADER_LEN, Header, MAGIC, VERSION, words_of};

/// Why a byte sequence is not a valid frame.
///
/// [`kind`](DecodeError::kind) gives the stable names of the spec
/// (`truncated`, `bad_magic`, ...), which tools print and tests compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the header or the declared payload needs.
    #[error("truncated frame: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed for the next step of decoding.
        needed: usize,
        /// Bytes that were given.
        available: usize,
    },
    /// The first four bytes are not `42 50 54 55`.
    #[error(
        "bad magic: received bytes {} (0x{found:08x}), expected 42 50 54 55 (\"BPTU\"): not a UTP frame",
        show_bytes(*found)
    )]
    BadMagic {
        /// The magic that was read.
        found: u32,
    },
    /// The version byte is not 1.
    #[error("unsupported UTP version {found} (this implementation speaks version 1)")]
    UnsupportedVersion {
        /// The version that was read.
        found: u8,
    },
    /// The declared payload is larger than the receiver accepts.
    #[error("payload of {length} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Declared payload length.
        length: u32,
        /// The receiver's limit.
        limit: usize,
    },
    /// The checksum flag is set and the CRC-32C does not match.
    #[error("checksum mismatch: header says 0x{expected:08x}, frame hashes to 0x{actual:08x}")]
    ChecksumMismatch {
        /// Checksum in the header.
        expected: u32,
        /// Checksum computed over the bytes.
        actual: u32,
    },
}

/// The four magic bytes as received, in wire order: `47 45 54 20`.
fn show_bytes(magic: u32) -> String {
    let b = magic.to_le_bytes();
    format!("{:02x} {:02x} {:02x} {:02x}", b[0], b[1], b[2], b[3])
}

impl DecodeError {
    /// The spec's name for this error: `truncated`, `bad_magic`,
    /// `unsupported_version`, `too_large` or `checksum_mismatch`.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadMagic { .. } => "bad_magic",
            DecodeError::UnsupportedVersion { .. } => "unsupported_version",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::ChecksumMismatch { .. } => "checksum_mismatch",
        }
    }
}

/// Checks rules 1–4 on the first 32 bytes: enough bytes, magic, version and
/// the payload limit. Stream readers call this before reading (or allocating
/// for) the payload.
pub fn decode_header(bytes: &[u8], max_payload: usize) -> Result<Header, DecodeError> {
    let Some(head) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::Truncated {
            needed: HEADER_LEN,
            available: bytes.len(),
        });
    };
    decode_header_words(words_of(head), max_payload)
}

/// [`decode_header`] over the 32 header bytes given as four little-endian
/// u64 words (bytes `8i..8i+8` in word `i`), as the shared-memory ring
/// loads them (no round trip through a stack buffer, which costs a
/// store-forwarding stall per field that straddles two of the words). The
/// one implementation of rules 2–4: `decode_header` loads the words from
/// its bytes and calls it.
#[inline]
pub(crate) fn decode_header_words(
    words: [u64; 4],
    max_payload: usize,
) -> Result<Header, DecodeError> {
    let header = Header::from_words(words);
    let magic = words[0] as u32;
    if magic != MAGIC {
        return Err(DecodeError::BadMagic { found: magic });
    }
    let version = (words[0] >> 32) as u8;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    if header.payload_length as usize > max_payload {
        return Err(DecodeError::TooLarge {
            length: header.payload_length,
            limit: max_payload,
        });
    }
    Ok(header)
}

/// Decodes one complete frame at the start of `bytes`, applying all six rules
/// in order. Returns the header and a borrowed payload; bytes after the frame
/// are ignored. Never allocates, never panics.
pub fn decode(bytes: &[u8], max_payload: usize) -> Result<(Header, &[u8]), DecodeError> {
    let header = decode_header(bytes, max_payload)?;
    let total = header.frame_len();
    if bytes.len() < total {
        return Err(DecodeError::Truncated {
            needed: total,
            available: bytes.len(),
        });
    }
    let payload = &bytes[HEADER_LEN..total];
    verify_checksum(header, payload)?;
    Ok((header, payload))
}

/// Rule 6: when the checksum flag is set, the CRC-32C must match. `header`
/// is the one decoded from the frame's bytes (which re-encode to exactly
/// those bytes: magic and version were checked, every other field is kept).
///
/// The header comes by value and goes to the CRC as four words in
/// registers: a header that must be in memory for a call is stored there
/// field by field, even where the call is not made, and a receive that
/// then copies it 16 bytes at a time (into the caller's frame, or the
/// frame a stream lends) waits for those stores: a third of the stream
/// receive's samples over a FIFO (journal, 2026-12-07, afternoon).
#[inline]
pub(crate) fn verify_checksum(header: Header, payload: &[u8]) -> Result<(), DecodeError> {
    if header.has_checksum() {
        let [w0, w1, w2, w3] = header.words();
        return check_crc(w0, w1, w2, w3, payload);
    }
    Ok(())
}

/// The CRC part of [`verify_checksum`], out of line, so that a receive path
/// it sits in stays small enough to be inlined whole (inlined in the shm
/// link's receive, it pushed the copy out of `recv`: about 10 ns a round
/// trip). Takes the header as its [`words`](Header::words); the checksum
/// it must match is the high half of the last.
#[inline(never)]
fn check_crc(w0: u64, w1: u64, w2: u64, w3: u64, payload: &[u8]) -> Result<(), DecodeError> {
    let actual = crc32c_append(header_crc(&[w0, w1, w2, w3]), payload);
    let expected = (w3 >> 32) as u32;
    if actual != expected {
        return Err(DecodeError::ChecksumMismatch { expected, actual });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode_to_vec, flags};

    fn sample() -> Vec<u8> {
        encode_to_vec(&Header::new(1, flags::CHECKSUM, 9, 10), b"0123456789")
    }

    #[test]
    fn rules_apply_in_order() {
        // Bad magic and bad version together: magic is reported first.
        let mut bytes = sample();
        bytes[0] = 0;
        bytes[4] = 9;
        assert_eq!(decode(&bytes, 1024).unwrap_err().kind(), "bad_magic");
        // Bad version and too large together: version first.
        let mut bytes = sample();
        bytes[4] = 2;
        assert_eq!(decode(&bytes, 1).unwrap_err().kind(), "unsupported_version");
        // Too large and truncated payload together: too_large first.
        let bytes = sample();
        assert_eq!(decode(&bytes[..35], 1).unwrap_err().kind(), "too_large");
        assert_eq!(decode(&bytes[..35], 1024).unwrap_err().kind(), "truncated");
    }

    proptest::proptest! {
        // Miri (scripts/miri runs the frame tests) interprets every step,
        // proptest's generation included (seconds a case): it checks the
        // unsafe paths on a few cases, the native run on many.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            if cfg!(miri) { 3 } else { 256 }
        ))]
        /// Word-wise decoding is byte-wise decoding: same header, same error.
        #[test]
        fn decoding_words_equals_decoding_bytes(
            mut bytes in proptest::array::uniform32(proptest::num::u8::ANY),
            valid_start in proptest::bool::ANY,
            max in 0usize..1 << 33,
        ) {
            if valid_start {
                bytes[..4].copy_from_slice(&MAGIC.to_le_bytes());
                bytes[4] = VERSION;
            }
            let word = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap());
            let words = [word(0), word(1), word(2), word(3)];
            proptest::prop_assert_eq!(decode_header_words(words, max), decode_header(&bytes, max));
        }
    }

    #[test]
    fn bad_magic_shows_the_bytes_received() {
        let mut bytes = sample();
        bytes[..4].copy_from_slice(b"GET ");
        assert_eq!(
            decode(&bytes, 1024).unwrap_err().to_string(),
            "bad magic: received bytes 47 45 54 20 (0x20544547), expected 42 50 54 55 (\"BPTU\"): \
             not a UTP frame"
        );
    }

    #[test]
    fn a_huge_length_is_refused_before_anything_else() {
        let mut bytes = sample();
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode(&bytes, usize::MAX >> 1).unwrap_err().kind(),
            "truncated"
        );
        assert_eq!(
            decode(&bytes, 1 << 20).unwrap_err(),
            DecodeError::TooLarge {
                length: u32::MAX,
                limit: 1 << 20
            }
        );
    }

    #[test]
    fn trailing_bytes_are_not_part_of_the_frame() {
        let mut bytes = sample();
        bytes.extend_from_slice(b"next frame");
        let (header, payload) = decode(&bytes, 1024).unwrap();
        assert_eq!(header.sequence, 9);
        assert_eq!(payload, b"0123456789");
    }
}
