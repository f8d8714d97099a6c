//! The raw byte pipes under a stream channel: one connected socket, or a
//! pair of one-way descriptors (pipes, FIFOs).

use crate::error::{Error, Result};
use crate::frame::HEADER_LEN;
use crate::transport::pipe::PIPE_PIECE;
use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// The most one write to a pipe moves: [`PIPE_PIECE`] and a frame header,
/// so that a frame of a 64 KiB payload goes in one write, as a plain
/// 64 KiB message does, instead of 64 KiB and a 32-byte tail: a system
/// call per frame fewer (a 64 KiB stream over `fifo://` between two
/// processes made 2.0 writes a frame before, docs/benchmarks/journal.md,
/// 2026-12-06, morning).
const PIPE_WRITE_PIECE: usize = PIPE_PIECE + HEADER_LEN;

/// The first [`PIPE_WRITE_PIECE`] bytes of `iov`, as at most three slices in `pieces`.
fn pipe_piece<'a>(iov: &'a [IoSlice<'a>], pieces: &'a mut [IoSlice<'a>; 3]) -> &'a [IoSlice<'a>] {
    let total: usize = iov.iter().map(|slice| slice.len()).sum();
    if total <= PIPE_WRITE_PIECE {
        return iov;
    }
    let mut room = PIPE_WRITE_PIECE;
    let mut n = 0;
    for slice in iov {
        if room == 0 || n == pieces.len() {
            break;
        }
        let take = slice.len().min(room);
        pieces[n] = IoSlice::new(&slice[..take]);
        n += 1;
        room -= take;
    }
    &pieces[..n]
}

#[cfg(test)]
thread_local! {
    /// How many writes this thread made through [`StreamIo::write`]: for
    /// the tests of how many system calls a batch of frames takes.
    pub(crate) static WRITES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Most descriptors accepted with one received message.
pub(crate) const MAX_FDS_PER_MESSAGE: usize = 16;

/// Descriptors a stream reads from and writes to.
#[derive(Debug)]
pub enum StreamIo {
    /// A connected stream socket (Unix or TCP): one descriptor both ways.
    /// Writes use `MSG_NOSIGNAL`, so a vanished peer is an error, not a SIGPIPE.
    Socket {
        /// The socket.
        fd: OwnedFd,
        /// Unix sockets: receive with `recvmsg` and keep `SCM_RIGHTS` descriptors.
        passes_fds: bool,
    },
    /// Two one-way descriptors: read from one, write to the other.
    Pair {
        /// Where frames arrive.
        read: OwnedFd,
        /// Where frames leave; `None` once closed.
        write: Option<OwnedFd>,
    },
}

/// What one read returned.
pub(crate) enum ReadOutcome {
    /// `n` bytes arrived.
    Data(usize),
    /// The peer closed its end.
    Eof,
    /// Nothing to read yet on a non-blocking descriptor.
    WouldBlock,
    /// A signal cut the read short (`EINTR`). Not retried here: a socket's
    /// receive timeout would start again in full at each signal, so the
    /// caller reads again with the time its deadline has left.
    Interrupted,
}

impl StreamIo {
    pub(crate) fn read_fd(&self) -> BorrowedFd<'_> {
        match self {
            StreamIo::Socket { fd, .. } => fd.as_fd(),
            StreamIo::Pair { read, .. } => read.as_fd(),
        }
    }

    pub(crate) fn write_fd(&self) -> Result<BorrowedFd<'_>> {
        match self {
            StreamIo::Socket { fd, .. } => Ok(fd.as_fd()),
            StreamIo::Pair { write, .. } => write.as_ref().map(|w| w.as_fd()).ok_or(Error::Closed),
        }
    }

    /// Whether the two descriptors of a pair are separate objects, so the
    /// blocking mode of each may be changed alone (`O_NONBLOCK` belongs to
    /// the open file, which stdin and stdout may share, e.g. one socket as
    /// both). Sockets answer false: they never change mode (see `write`).
    pub(crate) fn pair_modes_separate(&self) -> bool {
        let StreamIo::Pair {
            read,
            write: Some(write),
        } = self
        else {
            return false;
        };
        match (rustix::fs::fstat(read), rustix::fs::fstat(write)) {
            (Ok(r), Ok(w)) => (r.st_dev, r.st_ino) != (w.st_dev, w.st_ino),
            _ => false,
        }
    }

    /// Makes a pair's read descriptor blocking (`false`) or not.
    pub(crate) fn set_read_nonblocking(&self, nonblocking: bool) -> Result<()> {
        match self {
            StreamIo::Pair { read, .. } => rustix::io::ioctl_fionbio(read, nonblocking)
                .map_err(|e| Error::io("set the read pipe's blocking mode", e)),
            StreamIo::Socket { .. } => Ok(()),
        }
    }

    /// Makes a pair's write descriptor blocking (`false`) or not.
    pub(crate) fn set_write_nonblocking(&self, nonblocking: bool) -> Result<()> {
        match self {
            StreamIo::Pair {
                write: Some(write), ..
            } => rustix::io::ioctl_fionbio(write, nonblocking)
                .map_err(|e| Error::io("set the write pipe's blocking mode", e)),
            _ => Ok(()),
        }
    }

    /// Whether this is a socket (which can time out reads by itself).
    pub(crate) fn is_socket(&self) -> bool {
        matches!(self, StreamIo::Socket { .. })
    }

    /// Sets a socket's receive timeout (`SO_RCVTIMEO`; `None`: block) if it
    /// differs from `current`, and records it there.
    pub(crate) fn set_read_timeout(
        &self,
        wanted: Option<Duration>,
        current: &mut Option<Duration>,
    ) -> Result<()> {
        if wanted == *current {
            return Ok(());
        }
        if let StreamIo::Socket { fd, .. } = self {
            // A zero duration means "no timeout" to the kernel: use the smallest real one.
            let value = wanted.map(|d| d.max(Duration::from_micros(1)));
            rustix::net::sockopt::set_socket_timeout(
                fd,
                rustix::net::sockopt::Timeout::Recv,
                value,
            )
            .map_err(|e| Error::io("set the socket's receive timeout", e))?;
            *current = wanted;
        }
        Ok(())
    }

    /// One read into `dst` (filled in order, as `readv`); descriptors that
    /// arrive with the bytes go to `fds`. `dont_wait` asks a socket not to
    /// block whatever its receive timeout (`MSG_DONTWAIT`): a look that
    /// must not wait is then one system call, not a `poll` and a read (on
    /// the AMD guest of docs/benchmarks/journal.md a zero-timeout `ppoll`
    /// costs 1.2 µs). Pairs block unless non-blocking.
    pub(crate) fn read(
        &self,
        dst: &mut [IoSliceMut<'_>],
        fds: &mut Vec<OwnedFd>,
        dont_wait: bool,
    ) -> Result<ReadOutcome> {
        let wanted = dst.iter().any(|slice| !slice.is_empty());
        let flags = if dont_wait {
            RecvFlags::DONTWAIT
        } else {
            RecvFlags::empty()
        };
        let result = match (self, &mut *dst) {
            (
                StreamIo::Socket {
                    fd,
                    passes_fds: true,
                },
                slices,
            ) => recv_with_fds(fd.as_fd(), slices, fds, flags),
            // One slice: plain read() (recv() for a flag), no iovec to import.
            (StreamIo::Socket { fd, .. }, [one]) if dont_wait => {
                rustix::net::recv(fd, &mut **one, flags).map(|(n, _)| n)
            }
            (StreamIo::Socket { fd, .. }, slices) if dont_wait => {
                recvmsg(fd, slices, &mut RecvAncillaryBuffer::default(), flags).map(|msg| msg.bytes)
            }
            (StreamIo::Socket { fd, .. } | StreamIo::Pair { read: fd, .. }, [one]) => {
                rustix::io::read(fd, &mut **one)
            }
            (StreamIo::Socket { fd, .. } | StreamIo::Pair { read: fd, .. }, slices) => {
                rustix::io::readv(fd, slices)
            }
        };
        match result {
            Ok(0) if wanted => Ok(ReadOutcome::Eof),
            Ok(n) => Ok(ReadOutcome::Data(n)),
            Err(Errno::INTR) => Ok(ReadOutcome::Interrupted),
            Err(Errno::AGAIN) => Ok(ReadOutcome::WouldBlock),
            Err(Errno::CONNRESET) => Ok(ReadOutcome::Eof),
            Err(e) => Err(Error::io("read from peer", e)),
        }
    }

    /// One write of (a prefix of) `iov`, with descriptors attached to its first byte.
    /// `dont_wait` asks sockets not to block (pairs block unless non-blocking).
    pub(crate) fn write(
        &self,
        iov: &[IoSlice<'_>],
        attach: &[BorrowedFd<'_>],
        dont_wait: bool,
    ) -> std::result::Result<usize, Errno> {
        #[cfg(test)]
        WRITES.with(|n| n.set(n.get() + 1));
        match self {
            StreamIo::Socket { fd, .. } => {
                let mut flags = SendFlags::NOSIGNAL;
                if dont_wait {
                    flags |= SendFlags::DONTWAIT;
                }
                if let ([one], []) = (iov, attach) {
                    // One buffer, no descriptors: plain send(), no msghdr.
                    return rustix::net::send(fd, one, flags);
                }
                let mut space =
                    [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
                let mut control = SendAncillaryBuffer::new(&mut space);
                if !attach.is_empty() && !control.push(SendAncillaryMessage::ScmRights(attach)) {
                    return Err(Errno::TOOMANYREFS);
                }
                sendmsg(fd, iov, &mut control, flags)
            }
            StreamIo::Pair { write: None, .. } => Err(Errno::BADF),
            StreamIo::Pair { write: Some(w), .. } => {
                let mut pieces = [IoSlice::new(&[]); 3];
                match pipe_piece(iov, &mut pieces) {
                    [one] => rustix::io::write(w, one),
                    some => rustix::io::writev(w, some),
                }
            }
        }
    }

    /// Stops sending: the peer reads end-of-stream.
    pub(crate) fn shutdown_write(&mut self) {
        match self {
            StreamIo::Socket { fd, .. } => {
                let _ = rustix::net::shutdown(fd, rustix::net::Shutdown::Write);
            }
            StreamIo::Pair { write, .. } => *write = None,
        }
    }
}

fn recv_with_fds(
    fd: BorrowedFd<'_>,
    dst: &mut [IoSliceMut<'_>],
    fds: &mut Vec<OwnedFd>,
    flags: RecvFlags,
) -> std::result::Result<usize, Errno> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = recvmsg(fd, dst, &mut control, flags | RecvFlags::CMSG_CLOEXEC)?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    Ok(msg.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(iov: &[IoSlice<'_>]) -> usize {
        iov.iter().map(|slice| slice.len()).sum()
    }

    #[test]
    fn a_frame_of_a_64_kib_payload_is_written_whole_and_a_larger_one_in_pieces() {
        let header = [1u8; HEADER_LEN];
        let payload = vec![2u8; PIPE_PIECE];
        let iov = [IoSlice::new(&header), IoSlice::new(&payload)];
        let mut pieces = [IoSlice::new(&[]); 3];
        let piece = pipe_piece(&iov, &mut pieces);
        assert_eq!(piece.len(), 2);
        assert_eq!(
            total(piece),
            HEADER_LEN + PIPE_PIECE,
            "one write for the frame"
        );

        // A 1 MiB payload: the first write takes the header and the first
        // 64 KiB of it, cut inside the payload slice.
        let large = vec![3u8; 1 << 20];
        let iov = [IoSlice::new(&header), IoSlice::new(&large)];
        let mut pieces = [IoSlice::new(&[]); 3];
        let piece = pipe_piece(&iov, &mut pieces);
        assert_eq!(total(piece), PIPE_WRITE_PIECE);
        assert_eq!(piece[0].len(), HEADER_LEN);
        assert_eq!(piece[1].len(), PIPE_PIECE);
        // What follows (the rest of the payload) goes in pieces of the same size.
        let rest = [IoSlice::new(&large[PIPE_PIECE..])];
        let mut pieces = [IoSlice::new(&[]); 3];
        assert_eq!(total(pipe_piece(&rest, &mut pieces)), PIPE_WRITE_PIECE);
        // Three slices, the cut in the last.
        let tail = vec![4u8; PIPE_PIECE];
        let iov = [
            IoSlice::new(&header),
            IoSlice::new(&header),
            IoSlice::new(&tail),
        ];
        let mut pieces = [IoSlice::new(&[]); 3];
        let piece = pipe_piece(&iov, &mut pieces);
        assert_eq!(piece.len(), 3);
        assert_eq!(piece[2].len(), PIPE_PIECE - HEADER_LEN);
    }
}
