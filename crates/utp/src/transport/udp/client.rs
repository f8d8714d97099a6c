//! The client end: a UDP socket connected to the server's address.

use super::*;

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
        out: Vec::new(),
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
        let limit = payload_limit(&self.server).min(self.max_payload);
        message::encode(
            &mut self.stamper,
            message_type,
            flags,
            payload,
            None,
            limit,
            TRANSPORT,
            &mut self.out,
        )?;
        let bytes = &self.out;
        let deadline = Deadline::after(timeout);
        loop {
            match self.socket.send(bytes) {
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
            // Only the server's datagrams reach this connected socket; an
            // invalid one is reported (the channel stays usable).
            if !message::decode(&self.buf[..n], self.max_payload, frame)? {
                return Err(Error::PeerGone(format!(
                    "udp://{} ended this conversation",
                    self.server
                )));
            }
            return Ok(());
        }
    }

    fn close(&mut self) -> Result<()> {
        if !std::mem::replace(&mut self.closed, true) {
            let _ = self.socket.send(&[]);
        }
        Ok(())
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
}

impl Drop for UdpChannel {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
