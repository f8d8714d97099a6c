//! CRC-32C (Castagnoli), as the frame's checksum field uses it.
//!
//! The `crc32c` crate uses the SSE4.2 / ARMv8 CRC instructions when the CPU
//! has them and falls back to a table otherwise.

use super::header::CHECKSUM_COVERS;

/// CRC-32C of `bytes` (reflected `0x82F63B78`, init and final xor `0xFFFFFFFF`).
///
/// ```
/// assert_eq!(utp::frame::crc32c(b"123456789"), 0xE306_9283);
/// ```
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// The checksum of a frame: CRC-32C of header bytes `0..28` followed by the payload.
///
/// Only the first 28 bytes of `header` are read; the checksum field itself is
/// not covered.
pub fn frame_checksum(header: &[u8; super::HEADER_LEN], payload: &[u8]) -> u32 {
    let partial = crc32c::crc32c(&header[..CHECKSUM_COVERS]);
    crc32c::crc32c_append(partial, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_matches_the_spec() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn frame_checksum_equals_crc_of_the_concatenation() {
        let mut header = [7u8; 32];
        header[28..].copy_from_slice(&[0xAA; 4]); // must not be covered
        let payload = b"payload bytes";
        let mut joined = header[..28].to_vec();
        joined.extend_from_slice(payload);
        assert_eq!(frame_checksum(&header, payload), crc32c(&joined));
    }
}
