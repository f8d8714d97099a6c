//! The rendezvous: socket paths in the per-user directories and the
//! handshake frames (`LINK_HELLO`, `LINK_ATTACH`, `LINK_READY`). Byte
//! layouts are in `docs/shm-layout.md` section 2.

use super::region::Location;
use crate::endpoint::Address;
use crate::error::{Error, Result};
use crate::frame::{self, message_type};
use crate::identity::PeerPolicy;
use crate::runtime_dir::{self, Kind};
use crate::{GoneReason, ProtocolReason};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// Handshake frames carry at most this much payload.
pub const MAX_HANDSHAKE_PAYLOAD: usize = 4096;

/// The socket's file name in a runtime directory: `shm.NAME`,
/// `sysv.0xKEY` (8 lowercase hex digits), `file.PATH` (`%` as `%25`, `/` as `%2F`).
pub fn socket_file(address: &Address) -> Result<String> {
    Ok(match address {
        Address::Shm(n) => format!("shm.{n}"),
        Address::SysV(k) => format!("sysv.0x{:08x}", *k as u32),
        Address::File(p) => {
            let p = p.to_str().ok_or_else(|| Error::BadUrl {
                url: address.to_string(),
                reason: "the path is not UTF-8".into(),
            })?;
            format!("file.{}", p.replace('%', "%25").replace('/', "%2F"))
        }
        other => {
            return Err(Error::protocol(
                ProtocolReason::Unsupported,
                format!("{other} is not a shared-memory address"),
            ));
        }
    })
}

/// The URL a socket file name belongs to (inverse of [`socket_file`]).
pub fn address_of_socket_file(file: &str) -> Option<String> {
    if let Some(n) = file.strip_prefix("shm.") {
        Some(format!("shm://{n}"))
    } else if let Some(k) = file.strip_prefix("sysv.") {
        Some(format!("sysv://{k}"))
    } else {
        file.strip_prefix("file.")
            .map(|p| format!("file://{}", p.replace("%2F", "/").replace("%25", "%")))
    }
}

/// Where a listener for `address` binds: in the shared directory when its
/// policy admits other users, else in the private one. Returns the path
/// and the socket's file mode.
pub fn listen_path(address: &Address, policy: &PeerPolicy) -> Result<(PathBuf, u32)> {
    let file = socket_file(address)?;
    let (dir, mode) = if policy.is_widened() {
        (runtime_dir::shared_dir()?, 0o666)
    } else {
        (runtime_dir::private_dir()?, 0o600)
    };
    Ok((runtime_dir::socket_path(&dir, &file)?, mode))
}

/// The paths a client tries, in order (`docs/shm-layout.md` 2.2), with the
/// uid that must own each directory.
pub fn connect_paths(address: &Address, allow_uids: &[u32]) -> Result<Vec<(PathBuf, u32, Kind)>> {
    let file = socket_file(address)?;
    let me = rustix::process::geteuid().as_raw();
    let mut dirs = vec![(me, Kind::Private), (me, Kind::Shared)];
    for &uid in allow_uids
        .iter()
        .chain(if me == 0 { &[][..] } else { &[0][..] })
    {
        if !dirs.contains(&(uid, Kind::Shared)) {
            dirs.push((uid, Kind::Shared));
        }
        // Root can enter another user's private directory.
        if me == 0 && !dirs.contains(&(uid, Kind::Private)) {
            dirs.push((uid, Kind::Private));
        }
    }
    dirs.into_iter()
        .map(|(uid, kind)| {
            let dir = runtime_dir::path_of(uid, kind);
            Ok((runtime_dir::socket_path(&dir, &file)?, uid, kind))
        })
        .collect()
}

/// Where the server puts a file link: `PATH.PID.<16 random hex digits>`;
/// memfd links are named `utp.NAME.N` (informational), System V links are
/// private segments.
pub fn link_location(address: &Address, pid: u32, n: u32) -> Location {
    match address {
        Address::Shm(name) => Location::Memfd(format!("utp.{name}.{n}")),
        Address::File(path) => {
            let mut p = path.clone().into_os_string();
            p.push(format!(".{pid}.{:016x}", random_u64()));
            Location::File(PathBuf::from(p))
        }
        _ => Location::SysV(0),
    }
}

