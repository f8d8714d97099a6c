//! The client end: a UDP socket connected to the server's address.

use super::batch::{self, Refusal, Route};
use super::*;
use crate::GoneReason;
use crate::halves::{RecvHalf, Role, SendHalf};
use rustix::net::SendFlags;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::AtomicU64;

/// The client end: a UDP socket connected to the server's address.
#[derive(Debug)]
pub struct UdpChannel {
    socket: UdpSocket,
    server: SocketAddr,
    stamper: Stamper,
    max_payload: usize,
    buf: Box<[u8]>,
    /// The outgoing datagram, reused.
    out: Vec<u8>,
    closed: bool,
    /// Whole, or one half of a split channel.
    role: Role,
    /// Split halves: the send half publishes what it numbered, so the
    /// receive half can tell its replies from a previous owner's.
    numbering: Option<Arc<Numbering>>,
}

/// The send half's numbering, read by the receive half.
#[derive(Debug, Default)]
struct Numbering {
    last: AtomicU64,
    numbered: AtomicU64,
}

impl Numbering {
    fn publish(&self, stamper: &Stamper) {
        let (last, numbered) = stamper.numbering();
        self.numbered.store(0, Ordering::Release);
        self.last.store(last, Ordering::Release);
        self.numbered.store(numbered, Ordering::Release);
    }

    fn numbered(&self, sequence: u64) -> bool {
        let numbered = self.numbered.load(Ordering::Acquire);
        self.last.load(Ordering::Acquire).wrapping_sub(sequence) < numbered
    }
}

/// Opens a UDP socket aimed at the endpoint (nothing is sent until the first frame).
pub fn connect(endpoint: &Endpoint, options: &Options) -> Result<UdpChannel> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["udp"])?;
    let server = resolve(endpoint)?[0];
    let any: SocketAddr = match server {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("valid address"),
        SocketAddr::V6(_) => "[::]:0".parse().expect("valid address"),
    };
    open(server, any, options)
}

/// Opens a socket bound at `local` and aimed at `server`.
fn open(server: SocketAddr, local: SocketAddr, options: &Options) -> Result<UdpChannel> {
    let socket = UdpSocket::bind(local).map_err(|e| Error::io("bind a UDP socket", e))?;
    socket
        .connect(server)
        .map_err(|e| Error::io(format!("aim a UDP socket at {server}"), e))?;
    // Blocking: a receive with no deadline is one `recv` that sleeps in
    // the kernel; every other call says `MSG_DONTWAIT` and waits with
    // `poll` under its deadline (see `recv_once`).
    tune(&socket);
    // The port may have belonged to a client that died with requests in
    // flight; the server may still answer them. Numbering ours from a random
    // start lets `recv` tell its replies from ours.
    let mut stamper = Stamper::default();
    stamper.start_at_random();
    Ok(UdpChannel {
        socket,
        server,
        stamper,
        max_payload: options.max_payload,
        buf: vec![0u8; MAX_DATAGRAM_V6].into_boxed_slice(),
        out: Vec::new(),
        closed: false,
        role: Role::Whole,
        numbering: None,
    })
}

impl UdpChannel {
    /// Largest payload this channel can send in one datagram.
    pub fn max_send_payload(&self) -> usize {
        payload_limit(&self.server)
    }

    fn unreachable(&self) -> Error {
        unreachable(self.server)
    }
}

/// What a client's send or receive says when nothing listens at `server`.
fn unreachable(server: SocketAddr) -> Error {
    Error::peer_gone(
        GoneReason::Unreachable,
        format!("nothing answers at udp://{server}: port unreachable (is the server running?)"),
    )
}

/// A client's send: no room waits with `poll` until a deadline (or ends a
/// batch that must not wait); "port unreachable" ends it with `PeerGone`.
struct ClientSender<'a> {
    socket: BorrowedFd<'a>,
    server: SocketAddr,
    numbering: Option<&'a Numbering>,
    /// Until when to wait for room, and the whole wait (for the error);
    /// `None`: not at all.
    room: Option<(Deadline, Option<Duration>)>,
}

impl<'a> ClientSender<'a> {
    /// How the sends of the client of `socket` handle refusals, waiting
    /// for room as `room` says (borrowing only these fields, so a batch
    /// may stamp meanwhile).
    fn new(
        socket: &'a UdpSocket,
        server: SocketAddr,
        numbering: &'a Option<Arc<Numbering>>,
        room: Option<(Deadline, Option<Duration>)>,
    ) -> Self {
        ClientSender {
            socket: socket.as_fd(),
            server,
            numbering: numbering.as_deref(),
            room,
        }
    }
}

