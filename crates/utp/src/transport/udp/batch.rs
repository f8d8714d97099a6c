//! Sending datagrams: one frame's ([`send_one`]) and a batch's
//! ([`send_datagrams`], for [`Channel::send_batch`]), which goes to the
//! kernel in runs of up to [`RUN`] with one `sendmmsg`, where a loop of
//! `send` makes one system call per frame. Each frame stays one datagram
//! (boundaries, loss and limits as for `send`); only the system calls are
//! shared. What a refused datagram means is the [`Sender`]'s to say, the
//! same for both.

use super::*;
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
use std::io::{self, IoSlice};
use std::os::fd::BorrowedFd;

/// Datagrams handed over by one `sendmmsg` at most: their headers and
/// message headers sit on the stack.
const RUN: usize = 32;

/// Where the datagrams of a batch go, and how.
pub(super) struct Route<'a> {
    /// The socket they are sent from.
    pub socket: BorrowedFd<'a>,
    /// Their destination, for a socket not connected to it.
    pub to: Option<SocketAddrAny>,
    /// The largest payload of one frame.
    pub limit: usize,
    /// `DONTWAIT` for a socket whose sender waits with `poll` (the client),
    /// empty for one that sleeps in the call (the server's).
    pub flags: SendFlags,
}

impl Route<'_> {
    /// One datagram of `bytes` along this route: `send` on a connected
    /// socket, `sendto` otherwise.
    pub(super) fn send(&self, bytes: &[u8]) -> io::Result<usize> {
        match &self.to {
            Some(to) => rustix::net::sendto(self.socket, bytes, self.flags, to),
            None => rustix::net::send(self.socket, bytes, self.flags),
        }
        .map_err(io::Error::from)
    }
}

