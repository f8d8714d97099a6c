//! `udp://HOST:PORT`: UDP datagrams, one UTP frame per datagram.
//!
//! - A frame (32-byte header + payload) must fit one datagram: at most
//!   65,507 bytes over IPv4 and 65,527 over IPv6, so payloads are limited to
//!   [`MAX_PAYLOAD_V4`] / [`MAX_PAYLOAD_V6`]. A larger payload is refused with
//!   [`Error::TooLarge`] before anything is sent.
//! - There are no connections. The listener reads every datagram on one
//!   socket and demultiplexes by source address: the first valid frame from
//!   a new address creates a channel that `accept` returns, and replies go
//!   back to that address.
//! - Datagrams that reach the listener and are not valid UTP frames
//!   (garbage, bad checksum, too large) are dropped and logged; they never
//!   reach a channel and never disturb any client. A client's channel
//!   reports an invalid datagram from its server as an error and stays usable.
//! - An empty datagram means "goodbye": closing a channel sends one, and the
//!   other side's next receive reports [`Error::PeerGone`]. A client whose
//!   server is not running sees `PeerGone` too, from the ICMP "port
//!   unreachable" the kernel reports on its connected socket.
//! - **Loss is possible** (and reordering, off the loopback interface). utp
//!   does not retransmit: a lost request or reply shows up as a clean
//!   [`Error::Timeout`] in the caller's receive, and the channel stays usable.
//!   Retrying is left to the application, which alone knows whether a request
//!   is safe to repeat.

use super::tcp::resolve;
use super::wait::{Ready, wait_ready};
use crate::channel::{Channel, Deadline, Listener, Options, PeerInfo};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::frame::{self, Frame, HEADER_LEN, Header, Stamper};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header).
pub const MAX_DATAGRAM_V4: usize = 65_507;
/// Largest UDP payload over IPv6 without jumbograms: 65,535 − 8.
pub const MAX_DATAGRAM_V6: usize = 65_527;
/// Largest frame payload over IPv4.
pub const MAX_PAYLOAD_V4: usize = MAX_DATAGRAM_V4 - HEADER_LEN;
/// Largest frame payload over IPv6.
pub const MAX_PAYLOAD_V6: usize = MAX_DATAGRAM_V6 - HEADER_LEN;

/// Frames queued per server-side channel before new ones are dropped.
const QUEUE_DEPTH: usize = 4096;
/// New clients waiting for `accept`.
const BACKLOG: usize = 128;
/// Socket buffer asked for (the kernel caps it at `net.core.rmem_max`).
const SOCKET_BUFFER: usize = 4 << 20;
/// A server-side conversation with no datagram for this long is forgotten
/// silently (a client that crashed never says goodbye); the client's next
/// datagram starts a new one.
pub const IDLE_EXPIRY: Duration = Duration::from_secs(120);
/// How often the listener's reader thread looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

const TRANSPORT: &str = "udp (one frame per datagram: 65,507 bytes over IPv4, header included)";

fn payload_limit(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => MAX_PAYLOAD_V4,
        SocketAddr::V6(_) => MAX_PAYLOAD_V6,
    }
}

/// Builds the datagram for one frame, refusing payloads that cannot fit.
fn datagram(
    stamper: &mut Stamper,
    message_type: u8,
    flags: u16,
    payload: &[u8],
    limit: usize,
) -> Result<Vec<u8>> {
    if payload.len() > limit {
        return Err(Error::TooLarge {
            len: payload.len(),
            limit,
            transport: TRANSPORT,
        });
    }
    let mut bytes = vec![0u8; HEADER_LEN + payload.len()];
    let head: &mut [u8; HEADER_LEN] = (&mut bytes[..HEADER_LEN]).try_into().expect("32 bytes");
    stamper.stamp(message_type, flags, payload, head);
    bytes[HEADER_LEN..].copy_from_slice(payload);
    Ok(bytes)
}

fn tune(socket: &UdpSocket) {
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(socket, SOCKET_BUFFER);
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(socket, SOCKET_BUFFER);
}

/// The client end: a UDP socket connected to the server's address.
#[derive(Debug)]
pub struct UdpChannel {
    socket: UdpSocket,
    server: SocketAddr,
    stamper: Stamper,
    max_payload: usize,
    buf: Box<[u8]>,
    closed: bool,
}

