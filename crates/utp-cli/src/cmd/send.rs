//! `utp send URL [TEXT...]`: sends frames to any endpoint and prints what
//! comes back, like netcat for utp.

use super::frames::{parse_type, show};
use crate::exit::{CmdResult, Exit};
use std::io::BufRead;
use std::time::Duration;
use utp::frame::{Frame, flags, message_type};

/// Arguments of `utp send`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Endpoint to connect to.
    url: String,
    /// The payload (words joined by spaces); without it, each line of stdin is one frame.
    #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
    text: Vec<String>,
    /// Message type of the frames sent: request, response, text, data, error, or a number.
    #[arg(long = "type", default_value = "request", value_parser = parse_type)]
    message_type: u8,
    /// Payloads are hex (e.g. 414444), not text.
    #[arg(long)]
    hex: bool,
    /// Do not wait for a reply after each frame.
    #[arg(long)]
    no_reply: bool,
    /// Print each reply as a JSON object (type, flags, sequence, payload, payload_hex).
    #[arg(long)]
    json: bool,
    /// How long to wait for the connection and for each reply, e.g. 500ms, 5s.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Sends each payload and prints each reply on stdout. Exit 1 if the peer
/// answered with an ERROR frame (printed on stderr), 2 on any other error.
pub fn run(args: Args) -> CmdResult {
    let options = utp::Options::default().with_connect_timeout(args.timeout);
    let mut channel = utp::connect_with(&args.url, &options)?;
    let mut frame = Frame::with_capacity(4096);
    let mut refused = false;
    let mut exchange = |line: &str| -> Result<(), Exit> {
        let payload = if args.hex {
            hex::decode(line.trim())
                .map_err(|e| Exit::Error(format!("{line:?} is not hex: {e}")))?
        } else {
            line.as_bytes().to_vec()
        };
        channel.send_timeout(
            args.message_type,
            flags::CHECKSUM,
            &payload,
            Some(args.timeout),
        )?;
        if args.no_reply {
            return Ok(());
        }
        loop {
            channel.recv_timeout(&mut frame, Some(args.timeout))?;
            if frame.message_type() != message_type::HEARTBEAT {
                break;
            }
        }
        if frame.message_type() == message_type::ERROR && !args.json {
            eprintln!("{}", show(&frame, false));
            refused = true;
        } else {
            refused |= frame.message_type() == message_type::ERROR;
            println!("{}", show(&frame, args.json));
        }
        Ok(())
    };
    if args.text.is_empty() {
        for line in std::io::stdin().lock().lines() {
            exchange(&line?)?;
        }
    } else {
        exchange(&args.text.join(" "))?;
    }
    let _ = channel.send_timeout(
        message_type::GOODBYE,
        flags::CHECKSUM,
        b"",
        Some(Duration::from_millis(100)),
    );
    let _ = channel.close();
    if refused {
        Err(Exit::Failed(1))
    } else {
        Ok(())
    }
}
