//! The rendezvous conversation over the publisher's Unix socket: UTP frames
//! (docs/frame.md) whose types and payloads `docs/pubsub-layout.md`
//! specifies; the `ACCEPT` frame carries two descriptors (`SCM_RIGHTS`).

use super::layout::LAYOUT_VERSION;
use crate::error::{Error, Result};
use crate::frame::{self, Header, message_type};
use crate::{DeniedReason, GoneReason, ProtocolReason};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// A subscriber asks to join.
pub const SUBSCRIBE: u8 = 0x30;
/// The publisher admits a subscriber (with the data and control fds).
pub const ACCEPT: u8 = 0x31;
/// `utp inspect` asks for the publisher's state.
pub const INSPECT: u8 = 0x32;
/// The publisher's state, as text lines.
pub const REPORT: u8 = 0x33;
/// A published message on a stream transport: u64 message number, then the payload.
pub const MESSAGE: u8 = 0x34;

/// Largest rendezvous payload accepted.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The `SUBSCRIBE` payload (24 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// 0 drop, 1 block.
    pub policy: u32,
    /// 0 spin, 1 block, 2 adaptive.
    pub wait: u32,
    /// Block-policy timeout in nanoseconds.
    pub block_timeout_ns: u64,
    /// An eventfd comes with the frame, to be signalled while the
    /// subscriber is armed (flag bit 0 of the u32 at +12).
    pub notify: bool,
}

/// SUBSCRIBE flag: an eventfd is attached.
pub const FLAG_NOTIFY: u32 = 1;

impl Subscribe {
    /// u32 version, u32 policy, u32 wait, u32 flags, u64 block_timeout_ns.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.policy.to_le_bytes());
        out.extend_from_slice(&self.wait.to_le_bytes());
        out.extend_from_slice(&(if self.notify { FLAG_NOTIFY } else { 0 }).to_le_bytes());
        out.extend_from_slice(&self.block_timeout_ns.to_le_bytes());
        out
    }

    /// Parses and checks a `SUBSCRIBE` payload.
    pub fn decode(p: &[u8]) -> Result<Subscribe> {
        if p.len() != 24 {
            return Err(Error::protocol(
                ProtocolReason::Corrupt,
                format!("SUBSCRIBE of {} bytes, expected 24", p.len()),
            ));
        }
        check_version(u32_at(p, 0))?;
        let s = Subscribe {
            policy: u32_at(p, 4),
            wait: u32_at(p, 8),
            block_timeout_ns: u64_at(p, 16),
            notify: u32_at(p, 12) & FLAG_NOTIFY != 0,
        };
        if s.policy > 1 || s.wait > 2 || u32_at(p, 12) & !FLAG_NOTIFY != 0 {
            return Err(Error::protocol(
                ProtocolReason::Corrupt,
                format!(
                    "SUBSCRIBE with policy {} / wait {} out of range",
                    s.policy, s.wait
                ),
            ));
        }
        Ok(s)
    }
}

/// The `ACCEPT` payload (40 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accept {
    /// The subscriber's id.
    pub id: u32,
    /// Slots in the ring.
    pub slot_count: u32,
    /// Bytes per slot.
    pub slot_size: u32,
    /// Data region length.
    pub region_len: u64,
    /// The first message number this subscriber will see.
    pub start: u64,
    /// The publisher's process id.
    pub publisher_pid: u32,
}

impl Accept {
    /// u32 version, u32 id, u32 slot_count, u32 slot_size, u64 region_len,
    /// u64 start, u32 publisher_pid, u32 zero.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        out.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.slot_count.to_le_bytes());
        out.extend_from_slice(&self.slot_size.to_le_bytes());
        out.extend_from_slice(&self.region_len.to_le_bytes());
        out.extend_from_slice(&self.start.to_le_bytes());
        out.extend_from_slice(&self.publisher_pid.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out
    }

