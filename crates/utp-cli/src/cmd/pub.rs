//! `utp pub URL`: publish stdin to every subscriber, a line per message
//! (or, with `--frames`, UTP frames whose payload and type are published).

use crate::exit::{CmdResult, Exit};
use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use utp::pubsub::Publisher;

/// Arguments of `utp pub`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to publish: shm://NAME, unix:///PATH, tcp://HOST:PORT or zenoh://KEY, with
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
    // SIGINT/SIGTERM end the publisher cleanly (socket removed, subscribers
    // told), whatever it is doing: waiting, idle, or busy with input.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let interrupted = || {
        let stopped = stop.load(Ordering::Relaxed);
        if stopped {
            eprintln!("utp: interrupted");
        }
        stopped
    };
    let mut publisher = Publisher::create(&args.url)?;
    eprintln!("utp: publishing on {}", publisher.endpoint());
    let deadline = Instant::now() + args.wait_timeout;
    while publisher.subscriber_count() < args.wait_subscribers {
        if interrupted() {
            return Ok(());
        }
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
    // stdin is read on its own thread so that a signal is noticed within
    // 50 ms even while no input comes.
    let (tx, rx) = crossbeam_channel::bounded::<Result<(u8, Vec<u8>), Exit>>(1024);
    let max = publisher.max_payload();
    let frames = args.frames;
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        loop {
            let next = if frames {
                read_frame(&mut input, max)
            } else {
                read_line(&mut input)
            };
            match next {
                Ok(Some(message)) => {
                    if tx.send(Ok(message)).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    loop {
        // Checked before every message too: input that never pauses must
        // not keep a signal from being noticed.
        if interrupted() {
            return Ok(());
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok((message_type, payload))) => {
                publisher.send_typed(message_type, &payload)?;
            }
            Ok(Err(e)) => return Err(e),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    eprintln!("utp: published {} messages", publisher.published());
    let until = Instant::now() + args.linger;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// One line (without its newline) as a TEXT message; `None` at end of input.
fn read_line(input: &mut impl BufRead) -> Result<Option<(u8, Vec<u8>)>, Exit> {
    let mut line = Vec::new();
    if input.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(Some((utp::frame::message_type::TEXT, line)))
}

/// One UTP frame's type and payload; `None` at a clean end of input.
fn read_frame(input: &mut impl Read, max: usize) -> Result<Option<(u8, Vec<u8>)>, Exit> {
    let mut head = [0u8; utp::frame::HEADER_LEN];
    match input.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let header = utp::frame::decode_header(&head, max).map_err(utp::Error::from)?;
    // The payload grows as its bytes arrive (a header alone cannot make
    // us allocate its announced length).
    let mut bytes = head.to_vec();
    let rest = (header.frame_len() - utp::frame::HEADER_LEN) as u64;
    if input.take(rest).read_to_end(&mut bytes)? as u64 != rest {
        return Err(Exit::Error(format!(
            "stdin ended inside a frame ({} of {} bytes)",
            bytes.len(),
            header.frame_len()
        )));
    }
    let (header, payload) = utp::frame::decode(&bytes, max).map_err(utp::Error::from)?;
    Ok(Some((header.message_type, payload.to_vec())))
}
