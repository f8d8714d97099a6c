//! iceoryx2 publish-subscribe in the bench: one service per run with room
//! for the run's subscribers, safe overflow (a slow subscriber loses its
//! oldest samples, like utp's drop policy), [`SLOTS`] buffered samples per
//! subscriber, polled `receive()` (waiting is the bench's, `idle.rs`). Files go under a per-run root
//! directory and prefix, removed by [`cleanup`].

use super::sides::{BenchPublisher, BenchSubscriber, MESSAGE, SLOTS};
use crate::cmd::bench::link::Fallible;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::*;

fn prefix(name: &str) -> String {
    format!("{}_", name.replace('-', "_"))
}

fn root(name: &str) -> String {
    format!("{}/{name}-iox2/", std::env::temp_dir().display())
}

fn node(name: &str) -> Fallible<Node<ipc::Service>> {
    set_log_level(LogLevel::Fatal);
    let mut config = Config::default();
    config.global.prefix = FileName::new(prefix(name).as_bytes())?;
    config
        .global
        .set_root_path(&Path::new(root(name).as_bytes())?);
    Ok(NodeBuilder::new()
        .config(&config)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()?)
}

fn service(
    node: &Node<ipc::Service>,
    subscribers: usize,
) -> Fallible<iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>>
{
    node.service_builder(&"utp-bench/pubsub".try_into()?)
        .publish_subscribe::<[u8]>()
        .max_subscribers(subscribers.max(1))
        .max_publishers(1)
        .subscriber_max_buffer_size(SLOTS)
        .history_size(0)
        .enable_safe_overflow(true)
        .open_or_create()
        .map_err(|e| format!("iceoryx2 service: {e:?}").into())
}

/// The publisher.
pub struct IoxPublisher {
    _node: Node<ipc::Service>,
    publisher: Publisher<ipc::Service, [u8], ()>,
}

impl IoxPublisher {
    /// Creates the service and its publisher.
    pub fn create(name: &str, subscribers: usize) -> Fallible<IoxPublisher> {
        let node = node(name)?;
        let publisher = service(&node, subscribers)?
            .publisher_builder()
            .initial_max_slice_len(MESSAGE)
            .create()?;
        Ok(IoxPublisher {
            _node: node,
            publisher,
        })
    }
}

impl BenchPublisher for IoxPublisher {
    fn publish(&mut self, payload: &[u8]) -> Fallible<()> {
        let sample = self.publisher.loan_slice_uninit(payload.len())?;
        sample.write_from_slice(payload).send()?;
        Ok(())
    }

    /// Connects to the subscribers that appeared since the publisher was made.
    fn subscribers_ready(&mut self) -> Fallible<()> {
        self.publisher
            .update_connections()
            .map_err(|e| format!("iceoryx2 update_connections: {e:?}").into())
    }
}

/// A subscriber.
pub struct IoxSubscriber {
    _node: Node<ipc::Service>,
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    expected: u64,
}

impl IoxSubscriber {
    /// Opens the service and subscribes.
    pub fn open(name: &str, subscribers: usize) -> Fallible<IoxSubscriber> {
        let node = node(name)?;
        let subscriber = service(&node, subscribers)?.subscriber_builder().create()?;
        Ok(IoxSubscriber {
            _node: node,
            subscriber,
            expected: 0,
        })
    }
}

impl BenchSubscriber for IoxSubscriber {
    fn try_recv(&mut self, buf: &mut [u8]) -> Fallible<Option<u64>> {
        let Some(sample) = self.subscriber.receive()? else {
            return Ok(None);
        };
        let payload = sample.payload();
        let n = payload.len().min(buf.len());
        buf[..n].copy_from_slice(&payload[..n]);
        // iceoryx2 does not count what safe overflow dropped: take it
        // from the sequence number the bench puts in every message (every
        // subscriber is connected before message 0 is published).
        let seq = u64::from_le_bytes(buf[..8].try_into().unwrap_or_default());
        let lost = seq.saturating_sub(self.expected);
        self.expected = seq.wrapping_add(1);
        Ok(Some(lost))
    }
}

/// Removes the run's root directory and its files in /dev/shm.
pub fn cleanup(name: &str) {
    let _ = std::fs::remove_dir_all(root(name));
    let prefix = prefix(name);
    if let Ok(entries) = std::fs::read_dir("/dev/shm") {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
