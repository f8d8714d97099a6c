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
    crc32c_append(header_crc(&super::header::words_of(header)), payload)
}

/// CRC-32C of the 28 header bytes a checksum covers, given as the header's
/// four little-endian words (`Header::words`): bytes `0..24` and the low
/// half of the last word.
#[inline]
pub(crate) fn header_crc(words: &[u64; 4]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE4.2 (checked just above).
        return unsafe { sse42::header(words) };
    }
    let mut bytes = [0u8; CHECKSUM_COVERS];
    for (i, word) in words.iter().enumerate() {
        let le = word.to_le_bytes();
        let end = (8 * i + 8).min(CHECKSUM_COVERS);
        bytes[8 * i..end].copy_from_slice(&le[..end - 8 * i]);
    }
    crc32c::crc32c(&bytes)
}

/// Inputs up to this long take the serial SSE4.2 loop below; longer ones the
/// `crc32c` crate's three-way interleaved one, which is faster once there
/// are a few hundred bytes to spread over its three lanes.
const SHORT_INPUT: usize = 256;

/// `crc32c::crc32c_append`, with a faster path for the short inputs of
/// requests and replies: the crate first aligns its input, one byte per
/// instruction (each with a 3-cycle latency), and splits the rest three
/// ways; for a header and a few dozen bytes of payload, unaligned 8-byte
/// loads in one chain are about twice as fast (docs/BENCHMARKS.md,
/// "Micro-benchmarks").
#[inline]
pub(crate) fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() <= SHORT_INPUT && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE4.2 (checked just above).
        return unsafe { sse42::append(crc, bytes) };
    }
    crc32c::crc32c_append(crc, bytes)
}

/// The CRC32 instructions of SSE4.2 (which compute CRC-32C), in one chain.
#[cfg(target_arch = "x86_64")]
mod sse42 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64};

    /// # Safety
    ///
    /// The CPU must support SSE4.2.
    #[target_feature(enable = "sse4.2")]
    pub(super) unsafe fn header(words: &[u64; 4]) -> u32 {
        let mut crc = u64::from(!0u32);
        crc = _mm_crc32_u64(crc, words[0]);
        crc = _mm_crc32_u64(crc, words[1]);
        crc = _mm_crc32_u64(crc, words[2]);
        !_mm_crc32_u32(crc as u32, words[3] as u32)
    }

    /// # Safety
    ///
    /// The CPU must support SSE4.2.
    #[target_feature(enable = "sse4.2")]
    pub(super) unsafe fn append(crc: u32, bytes: &[u8]) -> u32 {
        let mut crc64 = u64::from(!crc);
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            crc64 = _mm_crc32_u64(
                crc64,
                u64::from_le_bytes(word.try_into().unwrap_or_default()),
            );
        }
        let mut crc = crc64 as u32;
        let mut rest = words.remainder();
        if let Some((four, tail)) = rest.split_first_chunk::<4>() {
            crc = _mm_crc32_u32(crc, u32::from_le_bytes(*four));
            rest = tail;
        }
        if let Some((two, tail)) = rest.split_first_chunk::<2>() {
            crc = _mm_crc32_u16(crc, u16::from_le_bytes(*two));
            rest = tail;
        }
        if let Some(&byte) = rest.first() {
            crc = _mm_crc32_u8(crc, byte);
        }
        !crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_matches_the_spec() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    proptest::proptest! {
        // Miri (scripts/miri runs the frame tests) interprets every step,
        // proptest's generation included (seconds a case): it checks the
        // unsafe paths on a few cases, the native run on many.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            if cfg!(miri) { 3 } else { 256 }
        ))]
        /// The short-input path and the header-words path compute exactly
        /// what the crate computes, at every length and starting value.
        #[test]
        fn fast_paths_equal_the_crate(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            start in proptest::num::u32::ANY,
            header in proptest::array::uniform32(proptest::num::u8::ANY),
        ) {
            proptest::prop_assert_eq!(
                crc32c_append(start, &bytes),
                crc32c::crc32c_append(start, &bytes)
            );
            let word = |i: usize| u64::from_le_bytes(header[8 * i..8 * i + 8].try_into().unwrap());
            proptest::prop_assert_eq!(
                header_crc(&[word(0), word(1), word(2), word(3)]),
                crc32c::crc32c(&header[..CHECKSUM_COVERS])
            );
        }
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
