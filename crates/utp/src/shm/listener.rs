//! `listen` and `connect` for shared-memory links: the rendezvous socket,
//! the handshake, and reclaiming what dead servers left behind.

use super::layout::{self, Control};
use super::link::{ShmLink, Side};
use super::region::{Location, Region};
use super::rendezvous::{self, Attach, Hello};
use super::wait::WaitMode;
use crate::channel::{Channel, Listener, Options, PeerInfo};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::message_type;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long a server waits for a connecting client to finish the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest ring capacity a client may request beyond the server's own: 16 MiB.
pub const MAX_CLIENT_CAPACITY: usize = 16 << 20;

static NEXT_LINK: AtomicU32 = AtomicU32::new(1);

/// Link settings taken from the URL: `?wait=spin|block|adaptive`, `?ring=SIZE`.
#[derive(Clone, Copy, Debug)]
struct Settings {
    wait: WaitMode,
    capacity: usize,
}

fn settings(endpoint: &Endpoint) -> Result<Settings> {
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

fn abstract_addr(name: &str) -> Result<SocketAddr> {
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

/// Accepts shared-memory links at `shm://NAME`, `sysv://KEY` or `file:///PATH`.
///
/// A background thread accepts connections on the rendezvous socket and
/// runs each handshake in its own short-lived thread, so a slow or silent
/// client never delays the others; finished links queue up (at most
/// [`BACKLOG`]) until [`accept`](Listener::accept) takes them.
#[derive(Debug)]
pub struct ShmListener {
    endpoint: Endpoint,
    incoming: Receiver<ShmLink>,
    acceptor: Option<Acceptor>,
}

#[derive(Debug)]
struct Acceptor {
    socket: Arc<UnixListener>,
    closing: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// What a handshake needs to know.
#[derive(Debug)]
struct Config {
    endpoint: Endpoint,
    settings: Settings,
    max_payload: usize,
}

/// Links that finished their handshake and wait for `accept`.
pub const BACKLOG: usize = 128;

/// Binds the rendezvous socket for `endpoint` and reclaims stale links.
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<ShmListener> {
    let settings = settings(endpoint)?;
    let name = rendezvous::socket_name(&endpoint.address)?;
    let socket = UnixListener::bind_addr(&abstract_addr(&name)?).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            Error::InUse {
                endpoint: endpoint.address.to_string(),
                hint: Some(format!(
                    "abstract socket @{name} is bound by a live process"
                )),
            }
        } else {
            Error::io(format!("bind abstract socket @{name}"), e)
        }
    })?;
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("set listener non-blocking", e))?;
    super::reclaim::reclaim_stale(&endpoint.address);
    let config = Arc::new(Config {
        endpoint: endpoint.clone(),
        settings,
        max_payload: options.max_payload,
    });
    let socket = Arc::new(socket);
    let closing = Arc::new(AtomicBool::new(false));
    let (tx, incoming) = crossbeam_channel::bounded(BACKLOG);
    let thread = std::thread::Builder::new()
        .name(format!("utp-shm-accept {}", endpoint.address))
        .spawn({
            let (socket, closing) = (socket.clone(), closing.clone());
            move || accept_loop(&socket, &closing, &config, &tx)
        })
        .map_err(|e| Error::io("spawn the shm acceptor thread", e))?;
    Ok(ShmListener {
        endpoint: endpoint.clone(),
        incoming,
        acceptor: Some(Acceptor {
            socket,
            closing,
            thread,
        }),
    })
}

/// How often the acceptor looks at the closing flag while idle.
const ACCEPT_SLICE: Duration = Duration::from_millis(20);

fn accept_loop(
    socket: &UnixListener,
    closing: &AtomicBool,
    config: &Arc<Config>,
    tx: &Sender<ShmLink>,
) {
    while !closing.load(Ordering::Acquire) {
        match socket.accept() {
            Ok((stream, _)) => {
                let (config, tx) = (config.clone(), tx.clone());
                let _ = std::thread::Builder::new()
                    .name("utp-shm-handshake".into())
                    .spawn(move || {
                        // A client that fails its handshake is dropped (its
                        // region removed); the listener keeps serving.
                        if let Ok(link) = handshake(&config, stream) {
                            let _ = tx.send_timeout(link, HANDSHAKE_TIMEOUT);
                        }
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let _ = wait_readable(socket.as_fd(), Some(ACCEPT_SLICE));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EMFILE and the like: back off instead of spinning.
            Err(_) => std::thread::sleep(ACCEPT_SLICE),
        }
    }
}

fn handshake(config: &Config, mut stream: UnixStream) -> Result<ShmLink> {
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

impl Listener for ShmListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        if self.acceptor.is_none() {
            return Err(Error::Closed);
        }
        let link = match timeout {
            None => self.incoming.recv().map_err(|_| Error::Closed)?,
            Some(t) => self.incoming.recv_timeout(t).map_err(|e| match e {
                RecvTimeoutError::Timeout => Error::Timeout {
                    waiting_for: "a client to connect",
                    after: t,
                },
                RecvTimeoutError::Disconnected => Error::Closed,
            })?,
        };
        Ok(Box::new(link))
    }

    fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    fn close(&mut self) -> Result<()> {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.closing.store(true, Ordering::Release);
            // Wakes the acceptor's poll at once; it would notice within
            // ACCEPT_SLICE anyway. Joining it closes the socket, so the name
            // is free again when close returns.
            let _ = rustix::net::shutdown(&*acceptor.socket, rustix::net::Shutdown::Both);
            let _ = acceptor.thread.join();
        }
        // Links that finished their handshake but were never accepted.
        while self.incoming.try_recv().is_ok() {}
        Ok(())
    }
}

impl Drop for ShmListener {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, timeout: Option<Duration>) -> Result<()> {
    use rustix::event::{PollFd, PollFlags, poll};
    let ts = timeout.map(|t| rustix::time::Timespec {
        tv_sec: t.as_secs() as i64,
        tv_nsec: t.subsec_nanos() as i64,
    });
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    match poll(&mut fds, ts.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(Error::io("poll the shm rendezvous socket", e)),
    }
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
    let named_ok = match (&attach.location, &endpoint.address) {
        (Location::Posix(n), Address::Shm(name)) => n.starts_with(&format!("/utp.{name}.")),
        (Location::File(p), Address::File(path)) => {
            let prefix = format!("{}.", path.display());
            p.to_str()
                .is_some_and(|p| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
        }
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
