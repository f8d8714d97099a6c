//! `utp pub URL`: publish stdin to every subscriber, a line per message
//! (or, with `--frames`, UTP frames whose payload and type are published).

use crate::exit::{CmdResult, Exit};
use std::io::{BufRead, Read};
use std::time::{Duration, Instant};
use utp::pubsub::Publisher;

/// Arguments of `utp pub`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to publish: shm://NAME, unix:///PATH or tcp://HOST:PORT, with
    /// options such as ?slots=4096&slot=512.
    url: String,
    /// Read UTP frames (binary) from stdin instead of lines.
    #[arg(long)]
    frames: bool,
    /// Wait for this many subscribers before reading stdin.
    #[arg(long, default_value_t = 0)]
    wait_subscribers: usize,
    /// Give up waiting for subscribers after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    wait_timeout: Duration,
    /// Keep the publisher up this long after stdin ends (so `utp inspect` can see it).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    linger: Duration,
}

/// Publishes until stdin ends.
pub fn run(args: Args) -> CmdResult {
    let mut publisher = Publisher::create(&args.url)?;
    eprintln!("utp: publishing on {}", publisher.endpoint());
    let deadline = Instant::now() + args.wait_timeout;
    while publisher.subscriber_count() < args.wait_subscribers {
        if Instant::now() >= deadline {
            return Err(Exit::Error(format!(
                "only {} of {} subscribers after {:?}",
                publisher.subscriber_count(),
                args.wait_subscribers,
                args.wait_timeout
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    if args.frames {
        loop {
            let mut head = [0u8; utp::frame::HEADER_LEN];
            match input.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
            let max = publisher.max_payload();
            let header = utp::frame::decode_header(&head, max).map_err(utp::Error::from)?;
            let mut bytes = head.to_vec();
            bytes.resize(header.frame_len(), 0);
            input.read_exact(&mut bytes[utp::frame::HEADER_LEN..])?;
            let (header, payload) = utp::frame::decode(&bytes, max).map_err(utp::Error::from)?;
            publisher.send_typed(header.message_type, payload)?;
        }
    } else {
        let mut line = Vec::new();
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            publisher.send_typed(utp::frame::message_type::TEXT, &line)?;
        }
    }
    eprintln!("utp: published {} messages", publisher.published());
    std::thread::sleep(args.linger);
    Ok(())
}
