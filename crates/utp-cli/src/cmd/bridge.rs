//! `utp bridge FROM TO`: serves, on the endpoint TO, the service found at
//! FROM. Each client of TO gets its own connection to FROM, and frames
//! (type, flags, payload) go both ways until either side leaves.
//!
//! `utp bridge shm://calc zenoh://site1/calc` puts a local calculator on the
//! network; `utp bridge zenoh://site1/calc unix:///tmp/calc.sock` gives local
//! programs a Unix socket for a remote one. Any two URLs work.
//!
//! With `--pubsub`, FROM and TO are pub/sub topics instead (see
//! `bridge_pubsub.rs`): `utp bridge --pubsub shm://ticks zenoh://site1/ticks`.

use crate::cmd::bridge_pump::{Pair, pump};
use crate::cmd::ready_file::ReadyFile;
use crate::exit::CmdResult;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use utp::frame::{flags, message_type};
use utp::service::Shutdown;
use utp::{Channel, Error};

/// How often the accept loop looks at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);

/// Arguments of `utp bridge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service: the bridge connects here once per client, e.g. shm://calc.
    from: String,
    /// Where clients come: the bridge listens here, e.g. zenoh://site1/calc.
    to: String,
    /// Clients bridged at once; more are told "bridge busy" and closed.
    #[arg(long, default_value_t = 256)]
    max_clients: usize,
    /// Limit for reaching FROM for a new client; keep it below the clients'
    /// own call timeouts so they hear "cannot reach" rather than a timeout.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Limit for handing one frame to a side that does not take it (backpressure
    /// beyond this ends that client's bridge with an error), e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    send_timeout: Duration,
    /// FROM and TO are pub/sub topics: subscribe at FROM, republish every
    /// message at TO (e.g. shm://ticks zenoh://site1/ticks).
    #[arg(long)]
    pubsub: bool,
    /// Once TO is open, write its URL to this file (removed on exit); with
    /// TO on port 0 (tcp://127.0.0.1:0) the file names the port it got.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
}

/// Bridges until SIGINT or SIGTERM, then closes TO (removing its endpoint).
pub fn run(args: Args) -> CmdResult {
    if args.pubsub {
        return crate::cmd::bridge_pubsub::run(&args.from, &args.to, args.ready_file.as_deref());
    }
    // Fail early, with the URL error, if FROM is malformed.
    utp::Endpoint::parse(&args.from)?;
    let mut listener = utp::listen(&args.to)?;
    let shutdown = Shutdown::default();
    shutdown.on_signals()?;
    let _ready = ReadyFile::announce(args.ready_file.as_deref(), &listener.endpoint())?;
    let options = utp::Options::default().with_connect_timeout(args.connect_timeout);
    let served = Arc::new(AtomicU64::new(0));
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    log::info!("bridging {} -> {}", args.to, args.from);
    while !shutdown.is_triggered() {
        let mut client = match listener.accept_timeout(Some(SHUTDOWN_POLL)) {
            Ok(client) => client,
            Err(Error::Timeout { .. }) => continue,
            Err(Error::Closed) => break,
            Err(e) => {
                log::warn!("{}: accept failed: {e}", args.to);
                continue;
            }
        };
        workers.retain(|w| !w.is_finished());
        if workers.len() >= args.max_clients {
            refuse(
                &mut *client,
                &format!(
                    "bridge busy: it serves at most {} clients at once",
                    args.max_clients
                ),
            );
            continue;
        }
        let service = match utp::connect_with(&args.from, &options) {
            Ok(service) => service,
            Err(e) => {
                log::warn!("cannot reach {} for a client: {e}", args.from);
                refuse(
                    &mut *client,
                    &format!("bridge cannot reach {}: {e}", args.from),
                );
                continue;
            }
        };
        let id = served.fetch_add(1, Ordering::Relaxed) + 1;
        let pair = Pair {
            id,
            client,
            service,
            send_timeout: args.send_timeout,
            shutdown: shutdown.clone(),
        };
        match std::thread::Builder::new()
            .name(format!("bridge-{id}"))
            .spawn(move || pump(pair))
        {
            Ok(handle) => workers.push(handle),
            Err(e) => log::error!("cannot start a bridge thread: {e}"),
        }
    }
    let _ = listener.close();
    for worker in workers {
        let _ = worker.join();
    }
    log::info!(
        "bridge stopped after {} clients",
        served.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Tells a client why it is not served, then closes it.
fn refuse(client: &mut dyn Channel, reason: &str) {
    let _ = client.send_timeout(
        message_type::ERROR,
        flags::CHECKSUM,
        reason.as_bytes(),
        Some(SHUTDOWN_POLL),
    );
    let _ = client.close();
}
