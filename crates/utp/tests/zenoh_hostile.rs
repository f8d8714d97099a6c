//! Bytes from the zenoh network are untrusted: whatever is published on a
//! link's keys ends that link with a clear error, never a panic, a hang or
//! an unbounded queue.

#![cfg(feature = "zenoh")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use utp::frame::{Frame, flags, message_type};
use utp::{Channel, Error};
use zenoh::Wait;

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "p{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A listener and a connected client in this process, the server's end of
/// the link, and a raw zenoh session of a hostile peer on the same network.
struct Linked {
    _listener: Box<dyn utp::Listener>,
    client: Box<dyn Channel>,
    server: Box<dyn Channel>,
    hostile: zenoh::Session,
    /// `utp/KEY/@link/ID`.
    link: String,
}

fn linked(tag: &str) -> Linked {
    let key = unique(tag);
    let port = free_port();
    let mut listener = utp::listen(&format!("zenoh://{key}?listen=tcp/127.0.0.1:{port}")).unwrap();
    let url = format!("zenoh://{key}?connect=tcp/127.0.0.1:{port}");
    let connecting = std::thread::spawn(move || utp::connect(&url).unwrap());
    let server = listener
        .accept_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let client = connecting.join().unwrap();
    let link = server.peer().address.unwrap();
    assert!(link.starts_with(&format!("utp/{key}/@link/")), "{link}");
    let mut config = zenoh::Config::default();
    config
        .insert_json5("connect/endpoints", &format!("[\"tcp/127.0.0.1:{port}\"]"))
        .unwrap();
    config
        .insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    let hostile = zenoh::open(config).wait().unwrap();
    Linked {
        _listener: listener,
        client,
        server,
        hostile,
        link,
    }
}

fn publish(session: &zenoh::Session, key: &str, bytes: Vec<u8>) {
    let publisher = session.declare_publisher(key.to_string()).wait().unwrap();
    // Wait until the link's subscriber is known, or the put goes nowhere.
    for _ in 0..500 {
        if publisher.matching_status().wait().unwrap().matching() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    publisher.put(bytes).wait().unwrap();
}

#[test]
fn garbage_on_a_link_is_a_frame_error() {
    let Linked {
        _listener,
        client: _client,
        mut server,
        hostile,
        link,
    } = linked("zn-garbage");
    publish(
        &hostile,
        &format!("{link}/c"),
        b"not a utp frame, but long enough to look at".to_vec(),
    );
    let mut frame = Frame::default();
    let err = server
        .recv_timeout(&mut frame, Some(Duration::from_secs(10)))
        .unwrap_err();
    assert!(matches!(err, Error::Frame(_)), "{err}");
}

#[test]
fn a_header_announcing_more_than_the_limit_is_refused() {
    let Linked {
        _listener,
        client: _client,
        mut server,
        hostile,
        link,
    } = linked("zn-huge");
    let header = utp::frame::Header::new(message_type::DATA, 0, 1, 0);
    let mut bytes = utp::frame::encode_to_vec(&header, b"x");
    bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes()); // payload_length
    publish(&hostile, &format!("{link}/c"), bytes);
    let mut frame = Frame::default();
    let err = server
        .recv_timeout(&mut frame, Some(Duration::from_secs(10)))
        .unwrap_err();
    assert!(matches!(err, Error::Frame(_)), "{err}");
}

#[test]
fn a_peer_ignoring_the_credit_window_ends_its_link_without_growing_a_queue() {
    let Linked {
        mut client,
        mut server,
        hostile,
        link,
        _listener,
    } = linked("zn-flood");
    let header = utp::frame::Header::new(message_type::DATA, flags::CHECKSUM, 1, 0);
    let frame_bytes = utp::frame::encode_to_vec(&header, b"flood");
    let publisher = hostile
        .declare_publisher(format!("{link}/c"))
        .wait()
        .unwrap();
    while !publisher.matching_status().wait().unwrap().matching() {
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..2000 {
        publisher.put(frame_bytes.clone()).wait().unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut frame = Frame::default();
    let mut read = 0;
    let err = loop {
        match server.recv_timeout(&mut frame, Some(Duration::from_secs(10))) {
            Ok(()) => read += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, Error::Protocol { detail: ref m, .. } if m.contains("window")),
        "{err}"
    );
    assert!(read <= 1024, "read {read} frames before the error");
    // The honest client's own sends still work up to its window.
    client
        .send(message_type::DATA, flags::CHECKSUM, b"ok")
        .unwrap();
}
