//! `utp demo`: a calculator server in a child process and calls to it over a
//! Unix socket, to see utp work end to end in a few seconds.

use crate::exit::{CmdResult, Exit};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use utp::service::Client;

/// Arguments of `utp demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Endpoint for the demo server (default: a Unix socket in /tmp).
    #[arg(long, value_name = "URL")]
    on: Option<String>,
    /// How many calls to time.
    #[arg(long, default_value_t = 10_000)]
    calls: u32,
}

/// Starts `utp serve calc` as a child, calls it, stops it, checks the cleanup.
pub fn run(args: Args) -> CmdResult {
    let url = args
        .on
        .unwrap_or_else(|| format!("unix:///tmp/utp-demo-{}.sock", std::process::id()));
    let exe = std::env::current_exe()?;
    let server = Command::new(exe)
        .args(["serve", "calc", "--on", &url])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()?;
    let mut server = KillOnDrop(server);
    println!("server: utp serve calc --on {url}  (pid {})", server.0.id());
    let mut client = connect_when_ready(&url)?;

    for request in [
        "ADD 10 20",
        "SUB 5 8",
        "MUL 6 7",
        "DIV 7 2",
        "DIV 1 0",
        "POW 2 3",
    ] {
        let reply = client.call(request.as_bytes())?;
        println!("  {request:<10} -> {}", String::from_utf8_lossy(reply));
    }

    let start = Instant::now();
    for i in 0..args.calls {
        let request = format!("ADD {i} 1");
        let reply = client.call(request.as_bytes())?;
        if reply != format!("OK {}", i + 1).as_bytes() {
            return Err(Exit::Error(format!("wrong answer to {request}: {reply:?}")));
        }
    }
    let elapsed = start.elapsed();
    println!(
        "{} calls in {:.1?}: {:.1} µs per call, {:.0} calls/s (all answers checked)",
        args.calls,
        elapsed,
        elapsed.as_secs_f64() * 1e6 / f64::from(args.calls.max(1)),
        f64::from(args.calls) / elapsed.as_secs_f64()
    );
    drop(client);

    rustix::process::kill_process(
        rustix::process::Pid::from_child(&server.0),
        rustix::process::Signal::TERM,
    )
    .map_err(|e| Exit::Error(format!("stop the server: {e}")))?;
    let status = server.0.wait()?;
    println!("server stopped with {status}");
    Ok(())
}

fn connect_when_ready(url: &str) -> Result<Client, Exit> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Client::connect(url) {
            Ok(client) => return Ok(client),
            Err(utp::Error::NotFound { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Kills the child if the demo ends early.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
