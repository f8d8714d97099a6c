//! The `utp` command: serve and call services over any utp endpoint, decode
//! frames, inspect links, and benchmark every mechanism.

mod cmd;
mod escape;
mod exit;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use exit::Exit;

/// `utp --version`: the version, the build's features, and the versions
/// of the formats it speaks.
fn long_version() -> String {
    let features: &[&str] = &[
        #[cfg(feature = "peers")]
        "peers",
    ];
    format!(
        "{}\nfeatures: {}\nframe version {}, shm layout version {}, seqlock cell version {}, stats layout version {}",
        env!("CARGO_PKG_VERSION"),
        if features.is_empty() {
            "none (build with --features peers for the benchmark's peer libraries)".to_string()
        } else {
            features.join(", ")
        },
        utp::frame::VERSION,
        utp::shm::layout::LAYOUT_VERSION,
        utp::seqlock::layout::CELL_VERSION,
        utp::stats::VERSION,
    )
}

/// Fast, safe inter-process communication: one frame format, every Linux IPC
/// mechanism behind one URL.
///
/// Endpoints are URLs: shm://NAME, sysv://KEY, file:///PATH, unix:///PATH,
/// unix://@NAME, tcp://HOST:PORT, udp://HOST:PORT, pipe:, fifo:///PATH,
/// mq://NAME, inproc://NAME, and zenoh://KEY (feature `zenoh`).
///
/// Logging: RUST_LOG sets the filter (error, warn, info, debug, trace; the
/// default is info); -v, -vv and -q override it.
#[derive(Debug, Parser)]
#[command(name = "utp", version, propagate_version = true)]
pub struct Cli {
    /// More log output: -v for debug, -vv for trace (overrides RUST_LOG).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors in the log (overrides RUST_LOG).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// The command-line definition, for completions and the man page.
pub fn command() -> clap::Command {
    Cli::command().long_version(&*Box::leak(long_version().into_boxed_str()))
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a service (calc or echo) on an endpoint until SIGINT/SIGTERM.
    Serve(cmd::serve::Args),
    /// Call the calculator: `utp call URL ADD 10 20` prints 30.
    Call(cmd::call::Args),
    /// Wait until a server answers at URL (for scripts: `utp serve ... & utp wait URL`).
    Wait(cmd::wait::Args),
    /// Send frames (arguments or stdin lines) to an endpoint and print the replies.
    Send(cmd::send::Args),
    /// Connect to an endpoint and print the frames it sends.
    Recv(cmd::recv::Args),
    /// Listen on an endpoint and print the frames clients send (optionally answer them).
    Listen(cmd::listen::Args),
    /// Show the counters of the channels and servers at URL (all, without URL).
    Stat(cmd::stat::Args),
    /// Check this machine for what utp needs; print the fix of each problem.
    Doctor(cmd::doctor::Args),
    /// Print a shell completion script: bash, zsh, fish, elvish, powershell.
    Completions(cmd::completions::Args),
    /// Print the man page (roff) to stdout: `utp man | man -l -`.
    Man(cmd::man::Args),
    /// Serve, on endpoint TO, the service at FROM: `utp bridge shm://calc zenoh://site1/calc`.
    Bridge(cmd::bridge::Args),
    /// Decode or encode UTP frames as hex, for debugging captured traffic.
    #[command(subcommand)]
    Frame(cmd::frame::Command),
    /// Serve and call the calculator over a Unix socket, to see utp work.
    Demo(cmd::demo::Args),
    /// Show a shared-memory endpoint: listener, links, rings, peers, heartbeats.
    Inspect(cmd::inspect::Args),
    /// List live utp endpoints on this machine, every transport, with owner, pid and clients.
    Ls(cmd::ls::Args),
    /// Measure every mechanism beside its raw baseline: latency, throughput, calls/s.
    Bench(cmd::bench::Args),
    /// The other side of one `utp bench` run (started by `utp bench` itself).
    #[command(hide = true)]
    BenchPeer(cmd::bench::peer::Args),
    /// A subscriber process of the `utp bench` pub/sub section (started by `utp bench` itself).
    #[command(hide = true)]
    BenchPubsub(cmd::bench::pubsub::Args),
    /// Publish stdin (lines or frames) to every subscriber: shm://, unix://, tcp://.
    Pub(cmd::r#pub::Args),
    /// Subscribe to a publisher and print every message (`--json`), with loss notices.
    Sub(cmd::sub::Args),
    /// Seqlock writer/reader cost per operation beside a raw baseline.
    #[command(hide = true)]
    BenchSeqlock(cmd::bench_seqlock::Args),
    /// The other side of `utp bench --only zenoh` (started by `utp bench` itself).
    #[cfg(feature = "zenoh")]
    #[command(hide = true)]
    BenchZenohPeer(cmd::bench::zenoh::peer::Args),
}

fn main() {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match (cli.verbose, cli.quiet) {
        (_, true) => logger.filter_level(log::LevelFilter::Error),
        (0, false) => &mut logger,
        (1, false) => logger.filter_level(log::LevelFilter::Debug),
        (_, false) => logger.filter_level(log::LevelFilter::Trace),
    };
    logger.format_target(false).init();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Call(args) => cmd::call::run(args),
        Command::Wait(args) => cmd::wait::run(args),
        Command::Send(args) => cmd::send::run(args),
        Command::Recv(args) => cmd::recv::run(args),
        Command::Listen(args) => cmd::listen::run(args),
        Command::Stat(args) => cmd::stat::run(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Completions(args) => cmd::completions::run(args),
        Command::Man(args) => cmd::man::run(args),
        Command::Bridge(args) => cmd::bridge::run(args),
        Command::Frame(command) => cmd::frame::run(command),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Ls(args) => cmd::ls::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::BenchPeer(args) => cmd::bench::peer::run(args),
        Command::BenchPubsub(args) => cmd::bench::pubsub::child(args),
        Command::Pub(args) => cmd::r#pub::run(args),
        Command::Sub(args) => cmd::sub::run(args),
        Command::BenchSeqlock(args) => cmd::bench_seqlock::run(args),
        #[cfg(feature = "zenoh")]
        Command::BenchZenohPeer(args) => cmd::bench::zenoh::peer::run(args),
    };
    let code = match result {
        Ok(()) => 0,
        Err(Exit::Failed(code)) => code,
        Err(Exit::Error(error)) => {
            // Errors may quote a peer (a server's ERROR frame): escape it.
            let text = error.to_string();
            eprintln!("utp: error: {}", escape::for_terminal(&text, true));
            2
        }
    };
    std::process::exit(code);
}
