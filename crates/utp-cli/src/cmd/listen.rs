//! `utp listen URL`: listens on an endpoint and prints the frames clients
//! send, one client after another; optionally answers each request.

use super::frames::show;
use super::ready_file::ReadyFile;
use crate::exit::{CmdResult, Exit};
use std::time::Duration;
use utp::frame::{Frame, flags, message_type};
use utp::service::Shutdown;

/// How often idle waits look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Arguments of `utp listen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Endpoint to listen on.
    url: String,
    /// Exit after this many frames (default: until SIGINT/SIGTERM).
    #[arg(long)]
    count: Option<u64>,
    /// Print each frame as a JSON object.
    #[arg(long)]
    json: bool,
    /// Answer each REQUEST with a RESPONSE carrying the same payload.
    #[arg(long, conflicts_with = "reply")]
    echo: bool,
    /// Answer each REQUEST with a RESPONSE carrying this text.
    #[arg(long, value_name = "TEXT")]
    reply: Option<String>,
    /// Once listening, write the endpoint's URL to this file (removed on exit).
    #[arg(long, value_name = "PATH")]
    ready_file: Option<std::path::PathBuf>,
}

/// Prints one line per frame (heartbeats and goodbyes skipped).
pub fn run(args: Args) -> CmdResult {
    super::serve::refuse_inproc(&args.url)?;
    if matches!(
        utp::Endpoint::parse(&args.url)?.address,
        utp::endpoint::Address::Pipe(_)
    ) {
        return Err(Exit::Error(
            "listen prints frames on stdout, which a pipe: listener uses for frames; \
             use `utp serve echo --on pipe:` or another transport"
                .into(),
        ));
    }
    let mut listener = utp::listen(&args.url)?;
    let stop = Shutdown::default();
    stop.on_signals()?;
    let _ready = ReadyFile::announce(args.ready_file.as_deref(), &listener.endpoint())?;
    let mut frame = Frame::with_capacity(4096);
    let mut seen = 0u64;
    let done = |seen: u64| args.count.is_some_and(|n| seen >= n);
    'clients: while !stop.is_triggered() && !done(seen) {
        let mut channel = match listener.accept_timeout(Some(POLL)) {
            Ok(channel) => channel,
            Err(utp::Error::Timeout { .. }) => continue,
            Err(e @ utp::Error::Denied { .. }) => {
                log::warn!("{e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        while !stop.is_triggered() && !done(seen) {
            match channel.recv_timeout(&mut frame, Some(POLL)) {
                Ok(()) => {}
                Err(utp::Error::Timeout { .. }) => continue,
                Err(e) if e.is_peer_gone() => continue 'clients,
                Err(e) => {
                    log::warn!("client dropped: {e}");
                    continue 'clients;
                }
            }
            match frame.message_type() {
                message_type::HEARTBEAT => continue,
                message_type::GOODBYE => continue 'clients,
                _ => {}
            }
            println!("{}", show(&frame, args.json));
            seen += 1;
            if frame.message_type() == message_type::REQUEST {
                let answer = match (&args.reply, args.echo) {
                    (Some(text), _) => Some(text.as_bytes().to_vec()),
                    (None, true) => Some(frame.payload().to_vec()),
                    (None, false) => None,
                };
                if let Some(answer) = answer {
                    let sent = channel.send_timeout(
                        message_type::RESPONSE,
                        flags::CHECKSUM,
                        &answer,
                        Some(Duration::from_secs(5)),
                    );
                    if let Err(e) = sent {
                        log::warn!("reply not delivered: {e}");
                    }
                }
            }
        }
        // Let the last reply leave before the channel closes.
        let _ = channel.close();
    }
    listener.close().map_err(Exit::from)
}