/// Opens a UDP socket aimed at the endpoint (nothing is sent until the first frame).
pub fn connect(endpoint: &Endpoint, options: &Options) -> Result<UdpChannel> {
    let server = resolve(endpoint)?[0];
    let any: SocketAddr = match server {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("valid address"),
        SocketAddr::V6(_) => "[::]:0".parse().expect("valid address"),
    };
    let socket = UdpSocket::bind(any).map_err(|e| Error::io("bind a UDP socket", e))?;
    socket
        .connect(server)
        .map_err(|e| Error::io(format!("aim a UDP socket at {server}"), e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("make a UDP socket non-blocking", e))?;
    tune(&socket);
    Ok(UdpChannel {
        socket,
        server,
        stamper: Stamper::default(),
        max_payload: options.max_payload,
        buf: vec![0u8; MAX_DATAGRAM_V6].into_boxed_slice(),
        closed: false,
    })
}

impl UdpChannel {
    /// Largest payload this channel can send in one datagram.
    pub fn max_send_payload(&self) -> usize {
        payload_limit(&self.server)
    }

    fn unreachable(&self) -> Error {
        Error::PeerGone(format!(
            "nothing answers at udp://{}: port unreachable (is the server running?)",
            self.server
        ))
    }
}

impl Channel for UdpChannel {
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
        let limit = payload_limit(&self.server);
        let bytes = datagram(&mut self.stamper, message_type, flags, payload, limit)?;
        let deadline = Deadline::after(timeout);
        loop {
            match self.socket.send(&bytes) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => wait_ready(
                    self.socket.as_fd(),
                    Ready::Write,
                    deadline,
                    "room in the UDP send buffer",
                    timeout,
                )?,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    return Err(self.unreachable());
                }
                Err(e) => return Err(Error::io(format!("send to udp://{}", self.server), e)),
            }
        }
    }

    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        let deadline = Deadline::after(timeout);
        loop {
            let n = match self.socket.recv(&mut self.buf) {
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
            if n == 0 {
                return Err(Error::PeerGone(format!(
                    "udp://{} ended this conversation",
                    self.server
                )));
            }
            // Only the server's datagrams reach this connected socket; an
            // invalid one is reported (the channel stays usable).
            let (header, payload) = frame::decode(&self.buf[..n], self.max_payload)?;
            frame.set(header, payload);
            return Ok(());
        }
    }

    fn close(&mut self) -> Result<()> {
        if !std::mem::replace(&mut self.closed, true) {
            let _ = self.socket.send(&[]);
        }
        Ok(())
    }

    fn peer(&self) -> PeerInfo {
        PeerInfo {
            address: Some(self.server.to_string()),
            ..PeerInfo::default()
        }
    }
}

impl Drop for UdpChannel {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

type Message = (Header, Vec<u8>);

/// The server's end of one client's conversation.
#[derive(Debug)]
pub struct UdpServerChannel {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    client: SocketAddr,
    rx: Receiver<Message>,
    stamper: Stamper,
    closed: bool,
    last_heard: std::time::Instant,
}

impl Channel for UdpServerChannel {
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        _timeout: Option<Duration>,
    ) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        let limit = payload_limit(&self.client);
        let bytes = datagram(&mut self.stamper, message_type, flags, payload, limit)?;
        loop {
            return match self.socket.send_to(&bytes, self.client) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => Err(Error::io(format!("send to udp client {}", self.client), e)),
            };
        }
    }

    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        let gone = || {
            Error::PeerGone(format!(
                "udp client {} said goodbye (or the listener closed)",
                self.client
            ))
        };
        let deadline = Deadline::after(timeout);
        let (header, payload) = loop {
            let idle_left = IDLE_EXPIRY.saturating_sub(self.last_heard.elapsed());
            let wait = deadline.remaining().map_or(idle_left, |d| d.min(idle_left));
            match self.rx.recv_timeout(wait) {
                Ok(message) => break message,
                Err(RecvTimeoutError::Disconnected) => return Err(gone()),
                Err(RecvTimeoutError::Timeout) if self.last_heard.elapsed() >= IDLE_EXPIRY => {
                    // Forget it without a goodbye: it may just be quiet.
                    self.closed = true;
                    return Err(Error::PeerGone(format!(
                        "udp client {} silent for {IDLE_EXPIRY:?}; conversation expired",
                        self.client
                    )));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if deadline.remaining().is_some_and(|d| d.is_zero()) {
                        return Err(Error::Timeout {
                            waiting_for: "a datagram from the client (it may have been lost)",
                            after: timeout.unwrap_or_default(),
                        });
                    }
                }
            }
        };
        self.last_heard = std::time::Instant::now();
        frame.header = header;
        *frame.payload_mut() = payload;
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if !std::mem::replace(&mut self.closed, true) {
            let _ = self.socket.send_to(&[], self.client);
        }
        Ok(())
    }

    fn peer(&self) -> PeerInfo {
        PeerInfo {
            address: Some(self.client.to_string()),
            ..PeerInfo::default()
        }
    }
}

impl Drop for UdpServerChannel {
    fn drop(&mut self) {
        let _ = self.close();
        log::trace!(
            "udp://{}: conversation with {} ended",
            self.local,
            self.client
        );
    }
}

