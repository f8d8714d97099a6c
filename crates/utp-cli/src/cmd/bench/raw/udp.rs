//! Raw UDP baseline on loopback: one datagram per message, `send`/`recv` on
//! connected sockets. A hello datagram each way connects the two sockets.

use crate::cmd::bench::link::{Fallible, Link};
use std::io::IoSlice;
use std::net::UdpSocket;
use std::time::Duration;

/// One connected UDP socket.
#[derive(Debug)]
pub struct UdpLink {
    socket: UdpSocket,
    buf: Vec<u8>,
}

impl UdpLink {
    fn new(socket: UdpSocket, idle: Duration) -> Fallible<Self> {
        socket.set_read_timeout(Some(idle))?;
        Ok(UdpLink {
            socket,
            buf: vec![0; 65_536],
        })
    }
}

impl Link for UdpLink {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        let n = self.socket.send(msg)?;
        if n != msg.len() {
            return Err(format!("sent {n} of {} bytes in one datagram", msg.len()).into());
        }
        Ok(())
    }

    /// One `sendmmsg` per 32 messages, as utp's batch; nothing allocated.
    fn send_batch(&mut self, msgs: &[&[u8]]) -> Fallible<()> {
        use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, sendmmsg};
        for run in msgs.chunks(32) {
            let slices: [[IoSlice<'_>; 1]; 32] =
                std::array::from_fn(|i| [IoSlice::new(run.get(i).copied().unwrap_or_default())]);
            let mut controls: [SendAncillaryBuffer<'_, '_, '_>; 32] =
                std::array::from_fn(|_| SendAncillaryBuffer::default());
            let mut iovs = slices.iter();
            let mut headers = controls
                .each_mut()
                .map(|control| MMsgHdr::new(iovs.next().map_or(&[], |iov| iov), control));
            let mut sent = 0;
            while sent < run.len() {
                match sendmmsg(
                    &self.socket,
                    &mut headers[sent..run.len()],
                    SendFlags::empty(),
                ) {
                    Ok(n) => sent += n,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    fn recv(&mut self, _len: usize) -> Fallible<&[u8]> {
        let n = self.socket.recv(&mut self.buf)?;
        Ok(&self.buf[..n])
    }

    fn try_recv(&mut self, len: usize) -> Fallible<Option<&[u8]>> {
        if !super::readable_now(&self.socket)? {
            return Ok(None);
        }
        self.recv(len).map(Some)
    }
}

/// Peer side: binds a free loopback port, announces it, and connects to the
/// first client that says hello.
pub fn serve(idle: Duration, announce: &mut dyn FnMut(&str)) -> Fallible<UdpLink> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(idle))?;
    announce(&socket.local_addr()?.to_string());
    let mut hello = [0u8; 8];
    let (_, from) = socket.recv_from(&mut hello)?;
    socket.connect(from)?;
    socket.send(b"hello")?;
    UdpLink::new(socket, idle)
}

/// Client side: connects to the peer's port and exchanges hellos.
pub fn connect(address: &str, idle: Duration) -> Fallible<UdpLink> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(address)?;
    socket.set_read_timeout(Some(idle))?;
    socket.send(b"hello")?;
    let mut hello = [0u8; 8];
    socket.recv(&mut hello)?;
    UdpLink::new(socket, idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of 40 datagrams (two `sendmmsg` calls) arrives whole and in
    /// order over loopback.
    #[test]
    fn a_batch_arrives_as_its_datagrams_in_order() {
        let idle = Duration::from_secs(10);
        let (tx, rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            serve(idle, &mut |address| tx.send(address.to_string()).unwrap()).unwrap()
        });
        let mut client = connect(&rx.recv().unwrap(), idle).unwrap();
        let mut server = server.join().unwrap();
        let batch: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        client.send_batch(&refs).unwrap();
        for (i, want) in batch.iter().enumerate() {
            assert!(
                server.recv(want.len()).unwrap() == &want[..],
                "datagram {i}"
            );
        }
    }
}
