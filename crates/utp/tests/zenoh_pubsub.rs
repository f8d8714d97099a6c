//! Pub/sub over zenoh:// in one process over loopback with explicit
//! endpoints (the CLI test `zenoh_cli.rs` runs publisher, bridge and
//! subscriber as separate processes): exact loss counting when a
//! subscriber's queue overflows, hostile bytes on the message key, and the
//! publisher's departure.

#![cfg(feature = "zenoh")]

use std::time::{Duration, Instant};
use utp::Error;
use utp::pubsub::{Publisher, Subscriber};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn topic(name: &str) -> String {
    format!("t{}-{name}", std::process::id())
}

/// Waits until the publisher sees `n` subscribers.
fn wait_for_subscribers(publisher: &Publisher, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while publisher.subscriber_count() < n {
        assert!(Instant::now() < deadline, "the subscriber never showed");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_overflowing_subscriber_counts_exactly_what_it_lost_and_sees_the_publisher_go() {
    let key = topic("loss");
    let port = free_port();
    let mut publisher =
        Publisher::create(&format!("zenoh://{key}?listen=tcp/127.0.0.1:{port}")).unwrap();
    let mut subscriber = Subscriber::connect(&format!(
        "zenoh://{key}?connect=tcp/127.0.0.1:{port}&queue=8"
    ))
    .unwrap();
    wait_for_subscribers(&publisher, 1);
    // A first message, read, fixes the subscriber's start.
    publisher.send(b"first").unwrap();
    let mut buf = Vec::new();
    let got = subscriber
        .recv(&mut buf, Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(
        (got.sequence, got.lost_before, &buf[..]),
        (0, 0, &b"first"[..])
    );
    // 200 more while it does not read: at most 8 wait for it.
    for i in 0..200u32 {
        publisher.send(&i.to_le_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let (mut received, mut lost, mut last) = (0u64, 0u64, 0u64);
    loop {
        match subscriber.recv(&mut buf, Some(Duration::from_millis(500))) {
            Ok(got) => {
                assert!(got.sequence > last, "in order");
                assert_eq!(buf, ((got.sequence - 1) as u32).to_le_bytes());
                received += 1;
                lost += got.lost_before;
                last = got.sequence;
            }
            Err(e) if e.is_timeout() => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!((1..=8).contains(&received), "{received} received");
    // Exact: every number up to the last one seen is received or lost.
    assert_eq!(
        received + lost,
        last,
        "received {received} lost {lost} last {last}"
    );
    assert_eq!(subscriber.lost(), lost);

    drop(publisher);
    let started = Instant::now();
    let gone = subscriber.recv(&mut buf, Some(Duration::from_secs(20)));
    assert!(matches!(gone, Err(Error::PeerGone { .. })), "{gone:?}");
    eprintln!("publisher's departure seen after {:?}", started.elapsed());
}

#[test]
fn bytes_that_are_not_frames_on_the_message_key_never_reach_a_subscriber() {
    let key = topic("garbage");
    let port = free_port();
    let mut publisher =
        Publisher::create(&format!("zenoh://{key}?listen=tcp/127.0.0.1:{port}")).unwrap();
    let mut subscriber =
        Subscriber::connect(&format!("zenoh://{key}?connect=tcp/127.0.0.1:{port}")).unwrap();
    wait_for_subscribers(&publisher, 1);
    // A hostile peer publishes on the message key directly.
    let config = zenoh_config(port);
    let hostile = zenoh::Wait::wait(zenoh::open(config)).unwrap();
    let msg_key = format!("utp/{key}/@pubsub/msg");
    for garbage in [
        &b"not a frame"[..],
        &[0u8; 31],
        &[0x42, 0x50, 0x54, 0x55, 9, 0, 0, 0],
    ] {
        zenoh::Wait::wait(hostile.put(&msg_key, garbage)).unwrap();
    }
    publisher.send(b"real").unwrap();
    let mut buf = Vec::new();
    let got = subscriber
        .recv(&mut buf, Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(&buf[..], b"real");
    assert_eq!(got.sequence, 0);
    let _ = zenoh::Wait::wait(hostile.close());
}

fn zenoh_config(port: u16) -> zenoh::Config {
    let mut config = zenoh::Config::default();
    config
        .insert_json5("connect/endpoints", &format!("[\"tcp/127.0.0.1:{port}\"]"))
        .unwrap();
    config
        .insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    config
}
