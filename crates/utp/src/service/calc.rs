//! The calculator service of the original design: `"ADD 10 20"` → `"OK 30"`.
//!
//! Requests are ASCII text `OP A B`, OP one of `ADD SUB MUL DIV` (case
//! insensitive), A and B signed 64-bit integers. Replies are `OK <n>` or
//! `ERR <message>`. Every bad input gives an `ERR`, never a panic:
//!
//! ```
//! use utp::service::calc::evaluate;
//! assert_eq!(evaluate(b"ADD 10 20"), "OK 30");
//! assert_eq!(evaluate(b"DIV 7 2"), "OK 3");
//! assert_eq!(evaluate(b"DIV 1 0"), "ERR Division by zero");
//! assert_eq!(evaluate(b"MUL 9223372036854775807 2"), "ERR Overflow: 9223372036854775807 * 2 does not fit in a signed 64-bit integer");
//! assert_eq!(evaluate(b"POW 2 3"), "ERR Unknown operation: POW (expected ADD, SUB, MUL or DIV)");
//! ```

use super::{Client, Handler};
use crate::channel::PeerInfo;
use crate::error::{Error, Result};
use std::fmt;

/// A calculator operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Addition.
    Add,
    /// Subtraction.
    Sub,
    /// Multiplication.
    Mul,
    /// Integer division, truncating toward zero.
    Div,
}

impl Op {
    /// Parses `ADD`, `SUB`, `MUL` or `DIV` (any case).
    pub fn parse(text: &str) -> Option<Op> {
        Some(match text.to_ascii_uppercase().as_str() {
            "ADD" => Op::Add,
            "SUB" => Op::Sub,
            "MUL" => Op::Mul,
            "DIV" => Op::Div,
            _ => return None,
        })
    }

    fn symbol(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '-',
            Op::Mul => '*',
            Op::Div => '/',
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Add => "ADD",
            Op::Sub => "SUB",
            Op::Mul => "MUL",
            Op::Div => "DIV",
        })
    }
}

/// A parsed calculator request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The operation.
    pub op: Op,
    /// Left operand.
    pub a: i64,
    /// Right operand.
    pub b: i64,
}

impl Request {
    /// Parses request text `OP A B`; the error is the text of the `ERR` reply.
    pub fn parse(text: &[u8]) -> Result<Request, String> {
        let text =
            std::str::from_utf8(text).map_err(|_| "Request is not valid UTF-8".to_string())?;
        let parts: Vec<&str> = text.split_ascii_whitespace().collect();
        let [op, a, b] = parts.as_slice() else {
            return Err(format!("Expected 3 fields `OP A B`, got {}", parts.len()));
        };
        let op = Op::parse(op)
            .ok_or_else(|| format!("Unknown operation: {op} (expected ADD, SUB, MUL or DIV)"))?;
        let number = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| format!("Not a 64-bit integer: {s}"))
        };
        Ok(Request {
            op,
            a: number(a)?,
            b: number(b)?,
        })
    }

    /// Computes the result; the error is the text of the `ERR` reply.
    pub fn compute(&self) -> Result<i64, String> {
        let (a, b) = (self.a, self.b);
        let result = match self.op {
            Op::Add => a.checked_add(b),
            Op::Sub => a.checked_sub(b),
            Op::Mul => a.checked_mul(b),
            Op::Div if b == 0 => return Err("Division by zero".into()),
            Op::Div => a.checked_div(b),
        };
        result.ok_or_else(|| {
            format!(
                "Overflow: {a} {} {b} does not fit in a signed 64-bit integer",
                self.op.symbol()
            )
        })
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.op, self.a, self.b)
    }
}

/// Evaluates request text and returns the reply text (`OK n` or `ERR message`).
pub fn evaluate(request: &[u8]) -> String {
    match Request::parse(request).and_then(|r| r.compute()) {
        Ok(n) => format!("OK {n}"),
        Err(message) => format!("ERR {message}"),
    }
}

/// The calculator as a [`Handler`] for a [`Server`](super::Server).
pub fn handler() -> impl Handler {
    |request: &[u8], _peer: &PeerInfo| evaluate(request).into_bytes()
}

/// Calls the calculator: sends `request` and parses the reply.
///
/// ```no_run
/// use utp::service::{Client, calc};
/// let mut client = Client::connect("shm://calc")?;
/// let request = calc::Request { op: calc::Op::Add, a: 10, b: 20 };
/// assert_eq!(calc::call(&mut client, &request)?, calc::Reply::Ok(30));
/// # Ok::<(), utp::Error>(())
/// ```
pub fn call(client: &mut Client, request: &Request) -> Result<Reply> {
    let reply = client.call(request.to_string().as_bytes())?;
    Reply::parse(reply).map_err(|e| Error::protocol(crate::ProtocolReason::Unexpected, e))
}

/// A parsed calculator reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `OK n`.
    Ok(i64),
    /// `ERR message`.
    Err(String),
}

impl Reply {
    /// Parses reply text; anything that is neither `OK n` nor `ERR ...` is a protocol error.
    pub fn parse(text: &[u8]) -> Result<Reply, String> {
        let text = std::str::from_utf8(text).map_err(|_| "reply is not UTF-8".to_string())?;
        if let Some(n) = text.strip_prefix("OK ") {
            return n
                .trim()
                .parse()
                .map(Reply::Ok)
                .map_err(|_| format!("reply {text:?} has no number after OK"));
        }
        if let Some(message) = text.strip_prefix("ERR") {
            return Ok(Reply::Err(message.trim().to_string()));
        }
        Err(format!(
            "reply {text:?} is neither `OK n` nor `ERR message`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_operations() {
        assert_eq!(evaluate(b"ADD 10 20"), "OK 30");
        assert_eq!(evaluate(b"SUB 10 20"), "OK -10");
        assert_eq!(evaluate(b"MUL 6 7"), "OK 42");
        assert_eq!(evaluate(b"DIV -7 2"), "OK -3");
        assert_eq!(evaluate(b"add 1 2"), "OK 3");
        assert_eq!(evaluate(b"  ADD   1\t2 \n"), "OK 3");
        // Only ASCII whitespace separates fields (docs/protocol.md).
        assert!(evaluate("ADD\u{a0}1 2".as_bytes()).starts_with("ERR Expected 3 fields"));
    }

    #[test]
    fn every_bad_input_is_an_err_reply() {
        for (input, needle) in [
            (&b"DIV 1 0"[..], "Division by zero"),
            (b"DIV -9223372036854775808 -1", "Overflow"),
            (b"ADD 9223372036854775807 1", "Overflow"),
            (b"SUB -9223372036854775808 1", "Overflow"),
            (b"POW 1 2", "Unknown operation: POW"),
            (b"ADD 1", "Expected 3 fields"),
            (b"ADD 1 2 3", "Expected 3 fields"),
            (b"", "Expected 3 fields"),
            (b"ADD x 2", "Not a 64-bit integer: x"),
            (b"ADD 1 99999999999999999999", "Not a 64-bit integer"),
            (b"ADD \xff 2", "not valid UTF-8"),
        ] {
            let reply = evaluate(input);
            assert!(reply.starts_with("ERR "), "{reply}");
            assert!(reply.contains(needle), "{input:?}: {reply}");
        }
    }

    #[test]
    fn replies_parse() {
        assert_eq!(Reply::parse(b"OK -5"), Ok(Reply::Ok(-5)));
        assert_eq!(
            Reply::parse(b"ERR Division by zero"),
            Ok(Reply::Err("Division by zero".into()))
        );
        assert!(Reply::parse(b"HELLO").is_err());
    }
}
