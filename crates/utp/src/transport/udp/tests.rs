//! The server's two ways of serving a conversation, each tested: reading
//! a socket of its own (`own.rs`), and being handed frames by the reader
//! thread (where no such socket can be had). The integration tests
//! (`tests/udp_conversations.rs` and the suites every transport runs) see
//! only the first; here a listener is also made to use the second.

use super::server::{Limits, listen_with};
use super::*;
use crate::GoneReason;
use crate::wake::{readable, readable_within};
use std::os::fd::AsFd;
use std::time::Instant;

const DEADLINE: Duration = Duration::from_secs(10);

fn listener(own_sockets: bool, conversations: usize) -> UdpListener {
    let endpoint = Endpoint::parse("udp://127.0.0.1:0").unwrap();
    let limits = Limits {
        own_sockets,
        conversations,
    };
    listen_with(&endpoint, &Options::default(), limits).unwrap()
}

/// A client of `listener` that has sent `hello`, and its accepted
/// conversation, which has received it.
fn conversation(listener: &mut UdpListener, hello: &[u8]) -> (UdpChannel, Box<dyn Channel>) {
    let endpoint = Endpoint::parse(&listener.endpoint()).unwrap();
    let mut client = connect(&endpoint, &Options::default()).unwrap();
    client
        .send(message_type::DATA, flags::CHECKSUM, hello)
        .unwrap();
    let mut server = listener.accept_timeout(Some(DEADLINE)).unwrap();
    let mut frame = Frame::default();
    server.recv_timeout(&mut frame, Some(DEADLINE)).unwrap();
    assert_eq!(frame.payload(), hello);
    (client, server)
}

/// Whether `channel` reads a connected socket (else the reader thread's doorbell).
fn reads_own_socket(channel: &dyn Channel) -> bool {
    let fd = channel.readiness().unwrap().fd;
    rustix::net::getpeername(fd).is_ok_and(|peer| peer.is_some())
}

/// A conversation served through the reader thread and only polled (its
/// descriptor never taken) is handed every frame, and its doorbell is
/// never rung (no eventfd write per datagram); once the descriptor has
/// been taken, a `try_recv` that finds nothing asks to be rung, and the
/// next frame rings it.
#[test]
fn a_polled_conversation_is_rung_only_once_its_descriptor_is_taken() {
    let mut listener = listener(false, MAX_CONVERSATIONS_FOR_TESTS);
    let (mut client, mut server) = conversation(&mut listener, b"one");
    let bell = server
        .as_any()
        .and_then(|any| any.downcast_ref::<server::UdpServerChannel>())
        .and_then(|conversation| conversation.doorbell_fd())
        .expect("a conversation without a socket of its own has a doorbell")
        .try_clone_to_owned()
        .unwrap();
    let mut frame = Frame::default();
    let next = |server: &mut Box<dyn Channel>, frame: &mut Frame| {
        let until = Instant::now() + DEADLINE;
        while !server.try_recv(frame).unwrap() {
            assert!(Instant::now() < until, "the frame never came");
            std::thread::yield_now();
        }
    };
    for i in 0..20u32 {
        assert!(!server.try_recv(&mut frame).unwrap());
        client
            .send(message_type::DATA, flags::CHECKSUM, &i.to_le_bytes())
            .unwrap();
        next(&mut server, &mut frame);
        assert_eq!(frame.payload(), i.to_le_bytes());
        assert!(!readable(bell.as_fd()), "rung, but nobody waits");
    }
    assert!(server.readiness().is_some());
    assert!(!server.try_recv(&mut frame).unwrap());
    client
        .send(message_type::DATA, flags::CHECKSUM, b"awaited")
        .unwrap();
    assert!(readable_within(bell.as_fd(), DEADLINE), "never rung");
    next(&mut server, &mut frame);
    assert_eq!(frame.payload(), b"awaited");
}

