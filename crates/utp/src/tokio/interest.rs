//! What a channel's readiness descriptor is registered with tokio for.
//!
//! A stream socket (unix://, tcp://, and the socket an shm:// link rings
//! its peer through) is registered for reading **and writing**, as tokio's
//! own `UnixStream` and `TcpStream` are. A Unix stream socket turns
//! writable each time its peer reads from it, so a task that sent a
//! request and waits for the answer is woken once, and goes back to
//! waiting, when the peer takes the request: the runtime's thread is awake
//! (out of `epoll_wait`, its CPU out of idle) when the answer comes a few
//! microseconds later, instead of being woken from sleep by it. Round trips
//! through `utp::tokio` over unix:// were 1.4–1.6x slower registered for
//! reading alone (docs/benchmarks/journal.md, 2026-12-07, evening); the
//! price is one wake-up of the runtime for each frame the peer reads while
//! this side sleeps, which a plain tokio socket pays as well. TCP wakes a
//! writer only after a full send buffer, so it costs nothing there.
//!
//! Every other descriptor is registered for reading alone: the read end of
//! a pipe never reports room, and a message queue or an eventfd reports
//! room after this side's own receives, which would wake the runtime for
//! nothing. Room to send is watched apart, while a send waits
//! ([`RoomWatch`](super::room::RoomWatch)), for every kind.

use ::tokio::io::Interest;
use rustix::net::SocketType;
use std::os::fd::BorrowedFd;

/// The interest to register `fd` (a channel's readiness descriptor) with:
/// reading and writing for a stream socket, reading for anything else
/// (including a descriptor whose type cannot be read).
pub(super) fn for_readiness(fd: BorrowedFd<'_>) -> Interest {
    match rustix::net::sockopt::socket_type(fd) {
        Ok(SocketType::STREAM) => Interest::READABLE | Interest::WRITABLE,
        _ => Interest::READABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn stream_sockets_are_watched_for_writing_as_well() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(
            for_readiness(a.as_fd()),
            Interest::READABLE | Interest::WRITABLE
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert_eq!(
            for_readiness(tcp.as_fd()),
            Interest::READABLE | Interest::WRITABLE
        );
    }

    #[test]
    fn other_descriptors_are_watched_for_reading_alone() {
        let (read, _write) = rustix::pipe::pipe().unwrap();
        assert_eq!(for_readiness(read.as_fd()), Interest::READABLE);
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(for_readiness(udp.as_fd()), Interest::READABLE);
        let (datagram, _peer) = std::os::unix::net::UnixDatagram::pair().unwrap();
        assert_eq!(for_readiness(datagram.as_fd()), Interest::READABLE);
        let event = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
        assert_eq!(for_readiness(event.as_fd()), Interest::READABLE);
    }
}
