//! `utp recv URL`: connects to an endpoint and prints the frames it sends.

use super::frames::show;
use crate::exit::CmdResult;
use std::time::Duration;
use utp::frame::{Frame, message_type};

/// Arguments of `utp recv`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Endpoint to connect to.
    url: String,
    /// Stop after this many frames (default: until the peer closes).
    #[arg(long)]
    count: Option<u64>,
    /// Print each frame as a JSON object.
    #[arg(long)]
    json: bool,
    /// Give up when no frame comes for this long (default: wait forever).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

/// Prints one line per frame (heartbeats skipped); exit 0 when the peer
/// closes or `--count` frames arrived, 2 on an error or a timeout.
pub fn run(args: Args) -> CmdResult {
    let mut channel = utp::connect(&args.url)?;
    let mut frame = Frame::with_capacity(4096);
    let mut seen = 0u64;
    while args.count.is_none_or(|n| seen < n) {
        match channel.recv_timeout(&mut frame, args.timeout) {
            Ok(()) => {}
            Err(e) if e.is_peer_gone() => break,
            Err(e) => return Err(e.into()),
        }
        match frame.message_type() {
            message_type::HEARTBEAT => continue,
            message_type::GOODBYE => break,
            _ => {}
        }
        println!("{}", show(&frame, args.json));
        seen += 1;
    }
    let _ = channel.close();
    Ok(())
}
