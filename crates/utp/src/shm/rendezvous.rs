//! The rendezvous: abstract Unix socket names and the handshake frames
//! (`LINK_HELLO`, `LINK_ATTACH`, `LINK_READY`). Byte layouts are in
//! `docs/shm-layout.md`.

use super::region::Location;
use crate::endpoint::Address;
use crate::error::{Error, Result};
use crate::frame::{self, HEADER_LEN, Header, flags, message_type};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// Handshake frames carry at most this much payload.
pub const MAX_HANDSHAKE_PAYLOAD: usize = 4096;
/// Longest abstract socket name (sun_path is 108 bytes, one is the leading NUL).
pub const MAX_SOCKET_NAME: usize = 107;

/// The abstract socket name (without the leading NUL) a listener binds:
/// `utp/shm/NAME`, `utp/sysv/0xKEY` (8 lowercase hex digits), `utp/file/PATH`.
pub fn socket_name(address: &Address) -> Result<String> {
    let name = match address {
        Address::Shm(n) => format!("utp/shm/{n}"),
        Address::SysV(k) => format!("utp/sysv/0x{:08x}", *k as u32),
        Address::File(p) => format!("utp/file/{}", p.display()),
        other => {
            return Err(Error::Protocol(format!(
                "{other} is not a shared-memory address"
            )));
        }
    };
    if name.len() > MAX_SOCKET_NAME {
        return Err(Error::BadUrl {
            url: address.to_string(),
            reason: format!(
                "the rendezvous socket name {name:?} is longer than {MAX_SOCKET_NAME} bytes; use a shorter name or path"
            ),
        });
    }
    Ok(name)
}

/// Where the server puts link number `n`: `/utp.NAME.PID.N` for POSIX,
/// `PATH.PID.N` for files, a private segment for System V.
pub fn link_location(address: &Address, pid: u32, n: u32) -> Location {
    match address {
        Address::Shm(name) => Location::Posix(format!("/utp.{name}.{pid}.{n}")),
        Address::File(path) => {
            let mut p = path.clone().into_os_string();
            p.push(format!(".{pid}.{n}"));
            Location::File(PathBuf::from(p))
        }
        _ => Location::SysV(0),
    }
}

/// `LINK_HELLO` payload: what the client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Requested ring capacity, 0 for the server's choice.
    pub capacity: u64,
}

impl Hello {
    /// 16 bytes: u32 layout version, u32 zero, u64 capacity.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&super::layout::LAYOUT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.capacity.to_le_bytes());
        out
    }

    /// Parses and checks the layout version.
    pub fn decode(p: &[u8]) -> Result<Hello> {
        if p.len() < 16 {
            return Err(Error::Protocol(format!(
                "LINK_HELLO of {} bytes, expected 16",
                p.len()
            )));
        }
        check_version(u32_at(p, 0))?;
        Ok(Hello {
            capacity: u64_at(p, 8),
        })
    }
}

/// `LINK_ATTACH` payload: where the region is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attach {
    /// The region.
    pub location: Location,
    /// Its exact size in bytes.
    pub region_len: u64,
    /// Capacity of each ring.
    pub capacity: u64,
    /// The server's number for this link.
    pub link_id: u32,
}

impl Attach {
    /// 36 bytes + name: u32 version, u32 kind, u64 region_len, u64 capacity,
    /// i32 shmid (-1 unless System V), u32 link_id, u16 name_len, 2 zero
    /// bytes, then name_len bytes of name (POSIX name or file path).
    pub fn encode(&self) -> Vec<u8> {
        let (shmid, name) = match &self.location {
            Location::Posix(n) => (-1, n.as_bytes().to_vec()),
            Location::File(p) => (-1, p.as_os_str().as_encoded_bytes().to_vec()),
            Location::SysV(id) => (*id, Vec::new()),
        };
        let mut out = Vec::with_capacity(36 + name.len());
        out.extend_from_slice(&super::layout::LAYOUT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.location.kind().to_le_bytes());
        out.extend_from_slice(&self.region_len.to_le_bytes());
        out.extend_from_slice(&self.capacity.to_le_bytes());
        out.extend_from_slice(&shmid.to_le_bytes());
        out.extend_from_slice(&self.link_id.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&name);
        out
    }

