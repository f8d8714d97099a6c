//! `tcp://HOST:PORT`: TCP, the way utp leaves one machine.
//!
//! - Every connection sets `TCP_NODELAY` (request/response traffic must not
//!   wait for Nagle) and `SO_KEEPALIVE` (a peer that vanished without a FIN is
//!   eventually noticed even on an idle connection).
//! - Listeners set `SO_REUSEADDR`, so a restarted server can bind its port
//!   while old connections sit in `TIME_WAIT`.
//! - A connection between two sockets of this machine sends with Reno, not
//!   a pacing default such as BBR; `?congestion=system` keeps the system's
//!   algorithm, `?congestion=NAME` asks for one (docs/transports.md says
//!   why and when the kernel refuses).
//! - `connect` gives up after [`Options::connect_timeout`]; reads and writes
//!   take their timeouts through the [`Channel`] API.
//! - Port 0 binds an ephemeral port; [`Listener::endpoint`] reports the real one.
//! - Servers detect the tutorial's 4-byte length framing per connection, as on
//!   every stream transport.

pub(crate) mod congestion;

use super::stream::{Framing, StreamChannel, StreamIo, client_framing};
use super::wait::{Ready, wait_ready};
use crate::channel::{Channel, Deadline, Listener, Options, PeerInfo};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use congestion::Congestion;
use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// Pending connections the kernel queues for `accept`.
const BACKLOG: i32 = 1024;

fn host_port(endpoint: &Endpoint) -> &str {
    match &endpoint.address {
        Address::Tcp(hp) | Address::Udp(hp) => hp,
        _ => unreachable!(
            "tcp/udp transport called with a {} endpoint",
            endpoint.address.scheme()
        ),
    }
}

/// Resolves `HOST:PORT` to socket addresses, with a clear error if it cannot.
pub(crate) fn resolve(endpoint: &Endpoint) -> Result<Vec<SocketAddr>> {
    let hp = host_port(endpoint);
    let addrs: Vec<SocketAddr> = hp
        .to_socket_addrs()
        .map_err(|e| Error::NotFound {
            endpoint: endpoint.to_string(),
            reason: format!("cannot resolve {hp}: {e}"),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::NotFound {
            endpoint: endpoint.to_string(),
            reason: format!("{hp} resolves to no address"),
        });
    }
    Ok(addrs)
}

fn tune(fd: impl AsFd) {
    // Best effort: a socket without these still works, only slower to notice trouble.
    let _ = sockopt::set_tcp_nodelay(&fd, true);
    let _ = sockopt::set_socket_keepalive(&fd, true);
}

fn peer_of(addr: Option<SocketAddr>) -> PeerInfo {
    PeerInfo {
        address: addr.map(|a| a.to_string()),
        ..PeerInfo::default()
    }
}

/// Connects to a `tcp://` endpoint, trying each resolved address in turn
/// within [`Options::connect_timeout`] overall.
pub fn connect(endpoint: &Endpoint, options: &Options) -> Result<StreamChannel> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["tcp"])?;
    let congestion = Congestion::of(endpoint)?;
    let deadline = Deadline::after(Some(options.connect_timeout));
    let mut last = None;
    for addr in resolve(endpoint)? {
        let left = deadline.remaining().unwrap_or_default();
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => {
                let local = stream.local_addr().ok();
                let fd = OwnedFd::from(stream);
                tune(&fd);
                congestion.apply(fd.as_fd(), local, addr)?;
                return Ok(StreamChannel::new(
                    StreamIo::Socket {
                        fd,
                        passes_fds: false,
                    },
                    client_framing(endpoint),
                    options.max_payload,
                    format!("tcp://{addr}"),
                    peer_of(Some(addr)),
                )
                .with_deadlines(options));
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Error::NotFound {
            endpoint: endpoint.to_string(),
            reason: format!("connection to {addr} refused: nothing listens there"),
        },
        Some((addr, e)) if e.kind() != std::io::ErrorKind::TimedOut => {
            Error::io(format!("connect to tcp://{addr}"), e)
        }
        _ => Error::Timeout {
            waiting_for: "the TCP connection to be established",
            after: options.connect_timeout,
        },
    })
}

