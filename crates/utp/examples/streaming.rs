//! Streaming: a producer sends numbered frames as fast as the channel takes
//! them; a consumer drains them with `try_recv`, waits when there is
//! nothing, and sees the end as `Error::PeerGone` with reason `Closed`.
//!
//! ```text
//! cargo run -p utp --example streaming [URL] [COUNT]
//! ```

use std::time::Duration;
use utp::frame::{Frame, flags, message_type};
use utp::{Error, GoneReason};

fn main() -> utp::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| format!("shm://utp-example-stream-{}", std::process::id()));
    let count: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);

    let mut listener = utp::listen(&url)?;
    let url = listener.endpoint(); // the bound address (tcp port 0 becomes a real port)
    let producer = std::thread::spawn({
        let url = url.clone();
        move || -> utp::Result<()> {
            let mut channel = utp::connect(&url)?;
            for n in 0..count {
                // Blocks while the ring (or socket buffer) is full: backpressure.
                channel.send(message_type::DATA, flags::CHECKSUM, &n.to_le_bytes())?;
            }
            channel.close() // the consumer sees PeerGone { reason: Closed }
        }
    });

    let mut channel = listener.accept_timeout(Some(Duration::from_secs(5)))?;
    let mut frame = Frame::default();
    let (mut received, mut waits) = (0u64, 0u64);
    loop {
        match channel.try_recv(&mut frame) {
            Ok(true) => {
                let n = u64::from_le_bytes(frame.payload().try_into().expect("8 bytes"));
                assert_eq!(n, received, "frames arrive in order");
                received += 1;
            }
            // Nothing there yet: wait for the next frame (an event loop would
            // poll the channel's readiness descriptor here instead).
            Ok(false) => {
                waits += 1;
                match channel.recv_timeout(&mut frame, Some(Duration::from_secs(5))) {
                    Ok(()) => received += 1,
                    Err(Error::PeerGone {
                        reason: GoneReason::Closed,
                        ..
                    }) => break,
                    Err(e) => return Err(e),
                }
            }
            Err(Error::PeerGone {
                reason: GoneReason::Closed,
                ..
            }) => break,
            Err(e) => return Err(e),
        }
    }
    producer.join().expect("producer thread")?;
    assert_eq!(received, count);
    println!("received {received} frames in order over {url} ({waits} waits)");
    Ok(())
}
