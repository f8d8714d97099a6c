//! `utp bridge --pubsub FROM TO`: subscribes to the topic at FROM and
//! republishes every message, with its type, at TO, e.g. a shared-memory
//! feed onto the network (`shm://ticks zenoh://site1/ticks`) or a remote
//! feed into a local ring (`zenoh://site1/ticks shm://ticks`).
//!
//! TO's publisher lives as long as the bridge, so its subscribers stay
//! subscribed while FROM's publisher restarts: the bridge subscribes again
//! (every second, until it succeeds or the bridge stops). TO numbers
//! messages itself, so messages the bridge lost at FROM (it was overrun, or
//! FROM restarted) are not gaps at TO: they are logged and counted in the
//! final line.

use crate::cmd::ready_file::ReadyFile;
use crate::exit::CmdResult;
use std::path::Path;
use std::time::Duration;
use utp::pubsub::{Publisher, Subscriber};
use utp::service::Shutdown;

/// How long one receive waits before the bridge looks at its shutdown flag.
const POLL: Duration = Duration::from_millis(100);
/// How long to wait before subscribing again to a publisher that is gone.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

/// Relays until SIGINT or SIGTERM.
/// With `ready_file`, writes the publisher's URL there once it is open
/// (removed on exit).
pub fn run(from: &str, to: &str, ready_file: Option<&Path>) -> CmdResult {
    // Fail early, with the URL error, if FROM is malformed.
    utp::Endpoint::parse(from)?;
    let mut publisher = Publisher::create(to)?;
    let shutdown = Shutdown::default();
    shutdown.on_signals()?;
    let _ready = ReadyFile::announce(ready_file, &publisher.endpoint())?;
    log::info!("bridging pub/sub {from} -> {}", publisher.endpoint());
    let (mut relayed, mut lost_upstream) = (0u64, 0u64);
    let mut buf = Vec::new();
    'subscribe: while !shutdown.is_triggered() {
        let mut subscriber = match Subscriber::connect(from) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("cannot subscribe to {from} (trying again): {e}");
                sleep_unless(&shutdown, RESUBSCRIBE);
                continue;
            }
        };
        log::info!("subscribed to {from}");
        while !shutdown.is_triggered() {
            let got = match subscriber.recv(&mut buf, Some(POLL)) {
                Ok(got) => got,
                Err(e) if e.is_timeout() => continue,
                Err(e) => {
                    log::warn!("{from}: {e}; subscribing again");
                    sleep_unless(&shutdown, RESUBSCRIBE);
                    continue 'subscribe;
                }
            };
            if got.lost_before > 0 {
                lost_upstream += got.lost_before;
                log::warn!(
                    "lost {} messages from {from} before #{}",
                    got.lost_before,
                    got.sequence
                );
            }
            // The publisher's own errors (too large for TO) end the bridge.
            publisher.send_typed(got.message_type, &buf)?;
            relayed += 1;
        }
    }
    eprintln!("utp: bridge relayed {relayed} messages, lost {lost_upstream} from {from}");
    Ok(())
}

fn sleep_unless(shutdown: &Shutdown, total: Duration) {
    let until = std::time::Instant::now() + total;
    while !shutdown.is_triggered() && std::time::Instant::now() < until {
        std::thread::sleep(POLL);
    }
}