#[test]
fn both_ways_carry_frames_both_ways_and_the_clients_goodbye() {
    for own_sockets in [true, false] {
        let mut listener = listener(own_sockets, MAX_CONVERSATIONS_FOR_TESTS);
        let (mut client, mut server) = conversation(&mut listener, b"one");
        assert_eq!(reads_own_socket(&*server), own_sockets);
        let mut frame = Frame::default();
        for i in 0..100u32 {
            client
                .send(message_type::REQUEST, flags::CHECKSUM, &i.to_le_bytes())
                .unwrap();
            server.recv_timeout(&mut frame, Some(DEADLINE)).unwrap();
            assert_eq!(
                frame.payload(),
                i.to_le_bytes(),
                "own sockets: {own_sockets}"
            );
            let request = frame.header.sequence;
            server
                .reply_timeout(
                    message_type::RESPONSE,
                    flags::CHECKSUM,
                    b"ok",
                    request,
                    None,
                )
                .unwrap();
            client.recv_timeout(&mut frame, Some(DEADLINE)).unwrap();
            assert_eq!(frame.payload(), b"ok");
        }
        // Nothing waiting: try_recv says so at once, then the descriptor
        // wakes for the next frame.
        assert!(!server.try_recv(&mut frame).unwrap());
        client
            .send(message_type::DATA, flags::CHECKSUM, b"late")
            .unwrap();
        let fd = server.readiness().unwrap().fd;
        assert!(readable_within(fd, DEADLINE), "own sockets: {own_sockets}");
        assert!(server.try_recv(&mut frame).unwrap());
        assert_eq!(frame.payload(), b"late");
        drop(client); // its goodbye
        let gone = server.recv_timeout(&mut frame, Some(DEADLINE));
        assert!(
            matches!(
                gone,
                Err(Error::PeerGone {
                    reason: GoneReason::Closed,
                    ..
                })
            ),
            "own sockets: {own_sockets}: {gone:?}"
        );
    }
}

/// Room for every conversation these tests start.
const MAX_CONVERSATIONS_FOR_TESTS: usize = 16;