    /// Parses and checks an attach message.
    pub fn decode(p: &[u8]) -> Result<Attach> {
        if p.len() < 36 {
            return Err(Error::Protocol(format!(
                "LINK_ATTACH of {} bytes, expected >= 36",
                p.len()
            )));
        }
        check_version(u32_at(p, 0))?;
        let kind = u32_at(p, 4);
        let shmid = u32_at(p, 24) as i32;
        let name_len = u16::from_le_bytes([p[32], p[33]]) as usize;
        let name = p
            .get(36..36 + name_len)
            .ok_or_else(|| Error::Protocol("LINK_ATTACH name runs past the payload".into()))?;
        let name = std::str::from_utf8(name)
            .map_err(|_| Error::Protocol("LINK_ATTACH name is not UTF-8".into()))?;
        let location = match kind {
            1 if name.starts_with("/utp.") && !name[1..].contains('/') => {
                Location::Posix(name.into())
            }
            2 if shmid >= 0 => Location::SysV(shmid),
            3 if name.starts_with('/') => Location::File(name.into()),
            _ => {
                return Err(Error::Protocol(format!(
                    "LINK_ATTACH with kind {kind}, shmid {shmid}, name {name:?} is not acceptable"
                )));
            }
        };
        Ok(Attach {
            location,
            region_len: u64_at(p, 8),
            capacity: u64_at(p, 16),
            link_id: u32_at(p, 28),
        })
    }
}

fn check_version(v: u32) -> Result<()> {
    if v == super::layout::LAYOUT_VERSION {
        Ok(())
    } else {
        Err(Error::Protocol(format!(
            "peer speaks shm layout version {v}, this build speaks {}",
            super::layout::LAYOUT_VERSION
        )))
    }
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

fn u64_at(p: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Sends one checksummed handshake frame (sequence 1).
pub fn send_frame(stream: &mut UnixStream, message_type: u8, payload: &[u8]) -> Result<()> {
    let header = Header::new(message_type, flags::CHECKSUM, 1, frame::now_micros());
    stream
        .write_all(&frame::encode_to_vec(&header, payload))
        .map_err(|e| map_io("sending a shm handshake frame", e))
}

/// Receives one handshake frame of type `expected`; an `ERROR` frame from
/// the peer becomes an error carrying its text.
pub fn recv_frame(stream: &mut UnixStream, expected: u8) -> Result<Vec<u8>> {
    let mut head = [0u8; HEADER_LEN];
    stream
        .read_exact(&mut head)
        .map_err(|e| map_io("waiting for a shm handshake frame", e))?;
    let header = frame::decode_header(&head, MAX_HANDSHAKE_PAYLOAD)?;
    let mut bytes = head.to_vec();
    bytes.resize(header.frame_len(), 0);
    stream
        .read_exact(&mut bytes[HEADER_LEN..])
        .map_err(|e| map_io("reading a shm handshake frame", e))?;
    let (header, payload) = frame::decode(&bytes, MAX_HANDSHAKE_PAYLOAD)?;
    if header.message_type == message_type::ERROR {
        return Err(Error::Protocol(format!(
            "the shm server refused the link: {}",
            String::from_utf8_lossy(payload)
        )));
    }
    if header.message_type != expected {
        return Err(Error::Protocol(format!(
            "expected handshake frame type 0x{expected:02x}, got 0x{:02x}",
            header.message_type
        )));
    }
    Ok(payload.to_vec())
}

fn map_io(context: &str, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            Error::PeerGone(format!("{context}: the peer hung up"))
        }
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Error::Timeout {
            waiting_for: "the shm handshake",
            after: std::time::Duration::ZERO,
        },
        _ => Error::io(context, e),
    }
}