impl batch::Sender for ClientSender<'_> {
    fn refused(&mut self, error: io::Error) -> Refusal {
        match error.kind() {
            ErrorKind::Interrupted => Refusal::Retry,
            ErrorKind::WouldBlock => Refusal::Full,
            ErrorKind::ConnectionRefused => Refusal::Fail(unreachable(self.server)),
            _ => Refusal::Fail(Error::io(format!("send to udp://{}", self.server), error)),
        }
    }

    fn wait_for_room(&mut self) -> Result<bool> {
        let Some((deadline, timeout)) = self.room else {
            return Ok(false);
        };
        batch::wait_for_room(self.socket, deadline, timeout).map(|()| true)
    }

    fn numbered(&mut self, stamper: &Stamper) {
        if let Some(numbering) = self.numbering {
            numbering.publish(stamper);
        }
    }
}

/// How a client's datagrams go: on its socket, connected to the server,
/// without waiting in the call (a send that finds no room waits with
/// `poll`, within its deadline).
fn route<'a>(socket: &'a UdpSocket, server: &SocketAddr, max_payload: usize) -> Route<'a> {
    Route {
        socket: socket.as_fd(),
        to: None,
        limit: payload_limit(server).min(max_payload),
        flags: SendFlags::DONTWAIT,
    }
}

impl UdpChannel {
    /// [`batch::send_datagrams`] from this client, waiting for room or not.
    fn send_datagrams(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
        wait: bool,
    ) -> (usize, Result<()>) {
        if self.closed {
            return (0, Err(Error::Closed));
        }
        let route = route(&self.socket, &self.server, self.max_payload);
        let room = wait.then(|| (Deadline::after(None), None));
        let mut sender = ClientSender::new(&self.socket, self.server, &self.numbering, room);
        let stamper = &mut self.stamper;
        batch::send_datagrams(&route, stamper, &mut sender, message_type, flags, payloads)
    }

    /// Waits at most `timeout` for the server's next datagram that is this
    /// conversation's and returns its header and where its frame ends in
    /// `buf` (checked; bytes after the frame are ignored, as `decode` does).
    fn next_datagram(&mut self, timeout: Option<Duration>) -> Result<(Header, usize)> {
        if self.closed {
            return Err(Error::Closed);
        }
        let deadline = Deadline::after(timeout);
        loop {
            let n = match recv_once(&self.socket, &mut self.buf, timeout.is_none()) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    wait_ready(
                        self.socket.as_fd(),
                        Ready::Read,
                        deadline,
                        "a datagram from the server (it may have been lost)",
                        timeout,
                    )?;
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    return Err(self.unreachable());
                }
                Err(e) => return Err(Error::io(format!("receive from udp://{}", self.server), e)),
            };
            // Only the server's datagrams reach this connected socket; an
            // invalid one is reported (the channel stays usable).
            let Some(FrameRef { header, .. }) = message::lend(&self.buf[..n], self.max_payload)?
            else {
                // A bare empty datagram cannot say whose conversation it
                // ends (utp servers send a GOODBYE reply instead).
                log::debug!("udp://{}: ignored an empty datagram", self.server);
                continue;
            };
            let ours = match &self.numbering {
                Some(numbering) => numbering.numbered(header.sequence),
                None => self.stamper.numbered(header.sequence),
            };
            if header.flags & flags::REPLY != 0 && !ours {
                // Meant for whoever had this port before us.
                log::debug!(
                    "udp://{}: dropped a reply to frame {}, which this channel never sent",
                    self.server,
                    header.sequence
                );
                continue;
            }
            if header.message_type == message_type::GOODBYE && header.flags & flags::REPLY != 0 {
                return Err(Error::peer_gone(
                    GoneReason::Closed,
                    format!("udp://{} ended this conversation", self.server),
                ));
            }
            return Ok((header, header.frame_len()));
        }
    }
}

impl Channel for UdpChannel {
    /// One `sendmmsg` per 32 frames (see [`Channel::send_batch`]).
    fn send_batch(&mut self, message_type: u8, flags: u16, payloads: &[&[u8]]) -> Result<()> {
        self.send_datagrams(message_type, flags, payloads, true).1
    }

