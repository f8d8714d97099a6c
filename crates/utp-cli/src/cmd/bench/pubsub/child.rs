//! A subscriber process (`utp bench-pubsub --child IMPL`): pins itself,
//! subscribes, says `READY`, receives until the stop message while
//! waiting by the common spin-then-yield policy (`idle.rs`), then prints
//! `RESULT p50 p99 received lost msgs_per_s on_cpu_p50 on_cpu_samples`
//! (`lost`: what the implementation itself reported missing; `on_cpu_*`:
//! the samples during which this subscriber kept its CPU, see `idle.rs`).

use super::idle::Idle;
use super::sides::{self, Kind, MESSAGE};
use super::{STOP_FLAG, now_ns};
use crate::exit::{CmdResult, Exit};
use std::io::Write;

/// Arguments of the hidden `utp bench-pubsub` (a subscriber process).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Implementation: raw, utp or iceoryx2.
    #[arg(long)]
    child: String,
    /// The run's name.
    #[arg(long)]
    name: String,
    /// Subscribers in the run (iceoryx2 sizes its service with it).
    #[arg(long)]
    subscribers: usize,
    /// The CPU to pin this process to (none: stay where the parent was).
    #[arg(long)]
    cpu: Option<usize>,
    /// Subscribers on that CPU, this one included (above 1 they take turns).
    #[arg(long, default_value_t = 1)]
    sharing: usize,
}

/// Longest a subscriber waits for the stop message.
const PATIENCE_NS: u64 = 120_000_000_000;

/// Runs one subscriber process.
pub fn run(args: Args) -> CmdResult {
    let kind = Kind::parse(&args.child)
        .ok_or_else(|| Exit::Error(format!("unknown kind {}", args.child)))?;
    if let Some(cpu) = args.cpu {
        crate::cmd::bench::placement::pin(cpu).map_err(|e| Exit::Error(e.to_string()))?;
    }
    let fail = |e: Box<dyn std::error::Error + Send + Sync>| Exit::Error(e.to_string());
    let mut sub = sides::subscriber(kind, &args.name, args.subscribers).map_err(fail)?;
    println!("READY");
    std::io::stdout().flush()?;
    let mut hist = crate::cmd::bench::sample::latency_histogram();
    let mut on_cpu = crate::cmd::bench::sample::latency_histogram();
    let (mut received, mut lost) = (0u64, 0u64);
    let (mut first, mut last) = (0u64, 0u64);
    let mut buf = [0u8; MESSAGE];
    let mut idle = Idle::new(args.sharing);
    loop {
        let got = sub.try_recv(&mut buf).map_err(fail)?;
        if let Some(gap) = got {
            let now = now_ns();
            lost += gap;
            let flags = u64::from_le_bytes(buf[16..24].try_into().unwrap_or_default());
            if flags & STOP_FLAG != 0 {
                break;
            }
            let sent = u64::from_le_bytes(buf[8..16].try_into().unwrap_or_default());
            let latency = now.saturating_sub(sent).max(1);
            hist.saturating_record(latency);
            idle.saw(now);
            if idle.on_cpu_since(sent) {
                on_cpu.saturating_record(latency);
            }
            received += 1;
            if first == 0 {
                first = now;
            }
            last = now;
        }
        let yielded = idle.after_poll(got.is_none());
        if yielded && idle.yields % 1024 == 0 && idle.elapsed_ns() > PATIENCE_NS {
            return Err(Exit::Error("no stop message within 120 s".into()));
        }
    }
    let span = last.saturating_sub(first).max(1) as f64 / 1e9;
    println!(
        "RESULT {} {} {received} {lost} {} {} {}",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        received as f64 / span,
        on_cpu.value_at_quantile(0.5),
        on_cpu.len()
    );
    Ok(())
}
