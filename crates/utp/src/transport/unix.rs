//! `unix:///PATH` and `unix://@NAME`: Unix domain stream sockets.
//!
//! - Socket files are created mode 0600 with no window: the listener
//!   `fchmod`s the socket *before* `bind`, and Linux creates the file with
//!   the socket's mode (minus the umask). No path is ever `chmod`ed, so
//!   nothing can be swapped for a symlink in between.
//! - A socket file left by a crashed server is detected (connecting to it is
//!   refused twice, 100 ms apart, so a server between its `bind` and its
//!   `listen` is not mistaken for a dead one) and replaced; a live server's
//!   socket is never stolen. The path
//!   is examined with `lstat`: a symlink (or anything but a socket) at the
//!   socket path is refused with an error, never followed or removed.
//! - `connect` gives up at the connect timeout when the server has stopped
//!   accepting (a full accept queue would hold a blocking `connect` for
//!   ever): the socket has a send timeout (`SO_SNDTIMEO`) while it connects.
//! - The listener removes its socket file when closed or dropped, only if
//!   the path still holds the very socket it bound.
//! - Peer credentials (`SO_PEERCRED`) are in [`PeerInfo`] and checked on both
//!   ends against a [`PeerPolicy`]: by default a server accepts only clients of
//!   its own uid (and root), and a client talks only to a server of its own uid
//!   (or root); `?allow_uid=0,1000` and `?allow_gid=` widen that. A listener
//!   with a widened policy makes its socket file 0666 after binding (through
//!   an `O_PATH` descriptor of the socket it bound), so the users it admits
//!   can connect; everyone else is refused at `accept`.
//! - File descriptors travel with frames via
//!   [`StreamChannel::send_with_fds`] / [`StreamChannel::take_fds`].

use super::stream::{Framing, StreamChannel, StreamIo};
use super::wait::{Ready, wait_ready};
use crate::DeniedReason;
use crate::channel::{Channel, Deadline, Listener, Options, PeerInfo};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::identity::PeerPolicy;
use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, SocketAddrUnix, SocketFlags, SocketType, accept_with, bind,
    connect as sys_connect, listen as sys_listen, socket_with, sockopt,
};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Pending connections the kernel queues for `accept`.
const BACKLOG: i32 = 1024;

/// Where a Unix socket lives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[doc(hidden)]
pub enum UnixAddr {
    /// A socket file.
    Path(PathBuf),
    /// A name in Linux's abstract namespace (no file; vanishes with its owner).
    Abstract(String),
}

impl UnixAddr {
    /// The Unix address of an endpoint, if it is a `unix://` one.
    pub fn of(endpoint: &Endpoint) -> Option<UnixAddr> {
        match &endpoint.address {
            Address::Unix(path) => Some(UnixAddr::Path(path.clone())),
            Address::UnixAbstract(name) => Some(UnixAddr::Abstract(name.clone())),
            _ => None,
        }
    }

    fn sockaddr(&self) -> Result<SocketAddrUnix> {
        match self {
            UnixAddr::Path(path) => SocketAddrUnix::new(path.as_path()),
            UnixAddr::Abstract(name) => SocketAddrUnix::new_abstract_name(name.as_bytes()),
        }
        .map_err(|e| Error::BadUrl {
            url: self.to_string(),
            reason: format!(
                "not usable as a socket address ({e}); socket paths are limited to 107 bytes"
            ),
        })
    }
}

impl std::fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnixAddr::Path(p) => write!(f, "unix://{}", p.display()),
            UnixAddr::Abstract(n) => write!(f, "unix://@{n}"),
        }
    }
}

fn new_socket() -> Result<OwnedFd> {
    socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::io("create a Unix socket", e))
}

/// Connects a Unix stream socket to `addr` within `timeout`.
///
/// A server that has stopped accepting has a full accept queue, and a
/// blocking `connect` to it waits in the kernel until there is room: for
/// ever, unless the socket has a send timeout (`SO_SNDTIMEO`, which a Unix
/// `connect` honours). It is set for the connect and cleared afterwards,
/// so the connected socket blocks as usual. Fails with `EAGAIN` when the
/// queue stayed full for `timeout`.
pub(crate) fn connect_unix(
    addr: &SocketAddrUnix,
    timeout: Duration,
) -> rustix::io::Result<OwnedFd> {
    let fd = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    // A zero duration means "no timeout" to the kernel: use the smallest real one.
    let limit = timeout.max(Duration::from_millis(1));
    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, Some(limit))?;
    let deadline = Deadline::after(Some(limit));
    loop {
        match sys_connect(&fd, addr) {
            Ok(()) => break,
            // A signal: try again with what is left of the time.
            Err(Errno::INTR) => {
                let left = deadline.remaining().unwrap_or_default();
                if left.is_zero() {
                    return Err(Errno::AGAIN);
                }
                sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, Some(left))?;
            }
            Err(e) => return Err(e),
        }
    }
    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, None)?;
    Ok(fd)
}

