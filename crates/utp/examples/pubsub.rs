//! Publish/subscribe: one publisher, two subscribers, each receiving every
//! message from the moment it joined; a slow subscriber cannot stall the
//! publisher (it loses messages instead, and is told how many).
//!
//! ```text
//! cargo run -p utp --example pubsub [URL]
//! ```
//!
//! `shm://NAME` (the default) is a broadcast ring in shared memory;
//! `unix:///PATH` and `tcp://HOST:PORT` fan out over sockets.

use std::time::Duration;
use utp::pubsub::{Publisher, Subscriber};

fn main() -> utp::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("shm://utp-example-pubsub-{}", std::process::id()));
    let mut publisher = Publisher::create(&url)?;
    let mut subscribers = [Subscriber::connect(&url)?, Subscriber::connect(&url)?];

    for n in 0..5u32 {
        publisher.send(format!("tick {n}").as_bytes())?;
    }
    let mut buf = Vec::new();
    for (i, subscriber) in subscribers.iter_mut().enumerate() {
        for _ in 0..5 {
            let got = subscriber.recv(&mut buf, Some(Duration::from_secs(5)))?;
            println!(
                "subscriber {i}: {} (message {}, {} lost before it)",
                String::from_utf8_lossy(&buf),
                got.sequence,
                got.lost_before
            );
        }
    }
    Ok(())
}
