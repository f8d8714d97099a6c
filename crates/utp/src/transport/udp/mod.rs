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
//! - Goodbyes: a client closing its channel sends an empty datagram, and the
//!   server side's next receive reports [`Error::PeerGone`]. A server closing
//!   a conversation sends a GOODBYE frame flagged REPLY that names the
//!   client's latest frame; the client's next receive reports `PeerGone`. A
//!   client whose server is not running sees `PeerGone` too, from the ICMP
//!   "port unreachable" the kernel reports on its connected socket.
//! - Ports are reused. A client that dies with requests in flight leaves the
//!   server answering an address the kernel may give to the next client. So
//!   a client numbers its frames from a random start and drops every reply
//!   (REPLY-flagged frame, goodbye included) naming a number it never sent;
//!   frames the server sends unasked cannot be told apart and do arrive.
//! - A batch ([`Channel::send_batch`]) is still one datagram per frame,
//!   handed to the kernel up to 32 at a time with one `sendmmsg`.
//! - **Loss is possible** (and reordering, off the loopback interface). utp
//!   does not retransmit: a lost request or reply shows up as a clean
//!   [`Error::Timeout`] in the caller's receive, and the channel stays usable.
//!   Retrying is left to the application, which alone knows whether a request
//!   is safe to repeat.

mod batch;
mod client;
mod demux;
mod invalid;
mod own;
mod server;
#[cfg(test)]
mod tests;

pub use client::{UdpChannel, connect};
pub use server::{UdpListener, UdpServerChannel, listen};

use demux::Demux;
use invalid::InvalidDatagrams;

/// A decoded frame on its way from the listener's reader thread to a conversation.
type Message = (Header, Vec<u8>);

use super::message;
use super::tcp::resolve;
use super::wait::{Ready, wait_ready};
use crate::channel::{Channel, Deadline, Listener, Options, PeerInfo};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::frame::{self, Frame, FrameRef, HEADER_LEN, Header, Stamper, flags, message_type};
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

const TRANSPORT: &str = "udp (one frame per datagram: 65,507 bytes over IPv4, header included; \
                         no option raises it: use tcp:// for larger frames)";

fn payload_limit(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => MAX_PAYLOAD_V4,
        SocketAddr::V6(_) => MAX_PAYLOAD_V6,
    }
}

fn tune(socket: &UdpSocket) {
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(socket, SOCKET_BUFFER);
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(socket, SOCKET_BUFFER);
}

/// One receive from the socket: sleeping in `recv` itself when there is no
/// deadline (one system call per datagram), else without waiting
/// (`MSG_DONTWAIT`), the caller polling until its deadline when nothing is
/// there. (The socket timeout would also do for a deadline, but the kernel
/// rounds it up to a scheduler tick: 4 ms where HZ is 250.) A round trip
/// over loopback made three calls per receive when every receive went
/// through `poll`: a `recv` that found nothing, the `poll`, the `recv`.
pub(super) fn recv_once(socket: &UdpSocket, buf: &mut [u8], sleep: bool) -> std::io::Result<usize> {
    if sleep {
        return socket.recv(buf);
    }
    rustix::net::recv(socket, buf, rustix::net::RecvFlags::DONTWAIT)
        .map(|(received, _)| received)
        .map_err(std::io::Error::from)
}