/// [`connect_unix`] to a socket file, as a `std` stream; a full accept
/// queue for `timeout` is `ErrorKind::TimedOut`.
pub(crate) fn connect_path(
    path: &Path,
    timeout: Duration,
) -> std::io::Result<std::os::unix::net::UnixStream> {
    let addr = SocketAddrUnix::new(path)?;
    match connect_unix(&addr, timeout) {
        Ok(fd) => Ok(fd.into()),
        Err(Errno::AGAIN) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the server did not accept within {timeout:?} (its accept queue stayed full)"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Connects a stream socket to `addr`, failing fast if nobody listens and
/// with [`Error::Timeout`] if the server does not accept within `timeout`.
#[doc(hidden)]
pub fn connect_socket(addr: &UnixAddr, timeout: Duration) -> Result<OwnedFd> {
    let sockaddr = addr.sockaddr()?;
    connect_unix(&sockaddr, timeout).map_err(|e| match e {
        Errno::NOENT => Error::NotFound {
            endpoint: addr.to_string(),
            reason: "the socket does not exist (is the server running?)".into(),
        },
        Errno::CONNREFUSED => Error::NotFound {
            endpoint: addr.to_string(),
            reason: "connection refused: nothing is listening (the server may have exited)".into(),
        },
        Errno::AGAIN => Error::Timeout {
            waiting_for: "the Unix socket server to accept (its accept queue stayed full)",
            after: timeout,
        },
        e => Error::io(format!("connect to {addr}"), e),
    })
}

/// Connects to a `unix://` endpoint.
pub fn connect(endpoint: &Endpoint, options: &Options) -> Result<StreamChannel> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["unix"])?;
    let addr = UnixAddr::of(endpoint).expect("unix::connect called with a unix:// endpoint");
    let policy = PeerPolicy::from_endpoint(endpoint)?;
    let fd = connect_socket(&addr, options.connect_timeout)?;
    let peer = peer_info(&fd, &addr);
    match (peer.uid, peer.gid) {
        (Some(uid), Some(gid)) => policy.check_server(&addr.to_string(), "the socket", uid, gid)?,
        _ => {
            return Err(Error::denied(
                DeniedReason::Untrusted,
                format!("{addr}: the kernel did not say who the server is (SO_PEERCRED failed)"),
            ));
        }
    }
    let framing = match endpoint.param("framing") {
        Some("length") => Framing::LengthPrefixed {
            incoming_type: crate::frame::message_type::RESPONSE,
        },
        _ => Framing::Utp,
    };
    Ok(StreamChannel::new(
        StreamIo::Socket {
            fd,
            passes_fds: true,
        },
        framing,
        options.max_payload,
        addr.to_string(),
        peer,
    )
    .with_deadlines(options))
}

fn peer_info(fd: &OwnedFd, addr: &UnixAddr) -> PeerInfo {
    let cred = sockopt::socket_peercred(fd).ok();
    PeerInfo {
        pid: cred.map(|c| c.pid.as_raw_nonzero().get() as u32),
        uid: cred.map(|c| c.uid.as_raw()),
        gid: cred.map(|c| c.gid.as_raw()),
        address: Some(addr.to_string()),
    }
}

/// Listens on a Unix socket and hands out [`StreamChannel`]s.
#[derive(Debug)]
pub struct UnixListener {
    fd: Option<OwnedFd>,
    addr: UnixAddr,
    options: Options,
    /// Device and inode of the socket file this listener created.
    bound: Option<(u64, u64)>,
    policy: PeerPolicy,
}

