//! One run from the client's side: start the peer, connect utp or the raw
//! baseline, drive the mode's loop, collect the peer.

use super::async_link::AsyncLink;
use super::link::{Fallible, Link, UtpLink};
use super::mechanisms::{Mechanism, TABLE};
use super::plan::Plan;
use super::raw;
use super::rtt::Budget;
use super::sample::Sample;
use super::session::Session;
use super::spec::{BATCH, Impl, Mode, PeerSpec, Wait};
use super::{calc, rate, rtt, stream};
use std::sync::atomic::{AtomicU64, Ordering};

/// What every run shares.
#[derive(Debug)]
pub struct Runner {
    /// Iteration counts.
    pub plan: Plan,
    /// CPU the peers pin themselves to.
    pub peer_cpu: Option<usize>,
    counter: AtomicU64,
}

/// The words utp uses when a transport is not compiled in.
pub const NOT_IN_BUILD: &str = "not available in this build";

/// The error of a part of the benchmark that utp-cli's cargo `feature`
/// leaves out of this build (`what`: the part): the async rows' two sides
/// without tokio.
#[cfg(not(feature = "tokio"))]
pub fn not_in_build(what: &str, feature: &str) -> Box<dyn std::error::Error + Send + Sync> {
    format!("{what} (utp-cli feature {feature}): {NOT_IN_BUILD}").into()
}

impl Runner {
    /// A runner with the given counts and peer placement.
    pub fn new(plan: Plan, peer_cpu: Option<usize>) -> Self {
        Runner {
            plan,
            peer_cpu,
            counter: AtomicU64::new(0),
        }
    }

    /// A name no other run of any process uses: `utp-bench-PID-N`.
    pub fn unique(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("utp-bench-{}-{n}", std::process::id())
    }

    /// The budget of a run: warm-up laps on shared-memory rings, minimum
    /// duration and count from the plan. Only implementations that run over
    /// a ring get the lap warm-up (pipelined): utp on the shared-memory rows,
    /// and the raw ring. The raw mailbox holds one message per direction, is
    /// prefaulted and must never see two requests in flight.
    pub fn budget(&self, entry: usize, implementation: Impl, mode: Mode, size: usize) -> Budget {
        let m = &TABLE[entry];
        let ring = match implementation {
            Impl::Utp => m.raw_stream.is_ring(),
            Impl::Raw => m.raw_kind(mode, size).is_ring(),
            Impl::Iceoryx2 | Impl::IpcChannel => false,
        };
        self.plan.budget(mode, size, ring)
    }

    /// The spec of a run, with an empty address.
    pub fn spec(&self, entry: usize, implementation: Impl, mode: Mode, size: usize) -> PeerSpec {
        let mechanism = &TABLE[entry];
        let budget = self.budget(entry, implementation, mode, size);
        let count = match implementation {
            // Peer libraries run a fixed number of round trips.
            Impl::Iceoryx2 | Impl::IpcChannel => budget.warmup + budget.min_count,
            Impl::Utp | Impl::Raw => budget.max_count,
        };
        PeerSpec {
            mechanism: mechanism.name.to_string(),
            entry,
            implementation,
            mode,
            size,
            count,
            window: mechanism.window,
            address: String::new(),
            cpu: self.peer_cpu,
            announce: true,
            ring: self.plan.ring(size),
            // A fixed-rate run lasts its seconds whatever happens: allow for them.
            idle_timeout_s: self.plan.idle_timeout_s
                + if mode == Mode::Rate {
                    self.plan.rate_seconds.ceil() as u64
                } else {
                    0
                },
        }
    }

    /// Runs one measurement.
    pub fn run(
        &self,
        entry: usize,
        implementation: Impl,
        mode: Mode,
        size: usize,
    ) -> Fallible<Sample> {
        let budget = self.budget(entry, implementation, mode, size);
        self.run_spec(self.spec(entry, implementation, mode, size), &budget)
    }

    /// Runs one measurement described by `spec` (its address is filled in
    /// here) for as long as `budget` says.
    pub fn run_spec(&self, mut spec: PeerSpec, budget: &Budget) -> Fallible<Sample> {
        let entry = spec.entry;
        let spec = &mut spec;
        match spec.implementation {
            Impl::Utp => self.run_utp(&TABLE[entry], spec, budget),
            Impl::Raw => self.run_raw(&TABLE[entry], spec, budget),
            Impl::Iceoryx2 | Impl::IpcChannel => {
                spec.address = format!("/{}", self.unique());
                let result = Session::start(spec, false).and_then(|session| {
                    let sample = super::peers::measure(spec, &session.announced, &self.plan);
                    let finished = session.finish(false);
                    let sample = sample?;
                    finished.map(|()| sample)
                });
                super::peers::cleanup(spec);
                result
            }
        }
    }