/// Listens on TCP and hands out [`StreamChannel`]s.
#[derive(Debug)]
pub struct TcpListener {
    listener: Option<StdListener>,
    local: SocketAddr,
    options: Options,
    /// What accepted connections send with (module `congestion`).
    congestion: Congestion,
}

impl TcpListener {
    /// Binds the first address `endpoint` resolves to (`SO_REUSEADDR` set).
    pub fn bind(endpoint: &Endpoint, options: &Options) -> Result<Self> {
        let congestion = Congestion::of(endpoint)?;
        let addr = resolve(endpoint)?[0];
        let family = match addr {
            SocketAddr::V4(_) => AddressFamily::INET,
            SocketAddr::V6(_) => AddressFamily::INET6,
        };
        let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)
            .map_err(|e| Error::io("create a TCP socket", e))?;
        sockopt::set_socket_reuseaddr(&fd, true).map_err(|e| Error::io("set SO_REUSEADDR", e))?;
        if let Some(name) = congestion.for_listener() {
            // Accepted connections inherit it; a refusal shows here, not
            // at every accept.
            congestion::set(fd.as_fd(), name)?;
        }
        match rustix::net::bind(&fd, &addr) {
            Ok(()) => {}
            Err(rustix::io::Errno::ADDRINUSE) => {
                return Err(Error::InUse {
                    endpoint: format!("tcp://{addr}"),
                    hint: Some(crate::procnet::in_use_hint(
                        "another process listens on that port",
                        &crate::procnet::inet_port_holders("tcp", addr.port()),
                    )),
                });
            }
            Err(e) => return Err(Error::io(format!("bind tcp://{addr}"), e)),
        }
        rustix::net::listen(&fd, BACKLOG)
            .map_err(|e| Error::io(format!("listen on tcp://{addr}"), e))?;
        let listener = StdListener::from(fd);
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("make the TCP listener non-blocking", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io("read the bound TCP address", e))?;
        Ok(TcpListener {
            listener: Some(listener),
            local,
            options: options.clone(),
            congestion,
        })
    }

    /// The address actually bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Listener for TcpListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        let listener = self.listener.as_ref().ok_or(Error::Closed)?;
        let deadline = Deadline::after(timeout);
        loop {
            wait_ready(
                listener.as_fd(),
                Ready::Read,
                deadline,
                "a client to connect",
                timeout,
            )?;
            let (stream, addr) = match listener.accept() {
                Ok(conn) => conn,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::Interrupted
                            | std::io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(Error::io(format!("accept on tcp://{}", self.local), e)),
            };
            stream
                .set_nonblocking(false)
                .map_err(|e| Error::io("configure an accepted TCP socket", e))?;
            let local = stream.local_addr().ok();
            let fd = OwnedFd::from(stream);
            tune(&fd);
            // Best effort here: a named algorithm was set on the listener,
            // which this connection inherited, and Auto never fails.
            let _ = self.congestion.apply(fd.as_fd(), local, addr);
            return Ok(Box::new(
                StreamChannel::new(
                    StreamIo::Socket {
                        fd,
                        passes_fds: false,
                    },
                    Framing::Detect,
                    self.options.max_payload,
                    format!("tcp://{}", self.local),
                    peer_of(Some(addr)),
                )
                .with_deadlines(&self.options),
            ));
        }
    }

    /// The listening socket: readable when a client waits to be accepted.
    fn readiness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.listener.as_ref().map(|l| l.as_fd())
    }

    fn endpoint(&self) -> String {
        format!("tcp://{}", self.local)
    }

    fn close(&mut self) -> Result<()> {
        self.listener = None;
        Ok(())
    }
}

/// Listens on a `tcp://` endpoint.
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<TcpListener> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["tcp"])?;
    TcpListener::bind(endpoint, options)
}