/// Reads the shared socket and hands frames to per-client channels.
#[derive(Debug)]
pub struct UdpListener {
    local: SocketAddr,
    incoming: Receiver<UdpServerChannel>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

/// Binds a UDP socket at the endpoint and starts demultiplexing.
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<UdpListener> {
    let addr = resolve(endpoint)?[0];
    let socket = UdpSocket::bind(addr).map_err(|e| match e.kind() {
        ErrorKind::AddrInUse => Error::InUse {
            endpoint: format!("udp://{addr}"),
            hint: Some("another process has that port".into()),
        },
        _ => Error::io(format!("bind udp://{addr}"), e),
    })?;
    let local = socket
        .local_addr()
        .map_err(|e| Error::io("read the bound UDP address", e))?;
    socket
        .set_read_timeout(Some(STOP_POLL))
        .map_err(|e| Error::io("set a UDP read timeout", e))?;
    tune(&socket);
    let socket = Arc::new(socket);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, incoming) = bounded(BACKLOG);
    let reader = Demux {
        socket: socket.clone(),
        local,
        max_payload: options.max_payload,
        stop: stop.clone(),
        accept: tx,
        clients: HashMap::new(),
    };
    let reader = std::thread::Builder::new()
        .name("utp-udp-demux".into())
        .spawn(move || reader.run())
        .map_err(|e| Error::io("start the UDP reader thread", e))?;
    Ok(UdpListener {
        local,
        incoming,
        stop,
        reader: Some(reader),
    })
}

/// The listener's reader thread.
struct Demux {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    max_payload: usize,
    stop: Arc<AtomicBool>,
    accept: Sender<UdpServerChannel>,
    clients: HashMap<SocketAddr, Sender<Message>>,
}

impl Demux {
    fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM_V6];
        while !self.stop.load(Ordering::SeqCst) {
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => self.dispatch(&buf[..n], from),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                // ICMP errors for earlier replies to clients that are gone.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    log::warn!("udp://{}: receive failed: {e}", self.local);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    fn dispatch(&mut self, bytes: &[u8], from: SocketAddr) {
        if bytes.is_empty() {
            // Goodbye: dropping the sender makes the channel report PeerGone.
            self.clients.remove(&from);
            return;
        }
        let (header, payload) = match frame::decode(bytes, self.max_payload) {
            Ok(ok) => ok,
            Err(e) => {
                log::warn!(
                    "udp://{}: dropped an invalid datagram of {} bytes from {from}: {e}",
                    self.local,
                    bytes.len()
                );
                return;
            }
        };
        let mut message = (header, payload.to_vec());
        if let Some(tx) = self.clients.get(&from) {
            match tx.try_send(message) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => {
                    log::warn!(
                        "udp://{}: {from} is not being served fast enough; dropped a frame",
                        self.local
                    );
                    return;
                }
                // The server closed that conversation; a new frame starts a new one.
                Err(TrySendError::Disconnected(m)) => {
                    self.clients.remove(&from);
                    message = m;
                }
            }
        }
        let (tx, rx) = bounded(QUEUE_DEPTH);
        let _ = tx.try_send(message);
        let channel = UdpServerChannel {
            socket: self.socket.clone(),
            local: self.local,
            client: from,
            rx,
            stamper: Stamper::default(),
            closed: false,
            last_heard: std::time::Instant::now(),
        };
        match self.accept.try_send(channel) {
            Ok(()) => {
                self.clients.insert(from, tx);
            }
            Err(TrySendError::Full(mut refused)) => {
                log::warn!(
                    "udp://{}: too many clients waiting for accept; ignored {from}",
                    self.local
                );
                refused.closed = true; // do not tell it goodbye: it was never accepted
            }
            Err(TrySendError::Disconnected(mut refused)) => refused.closed = true,
        }
    }
}

impl UdpListener {
    /// The address actually bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Listener for UdpListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        if self.reader.is_none() {
            return Err(Error::Closed);
        }
        let channel = match timeout {
            None => self.incoming.recv().map_err(|_| Error::Closed)?,
            Some(t) => self.incoming.recv_timeout(t).map_err(|e| match e {
                RecvTimeoutError::Timeout => Error::Timeout {
                    waiting_for: "a datagram from a new client",
                    after: t,
                },
                RecvTimeoutError::Disconnected => Error::Closed,
            })?,
        };
        Ok(Box::new(channel))
    }

    fn endpoint(&self) -> String {
        format!("udp://{}", self.local)
    }

    fn close(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        Ok(())
    }
}

impl Drop for UdpListener {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_payload_is_refused_before_sending() {
        let mut stamper = Stamper::default();
        let err = datagram(
            &mut stamper,
            1,
            0,
            &vec![0; MAX_PAYLOAD_V4 + 1],
            MAX_PAYLOAD_V4,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    limit: MAX_PAYLOAD_V4,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            datagram(&mut stamper, 1, 0, &vec![0; MAX_PAYLOAD_V4], MAX_PAYLOAD_V4)
                .unwrap()
                .len(),
            MAX_DATAGRAM_V4
        );
    }
}
