//! Raw baselines over file descriptors: Unix sockets (path and abstract),
//! TCP, anonymous pipes and FIFOs. `write_all` out, no framing: both sides
//! know every message's length in advance. Each side reads as utp's stream
//! channel of that kind does: sockets take whatever has arrived into a
//! buffer of utp's size (so a reader that falls behind catches up with one
//! call for many small messages, as utp's does), pipes and FIFOs whole
//! messages, as many as fit in a page (as utp's reads whole frames there,
//! `utp::__bench::stream_pipe_read_len`); TCP reads a large message in
//! pieces (see `TCP_READ_PIECE`). Reads
//! block with no timeout, as utp's untimed receives do (a socket receive
//! timeout arms a timer per wait); a peer that dies closes its end, and one
//! that hangs is killed by the run's watchdog, so no read waits forever.

use crate::cmd::bench::link::{Fallible, Link};
use std::fs::File;
use std::io::{IoSlice, Read, Write};
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
    /// Pipes: the most one write moves (see `FdLink::pipes`).
    piece: usize,
    /// Bytes read ahead of the messages asked for.
    ahead: ReadAhead,
    /// Where a batch of small messages is put together, kept from batch
    /// to batch.
    batch_buffer: Vec<u8>,
}

/// A reader's buffer: reads take whatever has arrived, up to utp's stream
/// buffer (sockets) or to whole messages filling a page (pipes and FIFOs),
/// and messages are handed out of it.
///
// Invariants: `start <= end <= STREAM_READ_ROOM`; `room()[start..end]`
// holds received bytes not yet handed out.
#[derive(Debug)]
pub(super) struct ReadAhead {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
    /// The most one read straight into a large message's place asks for
    /// (see [`TCP_READ_PIECE`]).
    direct_piece: usize,
    /// Pipes and FIFOs: a read stops after whole messages of the length
    /// asked for, as many as fit in a page, as utp's pipe reads stop.
    whole_messages: bool,
}

/// A batch this large or smaller is copied into one buffer and written
/// with one plain write, as utp's stream channel writes a run of frames;
/// so is a batch of messages each at most [`COALESCE_MESSAGE_MAX`].
const COALESCE_MAX: usize = utp::__bench::STREAM_COALESCE_RUN_MAX;
const COALESCE_MESSAGE_MAX: usize = utp::__bench::STREAM_COALESCE_PAYLOAD_MAX;

/// TCP reads a large message straight into its place in reads of at most
/// this many bytes, as utp's reader does: reading a 1 MiB message whole,
/// this baseline streamed 1 MiB messages at 0.76–0.89x utp's speed (see
/// `utp::__bench::STREAM_TCP_READ_PIECE` for why). Unix sockets read whole.
const TCP_READ_PIECE: usize = utp::__bench::STREAM_TCP_READ_PIECE;

impl ReadAhead {
    /// Bytes read and not yet handed out.
    pub(super) fn held(&self) -> usize {
        self.end - self.start
    }

    /// An empty buffer; see the fields for `direct_piece` and `whole_messages`.
    pub(super) fn new(direct_piece: usize, whole_messages: bool) -> Self {
        ReadAhead {
            bytes: Vec::new(),
            start: 0,
            end: 0,
            direct_piece,
            whole_messages,
        }
    }

    /// The buffer, starting on a cache line as utp's does (allocated on
    /// first use).
    fn room(&mut self) -> &mut [u8] {
        super::aligned(&mut self.bytes, utp::__bench::STREAM_READ_ROOM)
    }