    fn run_utp(
        &self,
        mechanism: &Mechanism,
        spec: &mut PeerSpec,
        budget: &Budget,
    ) -> Fallible<Sample> {
        let unique = self.unique();
        if mechanism.spawns_peer {
            // The transport starts `utp bench-peer SPEC` itself, over its stdin/stdout.
            spec.announce = false;
            spec.address = mechanism
                .template
                .split('{')
                .next()
                .unwrap_or("")
                .to_string();
            let url = instantiate(
                mechanism.template,
                &unique,
                &serde_json::to_string(spec)?,
                spec.ring,
            )?;
            return match spec.mode {
                Mode::Calc => calc::measure_utp(&url, budget),
                _ => {
                    let mut link = UtpLink::new(utp::connect(&url)?, 0, spec.size);
                    self.measure(&mut link, spec, budget)
                }
            };
        }
        let url = instantiate(mechanism.template, &unique, "", spec.ring)?;
        spec.address = url.clone();
        let session = Session::start(spec, mechanism.in_process)?;
        if spec.mode == Mode::Calc {
            let sample = calc::measure_utp(&url, budget);
            let finished = session.finish(true);
            let sample = sample?;
            finished?;
            return Ok(sample);
        }
        let sample = if mechanism.wait == Wait::Async {
            let mut link = AsyncLink::new(utp::connect(&url)?, spec.size)?;
            self.measure(&mut link, spec, budget)?
        } else {
            let mut link = UtpLink::new(utp::connect(&url)?, 0, spec.size);
            self.measure(&mut link, spec, budget)?
        };
        session.finish(false)?;
        Ok(sample)
    }

    fn run_raw(
        &self,
        mechanism: &Mechanism,
        spec: &mut PeerSpec,
        budget: &Budget,
    ) -> Fallible<Sample> {
        let kind = mechanism.raw_kind(spec.mode, spec.size);
        spec.address = kind.address(&self.unique(), mechanism.raw_in_file);
        let mut session = Session::start(spec, mechanism.in_process)?;
        let sample = {
            let pipes = session.take_pipes();
            let mut link = raw::connect(kind, spec, &session.announced, pipes)?;
            self.measure(link.as_mut(), spec, budget)?
        };
        session.finish(false)?;
        Ok(sample)
    }

    fn measure(&self, link: &mut dyn Link, spec: &PeerSpec, budget: &Budget) -> Fallible<Sample> {
        match spec.mode {
            Mode::Rtt => rtt::measure(link, spec.size, budget),
            Mode::Stream => stream::measure(link, spec.size, budget, spec.window),
            Mode::Batch => stream::measure_batches(link, spec.size, budget, spec.window, BATCH),
            Mode::Calc => calc::measure_raw(link, budget),
            Mode::Rate => rate::measure(
                link,
                spec.size,
                budget,
                rate::Load {
                    rate: self.plan.rate.unwrap_or(1_000.0),
                    seconds: self.plan.rate_seconds,
                    in_flight: TABLE[spec.entry].holds_in_flight(),
                    idle: std::time::Duration::from_secs(spec.idle_timeout_s),
                },
            ),
        }
    }
}

/// Fills a URL template: `{name}`, `{path}`, `{port}`, `{key}`, `{exe}`,
/// `{spec}`, and `{ring}`, the point's ring (`ring` bytes).
pub fn instantiate(template: &str, unique: &str, spec_json: &str, ring: u64) -> Fallible<String> {
    let mut url = template
        .replace("{name}", unique)
        .replace("{ring}", &ring.to_string());
    if url.contains("{path}") {
        let path = std::env::temp_dir().join(unique);
        url = url.replace("{path}", &path.display().to_string());
    }
    if url.contains("{port}") {
        let port = if template.starts_with("udp:") {
            std::net::UdpSocket::bind("127.0.0.1:0")?
                .local_addr()?
                .port()
        } else {
            std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port()
        };
        url = url.replace("{port}", &port.to_string());
    }
    if url.contains("{key}") {
        // Unique per process and run, never 0 (IPC_PRIVATE): bit 31, 11 bits
        // of the pid, 20 bits of the run counter.
        let n: u32 = unique
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let key = 0x8000_0000 | ((std::process::id() & 0x7ff) << 20) | (n & 0xf_ffff);
        url = url.replace("{key}", &format!("0x{key:x}"));
    }
    if url.contains("{exe}") {
        url = url.replace("{exe}", &std::env::current_exe()?.display().to_string());
    }
    Ok(url.replace("{spec}", spec_json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_become_parseable_urls() {
        for m in TABLE {
            let url = instantiate(m.template, "utp-bench-1-2", "{}", 8 << 20).unwrap();
            // Every placeholder filled (a spawned peer's URL carries its
            // spec, JSON, so braces alone prove nothing there).
            for placeholder in [
                "{name}", "{path}", "{port}", "{key}", "{exe}", "{spec}", "{ring}",
            ] {
                assert!(!url.contains(placeholder), "{url}");
            }
            if m.template.contains("{ring}") {
                assert!(
                    url.contains("ring=8388608"),
                    "1 MiB messages get 8 MiB: {url}"
                );
            }
            if !m.spawns_peer {
                utp::Endpoint::parse(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
            }
        }
    }
}
