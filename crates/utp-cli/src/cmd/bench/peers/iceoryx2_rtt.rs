//! iceoryx2 round trips: publish-subscribe ping-pong over two services
//! (`ping`, `pong`) of byte slices between the two processes. Both sides
//! busy-poll `receive()` (with `spin_loop`), which is how iceoryx2 reaches its
//! lowest latency. Its files go under a per-run root directory and prefix,
//! removed by [`cleanup`]; its log is silenced.

use crate::cmd::bench::link::{Fallible, SpinBudget};
use crate::cmd::bench::sample::{Sample, latency_histogram};
use crate::cmd::bench::spec::PeerSpec;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use std::time::{Duration, Instant};

/// This run's file prefix: unique, derived from the run's address `/utp-bench-PID-N`.
fn prefix(spec: &PeerSpec) -> String {
    format!(
        "{}_",
        spec.address.trim_start_matches('/').replace('-', "_")
    )
}

/// This run's iceoryx2 root directory.
fn root(spec: &PeerSpec) -> String {
    format!(
        "{}/{}-iox2/",
        std::env::temp_dir().display(),
        spec.address.trim_start_matches('/')
    )
}

type Pub = Publisher<ipc::Service, [u8], ()>;
type Sub = Subscriber<ipc::Service, [u8], ()>;

/// A node and the two ports of one side.
struct Side {
    _node: Node<ipc::Service>,
    publisher: Pub,
    subscriber: Sub,
}

fn side(spec: &PeerSpec, send_on: &str, receive_on: &str) -> Fallible<Side> {
    set_log_level(LogLevel::Fatal);
    let mut config = Config::default();
    config.global.prefix = FileName::new(prefix(spec).as_bytes())?;
    config
        .global
        .set_root_path(&Path::new(root(spec).as_bytes())?);
    let node = NodeBuilder::new()
        .config(&config)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()?;
    let open = |name: &str| {
        node.service_builder(&format!("utp-bench/{name}").as_str().try_into()?)
            .publish_subscribe::<[u8]>()
            .open_or_create()
            .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { format!("{e:?}").into() })
    };
    let outgoing = open(send_on)?;
    let incoming = open(receive_on)?;
    let subscriber = incoming.subscriber_builder().create()?;
    let publisher = outgoing
        .publisher_builder()
        .initial_max_slice_len(spec.size.max(1))
        .create()?;
    Ok(Side {
        _node: node,
        publisher,
        subscriber,
    })
}

fn send(publisher: &Pub, payload: &[u8]) -> Fallible<()> {
    let sample = publisher.loan_slice_uninit(payload.len())?;
    sample.write_from_slice(payload).send()?;
    Ok(())
}

/// Waits for the next sample and copies its payload out into `buf`, as utp's
/// `Frame` and the raw baselines do, so every implementation moves the same bytes.
fn receive(subscriber: &Sub, buf: &mut [u8], idle: Duration) -> Fallible<()> {
    let mut budget = SpinBudget::new(idle);
    loop {
        if let Some(sample) = subscriber.receive()? {
            let payload = sample.payload();
            if payload.len() != buf.len() {
                return Err(
                    format!("message of {} bytes, expected {}", payload.len(), buf.len()).into(),
                );
            }
            buf.copy_from_slice(payload);
            return Ok(());
        }
        budget.spin("iceoryx2 sample")?;
    }
}

/// Peer side: answers `count` pings with pongs.
pub fn serve(spec: &PeerSpec, announce: &mut dyn FnMut(&str)) -> Fallible<()> {
    let side = side(spec, "pong", "ping")?;
    announce(&spec.address);
    let idle = Duration::from_secs(spec.idle_timeout_s);
    let reply = vec![0x5au8; spec.size];
    let mut buf = vec![0u8; spec.size];
    for _ in 0..spec.count {
        receive(&side.subscriber, &mut buf, idle)?;
        send(&side.publisher, &reply)?;
    }
    Ok(())
}

/// Client side: `warmup` untimed, then timed round trips.
pub fn measure(spec: &PeerSpec, _announced: &str, warmup: u64) -> Fallible<Sample> {
    let side = side(spec, "ping", "pong")?;
    let idle = Duration::from_secs(spec.idle_timeout_s);
    let request = vec![0xa5u8; spec.size];
    let mut buf = vec![0u8; spec.size];
    let mut latencies = latency_histogram();
    for i in 0..spec.count {
        let start = Instant::now();
        send(&side.publisher, &request)?;
        receive(&side.subscriber, &mut buf, idle)?;
        let elapsed = start.elapsed();
        if i >= warmup {
            latencies.saturating_record(elapsed.as_nanos() as u64);
        }
    }
    Ok(Sample::from_latencies(&latencies))
}

/// Removes what the run left: its root directory and its files in /dev/shm.
pub fn cleanup(spec: &PeerSpec) {
    let _ = std::fs::remove_dir_all(root(spec));
    let prefix = prefix(spec);
    if let Ok(entries) = std::fs::read_dir("/dev/shm") {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
