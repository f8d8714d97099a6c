//! A `udp://` server's conversations read sockets of their own: a socket
//! connected to the client, in the listener port's `SO_REUSEPORT` group
//! (transport/udp/own.rs). What that must keep: every frame, in order,
//! including those sent before the server accepted; a client port reused
//! after a goodbye starts a new conversation once the server has let the
//! old one go; another user cannot bind the port.

mod child;

use child::Proc;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use utp::frame::{Frame, flags, message_type};
use utp::{Channel, Error, Listener};

const DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn child_entry() {
    let Some((role, port, _)) = child::role() else {
        return;
    };
    if role == "squat" {
        // Another user's attempt to share the listener's port.
        let fd = rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::DGRAM,
            None,
        )
        .unwrap();
        rustix::net::sockopt::set_socket_reuseport(&fd, true).unwrap();
        let at: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        match rustix::net::bind(&fd, &at) {
            Ok(()) => child::say("FAIL bound the port"),
            Err(e) => child::say(&format!("DONE {e}")),
        }
    }
}

fn listener() -> (Box<dyn Listener>, SocketAddr) {
    let listener = utp::listen("udp://127.0.0.1:0").unwrap();
    let addr = listener
        .endpoint()
        .trim_start_matches("udp://")
        .parse()
        .unwrap();
    (listener, addr)
}

/// The address `channel`'s descriptor is connected to, if it is a
/// connected socket.
fn connected_to(channel: &dyn Channel) -> Option<SocketAddr> {
    let fd = channel.readiness()?.fd;
    let peer = rustix::net::getpeername(fd).ok()??;
    SocketAddr::try_from(peer).ok()
}

#[test]
fn a_conversation_reads_a_socket_connected_to_its_client() {
    let (mut listener, server) = listener();
    let mut client = utp::connect(&format!("udp://{server}")).unwrap();
    client
        .send(message_type::REQUEST, flags::CHECKSUM, b"first")
        .unwrap();
    let mut conversation = listener.accept_timeout(Some(DEADLINE)).unwrap();
    let client_addr: SocketAddr = conversation.peer().address.unwrap().parse().unwrap();
    assert_eq!(connected_to(&*conversation), Some(client_addr));

    let mut frame = Frame::default();
    conversation
        .recv_timeout(&mut frame, Some(DEADLINE))
        .unwrap();
    assert_eq!(frame.payload(), b"first");
    // The next frames arrive on that socket, the answer leaves from it.
    client
        .send(message_type::REQUEST, flags::CHECKSUM, b"second")
        .unwrap();
    conversation
        .recv_timeout(&mut frame, Some(DEADLINE))
        .unwrap();
    assert_eq!(frame.payload(), b"second");
    let request = frame.header.sequence;
    conversation
        .reply_timeout(
            message_type::RESPONSE,
            flags::CHECKSUM,
            b"answer",
            request,
            None,
        )
        .unwrap();
    client.recv_timeout(&mut frame, Some(DEADLINE)).unwrap();
    assert_eq!(frame.payload(), b"answer");
}

#[test]
fn frames_sent_before_the_server_accepted_all_arrive_in_order() {
    let (mut listener, server) = listener();
    let mut client = utp::connect(&format!("udp://{server}")).unwrap();
    const FRAMES: u32 = 300;
    for i in 0..FRAMES {
        client
            .send(message_type::DATA, flags::CHECKSUM, &i.to_le_bytes())
            .unwrap();
    }
    // Some reached the listener's socket, some the conversation's own.
    let mut conversation = listener.accept_timeout(Some(DEADLINE)).unwrap();
    let mut frame = Frame::default();
    for i in 0..FRAMES {
        conversation
            .recv_timeout(&mut frame, Some(DEADLINE))
            .unwrap_or_else(|e| panic!("frame {i}: {e}"));
        assert_eq!(frame.payload(), i.to_le_bytes(), "frame {i} in order");
    }
    // And the frames after them.
    client
        .send(message_type::DATA, flags::CHECKSUM, b"after")
        .unwrap();
    conversation
        .recv_timeout(&mut frame, Some(DEADLINE))
        .unwrap();
    assert_eq!(frame.payload(), b"after");
}

#[test]
fn a_port_reused_after_a_goodbye_starts_a_new_conversation() {
    let (mut listener, server) = listener();
    let mut old = utp::connect(&format!("udp://{server}")).unwrap();
    old.send(message_type::DATA, flags::CHECKSUM, b"old")
        .unwrap();
    let mut first = listener.accept_timeout(Some(DEADLINE)).unwrap();
    let port: SocketAddr = first.peer().address.unwrap().parse().unwrap();
    let mut frame = Frame::default();
    first.recv_timeout(&mut frame, Some(DEADLINE)).unwrap();
    drop(old); // says goodbye
    let gone = first.recv_timeout(&mut frame, Some(DEADLINE));
    assert!(matches!(gone, Err(Error::PeerGone { .. })), "{gone:?}");
    let again = first.recv_timeout(&mut frame, Some(DEADLINE));
    assert!(matches!(again, Err(Error::PeerGone { .. })), "{again:?}");

    // Another client's first frame is a conversation of its own meanwhile.
    let mut other = utp::connect(&format!("udp://{server}")).unwrap();
    other
        .send(message_type::DATA, flags::CHECKSUM, b"other")
        .unwrap();
    let mut second = listener.accept_timeout(Some(DEADLINE)).unwrap();
    second.recv_timeout(&mut frame, Some(DEADLINE)).unwrap();
    assert_eq!(frame.payload(), b"other");

    // The server lets the ended conversation go; a new client on the same
    // port is someone else, in a new conversation.
    drop(first);
    let new = UdpSocket::bind(port).unwrap();
    new.connect(server).unwrap();
    let header = utp::frame::Header::new(message_type::DATA, flags::CHECKSUM, 1, 0);
    new.send(&utp::frame::encode_to_vec(&header, b"new"))
        .unwrap();
    let mut third = listener
        .accept_timeout(Some(DEADLINE))
        .expect("the reused port's frame starts a conversation");
    assert_eq!(third.peer().address.unwrap(), port.to_string());
    third.recv_timeout(&mut frame, Some(DEADLINE)).unwrap();
    assert_eq!(frame.payload(), b"new");
}

#[test]
fn another_user_cannot_bind_the_port() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let (mut listener, server) = listener();
    // With a conversation open, the port's group exists.
    let mut client = utp::connect(&format!("udp://{server}")).unwrap();
    client
        .send(message_type::DATA, flags::CHECKSUM, b"hi")
        .unwrap();
    let _conversation = listener.accept_timeout(Some(DEADLINE)).unwrap();
    let mut squatter = Proc::spawn_as_nobody("squat", &server.port().to_string(), "", &[]);
    let said = squatter.expect("DONE");
    assert!(said.contains("in use"), "{said}");
    squatter.wait_ok();
}
