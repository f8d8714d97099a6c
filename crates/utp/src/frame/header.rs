//! The 32-byte header: constants, field layout and encoding.

use super::checksum::{crc32c_append, header_crc};

/// Length of the fixed header in bytes.
pub const HEADER_LEN: usize = 32;
/// The magic number, `"UTPB"` read as a little-endian `u32`.
pub const MAGIC: u32 = 0x5554_5042;
/// The magic as it appears on the wire: `42 50 54 55`.
pub const MAGIC_BYTES: [u8; 4] = MAGIC.to_le_bytes();
/// The only version this crate speaks.
pub const VERSION: u8 = 1;
/// The payload limit a receiver applies unless configured otherwise: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;
/// Header bytes covered by the checksum (everything before the checksum field).
pub(crate) const CHECKSUM_COVERS: usize = 28;

/// Flag bits of the header's `flags` field.
///
/// Bits a receiver does not know are ignored, so new flags need no version bump.
pub mod flags {
    /// Bit 0: the checksum field holds the CRC-32C of the frame and is verified.
    pub const CHECKSUM: u16 = 0x0001;
    /// Bit 1: this frame answers a request, and its sequence field is the
    /// sequence number of that request (not the sender's own count). A
    /// client refuses a reply with this flag that names another request.
    pub const REPLY: u16 = 0x0002;
}

/// Message types. The frame layer accepts any value; these are the ones utp gives meaning to.
pub mod message_type {
    /// Application data.
    pub const DATA: u8 = 0x01;
    /// Liveness; usually an empty payload.
    pub const HEARTBEAT: u8 = 0x02;
    /// Acknowledgement.
    pub const ACK: u8 = 0x03;
    /// A timestamp message.
    pub const TIME: u8 = 0x04;
    /// UTF-8 text.
    pub const TEXT: u8 = 0x05;
    /// A service request (the calculator's `OP A B` text travels as one).
    pub const REQUEST: u8 = 0x10;
    /// The reply to a [`REQUEST`], in the same order requests arrived.
    pub const RESPONSE: u8 = 0x11;
    /// A protocol-level error from the server (the payload is UTF-8 text);
    /// sent instead of a [`RESPONSE`] when a request could not be handled at all.
    pub const ERROR: u8 = 0x12;
    /// Sent by a side that is closing the channel in an orderly way.
    pub const GOODBYE: u8 = 0x13;
    /// Shared-memory link handshake: the client asks for a link.
    pub const LINK_HELLO: u8 = 0x20;
    /// Shared-memory link handshake: the server describes the region it made.
    pub const LINK_ATTACH: u8 = 0x21;
    /// Shared-memory link handshake: the client has mapped the region.
    pub const LINK_READY: u8 = 0x22;
    /// A typed value encoded with postcard (serde); see [`crate::typed`].
    pub const TYPED: u8 = 0x30;
    /// A plain-old-data value, its bytes as in memory; see [`crate::typed`].
    pub const POD: u8 = 0x31;

    /// A short name for a message type, for logs and `utp frame decode`.
    pub fn name(value: u8) -> Option<&'static str> {
        Some(match value {
            DATA => "DATA",
            HEARTBEAT => "HEARTBEAT",
            ACK => "ACK",
            TIME => "TIME",
            TEXT => "TEXT",
            REQUEST => "REQUEST",
            RESPONSE => "RESPONSE",
            ERROR => "ERROR",
            GOODBYE => "GOODBYE",
            LINK_HELLO => "LINK_HELLO",
            LINK_ATTACH => "LINK_ATTACH",
            LINK_READY => "LINK_READY",
            TYPED => "TYPED",
            POD => "POD",
            _ => return None,
        })
    }
}

/// A decoded (or to-be-encoded) frame header.
///
/// `magic` and `version` are implied: a `Header` value always describes a
/// version-1 frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Header {
    /// What the payload means; see [`message_type`].
    pub message_type: u8,
    /// Flag bits; see [`flags`].
    pub flags: u16,
    /// Bytes of payload after the header.
    pub payload_length: u32,
    /// Per sender and direction, starting at 1.
    pub sequence: u64,
    /// Microseconds since the Unix epoch when the sender built the frame.
    pub timestamp_us: u64,
    /// CRC-32C when [`flags::CHECKSUM`] is set, otherwise 0.
    pub checksum: u32,
}

impl Header {
    /// A header with the given fields; length and checksum are filled by encoding.
    pub fn new(message_type: u8, flags: u16, sequence: u64, timestamp_us: u64) -> Self {
        Header {
            message_type,
            flags,
            payload_length: 0,
            sequence,
            timestamp_us,
            checksum: 0,
        }
    }

    /// Whether the checksum flag is set.
    pub fn has_checksum(&self) -> bool {
        self.flags & flags::CHECKSUM != 0
    }

