//! URL options of publishers and subscribers.
//!
//! Publisher: `?slots=N` (power of two, default 4096), `?slot=SIZE`
//! (bytes per slot, multiple of 64, default 512: payloads up to SIZE - 64),
//! `?max_subscribers=N` (default 1024), `?queue=N` (stream transports: frames
//! queued per subscriber, default 1024).
//!
//! Subscriber: `?policy=drop|block` (default drop), `?block_timeout_ms=N`
//! (default 1000: how long the publisher waits for a block subscriber
//! before it cuts it off), `?wait=spin|block|adaptive` (default adaptive),
//! `?notify=eventfd` (shm: a pollable descriptor, see `Subscriber::arm`),
//! `?publisher_uid=N` (subscribe to another user's publisher).
//!
//! Publisher, shm: `?allow_uid=N[,M...]` admits those uids besides our own
//! (the socket then lives in `/tmp/utp-UID.shared/`, mode 0711).

use super::layout::{DEFAULT_SLOT_SIZE, DEFAULT_SLOTS, region_len};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use std::time::Duration;

/// What the publisher does when this subscriber is a whole ring behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Overwrite: the subscriber learns how many messages it lost.
    Drop,
    /// Wait for the subscriber, at most `timeout` per message; after that
    /// the subscriber is cut off (evicted) and the publisher goes on.
    Block {
        /// The longest the publisher waits.
        timeout: Duration,
    },
}

/// How a subscriber waits for the next message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Spin on the ring (lowest latency, one core busy).
    Spin,
    /// Sleep on a futex at once; the publisher wakes it.
    Block,
    /// Spin for [`ADAPTIVE_SPIN`], then sleep.
    Adaptive,
}

/// How long an adaptive waiter spins before it sleeps.
pub const ADAPTIVE_SPIN: Duration = Duration::from_micros(50);

impl Wait {
    /// The wire code (0 spin, 1 block, 2 adaptive).
    pub fn code(self) -> u32 {
        match self {
            Wait::Spin => 0,
            Wait::Block => 1,
            Wait::Adaptive => 2,
        }
    }

    /// From the wire code.
    pub fn from_code(code: u32) -> Option<Wait> {
        Some(match code {
            0 => Wait::Spin,
            1 => Wait::Block,
            2 => Wait::Adaptive,
            _ => return None,
        })
    }
}

/// Publisher options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublisherOptions {
    /// Other uids admitted besides our own (`?allow_uid=1000,1001`); when
    /// not empty the socket lives in the shared directory (`dir.rs`).
    pub allow_uids: Vec<u32>,
    /// Slots in the ring.
    pub slots: u32,
    /// Bytes per slot.
    pub slot_size: u32,
    /// Most subscribers admitted at once.
    pub max_subscribers: usize,
    /// Frames queued per subscriber on stream transports.
    pub queue: usize,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions {
            allow_uids: Vec::new(),
            slots: DEFAULT_SLOTS,
            slot_size: DEFAULT_SLOT_SIZE,
            max_subscribers: 1024,
            queue: 1024,
        }
    }
}

/// Subscriber options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriberOptions {
    /// Drop or block.
    pub policy: Policy,
    /// Spin, block or adaptive.
    pub wait: Wait,
    /// Ask for an eventfd that becomes readable when a message arrives
    /// while the subscriber is armed (`?notify=eventfd`, shm only).
    pub notify: bool,
    /// The uid of a publisher of another user (`?publisher_uid=N`): its
    /// socket is looked up in that user's shared directory, and its
    /// credentials must show that uid.
    pub publisher_uid: Option<u32>,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        SubscriberOptions {
            policy: Policy::Drop,
            wait: Wait::Adaptive,
            notify: false,
            publisher_uid: None,
        }
    }
}

fn bad(e: &Endpoint, reason: String) -> Error {
    Error::BadUrl {
        url: e.to_string(),
        reason,
    }
}

/// Every option, publisher's and subscriber's: one URL serves both sides.
const KEYS: [&str; 10] = [
    "slots",
    "slot",
    "max_subscribers",
    "queue",
    "policy",
    "block_timeout_ms",
    "wait",
    "notify",
    "allow_uid",
    "publisher_uid",
];

/// The zenoh session's options, taken by `zenoh://` topics besides [`KEYS`].
const ZENOH_KEYS: [&str; 6] = ["connect", "listen", "mode", "config", "scout", "lease_ms"];

fn known(e: &Endpoint) -> Result<()> {
    let zenoh = matches!(e.address, crate::endpoint::Address::Zenoh(_));
    for (k, _) in &e.params {
        let valid = KEYS.contains(&k.as_str()) || (zenoh && ZENOH_KEYS.contains(&k.as_str()));
        if !valid {
            return Err(bad(
                e,
                format!("unknown pub/sub option {k:?}; known: {}", KEYS.join(", ")),
            ));
        }
    }
    Ok(())
}