impl UnixListener {
    /// Binds `addr`, replacing a stale socket file but never a live one.
    #[doc(hidden)]
    pub fn bind(addr: UnixAddr, options: &Options) -> Result<Self> {
        let sockaddr = addr.sockaddr()?;
        if let UnixAddr::Path(path) = &addr {
            remove_if_stale(path, &addr)?;
        }
        let fd = new_socket()?;
        if matches!(addr, UnixAddr::Path(_)) {
            // Linux's AF_UNIX bind creates the file with the socket inode's
            // mode minus the umask: private from its first instant.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))
                .map_err(|e| Error::io(format!("make the socket for {addr} private (0600)"), e))?;
        }
        match bind(&fd, &sockaddr) {
            Ok(()) => {}
            Err(Errno::ADDRINUSE) => {
                let name = match &addr {
                    UnixAddr::Path(path) => path.display().to_string(),
                    UnixAddr::Abstract(name) => format!("@{name}"),
                };
                let holders = crate::procnet::unix_listener_holders(&name);
                return Err(Error::InUse {
                    endpoint: addr.to_string(),
                    hint: crate::procnet::describe_holders(&holders)
                        .map(|who| format!("held by {who}")),
                });
            }
            Err(e) => return Err(Error::io(format!("bind {addr}"), e)),
        }
        // What we bound, so that close removes this file and nothing else.
        let bound = match &addr {
            UnixAddr::Path(path) => match socket_file_id(path) {
                Some(id) => Some(id),
                None => {
                    return Err(Error::InUse {
                        endpoint: addr.to_string(),
                        hint: Some("the socket file was replaced right after bind".into()),
                    });
                }
            },
            UnixAddr::Abstract(_) => None,
        };
        sys_listen(&fd, BACKLOG).map_err(|e| Error::io(format!("listen on {addr}"), e))?;
        // Until `listen`, connects to the file are refused, so another
        // server starting on the same path may have judged it stale and
        // replaced it: then fail here rather than listen where nobody can
        // reach. (Its grace before judging makes this rare.)
        if let UnixAddr::Path(path) = &addr
            && socket_file_id(path) != bound
        {
            return Err(Error::InUse {
                endpoint: addr.to_string(),
                hint: Some(
                    "another server replaced the socket file while this one was starting".into(),
                ),
            });
        }
        Ok(UnixListener {
            fd: Some(fd),
            bound,
            addr,
            options: options.clone(),
            policy: PeerPolicy::same_user(),
        })
    }

    /// Which clients to accept; others are refused at accept. The default is
    /// [`PeerPolicy::same_user`].
    pub fn set_policy(&mut self, policy: PeerPolicy) {
        self.policy = policy;
    }

    /// Accepts the next connection as a raw socket, with its credentials.
    #[doc(hidden)]
    pub fn accept_socket(&mut self, timeout: Option<Duration>) -> Result<(OwnedFd, PeerInfo)> {
        let fd = self.fd.as_ref().ok_or(Error::Closed)?;
        let deadline = Deadline::after(timeout);
        loop {
            if deadline.remaining().is_some() {
                wait_ready(
                    fd.as_fd(),
                    Ready::Read,
                    deadline,
                    "a client to connect",
                    timeout,
                )?;
            }
            let conn = match accept_with(fd, SocketFlags::CLOEXEC) {
                Ok(conn) => conn,
                Err(Errno::INTR | Errno::AGAIN | Errno::CONNABORTED) => continue,
                Err(e) => return Err(Error::io(format!("accept on {}", self.addr), e)),
            };
            let peer = peer_info(&conn, &self.addr);
            let (Some(uid), Some(gid)) = (peer.uid, peer.gid) else {
                return Err(Error::denied(
                    DeniedReason::Untrusted,
                    format!(
                        "refused a client on {}: the kernel did not say who it is (SO_PEERCRED failed)",
                        self.addr
                    ),
                ));
            };
            if let Err(refused) =
                self.policy
                    .check_client(&self.addr.to_string(), uid, gid, peer.pid)
            {
                tell_refused(&conn, &refused);
                return Err(refused);
            }
            return Ok((conn, peer));
        }
    }
}

