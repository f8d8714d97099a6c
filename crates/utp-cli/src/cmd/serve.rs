//! `utp serve SERVICE --on URL`.

use super::ready_file::ReadyFile;
use crate::exit::{CmdResult, Exit};
use clap::ValueEnum;
use std::path::PathBuf;
use utp::PeerInfo;
use utp::service::{Server, calc};

/// Arguments of `utp serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service to run.
    service: Service,
    /// Endpoint to listen on, e.g. unix:///tmp/calc.sock or shm://calc.
    #[arg(long, value_name = "URL")]
    on: String,
    /// Connections held at once; at the limit the longest-idle one makes room
    /// (or, when none is idle, a new client is told "server busy").
    #[arg(long, default_value_t = utp::service::DEFAULT_MAX_CLIENTS)]
    max_clients: usize,
    /// Once listening, write the endpoint's URL to this file (removed on
    /// exit); scripts wait for the file instead of racing the server.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
}

/// Services the CLI can serve.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Service {
    /// The calculator: "ADD 10 20" -> "OK 30".
    Calc,
    /// Sends every request back unchanged (for tests and benchmarks).
    Echo,
}

/// `inproc://` lives inside one process: a server there cannot be reached
/// by any other, so the CLI refuses it instead of serving nobody.
pub fn refuse_inproc(url: &str) -> Result<(), Exit> {
    if matches!(
        utp::Endpoint::parse(url)?.address,
        utp::endpoint::Address::Inproc(_)
    ) {
        return Err(Exit::Error(format!(
            "{url}: inproc:// endpoints exist only inside one process, so no other process \
             could reach this server; use unix://, shm:// or another transport"
        )));
    }
    Ok(())
}

/// Serves until SIGINT or SIGTERM, then removes the endpoint and exits 0.
pub fn run(args: Args) -> CmdResult {
    refuse_inproc(&args.on)?;
    raise_fd_limit();
    let listener = utp::listen(&args.on)?;
    let server = match args.service {
        Service::Calc => Server::new(listener, calc::handler()),
        Service::Echo => Server::new(listener, |request: &[u8], _: &PeerInfo| request.to_vec()),
    };
    let mut server = server.max_clients(args.max_clients);
    server.shutdown_handle().on_signals()?;
    let _ready = ReadyFile::announce(args.ready_file.as_deref(), &server.endpoint())?;
    server.run()?;
    Ok(())
}

/// Raises the soft descriptor limit to the hard one, so the server can hold
/// as many connections as the system allows it (the default soft limit,
/// 1,024, would refuse clients long before memory or threads run out).
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            log::debug!("cannot raise RLIMIT_NOFILE: {e}");
        }
    }
}
