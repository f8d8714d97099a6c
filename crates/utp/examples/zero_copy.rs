//! Zero-copy on shared memory: the client writes its request straight into
//! the ring (`reserve` + `commit`, no copy, no system call) and reads the
//! reply in place (`recv_view`), on the concrete `ShmLink` that
//! `utp::shm::connect` returns.
//!
//! ```text
//! cargo run -p utp --example zero_copy
//! ```

use std::time::Duration;
use utp::frame::{Frame, flags, message_type};

fn main() -> utp::Result<()> {
    let url = format!("shm://utp-example-zc-{}", std::process::id());
    let mut listener = utp::listen(&url)?;

    let client = std::thread::spawn({
        let url = url.clone();
        move || -> utp::Result<String> {
            // The per-transport entry point: a parsed URL and options.
            let mut link = utp::shm::connect(&url.parse()?, &utp::Options::default())?;
            let request = b"ADD 10 20";
            let mut room = link.reserve(request.len(), Some(Duration::from_secs(5)))?;
            room.payload_mut().copy_from(request);
            room.commit(message_type::REQUEST, flags::CHECKSUM);

            let reply = link.recv_view(Some(Duration::from_secs(5)))?;
            // Memory the peer can write is never a plain &[u8]: compare in
            // place, or copy once (the checksum is verified on the copy).
            assert!(reply.payload().eq_bytes(b"OK 30"));
            let mut copy = Vec::new();
            reply.copy_payload(&mut copy)?;
            Ok(String::from_utf8_lossy(&copy).into_owned())
        }
    });

    let mut server = listener.accept_timeout(Some(Duration::from_secs(5)))?;
    let mut frame = Frame::default();
    server.recv_timeout(&mut frame, Some(Duration::from_secs(5)))?;
    let answer = utp::service::calc::evaluate(frame.payload());
    server.send(message_type::RESPONSE, flags::CHECKSUM, answer.as_bytes())?;

    println!("ADD 10 20 -> {}", client.join().expect("client thread")?);
    Ok(())
}
