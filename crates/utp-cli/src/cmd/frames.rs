//! What `send`, `recv` and `listen` share: message types by name, and
//! printing a frame as a line or as JSON.

use serde_json::json;
use utp::frame::{Frame, message_type};

/// Parses a message type: a name (`request`, `response`, `error`, `text`,
/// `data`, `heartbeat`, `goodbye`) or a number (`16`, `0x10`).
pub fn parse_type(raw: &str) -> Result<u8, String> {
    let named = match raw.to_ascii_lowercase().as_str() {
        "data" => Some(message_type::DATA),
        "heartbeat" => Some(message_type::HEARTBEAT),
        "text" => Some(message_type::TEXT),
        "request" => Some(message_type::REQUEST),
        "response" => Some(message_type::RESPONSE),
        "error" => Some(message_type::ERROR),
        "goodbye" => Some(message_type::GOODBYE),
        _ => None,
    };
    if let Some(t) = named {
        return Ok(t);
    }
    let number = match raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => raw.parse::<u8>(),
    };
    number.map_err(|_| {
        format!(
            "message type {raw:?} is not a name (data, heartbeat, text, request, response, error, goodbye) or a number 0-255"
        )
    })
}

/// The name of a message type, or its number as `0xNN`.
pub fn type_name(t: u8) -> String {
    match t {
        message_type::DATA => "data".into(),
        message_type::HEARTBEAT => "heartbeat".into(),
        message_type::TEXT => "text".into(),
        message_type::REQUEST => "request".into(),
        message_type::RESPONSE => "response".into(),
        message_type::ERROR => "error".into(),
        message_type::GOODBYE => "goodbye".into(),
        other => format!("0x{other:02x}"),
    }
}

/// One line for a frame: its payload as text (invalid UTF-8 replaced), or
/// with `json` an object with type, flags, sequence, timestamp, payload
/// text (when UTF-8) and hex.
pub fn show(frame: &Frame, json: bool) -> String {
    let payload = frame.payload();
    if json {
        json!({
            "type": type_name(frame.message_type()),
            "type_code": frame.message_type(),
            "flags": frame.header.flags,
            "sequence": frame.header.sequence,
            "timestamp_us": frame.header.timestamp_us,
            "length": payload.len(),
            "payload": std::str::from_utf8(payload).ok(),
            "payload_hex": hex::encode(payload),
        })
        .to_string()
    } else {
        String::from_utf8_lossy(payload).into_owned()
    }
}
