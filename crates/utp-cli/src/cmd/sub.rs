//! `utp sub URL`: print every message a publisher sends, with loss notices.

use crate::exit::CmdResult;
use std::io::Write;
use std::time::Duration;
use utp::pubsub::Subscriber;

/// Arguments of `utp sub`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The publisher: shm://NAME, unix:///PATH, tcp://HOST:PORT or zenoh://KEY, with
    /// options such as ?policy=block&wait=spin.
    url: String,
    /// One JSON object per message: sequence, lost_before, type, timestamp_us, text or hex.
    #[arg(long)]
    json: bool,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Stop when no message arrives for this long (default: wait until the publisher ends).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

/// Prints messages until the publisher closes, `--count` is reached or `--timeout` passes.
pub fn run(args: Args) -> CmdResult {
    let mut sub = Subscriber::connect(&args.url)?;
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    let mut n = 0u64;
    while args.count.is_none_or(|c| n < c) {
        let got = match sub.recv(&mut buf, args.timeout) {
            Ok(g) => g,
            Err(e) if e.is_peer_gone() || e.is_timeout() => {
                eprintln!("utp: {e}");
                break;
            }
            Err(e) => return Err(e.into()),
        };
        n += 1;
        if args.json {
            let mut obj = serde_json::json!({
                "sequence": got.sequence,
                "lost_before": got.lost_before,
                "type": got.message_type,
                "timestamp_us": got.timestamp_us,
            });
            match std::str::from_utf8(&buf) {
                Ok(text) => obj["text"] = text.into(),
                Err(_) => obj["hex"] = hex::encode(&buf).into(),
            }
            writeln!(out, "{obj}")?;
        } else {
            if got.lost_before > 0 {
                eprintln!(
                    "utp: lost {} messages before #{}",
                    got.lost_before, got.sequence
                );
            }
            out.write_all(&buf)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    eprintln!("utp: received {}, lost {}", sub.received(), sub.lost());
    Ok(())
}
