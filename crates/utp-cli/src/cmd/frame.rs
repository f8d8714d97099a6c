//! `utp frame decode|encode`: UTP frames as hex, for people reading captured traffic.

use crate::exit::{CmdResult, Exit};
use serde::{Deserialize, Serialize};
use std::io::Read;
use utp::frame::{self, Header};

/// `utp frame` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Decode one frame from hex and print it as JSON.
    ///
    /// Prints {"type","flags","sequence","timestamp_us","checksum","payload_hex"};
    /// an invalid frame prints `error: <kind>` (truncated, bad_magic,
    /// unsupported_version, too_large, checksum_mismatch) and exits 1.
    Decode {
        /// The frame as hex (whitespace allowed); `-` or nothing reads stdin.
        hex: Option<String>,
        /// Largest payload to accept, in bytes.
        #[arg(long, default_value_t = frame::DEFAULT_MAX_PAYLOAD)]
        max_payload: usize,
    },
    /// Encode a frame from JSON (the keys `decode` prints) and print its hex.
    ///
    /// `payload_hex` defaults to empty, `flags` to 1 (checksum), `sequence` to 1,
    /// `timestamp_us` to now; `checksum` is computed, never read.
    Encode {
        /// The frame as JSON; `-` or nothing reads stdin.
        json: Option<String>,
    },
}

/// A frame as JSON.
#[derive(Debug, Serialize, Deserialize)]
struct FrameJson {
    #[serde(rename = "type")]
    message_type: u8,
    #[serde(default = "checksum_flag")]
    flags: u16,
    #[serde(default = "first")]
    sequence: u64,
    #[serde(default = "frame::now_micros")]
    timestamp_us: u64,
    #[serde(default, skip_deserializing)]
    checksum: u32,
    #[serde(default)]
    payload_hex: String,
}

fn checksum_flag() -> u16 {
    frame::flags::CHECKSUM
}

fn first() -> u64 {
    1
}

/// Runs a `utp frame` subcommand.
pub fn run(command: Command) -> CmdResult {
    match command {
        Command::Decode { hex, max_payload } => decode(&argument_or_stdin(hex)?, max_payload),
        Command::Encode { json } => encode(&argument_or_stdin(json)?),
    }
}

fn argument_or_stdin(arg: Option<String>) -> Result<String, Exit> {
    match arg.as_deref() {
        None | Some("-") => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            Ok(input)
        }
        Some(text) => Ok(text.to_string()),
    }
}

fn decode(text: &str, max_payload: usize) -> CmdResult {
    let compact: String = text.split_whitespace().collect();
    let compact = compact.strip_prefix("0x").unwrap_or(&compact);
    let bytes = hex::decode(compact).map_err(|e| Exit::Error(format!("input is not hex: {e}")))?;
    match frame::decode(&bytes, max_payload) {
        Ok((header, payload)) => {
            let json = FrameJson {
                message_type: header.message_type,
                flags: header.flags,
                sequence: header.sequence,
                timestamp_us: header.timestamp_us,
                checksum: header.checksum,
                payload_hex: hex::encode(payload),
            };
            println!(
                "{}",
                serde_json::to_string(&json).expect("frame JSON serializes")
            );
            if bytes.len() > header.frame_len() {
                eprintln!(
                    "note: {} bytes after the frame were not decoded",
                    bytes.len() - header.frame_len()
                );
            }
            Ok(())
        }
        Err(error) => {
            println!("error: {}", error.kind());
            eprintln!("{error}");
            Err(Exit::Failed(1))
        }
    }
}

fn encode(text: &str) -> CmdResult {
    let json: FrameJson = serde_json::from_str(text)
        .map_err(|e| Exit::Error(format!("input is not frame JSON: {e}")))?;
    let payload = hex::decode(json.payload_hex.trim())
        .map_err(|e| Exit::Error(format!("payload_hex is not hex: {e}")))?;
    let header = Header::new(
        json.message_type,
        json.flags,
        json.sequence,
        json.timestamp_us,
    );
    println!("{}", hex::encode(frame::encode_to_vec(&header, &payload)));
    Ok(())
}
