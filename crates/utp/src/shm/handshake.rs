//! The client's half of the handshake (`connect`) and the settings both
//! ends take from the URL. The server's half is in `accept.rs`; frame
//! layouts in `rendezvous.rs`; the protocol in `docs/shm-layout.md` section 2.

use super::layout;
use super::link::{ShmLink, Side};
use super::reclaim::link_pid;
use super::region::{Location, Region};
use super::rendezvous::{self, Attach, Hello};
use super::wait::WaitMode;
use crate::channel::{Options, PeerInfo};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::message_type;
use crate::identity::PeerPolicy;
use crate::{DeniedReason, ProtocolReason};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// How long a server gives a connecting client to finish the whole handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest ring capacity a client may request beyond the server's own: 16 MiB.
pub const MAX_CLIENT_CAPACITY: usize = 16 << 20;

/// Link settings taken from the URL: `?wait=spin|block|adaptive`, `?ring=SIZE`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Settings {
    pub(super) wait: WaitMode,
    pub(super) capacity: usize,
}

pub(super) fn settings(endpoint: &Endpoint) -> Result<Settings> {
    crate::transport::url_options::check(endpoint)?;
    let bad = |reason: String| Error::BadUrl {
        url: endpoint.to_string(),
        reason,
    };
    let wait = match endpoint.param("wait") {
        None => WaitMode::default(),
        Some(raw) => WaitMode::parse(raw)
            .ok_or_else(|| bad(format!("wait={raw:?}: expected spin, block or adaptive")))?,
    };
    let capacity = match endpoint.param_number("ring")? {
        None => layout::DEFAULT_CAPACITY,
        Some(n) if layout::valid_capacity(n as usize) => n as usize,
        Some(n) => {
            return Err(bad(format!(
                "ring={n}: expected a power of two from 4k to 1G"
            )));
        }
    };
    Ok(Settings { wait, capacity })
}

/// The peer's credentials from `SO_PEERCRED` (fixed by the kernel at
/// connect/listen time; the peer cannot forge them).
pub(super) fn peer_creds(stream: &UnixStream, endpoint: &str) -> PeerInfo {
    let cred = rustix::net::sockopt::socket_peercred(stream).ok();
    PeerInfo {
        pid: cred.map(|c| c.pid.as_raw_nonzero().get() as u32),
        uid: cred.map(|c| c.uid.as_raw()),
        gid: cred.map(|c| c.gid.as_raw()),
        address: Some(endpoint.to_string()),
    }
}

/// Connects to the first listening socket among the candidate paths
/// (`docs/shm-layout.md` 2.2), skipping directories that fail the checks.
fn connect_socket(
    address: &Address,
    policy: &PeerPolicy,
    url: &str,
    timeout: Duration,
) -> Result<UnixStream> {
    let mut tried = Vec::new();
    for (path, uid, kind) in rendezvous::connect_paths(address, policy.allowed_uids())? {
        let dir = path.parent().unwrap_or(&path);
        if let Err(e) = crate::runtime_dir::check(dir, uid, kind) {
            if dir.exists() || std::fs::symlink_metadata(dir).is_ok() {
                // A directory that exists but is not what it must be: say so.
                tried.push(format!("{} ({e})", path.display()));
            }
            continue;
        }
        match crate::transport::unix::connect_path(&path, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(Error::Timeout {
                    waiting_for: "the shared-memory listener to accept (its accept queue stayed full)",
                    after: timeout,
                });
            }
            Err(e) => tried.push(format!("{} ({e})", path.display())),
        }
    }
    Err(Error::NotFound {
        endpoint: url.to_string(),
        reason: if tried.is_empty() {
            "no server socket exists for it".into()
        } else {
            format!("tried {}", tried.join(", "))
        },
    })
}

