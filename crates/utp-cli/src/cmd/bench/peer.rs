//! The peer side of a run: `utp bench-peer SPEC` in its own process (or a
//! thread, for in-process mechanisms). It listens, says `ready ADDRESS` on
//! stdout, serves exactly what the spec says, and exits.

use super::async_link::AsyncLink;
use super::link::{Fallible, Link, UtpLink};
use super::mechanisms::TABLE;
use super::spec::{Impl, Mode, PeerSpec, Wait};
use super::{calc, placement, raw, rtt, stream};
use std::io::Write;
use std::time::Duration;
use utp::service::Shutdown;

/// Arguments of the hidden `utp bench-peer` subcommand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run, as JSON (a `PeerSpec`).
    spec: String,
}

/// Entry point of `utp bench-peer`: serves one run, exits 0, or prints the error.
pub fn run(args: Args) -> crate::exit::CmdResult {
    log::set_max_level(log::LevelFilter::Error);
    let spec: PeerSpec = serde_json::from_str(&args.spec)
        .map_err(|e| crate::exit::Exit::Error(format!("bad bench-peer spec: {e}")))?;
    let stop = Shutdown::default();
    stop.on_signals()?;
    let mut announce = |address: &str| {
        if spec.announce {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "ready {address}");
            let _ = out.flush();
        }
    };
    serve(&spec, &stop, &mut announce).map_err(|e| crate::exit::Exit::Error(e.to_string()))
}

/// Serves the run described by `spec`; `announce` is called once the client may connect.
pub fn serve(spec: &PeerSpec, stop: &Shutdown, announce: &mut dyn FnMut(&str)) -> Fallible<()> {
    if let Some(cpu) = spec.cpu {
        placement::pin(cpu)?;
    }
    let mechanism = TABLE
        .get(spec.entry)
        .ok_or_else(|| format!("no mechanism #{}", spec.entry))?;
    let idle = Duration::from_secs(spec.idle_timeout_s);
    match (spec.implementation, spec.mode) {
        (Impl::Utp, Mode::Calc) => calc::serve_utp(&spec.address, stop, announce),
        (Impl::Utp, _) => {
            let mut listener = utp::listen(&spec.address)?;
            announce(&spec.address);
            let channel = listener.accept_timeout(Some(idle))?;
            if mechanism.wait == Wait::Async {
                let mut link = AsyncLink::new(channel, spec.size)?;
                drive(spec, &mut link)?;
                link.wait_for_close(idle);
                let _ = listener.close();
                return Ok(());
            }
            let mut link = UtpLink::new(channel, 0, spec.size);
            drive(spec, &mut link)?;
            // The client closes first: utp's shared-memory receive can report
            // the peer's close before a frame published just before it.
            link.wait_for_close(idle);
            // Let the last reply leave before the channel closes.
            let _ = listener.close();
            Ok(())
        }
        (Impl::Raw, mode) => {
            let kind = mechanism.raw_kind(mode, spec.size);
            let mut link = raw::serve(kind, spec, announce)?;
            drive(spec, link.as_mut())
        }
        (Impl::Iceoryx2 | Impl::IpcChannel, _) => super::peers::serve(spec, announce),
    }
}

/// Runs the peer's half of the mode over an established link.
fn drive(spec: &PeerSpec, link: &mut dyn Link) -> Fallible<()> {
    match spec.mode {
        Mode::Rtt | Mode::Rate => rtt::echo(link, spec.size, spec.count),
        Mode::Stream | Mode::Batch => stream::sink(link, spec.size, spec.count, spec.window),
        Mode::Calc => calc::serve_raw(link, spec.count),
    }
}