#[cfg(test)]
thread_local! {
    /// `sendmmsg` calls this thread made: tests count them.
    static CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What to do when the kernel refused a datagram.
pub(super) enum Refusal {
    /// Send it again (the error was about an earlier datagram).
    Retry,
    /// No room in the socket's buffer: the sender decides whether to wait.
    Full,
    /// The batch ends with this error.
    Fail(Error),
}

/// What differs between the client's and the server's sends.
pub(super) trait Sender {
    /// What a refusal of a datagram with `error` means.
    fn refused(&mut self, error: io::Error) -> Refusal;
    /// Waits for room in the socket's buffer (`Ok(true)`), or says not to
    /// (`Ok(false)`: the batch ends there, a send that does not wait).
    fn wait_for_room(&mut self) -> Result<bool>;
    /// The stamper numbered frames or gave numbers back (before the
    /// frames are sent: a reply may come back at once).
    fn numbered(&mut self, _stamper: &Stamper) {}
}

/// Sends one encoded frame with `send` (one `send` or `sendto`, not
/// `sendmmsg`: a single frame's path stays the leanest), handling each
/// refusal as `sender` says.
pub(super) fn send_one(
    sender: &mut impl Sender,
    mut send: impl FnMut() -> io::Result<usize>,
) -> Result<()> {
    loop {
        let Err(error) = send() else { return Ok(()) };
        match sender.refused(error) {
            Refusal::Retry => {}
            Refusal::Full => {
                if !sender.wait_for_room()? {
                    return Err(Error::Timeout {
                        waiting_for: ROOM,
                        after: Duration::ZERO,
                    });
                }
            }
            Refusal::Fail(e) => return Err(e),
        }
    }
}

/// What a send waits for when the socket's buffer is full.
const ROOM: &str = "room in the UDP send buffer";

/// Waits until `socket` has room for a datagram, at most until `deadline`
/// (`timeout`: the whole wait, for the error).
pub(super) fn wait_for_room(
    socket: BorrowedFd<'_>,
    deadline: Deadline,
    timeout: Option<Duration>,
) -> Result<()> {
    wait_ready(socket, Ready::Write, deadline, ROOM, timeout)
}

/// [`Channel::try_send_batch`]'s answer from what [`send_datagrams`]
/// returned: the frames sent, or the failure when it came first.
pub(super) fn taken((sent, outcome): (usize, Result<()>)) -> Result<usize> {
    match (sent, outcome) {
        (0, Err(e)) => Err(e),
        (sent, _) => Ok(sent),
    }
}

/// Stamps each payload as `send` stamps it and sends one datagram per
/// frame, in order, in runs of [`RUN`]. Returns how many frames were sent,
/// and what ended the batch early if anything did: a payload over the
/// limit (the frames before it sent first), an error, or no room for a
/// sender that does not wait (`Ok`). The numbers of frames stamped and
/// not sent are given back, so the next frame takes the first of them.
pub(super) fn send_datagrams(
    route: &Route<'_>,
    stamper: &mut Stamper,
    sender: &mut impl Sender,
    message_type: u8,
    flags: u16,
    payloads: &[&[u8]],
) -> (usize, Result<()>) {
    let mut sent = 0;
    while sent < payloads.len() {
        let end = run_end(payloads, sent, route.limit);
        if end == sent {
            let error = Error::TooLarge {
                len: payloads[sent].len(),
                limit: route.limit,
                transport: TRANSPORT,
            };
            return (sent, Err(error));
        }
        let run = &payloads[sent..end];
        let mut heads = [[0u8; HEADER_LEN]; RUN];
        // One clock read for the run: its datagrams are sent together.
        let now = frame::coarse_micros();
        for (head, payload) in heads.iter_mut().zip(run) {
            stamper.stamp_at(message_type, flags, payload, now, head);
        }
        sender.numbered(stamper);
        let mut taken = 0;
        while taken < run.len() {
            match send_run(route, &heads[taken..run.len()], &run[taken..]) {
                Ok(n) => taken += n,
                Err(error) => {
                    let outcome = match sender.refused(error) {
                        Refusal::Retry => continue,
                        Refusal::Full => match sender.wait_for_room() {
                            Ok(true) => continue,
                            Ok(false) => Ok(()),
                            Err(e) => Err(e),
                        },
                        Refusal::Fail(e) => Err(e),
                    };
                    stamper.unstamp((run.len() - taken) as u64);
                    sender.numbered(stamper);
                    return (sent + taken, outcome);
                }
            }
        }
        sent = end;
    }
    (sent, Ok(()))
}

/// Where the run starting at `start` ends: at most [`RUN`] frames, before
/// the first payload over `limit` (so at `start` if that is one).
fn run_end(payloads: &[&[u8]], start: usize, limit: usize) -> usize {
    payloads[start..]
        .iter()
        .take(RUN)
        .position(|payload| payload.len() > limit)
        .map_or((start + RUN).min(payloads.len()), |over| start + over)
}

/// One `sendmmsg` of the frames `heads[i]` + `payloads[i]`: how many
/// datagrams the kernel took (at least one), or why it took none. (The
/// kernel reports an error only when it meets it at the first datagram;
/// one it meets later ends the call with the count before it, and the
/// next call starts at that datagram.)
fn send_run(
    route: &Route<'_>,
    heads: &[[u8; HEADER_LEN]],
    payloads: &[&[u8]],
) -> io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); 2 * RUN];
    for (i, (head, payload)) in heads.iter().zip(payloads).enumerate() {
        slices[2 * i] = IoSlice::new(head);
        slices[2 * i + 1] = IoSlice::new(payload);
    }
    let mut controls: [SendAncillaryBuffer<'_, '_, '_>; RUN] =
        std::array::from_fn(|_| SendAncillaryBuffer::default());
    let mut iovs = slices.chunks(2);
    let mut messages = controls.each_mut().map(|control| {
        let iov = iovs.next().unwrap_or_default();
        match &route.to {
            Some(to) => MMsgHdr::new_with_addr(to, iov, control),
            None => MMsgHdr::new(iov, control),
        }
    });
    let count = payloads.len();
    #[cfg(test)]
    CALLS.with(|n| n.set(n.get() + 1));
    loop {
        match sendmmsg(route.socket, &mut messages[..count], route.flags) {
            Ok(0) => return Err(io::Error::from(ErrorKind::WouldBlock)),
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::flags::CHECKSUM;
    use crate::frame::message_type::DATA;
    use std::os::unix::net::UnixDatagram;

    /// A sender that never waits for room.
    struct NoWait;

    impl Sender for NoWait {
        fn refused(&mut self, error: io::Error) -> Refusal {
            match error.kind() {
                ErrorKind::WouldBlock => Refusal::Full,
                _ => Refusal::Fail(Error::io("send a test datagram", error)),
            }
        }

        fn wait_for_room(&mut self) -> Result<bool> {
            Ok(false)
        }
    }

    fn route(socket: BorrowedFd<'_>, limit: usize, flags: SendFlags) -> Route<'_> {
        Route {
            socket,
            to: None,
            limit,
            flags,
        }
    }

    /// The next `count` datagrams on `socket` are frames numbered from
    /// `first`, carrying `payloads` in order.
    fn expect_frames(socket: &UdpSocket, first: u64, payloads: &[&[u8]]) {
        let mut buf = vec![0u8; MAX_DATAGRAM_V6];
        for (i, payload) in payloads.iter().enumerate() {
            let n = socket.recv(&mut buf).unwrap();
            let (header, got) = frame::decode(&buf[..n], MAX_PAYLOAD_V6).unwrap();
            assert_eq!(header.sequence, first + i as u64);
            assert_eq!(got, *payload, "frame {i}");
        }
    }

    fn loopback_pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (a, b)
    }

    #[test]
    fn a_batch_goes_out_32_datagrams_a_call_and_a_payload_over_the_limit_ends_it() {
        let (a, b) = loopback_pair();
        let blocking = route(a.as_fd(), 100, SendFlags::empty());
        let payloads: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; usize::from(i)]).collect();
        let all: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let mut stamper = Stamper::default();
        CALLS.with(|n| n.set(0));
        let reads = || crate::frame::CLOCK_READS.with(|n| n.get());
        let reads_before = reads();
        let (sent, outcome) =
            send_datagrams(&blocking, &mut stamper, &mut NoWait, DATA, CHECKSUM, &all);
        outcome.unwrap();
        assert_eq!((sent, CALLS.with(|n| n.get())), (100, 4));
        assert_eq!(reads() - reads_before, 4, "one clock read a run");
        expect_frames(&b, 1, &all);
        for (frames, calls) in [(32, 1), (33, 2)] {
            CALLS.with(|n| n.set(0));
            let batch = &all[..frames];
            let (sent, outcome) =
                send_datagrams(&blocking, &mut stamper, &mut NoWait, DATA, CHECKSUM, batch);
            outcome.unwrap();
            assert_eq!((sent, CALLS.with(|n| n.get())), (frames, calls));
            expect_frames(&b, stamper.last_sequence() + 1 - frames as u64, batch);
        }

        // The 50th payload is over the limit: the 49 before it go out (two
        // calls) and nothing after it; the next frame is numbered 215.
        let mut over = all.clone();
        let big = [7u8; 101];
        over[49] = &big;
        CALLS.with(|n| n.set(0));
        let (sent, outcome) =
            send_datagrams(&blocking, &mut stamper, &mut NoWait, DATA, CHECKSUM, &over);
        assert!(
            matches!(
                outcome,
                Err(Error::TooLarge {
                    len: 101,
                    limit: 100,
                    ..
                })
            ),
            "{outcome:?}"
        );
        assert_eq!((sent, CALLS.with(|n| n.get())), (49, 2));
        assert_eq!(stamper.last_sequence(), 214);
        expect_frames(&b, 166, &all[..49]);
        let (sent, outcome) = send_datagrams(
            &blocking,
            &mut stamper,
            &mut NoWait,
            DATA,
            CHECKSUM,
            &all[..1],
        );
        assert_eq!((sent, outcome.is_ok()), (1, true));
        expect_frames(&b, 215, &all[..1]);
    }

    #[test]
    fn a_full_socket_ends_a_batch_that_does_not_wait_and_gives_the_unsent_numbers_back() {
        // A Unix datagram pair with the smallest send buffer holds a few
        // datagrams until its reader reads: a batch of 100 fills it.
        let (a, b) = UnixDatagram::pair().unwrap();
        rustix::net::sockopt::set_socket_send_buffer_size(&a, 1).unwrap();
        let payloads: Vec<[u8; 64]> = (0..100u8).map(|i| [i; 64]).collect();
        let all: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
        let dont_wait = route(a.as_fd(), 1000, SendFlags::DONTWAIT);
        let mut stamper = Stamper::default();
        let send = |stamper: &mut Stamper, batch: &[&[u8]]| {
            send_datagrams(&dont_wait, stamper, &mut NoWait, DATA, CHECKSUM, batch)
        };
        let (sent, outcome) = send(&mut stamper, &all);
        outcome.unwrap();
        assert!(sent > 0 && sent < all.len(), "{sent} of 100 sent");
        assert_eq!(
            stamper.last_sequence(),
            sent as u64,
            "the unsent numbers given back"
        );
        let (more, outcome) = send(&mut stamper, &all[sent..]);
        assert_eq!((more, outcome.is_ok()), (0, true), "still full");
        assert_eq!(stamper.last_sequence(), sent as u64);

        // Every datagram taken is one whole frame, numbered without a gap;
        // once read, the rest follows on with the next numbers.
        b.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        let mut next = |b: &UnixDatagram| {
            let n = b.recv(&mut buf).unwrap();
            let (header, payload) = frame::decode(&buf[..n], 1000).unwrap();
            (header.sequence, payload[0], payload.len())
        };
        for i in 0..sent {
            assert_eq!(next(&b), (i as u64 + 1, i as u8, 64));
        }
        assert_eq!(
            b.recv(&mut [0u8; 8]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        let (more, outcome) = send(&mut stamper, &all[sent..]);
        outcome.unwrap();
        assert!(more > 0);
        assert_eq!(next(&b), (sent as u64 + 1, sent as u8, 64));
    }
}
