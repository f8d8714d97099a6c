//! The handshake over the rendezvous socket, both ends: the server makes a
//! region per client (`handshake`), the client maps it (`connect`). Frame
//! layouts in `rendezvous.rs`, the protocol in `docs/shm-layout.md`.

use super::layout::{self, Control};
use super::link::{ShmLink, Side};
use super::reclaim::link_pid;
use super::region::{Location, Region};
use super::rendezvous::{self, Attach, Hello};
use super::wait::WaitMode;
use crate::channel::{Options, PeerInfo};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::message_type;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long a server waits for a connecting client to finish the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest ring capacity a client may request beyond the server's own: 16 MiB.
pub const MAX_CLIENT_CAPACITY: usize = 16 << 20;

static NEXT_LINK: AtomicU32 = AtomicU32::new(1);

/// Link settings taken from the URL: `?wait=spin|block|adaptive`, `?ring=SIZE`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Settings {
    pub(super) wait: WaitMode,
    pub(super) capacity: usize,
}

pub(super) fn settings(endpoint: &Endpoint) -> Result<Settings> {
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

pub(super) fn abstract_addr(name: &str) -> Result<SocketAddr> {
    SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| Error::io(format!("abstract socket name @{name}"), e))
}

fn peer_creds(stream: &UnixStream, endpoint: &str) -> PeerInfo {
    let cred = rustix::net::sockopt::socket_peercred(stream).ok();
    PeerInfo {
        pid: cred.map(|c| c.pid.as_raw_nonzero().get() as u32),
        uid: cred.map(|c| c.uid.as_raw()),
        gid: cred.map(|c| c.gid.as_raw()),
        address: Some(endpoint.to_string()),
    }
}

/// What a handshake needs to know.
#[derive(Debug)]
pub(super) struct Config {
    pub(super) endpoint: Endpoint,
    pub(super) settings: Settings,
    pub(super) max_payload: usize,
}

pub(super) fn handshake(config: &Config, mut stream: UnixStream) -> Result<ShmLink> {
    let url = config.endpoint.address.to_string();
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT)))
        .map_err(|e| Error::io("configure handshake socket", e))?;
    let peer = peer_creds(&stream, &url);
    let hello = Hello::decode(&rendezvous::recv_frame(
        &mut stream,
        message_type::LINK_HELLO,
    )?)?;
    // A client may ask for other rings, up to the larger of the
    // server's own size and MAX_CLIENT_CAPACITY.
    let capacity = match hello.capacity as usize {
        c if layout::valid_capacity(c)
            && c <= config.settings.capacity.max(MAX_CLIENT_CAPACITY) =>
        {
            c
        }
        _ => config.settings.capacity,
    };
    let len = layout::region_len(capacity).ok_or(Error::Full)?;
    let id = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
    let location = rendezvous::link_location(&config.endpoint.address, std::process::id(), id);
    let region = match Region::create(location, len) {
        Ok(r) => r,
        Err(e) => {
            let _ =
                rendezvous::send_frame(&mut stream, message_type::ERROR, e.to_string().as_bytes());
            return Err(e);
        }
    };
    let base = NonNull::new(region.as_ptr()).ok_or(Error::Closed)?;
    // SAFETY: the region maps `len` = DATA_OFFSET + 2*capacity bytes,
    // page aligned; `control` is dropped at the end of this block,
    // before the region moves into the link.
    unsafe { Control::new(base) }.init(len, capacity, id);
    let attach = Attach {
        location: region.location().clone(),
        region_len: len as u64,
        capacity: capacity as u64,
        link_id: id,
    };
    let notice = stream
        .try_clone()
        .map_err(|e| Error::io("dup link socket", e))?;
    let link = ShmLink::new(
        region,
        Side::Server,
        Some(notice),
        config.settings.wait,
        config.max_payload,
        peer,
        url,
    )?;
    rendezvous::send_frame(&mut stream, message_type::LINK_ATTACH, &attach.encode())?;
    rendezvous::recv_frame(&mut stream, message_type::LINK_READY)?;
    Ok(link)
}

/// Connects to the listener at `endpoint` and maps the link it creates.
pub fn connect(endpoint: &Endpoint, options: &Options) -> Result<ShmLink> {
    let settings = settings(endpoint)?;
    let url = endpoint.address.to_string();
    let name = rendezvous::socket_name(&endpoint.address)?;
    let mut stream =
        UnixStream::connect_addr(&abstract_addr(&name)?).map_err(|e| Error::NotFound {
            endpoint: url.clone(),
            reason: format!("no server listens on abstract socket @{name} ({e})"),
        })?;
    stream
        .set_read_timeout(Some(options.connect_timeout.max(Duration::from_millis(1))))
        .and_then(|()| {
            stream.set_write_timeout(Some(options.connect_timeout.max(Duration::from_millis(1))))
        })
        .map_err(|e| Error::io("configure handshake socket", e))?;
    let peer = peer_creds(&stream, &url);
    let requested = if endpoint.param("ring").is_some() {
        settings.capacity as u64
    } else {
        0
    };
    rendezvous::send_frame(
        &mut stream,
        message_type::LINK_HELLO,
        &Hello {
            capacity: requested,
        }
        .encode(),
    )?;
    let attach = Attach::decode(&rendezvous::recv_frame(
        &mut stream,
        message_type::LINK_ATTACH,
    )?)?;
    let expected_kind = match endpoint.address {
        Address::Shm(_) => 1,
        Address::SysV(_) => 2,
        _ => 3,
    };
    if attach.location.kind() != expected_kind {
        return Err(Error::Protocol(format!(
            "{url}: server offered a region of kind {}",
            attach.location.kind()
        )));
    }
    // Only map what is named after this endpoint: a confused or hostile
    // server must not make us open (and write into) some other object.
    // Exactly `/utp.NAME.<pid>.<n>` or `PATH.<pid>.<n>`: a prefix test alone
    // would also accept the links of `shm://NAME.5` for `shm://NAME`.
    let named_ok = match (&attach.location, &endpoint.address) {
        (Location::Posix(n), Address::Shm(name)) => n
            .strip_prefix('/')
            .is_some_and(|n| link_pid(n, &format!("utp.{name}")).is_some()),
        (Location::File(p), Address::File(path)) => p
            .to_str()
            .zip(path.to_str())
            .is_some_and(|(p, path)| link_pid(p, path).is_some()),
        (Location::SysV(_), Address::SysV(_)) => true,
        _ => false,
    };
    if !named_ok {
        return Err(Error::Denied(format!(
            "{url}: server offered region {} which is not named after the endpoint",
            attach.location
        )));
    }
    let len = usize::try_from(attach.region_len).unwrap_or(0);
    let region = Region::open(attach.location.clone(), len)?;
    let notice = stream
        .try_clone()
        .map_err(|e| Error::io("dup link socket", e))?;
    let link = ShmLink::new(
        region,
        Side::Client,
        Some(notice),
        settings.wait,
        options.max_payload,
        peer,
        url,
    )?;
    if link.region().location() != &attach.location {
        return Err(Error::Protocol(
            "region location changed while opening".into(),
        ));
    }
    rendezvous::send_frame(&mut stream, message_type::LINK_READY, &[])?;
    Ok(link)
}