#[test]
fn a_full_table_ends_the_conversation_heard_from_least_recently() {
    for own_sockets in [true, false] {
        let mut listener = listener(own_sockets, 2);
        let (_a, mut first) = conversation(&mut listener, b"a");
        // Heard from later than `first`.
        std::thread::sleep(Duration::from_millis(20));
        let (mut b, mut second) = conversation(&mut listener, b"b");
        // `first` waits with no deadline when the third client arrives.
        let waiting = std::thread::spawn(move || {
            let mut frame = Frame::default();
            let started = Instant::now();
            (first.recv(&mut frame), started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        let (_c, _third) = conversation(&mut listener, b"c");
        let (ended, after) = waiting.join().unwrap();
        assert!(
            matches!(
                ended,
                Err(Error::PeerGone {
                    reason: GoneReason::Evicted,
                    ..
                })
            ),
            "own sockets: {own_sockets}: {ended:?}"
        );
        assert!(
            after < DEADLINE,
            "own sockets: {own_sockets}: woke after {after:?}"
        );
        // The other one goes on.
        let mut frame = Frame::default();
        b.send(message_type::DATA, flags::CHECKSUM, b"still")
            .unwrap();
        second.recv_timeout(&mut frame, Some(DEADLINE)).unwrap();
        assert_eq!(frame.payload(), b"still");
    }
}

#[test]
fn closing_the_listener_ends_its_conversations() {
    for own_sockets in [true, false] {
        let mut listener = listener(own_sockets, MAX_CONVERSATIONS_FOR_TESTS);
        let (_client, mut server) = conversation(&mut listener, b"x");
        let waiting = std::thread::spawn(move || {
            let mut frame = Frame::default();
            server.recv(&mut frame)
        });
        std::thread::sleep(Duration::from_millis(50));
        listener.close().unwrap();
        let ended = waiting.join().unwrap();
        assert!(
            matches!(ended, Err(Error::PeerGone { .. })),
            "own sockets: {own_sockets}: {ended:?}"
        );
    }
}

/// A batch goes both ways over both kinds of conversation, one datagram a
/// frame, in order and numbered without a gap; a payload over what a
/// datagram carries ends it after the frames before it.
#[test]
fn batches_go_both_ways_in_order_and_one_too_large_ends_them() {
    let payloads: Vec<Vec<u8>> = (0..40usize).map(|i| vec![i as u8; i * 25]).collect();
    let all: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let too_large = vec![0u8; MAX_PAYLOAD_V4 + 1];
    let mut cut = all.clone();
    cut.insert(10, &too_large);
    let mut frame = Frame::default();
    let expect = |channel: &mut dyn Channel, frame: &mut Frame, first: u64, payloads: &[&[u8]]| {
        for (i, payload) in payloads.iter().enumerate() {
            channel.recv_timeout(frame, Some(DEADLINE)).unwrap();
            assert_eq!(frame.header.sequence, first + i as u64, "frame {i}");
            assert_eq!(frame.payload(), *payload, "frame {i}");
        }
    };
    for own_sockets in [true, false] {
        let mut listener = listener(own_sockets, MAX_CONVERSATIONS_FOR_TESTS);
        let (mut client, mut server) = conversation(&mut listener, b"hello");
        assert_eq!(reads_own_socket(&*server), own_sockets);
        let hello = client.sent_sequence().unwrap();

        client
            .send_batch(message_type::DATA, flags::CHECKSUM, &all)
            .unwrap();
        expect(&mut *server, &mut frame, hello + 1, &all);
        server
            .send_batch(message_type::DATA, flags::CHECKSUM, &all)
            .unwrap();
        expect(&mut client, &mut frame, 1, &all);

        let refused = client.send_batch(message_type::DATA, flags::CHECKSUM, &cut);
        assert!(
            matches!(refused, Err(Error::TooLarge { .. })),
            "{refused:?}"
        );
        let refused = server.send_batch(message_type::DATA, flags::CHECKSUM, &cut);
        assert!(
            matches!(refused, Err(Error::TooLarge { .. })),
            "{refused:?}"
        );
        let taken = client
            .try_send_batch(message_type::DATA, flags::CHECKSUM, &all)
            .unwrap();
        assert_eq!(taken, all.len());
        expect(&mut *server, &mut frame, hello + 41, &all[..10]);
        expect(&mut *server, &mut frame, hello + 51, &all);
        expect(&mut client, &mut frame, 41, &all[..10]);
        assert!(
            !client.try_recv(&mut frame).unwrap(),
            "nothing after the cut"
        );
    }
}

/// A batch sent when the kernel already knows nothing listens at the
/// server's port ends with `PeerGone` before a datagram goes out, and the
/// numbers it stamped are given back: the next frame takes the first.
#[test]
fn a_batch_to_a_port_nothing_listens_at_ends_with_peer_gone_and_numbers_nothing() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = Endpoint::parse(&format!("udp://127.0.0.1:{port}")).unwrap();
    let mut client = connect(&endpoint, &Options::default()).unwrap();
    let batch: [&[u8]; 3] = [b"one", b"two", b"three"];
    let gone = |error: &Error| matches!(error, Error::PeerGone { .. });
    for attempt in 0..2 {
        // A frame goes out, and the kernel's "port unreachable" comes back.
        client
            .send(message_type::DATA, flags::CHECKSUM, b"x")
            .unwrap();
        let numbered = client.sent_sequence();
        std::thread::sleep(Duration::from_millis(50));
        let error = match attempt {
            0 => client
                .send_batch(message_type::DATA, flags::CHECKSUM, &batch)
                .unwrap_err(),
            _ => client
                .try_send_batch(message_type::DATA, flags::CHECKSUM, &batch)
                .unwrap_err(),
        };
        assert!(gone(&error), "{error}");
        assert_eq!(client.sent_sequence(), numbered, "numbers given back");
    }
    // A single send that meets the error numbers nothing either.
    client
        .send(message_type::DATA, flags::CHECKSUM, b"x")
        .unwrap();
    let numbered = client.sent_sequence();
    std::thread::sleep(Duration::from_millis(50));
    let error = client
        .send(message_type::DATA, flags::CHECKSUM, b"y")
        .unwrap_err();
    assert!(gone(&error), "{error}");
    assert_eq!(client.sent_sequence(), numbered, "its number given back");
}