    fn try_send_batch(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> Result<usize> {
        batch::taken(self.send_datagrams(message_type, flags, payloads, false))
    }

    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        let route = route(&self.socket, &self.server, self.max_payload);
        message::encode(
            &mut self.stamper,
            message_type,
            flags,
            payload,
            None,
            route.limit,
            TRANSPORT,
            &mut self.out,
        )?;
        if let Some(numbering) = &self.numbering {
            numbering.publish(&self.stamper);
        }
        let room = Some((Deadline::after(timeout), timeout));
        let mut sender = ClientSender::new(&self.socket, self.server, &self.numbering, room);
        let sent = batch::send_one(&mut sender, || route.send(&self.out));
        if sent.is_err() {
            // Not sent (no room in time, nothing listening): its number is
            // given back, as a batch gives back those of the frames it did
            // not send, so `try_send` finding no room numbers nothing.
            self.stamper.unstamp(1);
            if let Some(numbering) = &self.numbering {
                numbering.publish(&self.stamper);
            }
        }
        sent
    }

    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        let (header, end) = self.next_datagram(timeout)?;
        frame.set(header, &self.buf[HEADER_LEN..end]);
        Ok(())
    }

    /// Lent from the channel's receive buffer, where the datagram arrived.
    fn recv_ref<'a>(
        &'a mut self,
        _spare: &'a mut Frame,
        timeout: Option<Duration>,
    ) -> Result<FrameRef<'a>> {
        let (header, end) = self.next_datagram(timeout)?;
        Ok(FrameRef {
            header,
            payload: &self.buf[HEADER_LEN..end],
        })
    }

    fn try_recv_ref<'a>(&'a mut self, spare: &'a mut Frame) -> Result<Option<FrameRef<'a>>> {
        crate::channel::lent_now(self.recv_ref(spare, Some(Duration::ZERO)))
    }

    fn close(&mut self) -> Result<()> {
        // The empty datagram is the client's goodbye: a receive half has none to say.
        if !std::mem::replace(&mut self.closed, true) && self.role != Role::Receiver {
            let _ = rustix::net::send(&self.socket, &[], SendFlags::DONTWAIT);
        }
        Ok(())
    }

    // One socket, two descriptors: the send half sends (and says goodbye
    // when dropped, which ends the server's conversation), the receive half
    // receives.
    fn split(mut self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        let socket = self
            .socket
            .try_clone()
            .map_err(|e| Error::io("duplicate a UDP socket", e))?;
        let numbering = Arc::new(Numbering::default());
        numbering.publish(&self.stamper);
        let sender = UdpChannel {
            socket,
            server: self.server,
            stamper: self.stamper.clone(),
            max_payload: self.max_payload,
            buf: Box::new([]),
            out: std::mem::take(&mut self.out),
            closed: self.closed,
            role: Role::Sender,
            numbering: Some(numbering.clone()),
        };
        self.role = Role::Receiver;
        self.numbering = Some(numbering);
        Ok(crate::halves::halves(sender, *self))
    }

    fn into_any(self: Box<Self>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(self)
    }

    fn as_any(&self) -> Option<&(dyn std::any::Any + Send)> {
        Some(self)
    }

    fn sent_sequence(&self) -> Option<u64> {
        self.stamper.last_sent()
    }

    fn peer(&self) -> PeerInfo {
        PeerInfo {
            address: Some(self.server.to_string()),
            ..PeerInfo::default()
        }
    }

    /// The socket: readable when a datagram from the server is there. UDP
    /// has no hang-up; a server that goes away says GOODBYE (then
    /// `try_recv` fails with `PeerGone`), one that dies says nothing.
    fn readiness(&self) -> Option<crate::channel::Readiness<'_>> {
        Some(crate::channel::Readiness {
            fd: self.socket.as_fd(),
            frame_deadline: None,
            idle_timeout: None,
        })
    }
}

impl Drop for UdpChannel {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::udp::{UdpListener, listen};