    /// Total frame length: header plus payload.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_length as usize
    }

    /// The 32 header bytes ([`write_fields`](Self::write_fields)) as four
    /// little-endian u64 words: bytes `8i..8i+8` are word `i`.
    #[inline]
    pub(crate) fn words(&self) -> [u64; 4] {
        let w0 = u64::from(MAGIC)
            | u64::from(VERSION) << 32
            | u64::from(self.message_type) << 40
            | u64::from(self.flags) << 48;
        let w1 = u64::from(self.payload_length) | self.sequence << 32;
        let w2 = self.sequence >> 32 | self.timestamp_us << 32;
        let w3 = self.timestamp_us >> 32 | u64::from(self.checksum) << 32;
        [w0, w1, w2, w3]
    }

    /// The header whose [`words`](Self::words) these are, magic and version
    /// aside (not checked here: `decode_header_words` checks them).
    #[inline]
    pub(crate) fn from_words([w0, w1, w2, w3]: [u64; 4]) -> Header {
        Header {
            message_type: (w0 >> 40) as u8,
            flags: (w0 >> 48) as u16,
            payload_length: w1 as u32,
            sequence: w1 >> 32 | w2 << 32,
            timestamp_us: w2 >> 32 | w3 << 32,
            checksum: (w3 >> 32) as u32,
        }
    }

    /// The CRC-32C of this header's first 28 bytes and `payload` (what the
    /// checksum field holds when the flag is set), computed from the
    /// fields: no bytes are written and read back.
    #[inline]
    pub(crate) fn checksum_of(&self, payload: &[u8]) -> u32 {
        crc32c_append(header_crc(&self.words()), payload)
    }

    /// Writes the header bytes for `payload` into `out`, setting the length and,
    /// when the checksum flag is set, the checksum. Returns the header as written.
    ///
    /// # Panics
    ///
    /// Panics if `payload` is longer than `u32::MAX` bytes, which no frame can carry;
    /// transports refuse such payloads with an error before getting here.
    pub fn encode_for(&self, payload: &[u8], out: &mut [u8; HEADER_LEN]) -> Header {
        let header = self.completed_for(payload);
        header.write_fields(out);
        header
    }

    /// This header with the length of `payload` and, when the flag asks for
    /// one, its checksum: what [`encode_for`](Self::encode_for) encodes.
    ///
    /// # Panics
    ///
    /// If `payload` is longer than `u32::MAX` bytes.
    ///
    /// Always inlined, the checksum out of line: a header returned from a
    /// call comes back through memory, stored a field at a time, and the
    /// caller's first wide load of it waits for those stores (the
    /// in-process send spent a third of its own time there;
    /// docs/benchmarks/journal.md, 2026-12-07, morning).
    #[inline(always)]
    pub(crate) fn completed_for(&self, payload: &[u8]) -> Header {
        let length = u32::try_from(payload.len()).expect("payload longer than u32::MAX");
        let mut header = Header {
            payload_length: length,
            checksum: 0,
            ..*self
        };
        if header.has_checksum() {
            header.checksum = header.checksum_out_of_line(payload);
        }
        header
    }

    /// [`checksum_of`](Self::checksum_of), kept out of line so that
    /// [`completed_for`](Self::completed_for) stays small where it is inlined.
    #[inline(never)]
    fn checksum_out_of_line(&self, payload: &[u8]) -> u32 {
        self.checksum_of(payload)
    }

    /// Writes every field as it is, including `payload_length` and `checksum`.
    pub fn write_fields(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..4].copy_from_slice(&MAGIC_BYTES);
        out[4] = VERSION;
        out[5] = self.message_type;
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..12].copy_from_slice(&self.payload_length.to_le_bytes());
        out[12..20].copy_from_slice(&self.sequence.to_le_bytes());
        out[20..28].copy_from_slice(&self.timestamp_us.to_le_bytes());
        out[28..32].copy_from_slice(&self.checksum.to_le_bytes());
    }
}

/// The 32 header bytes as the four little-endian words of
/// [`Header::words`]: how a header is read, whatever the bytes hold.
#[inline]
pub(crate) fn words_of(bytes: &[u8; HEADER_LEN]) -> [u64; 4] {
    std::array::from_fn(|i| u64::from_le_bytes(std::array::from_fn(|j| bytes[8 * i + j])))
}

/// Encodes a whole frame (header and payload) into a new vector.
pub fn encode_to_vec(header: &Header, payload: &[u8]) -> Vec<u8> {
    let mut head = [0u8; HEADER_LEN];
    header.encode_for(payload, &mut head);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&head);
    crate::copy::extend(&mut out, payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_the_encoded_header() {
        let h = Header {
            message_type: 0x11,
            flags: 0xa5c3,
            payload_length: 0x0102_0304,
            sequence: 0x1122_3344_5566_7788,
            timestamp_us: 0x99aa_bbcc_ddee_ff00,
            checksum: 0xdead_beef,
        };
        let mut want = [0u8; HEADER_LEN];
        h.write_fields(&mut want);
        let got: Vec<u8> = h.words().iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(got, want);
        assert_eq!(Header::from_words(h.words()), h);
        assert_eq!(
            h.checksum_of(b"xyz"),
            crate::frame::frame_checksum(&want, b"xyz")
        );
    }

    #[test]
    fn magic_bytes_on_the_wire() {
        assert_eq!(MAGIC_BYTES, [0x42, 0x50, 0x54, 0x55]);
    }

    #[test]
    fn no_checksum_flag_leaves_the_field_zero() {
        let header = Header::new(message_type::DATA, 0, 3, 4);
        let bytes = encode_to_vec(&header, b"abc");
        assert_eq!(&bytes[28..32], &[0, 0, 0, 0]);
        assert_eq!(&bytes[8..12], &3u32.to_le_bytes());
    }
}