    /// The next `len` bytes of the stream: out of the buffer when a message
    /// is smaller than utp reads straight into place
    /// (`STREAM_DIRECT_READ_MIN`), otherwise what the buffer holds and the
    /// rest read straight into `place`, as utp's reader does.
    pub(super) fn next<'a>(
        &'a mut self,
        reader: &mut impl Read,
        len: usize,
        place: &'a mut Vec<u8>,
    ) -> Fallible<&'a [u8]> {
        let held = self.held();
        if len >= utp::__bench::STREAM_DIRECT_READ_MIN {
            let place = super::aligned(place, len);
            let from_buffer = held.min(len);
            let start = self.start;
            place[..from_buffer].copy_from_slice(&self.room()[start..start + from_buffer]);
            self.start += from_buffer;
            for piece in place[from_buffer..].chunks_mut(self.direct_piece) {
                reader.read_exact(piece)?;
            }
            return Ok(place);
        }
        if held < len {
            // What is left of the last read moves to the front (at most
            // one partial message), so every read has the whole buffer.
            let (start, end) = (self.start, self.end);
            self.room().copy_within(start..end, 0);
            self.start = 0;
            self.end = held;
            let fill_to = if self.whole_messages {
                utp::__bench::stream_pipe_read_len(len)
            } else {
                utp::__bench::STREAM_READ_ROOM
            };
            while self.end < len {
                let end = self.end;
                match reader.read(&mut self.room()[end..fill_to]) {
                    Ok(0) => return Err("the peer closed its end mid-stream".into()),
                    Ok(n) => self.end += n,
                    // As `read_exact` does: a signal is not an error.
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let start = self.start;
        self.start += len;
        Ok(&self.room()[start..start + len])
    }
}

impl FdLink {
    /// A link reading from `reader` through `ahead` and writing to `writer`.
    fn new(reader: OwnedFd, writer: OwnedFd, ahead: ReadAhead) -> Self {
        FdLink {
            reader: File::from(reader),
            writer: File::from(writer),
            buf: Vec::new(),
            piece: usize::MAX,
            ahead,
            batch_buffer: Vec::new(),
        }
    }

    /// Two pipes (or FIFOs), each given the capacity utp gives its own
    /// (`utp::transport::pipe::DEFAULT_PIPE_SIZE`), so both sides of the
    /// comparison have the same buffers. Large messages move in pieces of
    /// `utp::transport::pipe::PIPE_PIECE` each way, as utp moves them: a
    /// pipe's reader and writer take one lock for a whole copy, and
    /// whole-message copies of 1 MiB run at about half the speed. Small
    /// ones are read ahead in whole messages up to a page, as utp reads
    /// its frames.
    pub fn pipes(reader: OwnedFd, writer: OwnedFd) -> Fallible<Self> {
        for fd in [&reader, &writer] {
            rustix::pipe::fcntl_setpipe_size(fd, utp::transport::pipe::DEFAULT_PIPE_SIZE)
                .map_err(|e| format!("F_SETPIPE_SZ: {e}"))?;
        }
        let ahead = ReadAhead::new(utp::transport::pipe::PIPE_PIECE, true);
        let mut link = FdLink::new(reader, writer, ahead);
        link.piece = utp::transport::pipe::PIPE_PIECE;
        Ok(link)
    }

    /// A link over one connected socket, read ahead as utp reads sockets;
    /// a large message is read straight into place in reads of at most
    /// `direct_piece` bytes.
    fn socket(fd: OwnedFd, direct_piece: usize) -> Fallible<Self> {
        let writer = fd.try_clone()?;
        Ok(FdLink::new(fd, writer, ReadAhead::new(direct_piece, false)))
    }
}

impl Link for FdLink {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        for piece in msg.chunks(self.piece) {
            self.writer.write_all(piece)?;
        }
        Ok(())
    }

    /// One write for the batch, as utp's batch of frames: the messages
    /// copied into one buffer when they come to 4 KiB or less, or are each
    /// 2 KiB or less (utp's `COALESCE_RUN_MAX` and `COALESCE_PAYLOAD_MAX`),
    /// written from where they are otherwise (`writev`); pipes and FIFOs
    /// in pieces of at most [`PIPE_PIECE`](utp::transport::pipe::PIPE_PIECE).
    fn send_batch(&mut self, msgs: &[&[u8]]) -> Fallible<()> {
        let total: usize = msgs.iter().map(|m| m.len()).sum();
        let small = total <= COALESCE_MAX || msgs.iter().all(|m| m.len() <= COALESCE_MESSAGE_MAX);
        if small && total <= self.piece {
            let mut whole = std::mem::take(&mut self.batch_buffer);
            whole.clear();
            for msg in msgs {
                whole.extend_from_slice(msg);
            }
            let written = self.writer.write_all(&whole);
            self.batch_buffer = whole;
            return Ok(written?);
        }
        if total > self.piece {
            return msgs.iter().try_for_each(|msg| self.send(msg));
        }
        for run in msgs.chunks(32) {
            let mut slices: [IoSlice<'_>; 32] =
                std::array::from_fn(|i| IoSlice::new(run.get(i).copied().unwrap_or_default()));
            let mut rest = &mut slices[..run.len()];
            while !rest.is_empty() {
                match rustix::io::writev(&self.writer, rest) {
                    Ok(0) => return Err("the peer took no bytes".into()),
                    Ok(n) => IoSlice::advance_slices(&mut rest, n),
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    fn recv(&mut self, len: usize) -> Fallible<&[u8]> {
        self.ahead.next(&mut self.reader, len, &mut self.buf)
    }

    fn try_recv(&mut self, len: usize) -> Fallible<Option<&[u8]>> {
        if self.ahead.held() == 0 && !super::readable_now(&self.reader)? {
            return Ok(None);
        }
        self.recv(len).map(Some)
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
    FdLink::socket(unix_accept(address, announce)?.into(), usize::MAX)
}

/// Client side of a Unix socket.
pub fn unix_connect(address: &str) -> Fallible<FdLink> {
    FdLink::socket(unix_stream_to(address)?.into(), usize::MAX)
}

/// Binds a Unix socket at `address` (a path, made 0600, removed when the
/// client is accepted, or `@name`), announces it and accepts one client.
pub(super) fn unix_accept(address: &str, announce: &mut dyn FnMut(&str)) -> Fallible<UnixStream> {
    let listener = UnixListener::bind_addr(&unix_addr(address)?)?;
    let path = (!address.starts_with('@')).then(|| Path::new(address).to_path_buf());
    if let Some(path) = &path {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let _cleanup = path.map(super::RemoveOnDrop);
    announce(address);
    Ok(listener.accept()?.0)
}

/// Connects to the Unix socket at `address` (a path or `@name`).
pub(super) fn unix_stream_to(address: &str) -> Fallible<UnixStream> {
    Ok(UnixStream::connect_addr(&unix_addr(address)?)?)
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
    // Both ends are on this machine, where utp sends with Reno rather than
    // the system's algorithm (which may pace: BBR does).
    rustix::net::sockopt::set_tcp_congestion(&stream, utp::__bench::TCP_LOCAL_CONGESTION)?;
    FdLink::socket(stream.into(), TCP_READ_PIECE)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Messages of every kind the reader sees: small ones many to a read,
    /// one cut across two reads, one larger than utp reads into its buffer
    /// (part of it already buffered), and the stream's end; the large one
    /// read whole, and in pieces (TCP's, and pieces that do not divide it).
    #[test]
    fn a_socket_reader_hands_out_each_message_whole_and_in_order() {
        for piece in [usize::MAX, TCP_READ_PIECE, 1000] {
            hands_out_each_message_whole_and_in_order(piece);
        }
    }

    /// A batch arrives as its messages, in order and whole, whether it
    /// was copied into one buffer (64 B and 1 KiB messages) or written
    /// from where the messages are (5 000 B).
    #[test]
    fn a_batch_arrives_as_its_messages_in_order() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut reader = FdLink::socket(ours.into(), usize::MAX).unwrap();
        let mut writer = FdLink::socket(theirs.into(), usize::MAX).unwrap();
        for (count, size) in [(16, 64), (16, 1024), (8, 5000)] {
            let batch = messages(count, size);
            let sent = batch.clone();
            let sender = std::thread::spawn(move || {
                let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                writer.send_batch(&refs).unwrap();
                writer
            });
            for (i, want) in sent.iter().enumerate() {
                assert!(
                    reader.recv(size).unwrap() == &want[..],
                    "{size} B, message {i}"
                );
            }
            writer = sender.join().unwrap();
        }
    }

    /// Over pipes a batch also arrives as its messages, in order and
    /// whole, and the reader takes small messages whole up to a page a
    /// read, as utp's pipe reader does: after the first of 16 messages of
    /// 64 B the other 15 are read already; of 16 of 300 B (13 fit in a
    /// page), the 12 read with it; of 1 000 B (fewer than eight fit), none.
    #[test]
    fn a_pipe_reader_reads_whole_messages_up_to_a_page() {
        let (ours_read, theirs_write) = rustix::pipe::pipe().unwrap();
        let (theirs_read, ours_write) = rustix::pipe::pipe().unwrap();
        let mut reader = FdLink::pipes(ours_read, ours_write).unwrap();
        let mut writer = FdLink::pipes(theirs_read, theirs_write).unwrap();
        for (count, size, held_after_first) in
            [(16, 64, 15 * 64), (16, 300, 12 * 300), (8, 1000, 0)]
        {
            let batch = messages(count, size);
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            // The pipes hold 256 KiB: the whole batch is written at once.
            writer.send_batch(&refs).unwrap();
            for (i, want) in batch.iter().enumerate() {
                assert!(
                    reader.recv(size).unwrap() == &want[..],
                    "{size} B, message {i}"
                );
                if i == 0 {
                    assert_eq!(reader.ahead.held(), held_after_first, "{size} B");
                }
            }
        }
        drop(writer);
        let end = reader.recv(8).unwrap_err().to_string();
        assert!(end.contains("closed"), "{end}");
    }

    /// `count` messages of `size` bytes, each of its own byte.
    fn messages(count: usize, size: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| vec![(i * 7 + size % 251) as u8; size])
            .collect()
    }

    fn hands_out_each_message_whole_and_in_order(piece: usize) {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut link = FdLink::socket(ours.into(), piece).unwrap();
        let message = |n: usize, seed: u8| -> Vec<u8> {
            (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
        };
        let direct = utp::__bench::STREAM_DIRECT_READ_MIN + 5;
        let sizes = [64, 64, 100, 7, direct, 64, TCP_READ_PIECE + 3000, 3];
        let sent: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| message(n, i as u8 * 31))
            .collect();
        // Everything but the last 10 bytes at once: the reader finds several
        // messages in one read and the large one begun in its buffer.
        let all: Vec<u8> = sent.concat();
        let writer = std::thread::spawn(move || {
            theirs.write_all(&all[..all.len() - 10]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            theirs.write_all(&all[all.len() - 10..]).unwrap();
            theirs
        });
        for (i, want) in sent.iter().enumerate() {
            let got = link.recv(want.len()).unwrap();
            assert!(
                got == &want[..],
                "message {i} of {} bytes, read in pieces of {piece}",
                want.len()
            );
        }
        drop(writer.join().unwrap());
        let end = link.recv(8).unwrap_err().to_string();
        assert!(end.contains("closed"), "{end}");
    }
}
