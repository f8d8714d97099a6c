//! `Subscriber::try_recv_view`: a poll that is `None` while nothing is
//! there, the message (in order, with its loss count) once it is, and an
//! error, not `None`, once the publisher is gone: over shm:// and unix://.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use utp::pubsub::{Publisher, Subscriber};

fn unique(kind: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "utp-poll-{kind}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls until a message comes (at most 10 s): its payload and number.
fn poll_one(sub: &mut Subscriber) -> (Vec<u8>, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(view) = sub.try_recv_view().unwrap() {
            return (view.to_vec().unwrap(), view.sequence());
        }
        assert!(Instant::now() < deadline, "no message within 10 s");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn polls(publisher: &mut Publisher, sub: &mut Subscriber) {
    // Nothing published: None, as often as asked.
    for _ in 0..100 {
        assert!(sub.try_recv_view().unwrap().is_none());
    }
    for n in 0..50u64 {
        publisher.send(&n.to_le_bytes()).unwrap();
        let (payload, sequence) = poll_one(sub);
        assert_eq!((payload, sequence), (n.to_le_bytes().to_vec(), n));
    }
    assert!(sub.try_recv_view().unwrap().is_none());
}

#[test]
fn shm_try_recv_view_polls_in_order_and_fails_once_the_publisher_is_gone() {
    let url = format!("shm://{}?slots=64&slot=128", unique("shm"));
    let mut publisher = Publisher::create(&url).unwrap();
    let mut sub = Subscriber::connect(&url).unwrap();
    polls(&mut publisher, &mut sub);
    // Overrun: 100 messages into 64 slots while the subscriber is away.
    for n in 50..150u64 {
        publisher.send(&n.to_le_bytes()).unwrap();
    }
    let view = sub
        .try_recv_view()
        .unwrap()
        .expect("the oldest message kept");
    assert!(view.lost_before() > 0, "the lap is reported as loss");
    assert_eq!(view.sequence(), 50 + view.lost_before());
    drop(view);
    drop(publisher);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match sub.try_recv_view() {
            Ok(Some(_)) => {}
            Ok(None) => assert!(
                Instant::now() < deadline,
                "a dead publisher is never noticed"
            ),
            Err(e) => {
                assert!(e.is_peer_gone(), "{e}");
                break;
            }
        }
    }
}

#[test]
fn unix_try_recv_view_polls_in_order() {
    let path = format!("/tmp/{}.sock", unique("unix"));
    let mut publisher = Publisher::create(&format!("unix://{path}")).unwrap();
    let mut sub = Subscriber::connect(&format!("unix://{path}")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while publisher.subscriber_count() != 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    polls(&mut publisher, &mut sub);
    drop(sub);
    drop(publisher);
    assert!(!std::path::Path::new(&path).exists() || std::fs::remove_file(&path).is_ok());
}