/// 64 unpredictable bits from the kernel (`getrandom`), for names and
/// stamp keys.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let mut filled = 0;
    while filled < 8 {
        // SAFETY: the buffer pointer and length describe `b[filled..]`, a
        // live, writable slice; getrandom writes at most that many bytes.
        let n = unsafe { libc::getrandom(b[filled..].as_mut_ptr().cast(), 8 - filled, 0) };
        match n {
            n if n > 0 => filled += n as usize,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => {
                // No getrandom (very old kernel): /dev/urandom.
                if let Ok(mut f) = std::fs::File::open("/dev/urandom")
                    && f.read_exact(&mut b).is_ok()
                {
                    return u64::from_le_bytes(b);
                }
                // Last resort, still not guessable from outside cheaply.
                return std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
                    ^ ((std::process::id() as u64) << 32);
            }
        }
    }
    u64::from_le_bytes(b)
}

/// A fresh stamp key for one ring (`FEATURE_KEYED_STAMPS`): 64 random
/// bits, never zero, so a key word of zero in the control header always
/// means "no keyed stamps".
pub fn stamp_key() -> u64 {
    loop {
        let key = random_u64();
        if key != 0 {
            return key;
        }
    }
}

/// Feature bit (`LINK_HELLO` +4, `LINK_ATTACH` +34): this end sends a
/// wake-up byte over the socket when the peer's `data_event` word asks for
/// one, and may ask for them (`docs/shm-layout.md` 5.3).
pub const FEATURE_WAKE_BYTES: u32 = 1;

/// Feature bit: each end may publish a large record in pieces, with
/// progress stamps the other copies as they land (`docs/shm-layout.md`
/// 4.4); without it that stamp bit is reserved.
pub const FEATURE_PIECES: u32 = 2;

/// Feature bit: every stamp in both rings is stored XORed with its ring's
/// random key (control header +40 and +48), and consumers do not zero the
/// lines they give back (`docs/shm-layout.md` 4.1).
pub const FEATURE_KEYED_STAMPS: u32 = 4;

/// Every feature this implementation supports: what a client offers in
/// `LINK_HELLO`, and what a server keeps of the client's offer.
pub const FEATURES: u32 = FEATURE_WAKE_BYTES | FEATURE_PIECES | FEATURE_KEYED_STAMPS;

/// `LINK_HELLO` payload: what the client asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    /// Requested ring capacity, 0 for the server's choice.
    pub capacity: u64,
    /// Features the client supports ([`FEATURES`]); unknown bits
    /// are ignored, so older servers (which read this word as reserved)
    /// simply do not answer them.
    pub features: u32,
}

