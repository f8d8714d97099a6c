//! The `utp` command: serve and call services over any utp endpoint, decode
//! frames, inspect links, and benchmark every mechanism.

mod cmd;
mod exit;

use clap::{Parser, Subcommand};
use exit::Exit;

/// Fast, safe inter-process communication: one frame format, every Linux IPC
/// mechanism behind one URL.
///
/// Endpoints are URLs: shm://NAME, sysv://KEY, file:///PATH, unix:///PATH,
/// unix://@NAME, tcp://HOST:PORT, udp://HOST:PORT, pipe:, fifo:///PATH,
/// mq://NAME, inproc://NAME, and zenoh://KEY (feature `zenoh`).
#[derive(Debug, Parser)]
#[command(name = "utp", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a service (calc or echo) on an endpoint until SIGINT/SIGTERM.
    Serve(cmd::serve::Args),
    /// Call the calculator: `utp call URL ADD 10 20` prints 30.
    Call(cmd::call::Args),
    /// Serve, on endpoint TO, the service at FROM: `utp bridge shm://calc zenoh://site1/calc`.
    Bridge(cmd::bridge::Args),
    /// Decode or encode UTP frames as hex, for debugging captured traffic.
    #[command(subcommand)]
    Frame(cmd::frame::Command),
    /// Serve and call the calculator over a Unix socket, to see utp work.
    Demo(cmd::demo::Args),
    /// Show a shared-memory endpoint: listener, links, rings, peers, heartbeats.
    Inspect(cmd::inspect::Args),
    /// List utp endpoints on this machine (listener sockets, link regions).
    Ls(cmd::ls::Args),
    /// Measure every mechanism beside its raw baseline: latency, throughput, calls/s.
    Bench(cmd::bench::Args),
    /// The other side of one `utp bench` run (started by `utp bench` itself).
    #[command(hide = true)]
    BenchPeer(cmd::bench::peer::Args),
    /// Seqlock writer/reader cost per operation beside a raw baseline.
    #[command(hide = true)]
    BenchSeqlock(cmd::bench_seqlock::Args),
    /// The other side of `utp bench --only zenoh` (started by `utp bench` itself).
    #[cfg(feature = "zenoh")]
    #[command(hide = true)]
    BenchZenohPeer(cmd::bench::zenoh::peer::Args),
}

fn main() {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Call(args) => cmd::call::run(args),
        Command::Bridge(args) => cmd::bridge::run(args),
        Command::Frame(command) => cmd::frame::run(command),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Ls(args) => cmd::ls::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::BenchPeer(args) => cmd::bench::peer::run(args),
        Command::BenchSeqlock(args) => cmd::bench_seqlock::run(args),
        #[cfg(feature = "zenoh")]
        Command::BenchZenohPeer(args) => cmd::bench::zenoh::peer::run(args),
    };
    let code = match result {
        Ok(()) => 0,
        Err(Exit::Failed(code)) => code,
        Err(Exit::Error(error)) => {
            eprintln!("utp: error: {error}");
            2
        }
    };
    std::process::exit(code);
}
