//! A conversation's own socket: how a UDP server reads each client's
//! datagrams without its reader thread in between.
//!
//! The listener's socket takes every datagram for its port, and its reader
//! thread hands each to the conversation it belongs to: a queue and a
//! wake-up per datagram, in a second thread. So once a new client's first
//! datagram has arrived, the reader thread opens a socket for that client
//! alone: bound to the listener's address and port, connected to the
//! client. Linux delivers a datagram to the connected socket that matches
//! its source exactly before any unconnected one, so from then on the
//! client's datagrams go straight to its conversation, which reads and
//! answers on its own socket, as a plain connected socket would.
//!
//! Two sockets on one port need `SO_REUSEPORT` on both. The kernel lets a
//! socket join a port's group only if it belongs to the same user as the
//! group's sockets, so another user can neither bind the port nor take its
//! datagrams; the listener sets the option after binding, so binding a port
//! in use still fails, and an ephemeral port is never one another socket
//! shares. Datagrams from sources no conversation is connected to are
//! steered to the listener by a one-instruction classic BPF program that
//! picks the group's first socket, which is the listener's (without it the
//! kernel would pick an unconnected socket by a hash of the source, and a
//! conversation's socket is unconnected between its bind and its connect).
//!
//! The client's datagrams that reached the listener before its socket was
//! connected are read at once by the reader thread and queued for the new
//! conversation (see `demux.rs`); the conversation reads that queue before
//! its socket, so its frames keep their order.

use super::{IDLE_EXPIRY, tune};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, Shutdown, SocketFlags, SocketType, sockopt};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// Lets the bound listener's port take connected sockets beside it, with
/// every datagram no connected socket takes steered to the listener. The
/// port's group and its program are set up here, before any conversation:
/// a socket joins and leaves at once (the group outlives it, the listener
/// first in it), so a conversation's socket is never picked for another
/// source, not even between its bind and its connect.
pub(super) fn share_port(listener: &UdpSocket, local: SocketAddr) -> io::Result<()> {
    sockopt::set_socket_reuseport(listener, true)?;
    let founder = group_member(local)?;
    let steered = steer_to_listener(listener);
    // Not a datagram is meant for it: nobody knows a socket that lives a
    // few microseconds.
    drop(founder);
    steered
}

/// A new socket bound to `local` in the port's group (`SO_REUSEPORT`).
fn group_member(local: SocketAddr) -> io::Result<OwnedFd> {
    let family = match local {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = rustix::net::socket_with(family, SocketType::DGRAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    rustix::net::bind(&fd, &local)?;
    Ok(fd)
}

/// A socket for the conversation with `client`: in the port's group at
/// `local`, connected to `client`, its buffers as the listener's, and a
/// receive timeout of [`IDLE_EXPIRY`] (a receive with no deadline still
/// has to notice a client gone silent).
pub(super) fn open(local: SocketAddr, client: SocketAddr) -> io::Result<UdpSocket> {
    let fd = group_member(local)?;
    rustix::net::connect(&fd, &client)?;
    let socket = UdpSocket::from(fd);
    tune(&socket);
    socket.set_read_timeout(Some(IDLE_EXPIRY))?;
    Ok(socket)
}

/// Steers datagrams no connected socket takes to the group's first socket
/// (index 0: the listener, around which the group was formed and which
/// never leaves it while it listens). Only possible once the group exists.
fn steer_to_listener(listener: &UdpSocket) -> io::Result<()> {
    /// `SO_ATTACH_REUSEPORT_CBPF` (the `libc` crate does not export it for
    /// Linux): 51 in the generic socket options, which every architecture
    /// Rust targets uses for it but SPARC.
    #[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
    const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;
    #[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
    const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 0x35;

    // `ret #0`: the index of the socket to deliver to.
    let mut program = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `program`, one valid instruction, both
    // alive for the call; the kernel copies the program and keeps no
    // pointer. The length passed is the size of the `sock_fprog` given.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Wakes a receive waiting on a conversation's socket, and every later
/// one, with end-of-file (the reader thread ends the conversation). The
/// socket stays connected, taking the client's datagrams, until the
/// channel drops it; it is never disconnected, since an unconnected socket
/// in the group would take datagrams from new sources ahead of the
/// listener.
pub(super) fn end(socket: &UdpSocket) {
    let _ = rustix::net::shutdown(socket, Shutdown::Read);
}

/// One datagram from `socket` into `buf`, with its source, without
/// waiting: `Ok(None)` when none is queued. (An ICMP error queued for an
/// earlier send comes back as an error of its own, once.)
pub(super) fn take_waiting(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> Result<Option<(usize, SocketAddr)>, Errno> {
    match rustix::net::recvfrom(socket, &mut *buf, RecvFlags::DONTWAIT) {
        Ok((n, _, from)) => {
            let from = from.and_then(|from| SocketAddr::try_from(from).ok());
            Ok(from.map(|from| (n.min(buf.len()), from)))
        }
        Err(Errno::AGAIN) => Ok(None),
        Err(errno) => Err(errno),
    }
}