impl Hello {
    /// 16 bytes: u32 layout version, u32 features, u64 capacity.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&super::layout::LAYOUT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.features.to_le_bytes());
        out.extend_from_slice(&self.capacity.to_le_bytes());
        out
    }

    /// Parses and checks the layout version.
    pub fn decode(p: &[u8]) -> Result<Hello> {
        if p.len() < 16 {
            return Err(Error::protocol(
                ProtocolReason::Corrupt,
                format!("LINK_HELLO of {} bytes, expected 16", p.len()),
            ));
        }
        check_version(u32_at(p, 0))?;
        Ok(Hello {
            capacity: u64_at(p, 8),
            features: u32_at(p, 4),
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
    /// Features both ends will use: those of the client's `LINK_HELLO` the
    /// server supports too ([`FEATURES`]).
    pub features: u16,
}

impl Attach {
    /// 36 bytes + name: u32 version, u32 kind, u64 region_len, u64 capacity,
    /// i32 shmid (-1 unless System V), u32 link_id, u16 name_len, u16
    /// features, then name_len bytes of name (POSIX name or file path).
    pub fn encode(&self) -> Vec<u8> {
        let (shmid, name) = match &self.location {
            Location::Posix(n) => (-1, n.as_bytes().to_vec()),
            Location::Memfd(_) => (-1, Vec::new()),
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
        out.extend_from_slice(&self.features.to_le_bytes());
        out.extend_from_slice(&name);
        out
    }

    /// Parses and checks an attach message.
    pub fn decode(p: &[u8]) -> Result<Attach> {
        if p.len() < 36 {
            return Err(Error::protocol(
                ProtocolReason::Corrupt,
                format!("LINK_ATTACH of {} bytes, expected >= 36", p.len()),
            ));
        }
        let version = u32_at(p, 0);
        if version != super::layout::LAYOUT_VERSION {
            return Err(Error::protocol(
                ProtocolReason::Version,
                format!(
                    "the server speaks shm layout version {version}, this client speaks {}",
                    super::layout::LAYOUT_VERSION
                ),
            ));
        }
        let kind = u32_at(p, 4);
        let shmid = u32_at(p, 24) as i32;
        let name_len = u16::from_le_bytes([p[32], p[33]]) as usize;
        let name = p.get(36..36 + name_len).ok_or_else(|| {
            Error::protocol(
                ProtocolReason::Corrupt,
                "LINK_ATTACH name runs past the payload",
            )
        })?;
        let name = std::str::from_utf8(name).map_err(|_| {
            Error::protocol(ProtocolReason::Corrupt, "LINK_ATTACH name is not UTF-8")
        })?;
        let location = match kind {
            4 if name.is_empty() => Location::Memfd(String::new()),
            2 if shmid >= 0 => Location::SysV(shmid),
            3 if name.starts_with('/') => Location::File(name.into()),
            _ => {
                return Err(Error::protocol(
                    ProtocolReason::Corrupt,
                    format!(
                        "LINK_ATTACH with kind {kind}, shmid {shmid}, name {name:?} is not acceptable"
                    ),
                ));
            }
        };
        Ok(Attach {
            location,
            region_len: u64_at(p, 8),
            capacity: u64_at(p, 16),
            link_id: u32_at(p, 28),
            features: u16::from_le_bytes([p[34], p[35]]),
        })
    }
}

fn check_version(v: u32) -> Result<()> {
    if v == super::layout::LAYOUT_VERSION {
        Ok(())
    } else {
        Err(Error::protocol(
            ProtocolReason::Version,
            version_mismatch(v),
        ))
    }
}

/// The text of the ERROR a server sends for a `LINK_HELLO` of another version.
pub fn version_mismatch(v: u32) -> String {
    let ours = super::layout::LAYOUT_VERSION;
    let advice = if v < ours {
        "upgrade the client"
    } else {
        "upgrade the server"
    };
    format!("this server speaks shm layout version {ours}, the client sent version {v}: {advice}")
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

fn u64_at(p: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Sends one handshake frame, with `fd` attached (`SCM_RIGHTS`) if given,
/// on its first byte (see `crate::handshake_io`).
pub fn send_frame(
    stream: &UnixStream,
    message_type: u8,
    payload: &[u8],
    fd: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<()> {
    let fds: Vec<std::os::fd::BorrowedFd<'_>> = fd.into_iter().collect();
    crate::handshake_io::send_frame(stream, message_type, payload, &fds)
        .map_err(|e| map_io("sending a shm handshake frame", e))
}

/// Receives one handshake frame of type `expected` and the descriptors
/// that came with it, within the socket's receive timeout; an `ERROR`
/// frame from the peer becomes an error carrying its text.
pub fn recv_frame(
    stream: &UnixStream,
    expected: u8,
) -> Result<(Vec<u8>, Vec<std::os::fd::OwnedFd>)> {
    use crate::handshake_io::{ShortRead, read_frame};
    let (bytes, fds) = read_frame(stream, MAX_HANDSHAKE_PAYLOAD, |short| match short {
        ShortRead::TooManyFds => Error::protocol(
            ProtocolReason::Unexpected,
            "the server sent more descriptors than a handshake carries",
        ),
        short => map_io("waiting for a shm handshake frame", short.into_io()),
    })?;
    let payload = check_frame(&bytes, expected)?;
    Ok((payload, fds))
}

/// Decodes a complete handshake frame of type `expected` (an ERROR frame
/// becomes an error with its text) and returns its payload.
pub fn check_frame(bytes: &[u8], expected: u8) -> Result<Vec<u8>> {
    let (header, payload) = frame::decode(bytes, MAX_HANDSHAKE_PAYLOAD)?;
    if header.message_type == message_type::ERROR {
        return Err(Error::protocol(
            ProtocolReason::Refused,
            format!(
                "the shm server refused the link: {}",
                String::from_utf8_lossy(payload)
            ),
        ));
    }
    if header.message_type != expected {
        return Err(Error::protocol(
            ProtocolReason::Unexpected,
            format!(
                "expected handshake frame type 0x{expected:02x}, got 0x{:02x}",
                header.message_type
            ),
        ));
    }
    Ok(payload.to_vec())
}

fn map_io(context: &str, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            Error::peer_gone(GoneReason::Died, format!("{context}: the peer hung up"))
        }
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Error::Timeout {
            waiting_for: "the shm handshake",
            after: std::time::Duration::ZERO,
        },
        _ => Error::io(context, e),
    }
}
