//! CPU cost of a byte stream's path per frame: one thread holds both ends
//! of a FIFO or a Unix socket, sends a batch of frames (`send_batch`, one
//! write) and receives them (`recv`, one read for a batch of small frames),
//! and reports the thread's CPU time per frame, the system calls included
//! and no waiting, no other core, no wake-up. CPU time, not wall time, so
//! it stays meaningful on a busy machine; the best of several rounds.
//!
//! With `lent` the frames are received with `Channel::recv_ref`, lent from
//! the read buffer, instead of copied into a reused `Frame`.
//!
//! ```text
//! cargo run --release -p utp --example stream_profile -- [fifo|unix] [FRAMES] [BATCH] [BYTES] [recv|lent]
//! ```
//! (defaults: fifo, 200,000 frames a round, batches of 16, payloads of 64
//! bytes, `recv`; a batch of 1 sends with `send`)

use std::time::Duration;
use utp::Channel;
use utp::frame::{Frame, message_type};

/// CPU time of this thread so far, in nanoseconds.
fn cpu_ns() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
}

fn main() -> utp::Result<()> {
    let mut args = std::env::args().skip(1);
    let transport = args.next().unwrap_or_else(|| "fifo".to_string());
    let frames: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let batch: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(16)
        .max(1);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let lent = args.next().is_some_and(|a| a == "lent");
    let name = format!("utp-example-stream-profile-{}", std::process::id());
    let dir = std::env::temp_dir();
    let url = match transport.as_str() {
        "unix" => format!("unix://{}/{name}.sock", dir.display()),
        _ => format!("fifo://{}/{name}", dir.display()),
    };
    let mut listener = utp::listen(&url)?;
    let mut client = utp::connect(&listener.endpoint())?;
    // A FIFO's listener accepts once the client has sent something.
    client.send(message_type::DATA, 0, b"hello")?;
    let mut server = listener.accept_timeout(Some(Duration::from_secs(5)))?;
    let mut frame = Frame::default();
    server.recv(&mut frame)?;
    let message = vec![7u8; size];
    let messages = vec![&message[..]; batch];
    let calls = (frames / batch).max(1);
    let mut best = f64::MAX;
    for _round in 0..7 {
        let start = cpu_ns();
        for _ in 0..calls {
            if batch == 1 {
                client.send(message_type::DATA, 0, &message)?;
            } else {
                client.send_batch(message_type::DATA, 0, &messages)?;
            }
            for _ in 0..batch {
                let len = if lent {
                    server.recv_ref(&mut frame, None)?.payload.len()
                } else {
                    server.recv(&mut frame)?;
                    frame.payload().len()
                };
                assert_eq!(len, size, "a whole payload");
            }
        }
        best = best.min((cpu_ns() - start) / (calls * batch) as f64);
    }
    println!(
        "{transport}, {size} B in batches of {batch}{}: {best:.1} ns CPU per frame (one thread, best of 7 rounds)",
        if lent { ", lent" } else { "" }
    );
    client.close()?;
    server.close()?;
    Ok(())
}
