//! Pub/sub over unix:// and tcp://: every message in order to fast
//! subscribers, exact loss for a subscriber whose queue overflows, late
//! join, and inspect.

use std::time::{Duration, Instant};
use utp::pubsub::{Publisher, Subscriber, inspect};

const LONG: Option<Duration> = Some(Duration::from_secs(30));

/// 4 KiB messages, so that the kernel's socket buffers cannot absorb them all.
fn message(n: u64) -> Vec<u8> {
    let mut m = vec![(n % 251) as u8; 4096];
    m[..8].copy_from_slice(&n.to_le_bytes());
    m
}

fn wait_for(publisher: &Publisher, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while publisher.subscriber_count() != n {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn round_trip(url: &str) {
    let mut publisher = Publisher::create(url).unwrap();
    let bound = publisher.endpoint();
    let mut subs: Vec<Subscriber> = (0..2)
        .map(|_| {
            Subscriber::connect(&format!("{bound}?policy=block&block_timeout_ms=10000")).unwrap()
        })
        .collect();
    // A drop-policy subscriber that does not read while we publish: its
    // queue of 8 overflows and it must learn exactly how much it lost.
    let mut lazy = Subscriber::connect(&bound).unwrap();
    wait_for(&publisher, 3);
    let count = 2000u64;
    let readers: Vec<_> = subs
        .drain(..)
        .map(|mut s| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                for n in 0..count {
                    let got = s.recv(&mut buf, LONG).unwrap();
                    assert_eq!((got.sequence, got.lost_before), (n, 0));
                    assert_eq!(buf, message(n));
                }
                s.lost()
            })
        })
        .collect();
    for n in 0..count {
        assert_eq!(publisher.send(&message(n)).unwrap(), n);
    }
    for r in readers {
        assert_eq!(r.join().unwrap(), 0);
    }
    let report = inspect(&bound).unwrap();
    assert_eq!(report.published, count);
    // Drain what the lazy one's queue and socket hold, then one more
    // message. Where the gaps fall depends on when the kernel made room in
    // the socket (TCP's buffers can grow or be compacted mid-run, so the
    // queue may drain and refill more than once); what must hold is that
    // every gap is announced by the message after it, exactly.
    let mut buf = Vec::new();
    let mut next = 0; // the sequence the lazy one expects next
    let mut announced = 0;
    let mut received = 0;
    let mut take = |got: utp::pubsub::Received, buf: &[u8]| {
        assert_eq!(got.sequence, next + got.lost_before, "gap not announced");
        assert_eq!(buf, message(got.sequence));
        announced += got.lost_before;
        next = got.sequence + 1;
        received += 1;
    };
    while let Ok(got) = lazy.recv(&mut buf, Some(Duration::from_millis(200))) {
        take(got, &buf);
    }
    publisher.send(&message(count)).unwrap();
    let got = lazy.recv(&mut buf, LONG).unwrap();
    assert_eq!(got.sequence, count);
    take(got, &buf);
    assert!(lazy.lost() > 0, "a queue of 8 absorbed {count} messages");
    assert_eq!(announced, lazy.lost());
    assert_eq!(received + lazy.lost(), count + 1);
    let count = count + 1;
    let late = Subscriber::connect(&bound).unwrap();
    assert_eq!(late.position(), count);
}

#[test]
fn unix_pubsub_delivers_in_order_and_counts_loss() {
    let path = format!("/tmp/utp-pubsub-test-{}.sock", std::process::id());
    round_trip(&format!("unix://{path}?queue=8"));
    assert!(!std::path::Path::new(&path).exists() || std::fs::remove_file(&path).is_ok());
}

#[test]
fn tcp_pubsub_delivers_in_order_and_counts_loss() {
    round_trip("tcp://127.0.0.1:0?queue=8");
}
