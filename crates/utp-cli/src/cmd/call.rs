//! `utp call URL OP A B`.

use crate::exit::{CmdResult, Exit};
use std::time::Duration;
use utp::service::{Client, calc};

/// Arguments of `utp call`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Endpoint of a calculator server.
    url: String,
    /// Operation: ADD, SUB, MUL or DIV.
    op: String,
    /// Left operand (a signed 64-bit integer).
    #[arg(allow_hyphen_values = true)]
    a: String,
    /// Right operand (a signed 64-bit integer).
    #[arg(allow_hyphen_values = true)]
    b: String,
    /// Give up after this long (connect and reply), e.g. 500ms, 5s.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print the outcome as JSON on stdout: {"ok":true,"result":30} or
    /// {"ok":false,"error":"Division by zero"} (exit codes unchanged).
    #[arg(long)]
    json: bool,
}

/// Prints the result and exits 0; prints an `ERR` to stderr and exits 1.
pub fn run(args: Args) -> CmdResult {
    let options = utp::Options::default().with_connect_timeout(args.timeout);
    let mut client = Client::connect_with(&args.url, &options)?;
    client.set_timeout(Some(args.timeout));
    // The server validates the request: what it says is what the user sees.
    let request = format!("{} {} {}", args.op, args.a, args.b);
    let reply = client.call(request.as_bytes())?;
    let outcome = calc::Reply::parse(reply)
        .map_err(|e| utp::Error::protocol(utp::ProtocolReason::Unexpected, e))?;
    let _ = client.close();
    match outcome {
        calc::Reply::Ok(n) => {
            if args.json {
                println!("{}", serde_json::json!({"ok": true, "result": n}));
            } else {
                println!("{n}");
            }
            Ok(())
        }
        calc::Reply::Err(message) => {
            if args.json {
                println!("{}", serde_json::json!({"ok": false, "error": message}));
            } else {
                eprintln!("{}", crate::escape::for_terminal(&message, false));
            }
            Err(Exit::Failed(1))
        }
    }
}
