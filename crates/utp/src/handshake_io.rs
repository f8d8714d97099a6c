//! Handshake frames over a Unix stream socket (the shm and pub/sub
//! rendezvous): each sent whole, with descriptors on its first byte, and
//! read whole, with the descriptors that come with it, within one deadline.
//!
//! Both sockets carry a receive timeout (`SO_RCVTIMEO`), which the kernel
//! applies to each `recvmsg` afresh. A frame read in pieces, or a read cut
//! short by a signal (`EINTR`, which a socket with a receive timeout
//! returns even under `SA_RESTART`), would start the full timeout again
//! each time: a peer sending a byte at a time, or a host whose threads are
//! signalled more often than the timeout (a profiler, a C program's
//! timer), could hold the reader for ever. Here the timeout in force when
//! a frame's read begins is its deadline; each further `recvmsg` waits
//! only for what is left of it. Sends use `MSG_NOSIGNAL` (a peer that left
//! is an error, not SIGPIPE) and go on after `EINTR`.

use crate::channel::Deadline;
use crate::error::{Error, Result};
use crate::frame::{self, HEADER_LEN, Header, flags};
use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Most descriptors a handshake frame carries (sent or accepted per read).
const MAX_FDS: usize = 4;

/// Sends one checksummed frame (sequence 1) whole, `fds` attached to its
/// first byte. More than [`MAX_FDS`] descriptors is `InvalidInput`.
pub(crate) fn send_frame(
    stream: &UnixStream,
    message_type: u8,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    let header = Header::new(message_type, flags::CHECKSUM, 1, frame::now_micros());
    let bytes = frame::encode_to_vec(&header, payload);
    let mut sent = 0;
    while sent < bytes.len() {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if sent == 0 && !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "more descriptors than a handshake frame carries",
            ));
        }
        match sendmsg(
            stream,
            &[IoSlice::new(&bytes[sent..])],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(n) => sent += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads one frame whole within the deadline its read starts (see the
/// module), its header checked against `max_payload`: the frame's bytes
/// and the descriptors that came with it. `short` says what a read that
/// ended early is, in the caller's words.
pub(crate) fn read_frame(
    stream: &UnixStream,
    max_payload: usize,
    short: impl Fn(ShortRead) -> Error,
) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let deadline = frame_deadline(stream);
    let mut fds = Vec::new();
    let mut head = [0u8; HEADER_LEN];
    read_exact(stream, &mut head, &mut fds, deadline).map_err(&short)?;
    let header = frame::decode_header(&head, max_payload)?;
    let mut bytes = head.to_vec();
    bytes.resize(header.frame_len(), 0);
    read_exact(stream, &mut bytes[HEADER_LEN..], &mut fds, deadline).map_err(short)?;
    Ok((bytes, fds))
}

/// Why a frame could not be read whole.
#[derive(Debug)]
pub(crate) enum ShortRead {
    /// The peer closed the connection first.
    Eof,
    /// More descriptors came with the bytes than a handshake carries.
    TooManyFds,
    /// The deadline passed first.
    TimedOut,
    /// The socket failed.
    Io(std::io::Error),
}

impl ShortRead {
    /// As an I/O error: end of stream `UnexpectedEof`, time up `WouldBlock`
    /// (what a socket's receive timeout gives).
    pub(crate) fn into_io(self) -> std::io::Error {
        use std::io::{Error, ErrorKind};
        match self {
            ShortRead::Eof => ErrorKind::UnexpectedEof.into(),
            ShortRead::TooManyFds => Error::new(
                ErrorKind::InvalidData,
                "more descriptors than a handshake frame carries",
            ),
            ShortRead::TimedOut => ErrorKind::WouldBlock.into(),
            ShortRead::Io(e) => e,
        }
    }
}

/// The deadline of a frame whose read starts now: the socket's receive
/// timeout (none if it has none).
fn frame_deadline(stream: &UnixStream) -> Deadline {
    Deadline::after(stream.read_timeout().ok().flatten())
}

/// Reads exactly `buf.len()` bytes by `deadline`, keeping the descriptors
/// that arrive in `fds`. The socket's receive timeout is lowered to what
/// is left of the deadline whenever it would wait longer, and put back as
/// it was before returning (so the next read of the same frame, with the
/// same deadline, lowers it again).
fn read_exact(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    deadline: Deadline,
) -> std::result::Result<(), ShortRead> {
    let configured = stream.read_timeout().ok().flatten();
    let mut set = configured;
    let result = read_within(stream, buf, fds, deadline, &mut set);
    if set != configured {
        let _ = stream.set_read_timeout(configured);
    }
    result
}

/// How much longer than the time left the socket's timeout may be before
/// it is lowered: a frame's first read, which starts its deadline, then
/// changes nothing.
const SLACK: Duration = Duration::from_millis(1);

fn read_within(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    deadline: Deadline,
    set: &mut Option<Duration>,
) -> std::result::Result<(), ShortRead> {
    let mut got = 0;
    while got < buf.len() {
        if let Some(left) = deadline.remaining() {
            if left.is_zero() {
                return Err(ShortRead::TimedOut);
            }
            // The kernel starts the socket's timeout afresh at each read.
            if set.is_none_or(|timeout| timeout > left + SLACK) {
                // Zero would mean "no timeout" to the kernel.
                let left = left.max(Duration::from_micros(1));
                stream.set_read_timeout(Some(left)).map_err(ShortRead::Io)?;
                *set = Some(left);
            }
        }
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = match recvmsg(
            stream,
            &mut [IoSliceMut::new(&mut buf[got..])],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(received) => received,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Err(ShortRead::TimedOut),
            Err(e) => return Err(ShortRead::Io(e.into())),
        };
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if received.flags.contains(ReturnFlags::CTRUNC) {
            return Err(ShortRead::TooManyFds);
        }
        if received.bytes == 0 {
            return Err(ShortRead::Eof);
        }
        got += received.bytes;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Instant;

    #[test]
    fn a_peer_that_drips_bytes_cannot_stretch_the_deadline() {
        let (reader, mut writer) = UnixStream::pair().unwrap();
        reader
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let dripping = std::thread::spawn(move || {
            // A byte at once, one 200 ms later, then silence.
            writer.write_all(b"x").unwrap();
            std::thread::sleep(Duration::from_millis(200));
            writer.write_all(b"y").unwrap();
            std::thread::sleep(Duration::from_secs(1));
        });
        // As a frame is read: a head of 2 bytes, then the rest, both by the
        // deadline the head's read started. The rest's read begins at
        // 200 ms, so it may wait 100 ms, not the socket's 300.
        let deadline = frame_deadline(&reader);
        let started = Instant::now();
        let mut head = [0u8; 2];
        read_exact(&reader, &mut head, &mut Vec::new(), deadline).unwrap();
        assert_eq!(&head, b"xy");
        let mut rest = [0u8; 30];
        let got = read_exact(&reader, &mut rest, &mut Vec::new(), deadline);
        let took = started.elapsed();
        assert!(matches!(got, Err(ShortRead::TimedOut)), "{got:?}");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(450),
            "a 300 ms deadline ended after {took:?}"
        );
        assert_eq!(
            reader.read_timeout().unwrap(),
            Some(Duration::from_millis(300)),
            "the socket's timeout is put back"
        );
        dripping.join().unwrap();
    }

    #[test]
    fn a_frame_in_pieces_is_read_whole() {
        let (reader, mut writer) = UnixStream::pair().unwrap();
        reader
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let writing = std::thread::spawn(move || {
            for piece in [&b"abc"[..], b"defgh", b"ij"] {
                writer.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let mut buf = [0u8; 10];
        read_exact(&reader, &mut buf, &mut Vec::new(), frame_deadline(&reader)).unwrap();
        assert_eq!(&buf, b"abcdefghij");
        writing.join().unwrap();
    }
}