    /// Parses an `ACCEPT` payload (the geometry is checked by the caller).
    pub fn decode(p: &[u8]) -> Result<Accept> {
        if p.len() != 40 {
            return Err(Error::protocol(
                ProtocolReason::Corrupt,
                format!("ACCEPT of {} bytes, expected 40", p.len()),
            ));
        }
        check_version(u32_at(p, 0))?;
        Ok(Accept {
            id: u32_at(p, 4),
            slot_count: u32_at(p, 8),
            slot_size: u32_at(p, 12),
            region_len: u64_at(p, 16),
            start: u64_at(p, 24),
            publisher_pid: u32_at(p, 32),
        })
    }
}

fn check_version(v: u32) -> Result<()> {
    if v == LAYOUT_VERSION {
        Ok(())
    } else {
        Err(Error::protocol(
            ProtocolReason::Version,
            format!("peer speaks pub/sub layout version {v}, this build speaks {LAYOUT_VERSION}"),
        ))
    }
}

/// Little-endian u32 at `at` (caller checked the length).
pub fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// Little-endian u64 at `at` (caller checked the length).
pub fn u64_at(p: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Sends one checksummed frame, with `fds` attached when not empty.
pub fn send(
    stream: &UnixStream,
    message_type: u8,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<()> {
    crate::handshake_io::send_frame(stream, message_type, payload, fds)
        .map_err(|e| map_io("sending a pub/sub rendezvous frame", e))
}

/// Receives one frame and up to two descriptors sent with it, within the
/// socket's receive timeout. An `ERROR` frame becomes an error carrying
/// its text; a type other than `expected` (when given) is a protocol error.
pub fn recv(stream: &UnixStream, expected: Option<u8>) -> Result<(Header, Vec<u8>, Vec<OwnedFd>)> {
    let (bytes, fds) = crate::handshake_io::read_frame(stream, MAX_PAYLOAD, |short| {
        map_io("reading a pub/sub rendezvous frame", short.into_io())
    })?;
    let (header, payload) = frame::decode(&bytes, MAX_PAYLOAD)?;
    if header.message_type == message_type::ERROR {
        return Err(Error::denied(
            DeniedReason::Refused,
            format!(
                "the publisher refused: {}",
                String::from_utf8_lossy(payload)
            ),
        ));
    }
    if let Some(expected) = expected
        && header.message_type != expected
    {
        return Err(Error::protocol(
            ProtocolReason::Unexpected,
            format!(
                "expected rendezvous frame type 0x{expected:02x}, got 0x{:02x}",
                header.message_type
            ),
        ));
    }
    Ok((header, payload.to_vec(), fds))
}

fn map_io(context: &str, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionReset => {
            Error::peer_gone(GoneReason::Died, format!("{context}: the peer hung up"))
        }
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Error::Timeout {
            waiting_for: "the pub/sub rendezvous",
            after: std::time::Duration::ZERO,
        },
        _ => Error::io(context, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_bad_ones_are_refused() {
        let s = Subscribe {
            policy: 1,
            wait: 2,
            block_timeout_ns: 5,
            notify: true,
        };
        assert_eq!(Subscribe::decode(&s.encode()).unwrap(), s);
        let mut bad = s.encode();
        bad[0] = 9; // version
        assert!(Subscribe::decode(&bad).is_err());
        let mut bad = s.encode();
        bad[4] = 2; // policy
        assert!(Subscribe::decode(&bad).is_err());
        let mut bad = s.encode();
        bad[13] = 1; // an unknown flag
        assert!(Subscribe::decode(&bad).is_err());
        assert!(Subscribe::decode(&s.encode()[..23]).is_err());
        let a = Accept {
            id: 3,
            slot_count: 16,
            slot_size: 128,
            region_len: 192 + 16 * 128,
            start: 99,
            publisher_pid: 42,
        };
        assert_eq!(Accept::decode(&a.encode()).unwrap(), a);
        assert!(Accept::decode(&a.encode()[..39]).is_err());
    }
}