impl PublisherOptions {
    /// Reads the publisher options of a URL.
    pub fn from_endpoint(e: &Endpoint) -> Result<PublisherOptions> {
        known(e)?;
        let d = PublisherOptions::default();
        let slots = e.param_number("slots")?.unwrap_or(d.slots as u64);
        let slot = e.param_number("slot")?.unwrap_or(d.slot_size as u64);
        let (Ok(slots), Ok(slot_size)) = (u32::try_from(slots), u32::try_from(slot)) else {
            return Err(bad(e, "slots and slot must fit in 32 bits".into()));
        };
        if region_len(slots, slot_size).is_none() {
            return Err(bad(
                e,
                format!(
                    "slots={slots} slot={slot_size}: slots must be a power of two >= 2, slot a multiple of 64 >= 128, and the ring at most 1 GiB"
                ),
            ));
        }
        let max_subscribers = e
            .param_number("max_subscribers")?
            .unwrap_or(d.max_subscribers as u64);
        let queue = e.param_number("queue")?.unwrap_or(d.queue as u64);
        if max_subscribers == 0 || max_subscribers > 65536 || queue == 0 || queue > 1 << 20 {
            return Err(bad(
                e,
                "max_subscribers must be 1..=65536 and queue 1..=1048576".into(),
            ));
        }
        let allow_uids = match e.param("allow_uid") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|u| u.trim().parse::<u32>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| {
                    bad(
                        e,
                        format!("allow_uid={list:?}: a comma-separated list of numeric uids"),
                    )
                })?,
        };
        Ok(PublisherOptions {
            allow_uids,
            slots,
            slot_size,
            max_subscribers: max_subscribers as usize,
            queue: queue as usize,
        })
    }
}

impl SubscriberOptions {
    /// Reads the subscriber options of a URL.
    pub fn from_endpoint(e: &Endpoint) -> Result<SubscriberOptions> {
        known(e)?;
        let timeout = Duration::from_millis(e.param_number("block_timeout_ms")?.unwrap_or(1000));
        let policy = match e.param("policy") {
            None | Some("drop") => Policy::Drop,
            Some("block") => Policy::Block { timeout },
            Some(other) => return Err(bad(e, format!("policy={other:?}: use drop or block"))),
        };
        let wait = match e.param("wait") {
            Some("spin") => Wait::Spin,
            Some("block") => Wait::Block,
            None | Some("adaptive") => Wait::Adaptive,
            Some(other) => {
                return Err(bad(
                    e,
                    format!("wait={other:?}: use spin, block or adaptive"),
                ));
            }
        };
        let notify = match e.param("notify") {
            None | Some("none") => false,
            Some("eventfd") => true,
            Some(other) => return Err(bad(e, format!("notify={other:?}: use eventfd"))),
        };
        let publisher_uid = e.param_number("publisher_uid")?.map(|u| u as u32);
        Ok(SubscriberOptions {
            policy,
            wait,
            notify,
            publisher_uid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher(url: &str) -> Result<PublisherOptions> {
        PublisherOptions::from_endpoint(&Endpoint::parse(url)?)
    }

    fn subscriber(url: &str) -> Result<SubscriberOptions> {
        SubscriberOptions::from_endpoint(&Endpoint::parse(url)?)
    }

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        let p = publisher("shm://x?slots=64&slot=256&allow_uid=7,8").unwrap();
        assert_eq!((p.slots, p.slot_size, p.allow_uids), (64, 256, vec![7, 8]));
        for bad in [
            "shm://x?slots=100",
            "shm://x?slot=100",
            "shm://x?slots=1",
            "shm://x?slots=1073741824",
            "shm://x?colour=red",
            "shm://x?allow_uid=root",
            "shm://x?queue=0",
        ] {
            assert!(publisher(bad).is_err(), "{bad}");
        }
        let s =
            subscriber("shm://x?policy=block&block_timeout_ms=5&wait=spin&notify=eventfd").unwrap();
        assert_eq!(
            s.policy,
            Policy::Block {
                timeout: Duration::from_millis(5)
            }
        );
        assert_eq!((s.wait, s.notify), (Wait::Spin, true));
        assert_eq!(subscriber("shm://x").unwrap(), SubscriberOptions::default());
        for bad in [
            "shm://x?policy=maybe",
            "shm://x?wait=nap",
            "shm://x?notify=signal",
        ] {
            assert!(subscriber(bad).is_err(), "{bad}");
        }
    }
}