    /// A listener, and the conversation a client (now gone) started with
    /// one frame numbered 1 from the port it returns, free for the next one.
    fn dead_clients_conversation(
        message_type: u8,
        payload: &[u8],
    ) -> (UdpListener, SocketAddr, SocketAddr, Box<dyn Channel>) {
        let endpoint = Endpoint::parse("udp://127.0.0.1:0").unwrap();
        let mut listener = listen(&endpoint, &Options::default()).unwrap();
        let server = listener.local_addr();
        let old = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = old.local_addr().unwrap();
        let mut request = Vec::new();
        message::encode(
            &mut Stamper::default(),
            message_type,
            flags::CHECKSUM,
            payload,
            None,
            1000,
            "test",
            &mut request,
        )
        .unwrap();
        old.send_to(&request, server).unwrap();
        let conversation = listener
            .accept_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (listener, server, port, conversation)
    }

    /// A client dies with a request in flight and the kernel gives its port
    /// to the next client: the server's late reply and goodbye for the dead
    /// conversation reach the new one, which must not take them as its own.
    #[test]
    fn a_new_client_on_a_dead_clients_port_ignores_the_replies_meant_for_it() {
        let options = Options::default();
        let (_listener, server, port, mut conversation) =
            dead_clients_conversation(message_type::REQUEST, b"ADD 1 2");
        let mut frame = Frame::default();
        conversation
            .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(frame.header.sequence, 1);

        // The new client gets the same port; the old conversation answers.
        let mut client = open(server, port, &options).unwrap();
        conversation
            .reply_timeout(message_type::RESPONSE, flags::CHECKSUM, b"OK 3", 1, None)
            .unwrap();
        let stale = client.recv_timeout(&mut frame, Some(Duration::from_millis(200)));
        assert!(matches!(stale, Err(Error::Timeout { .. })), "{stale:?}");

        // Its own request gets its own answer, even after a stale one.
        client
            .send(message_type::REQUEST, flags::CHECKSUM, b"ADD 40 2")
            .unwrap();
        let ours = client.sent_sequence().unwrap();
        conversation
            .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(frame.header.sequence, ours);
        conversation
            .reply_timeout(message_type::RESPONSE, flags::CHECKSUM, b"OK 3", 1, None)
            .unwrap();
        conversation
            .reply_timeout(
                message_type::RESPONSE,
                flags::CHECKSUM,
                b"OK 42",
                ours,
                None,
            )
            .unwrap();
        client
            .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(frame.payload(), b"OK 42");
        assert_eq!(frame.header.sequence, ours);

        // The server's goodbye names our frame: that one ends the channel.
        conversation.close().unwrap();
        let gone = client.recv_timeout(&mut frame, Some(Duration::from_secs(5)));
        assert!(matches!(gone, Err(Error::PeerGone { .. })), "{gone:?}");
    }

    #[test]
    fn a_goodbye_for_an_earlier_conversation_on_the_port_does_not_end_ours() {
        let options = Options::default();
        let (_listener, server, port, mut conversation) =
            dead_clients_conversation(message_type::DATA, b"x");
        let mut client = open(server, port, &options).unwrap();
        client
            .send(message_type::DATA, flags::CHECKSUM, b"y")
            .unwrap();
        // The old conversation (which now also holds our frame, by address)
        // is closed after naming the old client's frame 1 last.
        let mut frame = Frame::default();
        conversation
            .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(frame.payload(), b"x");
        conversation.close().unwrap();
        let after = client.recv_timeout(&mut frame, Some(Duration::from_millis(200)));
        assert!(matches!(after, Err(Error::Timeout { .. })), "{after:?}");
    }

    /// A client aimed at a port nothing listens on learns it from the ICMP
    /// "port unreachable" its send provokes: a receive that sleeps in the
    /// kernel (no deadline) and one that polls (a deadline) both end with
    /// `PeerGone(Unreachable)` at once, never waiting out their time.
    #[test]
    fn a_receive_ends_when_nothing_listens_at_the_server_port() {
        for deadline in [None, Some(Duration::from_secs(30))] {
            let vacant = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let mut client = open(vacant, any, &Options::default()).unwrap();
            let (done, result) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let sent = client.send(message_type::DATA, flags::CHECKSUM, b"anyone?");
                let mut frame = Frame::default();
                let _ = done.send((sent, client.recv_timeout(&mut frame, deadline)));
            });
            let (sent, received) = result
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("deadline {deadline:?}: the receive still waits"));
            // The refusal may already show on the send.
            let error = match sent {
                Err(error) => error,
                Ok(()) => received.unwrap_err(),
            };
            assert!(
                matches!(
                    error,
                    Error::PeerGone {
                        reason: GoneReason::Unreachable,
                        ..
                    }
                ),
                "deadline {deadline:?}: {error:?}"
            );
        }
    }
}
