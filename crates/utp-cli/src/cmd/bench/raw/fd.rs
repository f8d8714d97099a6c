//! Raw baselines over file descriptors: Unix sockets (path and abstract),
//! TCP, anonymous pipes and FIFOs. `write_all` out, `read_exact` in, no framing:
//! both sides know every message's length in advance. Reads block with no
//! timeout, as utp's untimed receives do (a socket receive timeout arms a
//! timer per wait); a peer that dies closes its end, and one that hangs is
//! killed by the run's watchdog, so no read waits forever.

use crate::cmd::bench::link::{Fallible, Link};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::Path;

/// A reading and a writing descriptor (the same socket twice, or two pipes).
#[derive(Debug)]
pub struct FdLink {
    reader: File,
    writer: File,
    buf: Vec<u8>,
    /// Pipes: the most one read or write moves (see `FdLink::pipes`).
    piece: usize,
}

impl FdLink {
    /// A link reading from `reader` and writing to `writer`.
    pub fn new(reader: OwnedFd, writer: OwnedFd) -> Self {
        FdLink {
            reader: File::from(reader),
            writer: File::from(writer),
            buf: Vec::new(),
            piece: usize::MAX,
        }
    }

    /// Two pipes (or FIFOs), each given the capacity utp gives its own
    /// (`utp::transport::pipe::DEFAULT_PIPE_SIZE`), so both sides of the
    /// comparison have the same buffers. Large messages move in pieces of
    /// `utp::transport::pipe::PIPE_PIECE` each way, as utp moves them: a
    /// pipe's reader and writer take one lock for a whole copy, and
    /// whole-message copies of 1 MiB run at about half the speed.
    pub fn pipes(reader: OwnedFd, writer: OwnedFd) -> Fallible<Self> {
        for fd in [&reader, &writer] {
            rustix::pipe::fcntl_setpipe_size(fd, utp::transport::pipe::DEFAULT_PIPE_SIZE)
                .map_err(|e| format!("F_SETPIPE_SZ: {e}"))?;
        }
        let mut link = FdLink::new(reader, writer);
        link.piece = utp::transport::pipe::PIPE_PIECE;
        Ok(link)
    }

    /// A link over one connected socket.
    pub fn socket(fd: OwnedFd) -> Fallible<Self> {
        let writer = fd.try_clone()?;
        Ok(FdLink::new(fd, writer))
    }
}

impl Link for FdLink {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        for piece in msg.chunks(self.piece) {
            self.writer.write_all(piece)?;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize) -> Fallible<&[u8]> {
        // Into an aligned place, as utp's stream reader reads.
        let place = super::aligned(&mut self.buf, len);
        for piece in place.chunks_mut(self.piece) {
            self.reader.read_exact(piece)?;
        }
        Ok(place)
    }
}

/// Where a raw Unix socket lives.
fn unix_addr(address: &str) -> Fallible<SocketAddr> {
    Ok(match address.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None => SocketAddr::from_pathname(address)?,
    })
}

/// Peer side of a Unix socket: binds `address` (a path, or `@name`), calls
/// `announce`, accepts one client and removes the socket file.
pub fn unix_serve(address: &str, announce: &mut dyn FnMut(&str)) -> Fallible<FdLink> {
    let listener = UnixListener::bind_addr(&unix_addr(address)?)?;
    let path = (!address.starts_with('@')).then(|| Path::new(address).to_path_buf());
    if let Some(path) = &path {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let _cleanup = path.map(super::RemoveOnDrop);
    announce(address);
    let (stream, _) = listener.accept()?;
    FdLink::socket(stream.into())
}

/// Client side of a Unix socket.
pub fn unix_connect(address: &str) -> Fallible<FdLink> {
    let stream = UnixStream::connect_addr(&unix_addr(address)?)?;
    FdLink::socket(stream.into())
}

/// Peer side of TCP: binds a free loopback port, announces it, accepts one client.
pub fn tcp_serve(announce: &mut dyn FnMut(&str)) -> Fallible<FdLink> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    announce(&listener.local_addr()?.to_string());
    let (stream, _) = listener.accept()?;
    tcp_setup(stream)
}

/// Client side of TCP.
pub fn tcp_connect(address: &str) -> Fallible<FdLink> {
    tcp_setup(TcpStream::connect(address)?)
}

fn tcp_setup(stream: TcpStream) -> Fallible<FdLink> {
    stream.set_nodelay(true)?;
    FdLink::socket(stream.into())
}

/// Peer side of a FIFO pair `PATH.req` / `PATH.resp`: creates both (0600),
/// announces, opens them (blocking until the client opens its ends) and removes them.
pub fn fifo_serve(path: &str, announce: &mut dyn FnMut(&str)) -> Fallible<FdLink> {
    let (req, resp) = (format!("{path}.req"), format!("{path}.resp"));
    let mut cleanup = Vec::new();
    for p in [&req, &resp] {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p.as_str(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .map_err(|e| format!("mkfifo {p}: {e}"))?;
        cleanup.push(super::RemoveOnDrop(p.into()));
    }
    announce(path);
    let reader = File::open(&req)?;
    let writer = File::options().write(true).open(&resp)?;
    drop(cleanup);
    FdLink::pipes(reader.into(), writer.into())
}

/// Client side of a FIFO pair: opens `PATH.req` to write, `PATH.resp` to read.
pub fn fifo_connect(path: &str) -> Fallible<FdLink> {
    let writer = File::options().write(true).open(format!("{path}.req"))?;
    let reader = File::open(format!("{path}.resp"))?;
    FdLink::pipes(reader.into(), writer.into())
}

/// Peer side of anonymous pipes: this process's stdin and stdout, which the
/// client created when it spawned the peer.
pub fn pipe_serve() -> Fallible<FdLink> {
    use std::os::fd::AsFd;
    let reader = std::io::stdin().as_fd().try_clone_to_owned()?;
    let writer = std::io::stdout().as_fd().try_clone_to_owned()?;
    FdLink::pipes(reader, writer)
}