impl Listener for UnixListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        let (fd, peer) = self.accept_socket(timeout)?;
        Ok(Box::new(
            StreamChannel::new(
                StreamIo::Socket {
                    fd,
                    passes_fds: true,
                },
                Framing::Detect,
                self.options.max_payload,
                self.addr.to_string(),
                peer,
            )
            .with_deadlines(&self.options),
        ))
    }

    /// The listening socket: readable when a client waits to be accepted.
    fn readiness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    fn close(&mut self) -> Result<()> {
        if self.fd.take().is_some() {
            if let UnixAddr::Path(path) = &self.addr {
                // Only our own socket: someone may have replaced the path.
                if self.bound.is_some() && socket_file_id(path) == self.bound {
                    match std::fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io(format!("remove {}", path.display()), e)),
                    }
                }
            }
        }
        Ok(())
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Tells a refused client why, in one ERROR frame (best effort, never
/// blocking), before its connection is closed: a utp client reads it even
/// when its own first send fails because the server hung up.
fn tell_refused(conn: &OwnedFd, refused: &Error) {
    let text = match refused {
        Error::Denied { detail: text, .. } => text.clone(),
        other => other.to_string(),
    };
    let header = crate::frame::Header::new(
        crate::frame::message_type::ERROR,
        crate::frame::flags::CHECKSUM,
        0,
        crate::frame::now_micros(),
    );
    let bytes = crate::frame::encode_to_vec(&header, text.as_bytes());
    let _ = rustix::net::send(
        conn,
        &bytes,
        rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
    );
}

/// Device and inode of the socket file at `path` (not following a symlink),
/// or `None` if there is no socket there.
fn socket_file_id(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type()
        .is_socket()
        .then(|| (meta.dev(), meta.ino()))
}

/// Removes `path` if it is a socket nobody listens on; refuses if it is live,
/// a symlink, or not a socket at all. Never follows a symlink.
fn remove_if_stale(path: &Path, addr: &UnixAddr) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("inspect {}", path.display()), e)),
    };
    if meta.file_type().is_symlink() {
        return Err(Error::denied(
            DeniedReason::Unsafe,
            format!(
                "{addr}: {} is a symbolic link; utp neither follows nor removes a symlink at a \
             socket path (remove it yourself if it is yours)",
                path.display()
            ),
        ));
    }
    if !meta.file_type().is_socket() {
        return Err(Error::InUse {
            endpoint: addr.to_string(),
            hint: Some("a file that is not a socket is in the way; remove it yourself".into()),
        });
    }
    let probe = crate::runtime_dir::connect_with_grace(
        || connect_socket(addr, crate::runtime_dir::PROBE_TIMEOUT),
        |e| matches!(e, Error::NotFound { .. }),
    );
    match probe {
        Err(Error::Timeout { .. }) => Err(Error::InUse {
            endpoint: addr.to_string(),
            hint: Some(
                "a live server is there, not accepting connections (its accept queue is full)"
                    .into(),
            ),
        }),
        Ok(fd) => {
            // The kernel tells a Unix socket's peer: the live server's pid.
            let holder = rustix::net::sockopt::socket_peercred(&fd)
                .map(|cred| vec![cred.pid.as_raw_nonzero().get() as u32])
                .unwrap_or_default();
            Err(Error::InUse {
                endpoint: addr.to_string(),
                hint: Some(crate::procnet::in_use_hint(
                    "a live server accepts connections there",
                    &holder,
                )),
            })
        }
        Err(Error::NotFound { .. }) => {
            // Still the same dead socket (not swapped for a symlink meanwhile)?
            if socket_file_id(path) != Some((meta.dev(), meta.ino())) {
                return Err(Error::InUse {
                    endpoint: addr.to_string(),
                    hint: Some(format!(
                        "{} changed while utp checked whether it was stale; try again",
                        path.display()
                    )),
                });
            }
            log::info!("replacing stale socket {}", path.display());
            std::fs::remove_file(path)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| Error::io(format!("remove stale socket {}", path.display()), e))
        }
        Err(other) => Err(other),
    }
}

/// Listens on a `unix://` endpoint; clients are checked against the URL's
/// [`PeerPolicy`] (`?allow_uid=U1,U2`, `?allow_gid=G1`).
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<UnixListener> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["unix"])?;
    let addr = UnixAddr::of(endpoint).expect("unix::listen called with a unix:// endpoint");
    let policy = PeerPolicy::from_endpoint(endpoint)?;
    let mut listener = UnixListener::bind(addr, options)?;
    if policy.is_widened() {
        listener.open_file_to_other_users()?;
    }
    listener.set_policy(policy);
    Ok(listener)
}

impl UnixListener {
    /// Makes the socket file connectable by every user (0666), for a
    /// listener whose policy admits other users: who is served is still
    /// decided at `accept`. The file is reached through an `O_PATH |
    /// O_NOFOLLOW` descriptor checked to be the socket this listener bound,
    /// never by a path `chmod` that a swapped-in symlink could redirect.
    fn open_file_to_other_users(&self) -> Result<()> {
        let (UnixAddr::Path(path), Some(bound)) = (&self.addr, self.bound) else {
            return Ok(());
        };
        let fd = rustix::fs::open(
            path,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let stat = rustix::fs::fstat(&fd)
            .map_err(|e| Error::io(format!("fstat {}", path.display()), e))?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket
            || (stat.st_dev, stat.st_ino) != bound
        {
            return Err(Error::denied(
                DeniedReason::Unsafe,
                format!(
                    "{}: {} is no longer the socket this listener bound",
                    self.addr,
                    path.display()
                ),
            ));
        }
        // chmod through the descriptor's /proc link: it names this inode.
        let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        rustix::fs::chmod(link.as_str(), Mode::from_raw_mode(0o666)).map_err(|e| {
            Error::io(
                format!("let other users connect to {} (0666)", path.display()),
                e,
            )
        })
    }
}
