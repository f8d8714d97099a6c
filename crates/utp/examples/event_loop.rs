//! One thread, one `mio::Poll`, three channels of different transports
//! (shm://, unix://, udp://) served at once: the event-loop pattern of
//! `docs/event-loops.md`.
//!
//! Each channel's [`Channel::readiness`] descriptor is registered with mio;
//! when it turns readable the loop drains the channel with
//! [`Channel::try_recv`] until it returns `false` (which also re-arms the
//! shm link's wake-up), echoing every frame. Three client threads send
//! numbered requests and check the echoes.
//!
//! `cargo run -p utp --example event_loop` (also run by
//! `cargo test -p utp --test examples`).

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::os::fd::AsRawFd;
use std::time::Duration;
use utp::frame::{Frame, flags, message_type};
use utp::{Channel, Listener};

/// Requests each client sends.
const ROUNDS: usize = 200;

pub fn main() -> utp::Result<()> {
    let tag = format!("event-loop-{}", std::process::id());
    // Port 0: the system picks a free UDP port; `endpoint()` says which.
    let mut listeners: Vec<Box<dyn Listener>> = [
        format!("shm://{tag}"),
        format!("unix:///tmp/utp-{tag}.sock"),
        "udp://127.0.0.1:0".to_string(),
    ]
    .iter()
    .map(|u| utp::listen(u))
    .collect::<utp::Result<_>>()?;
    let urls: Vec<String> = listeners.iter().map(|l| l.endpoint()).collect();

    // Clients: one thread per transport, ROUNDS request/echo pairs each.
    let clients: Vec<_> = urls
        .iter()
        .cloned()
        .map(|url| {
            std::thread::spawn(move || -> utp::Result<()> {
                let mut ch = utp::connect(&url)?;
                let mut frame = Frame::default();
                for i in 0..ROUNDS {
                    let text = format!("{url} #{i}");
                    ch.send(message_type::REQUEST, flags::CHECKSUM, text.as_bytes())?;
                    ch.recv_timeout(&mut frame, Some(Duration::from_secs(10)))?;
                    assert_eq!(frame.payload(), text.as_bytes(), "echo over {url}");
                }
                Ok(())
            })
        })
        .collect();

    // The server: accept one client per listener (UDP learns of a client
    // from its first datagram), then serve all three from one mio loop.
    let mut channels: Vec<Box<dyn Channel>> = listeners
        .iter_mut()
        .map(|l| l.accept_timeout(Some(Duration::from_secs(10))))
        .collect::<utp::Result<_>>()?;
    let mut poll = Poll::new().map_err(|e| utp::Error::io("mio poll", e))?;
    for (i, ch) in channels.iter().enumerate() {
        let fd = ch.readiness().expect("every transport has readiness").fd;
        poll.registry()
            .register(&mut SourceFd(&fd.as_raw_fd()), Token(i), Interest::READABLE)
            .map_err(|e| utp::Error::io("register with mio", e))?;
    }
    let mut events = Events::with_capacity(8);
    let mut frame = Frame::default();
    let mut echoed = [0usize; 3];
    while echoed.iter().any(|&n| n < ROUNDS) {
        // Drain first: a frame may already be there, and a `false` from
        // try_recv is what arms the descriptor for the next one.
        for (i, ch) in channels.iter_mut().enumerate() {
            while echoed[i] < ROUNDS && ch.try_recv(&mut frame)? {
                ch.send(message_type::RESPONSE, flags::CHECKSUM, frame.payload())?;
                echoed[i] += 1;
            }
        }
        if echoed.iter().all(|&n| n >= ROUNDS) {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_secs(10)))
            .map_err(|e| utp::Error::io("mio poll", e))?;
        if events.is_empty() {
            return Err(utp::Error::protocol(
                utp::ProtocolReason::Unexpected,
                format!("no event within 10 s; echoed {echoed:?}"),
            ));
        }
    }
    for client in clients {
        client.join().expect("client thread")?;
    }
    println!("echoed {ROUNDS} frames on each of {}", urls.join(", "));
    Ok(())
}