/// Connects to the listener at `endpoint` and maps the link it creates.
pub fn connect(endpoint: &Endpoint, options: &Options) -> Result<ShmLink> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options =
        &crate::transport::transport_options(endpoint, options, &["shm", "sysv", "file"])?;
    let settings = settings(endpoint)?;
    let policy = PeerPolicy::from_endpoint(endpoint)?;
    let url = endpoint.address.to_string();
    let timeout = options.connect_timeout.max(Duration::from_millis(1));
    let stream = connect_socket(&endpoint.address, &policy, &url, timeout)?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| Error::io("configure handshake socket", e))?;
    // Who is the server? Checked before we say anything.
    let peer = peer_creds(&stream, &url);
    match (peer.uid, peer.gid) {
        (Some(uid), Some(gid)) => policy.check_server(&url, "the rendezvous socket", uid, gid)?,
        _ => {
            return Err(Error::denied(
                DeniedReason::Untrusted,
                format!("{url}: the kernel did not tell who the server is (SO_PEERCRED)"),
            ));
        }
    }
    let requested = if endpoint.param("ring").is_some() {
        settings.capacity as u64
    } else {
        0
    };
    let sent = rendezvous::send_frame(
        &stream,
        message_type::LINK_HELLO,
        &Hello {
            capacity: requested,
            features: rendezvous::FEATURES,
        }
        .encode(),
        None,
    );
    let received = rendezvous::recv_frame(&stream, message_type::LINK_ATTACH);
    // A server that refuses us says why and closes, possibly before our
    // HELLO arrived (then sending failed): its ERROR is the better answer.
    let (payload, mut fds) = match (sent, received) {
        (_, Err(e @ Error::Protocol { .. })) => return Err(e),
        (Err(e), _) => return Err(e),
        (Ok(()), r) => r?,
    };
    let attach = Attach::decode(&payload)?;
    let expected_kind = match endpoint.address {
        Address::Shm(_) => 4,
        Address::SysV(_) => 2,
        _ => 3,
    };
    if attach.location.kind() != expected_kind {
        return Err(Error::protocol(
            ProtocolReason::Unexpected,
            format!(
                "{url}: server offered a region of kind {}, expected {expected_kind}",
                attach.location.kind()
            ),
        ));
    }
    let wanted_fds = usize::from(expected_kind == 4);
    if fds.len() != wanted_fds {
        return Err(Error::protocol(
            ProtocolReason::Unexpected,
            format!(
                "{url}: server passed {} descriptors with LINK_ATTACH, expected {wanted_fds}",
                fds.len()
            ),
        ));
    }
    // Only map what is named after this endpoint: a confused or hostile
    // server must not make us open (and write into) some other file.
    if let (Location::File(p), Address::File(path)) = (&attach.location, &endpoint.address)
        && p.to_str()
            .zip(path.to_str())
            .is_none_or(|(p, path)| link_pid(p, path).is_none())
    {
        return Err(Error::denied(
            DeniedReason::Unsafe,
            format!(
                "{url}: server offered region {} which is not named after the endpoint",
                attach.location
            ),
        ));
    }
    let len = usize::try_from(attach.region_len).unwrap_or(0);
    let region = match fds.pop() {
        Some(fd) => Region::from_memfd(fd, len, &policy, &url)?,
        None => Region::open_trusting(attach.location.clone(), len, &policy, &url)?,
    };
    let notice = stream
        .try_clone()
        .map_err(|e| Error::io("dup link socket", e))?;
    let mut link = ShmLink::new(
        region,
        Side::Client,
        Some(notice),
        settings.wait,
        options.max_payload,
        peer,
        url,
    )?;
    link.enable_features(u32::from(attach.features));
    if link.capacity() as u64 != attach.capacity {
        return Err(Error::protocol(
            ProtocolReason::Corrupt,
            format!(
                "LINK_ATTACH announced rings of {} bytes, the region holds {}",
                attach.capacity,
                link.capacity()
            ),
        ));
    }
    rendezvous::send_frame(&stream, message_type::LINK_READY, &[], None)?;
    Ok(link)
}
