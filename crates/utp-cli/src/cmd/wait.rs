//! `utp wait URL`: waits until a server accepts connections at URL.

use crate::exit::{CmdResult, Exit};
use std::time::{Duration, Instant};

/// Arguments of `utp wait`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Endpoint to wait for.
    url: String,
    /// Give up after this long (exit 1), e.g. 500ms, 10s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Connects (and disconnects) as soon as a server is there; exit 0. Exit 1
/// if none came in time; exit 2 for an error that waiting cannot fix.
pub fn run(args: Args) -> CmdResult {
    let endpoint = utp::Endpoint::parse(&args.url)?;
    if matches!(endpoint.address, utp::endpoint::Address::Pipe(_)) {
        return Err(Exit::Error(
            "pipe: has no server to wait for: connecting starts one".into(),
        ));
    }
    if matches!(endpoint.address, utp::endpoint::Address::Udp(_)) {
        return Err(Exit::Error(
            "udp:// has no connection to wait for: a datagram server answers only calls".into(),
        ));
    }
    let deadline = Instant::now() + args.timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let options =
            utp::Options::default().with_connect_timeout(left.max(Duration::from_millis(10)));
        match utp::connect_with(&args.url, &options) {
            Ok(mut channel) => {
                let _ = channel.close();
                return Ok(());
            }
            Err(e @ (utp::Error::BadUrl { .. } | utp::Error::Denied { .. })) => {
                return Err(e.into());
            }
            Err(e) if Instant::now() >= deadline => {
                eprintln!(
                    "utp: no server at {} after {}: {e}",
                    args.url,
                    humantime::format_duration(args.timeout)
                );
                return Err(Exit::Failed(1));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
