//! Publish/subscribe: one publisher, many subscribers, each receiving
//! every message from its join point on, and no slow or dead subscriber
//! able to stall the rest.
//!
//! ```
//! use std::time::Duration;
//! use utp::pubsub::{Publisher, Subscriber};
//!
//! let url = format!("shm://doc-pubsub-{}", std::process::id());
//! let mut publisher = Publisher::create(&url)?;
//! let mut subscriber = Subscriber::connect(&url)?;
//!
//! let mut loan = publisher.loan(5)?;          // room in the ring
//! loan.payload_mut().copy_from_slice(b"hello"); // written in place
//! loan.commit()?;                               // one store publishes it
//!
//! let view = subscriber.recv_view(Some(Duration::from_secs(5)))?;
//! assert!(view.equals(b"hello")?);             // compared in place
//! assert_eq!((view.sequence(), view.lost_before()), (0, 0));
//! # Ok::<(), utp::Error>(())
//! ```
//!
//! `shm://NAME` is a broadcast ring in a sealed memfd that subscribers map
//! read-only (layout: `docs/pubsub-layout.md`); `unix://` and `tcp://` fan
//! out through one bounded queue per subscriber; `zenoh://KEY` (cargo
//! feature `zenoh`) reaches subscribers on other hosts through zenoh. Both count losses exactly
//! from message numbers. Policies, wait modes and sizes are URL options
//! (`docs/pubsub-layout.md`).

#[cfg(not(loom))]
mod dir;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod inspect;
#[doc(hidden)]
pub mod layout;
#[cfg(not(loom))]
mod member;
#[cfg(not(loom))]
mod memory;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod options;
#[doc(hidden)]
pub mod protocol;
#[cfg(not(loom))]
mod publisher;
#[cfg(not(loom))]
mod registry;
#[cfg(not(loom))]
mod rendezvous;
#[cfg(not(loom))]
mod ring;
#[cfg(not(loom))]
mod shm_publisher;
#[cfg(not(loom))]
mod shm_subscriber;
#[cfg(not(loom))]
mod stream;
#[cfg(not(loom))]
mod stream_subscriber;
#[cfg(not(loom))]
mod subscriber;
#[cfg(not(loom))]
mod view;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod wire;
#[cfg(all(not(loom), feature = "zenoh"))]
mod zenoh;

#[cfg(not(loom))]
#[doc(inline)]
pub use inspect::{Report, SubscriberStatus};
#[cfg(not(loom))]
#[doc(inline)]
pub use options::{Policy, Wait};
#[cfg(not(loom))]
pub use publisher::{Loan, Publisher};
#[cfg(not(loom))]
pub use rendezvous::LIVENESS_PERIOD;
#[cfg(not(loom))]
pub use subscriber::{Received, Subscriber, inspect};
#[cfg(not(loom))]
pub use view::View;

/// The error for a URL scheme pub/sub does not run over.
#[cfg(not(loom))]
fn unsupported(url: &str, address: &crate::endpoint::Address) -> crate::Error {
    let zenoh = if cfg!(feature = "zenoh") {
        ", zenoh://"
    } else {
        " (zenoh:// with the cargo feature `zenoh`)"
    };
    crate::Error::BadUrl {
        url: url.to_string(),
        reason: format!(
            "pub/sub runs over shm://, unix://, tcp://{zenoh}, not {}://",
            address.scheme()
        ),
    }
}

/// Our publishers on this machine: `shm://NAME` and its report (or why
/// it could not be read: a stale socket of a dead publisher), from the
/// sockets in our private and shared directories.
#[cfg(not(loom))]
#[doc(hidden)]
pub fn list() -> Vec<(String, crate::Result<Report>)> {
    let me = rustix::process::geteuid().as_raw();
    let dirs = [dir::private_dir().ok(), dir::shared_dir(me, false).ok()];
    let mut found = Vec::new();
    for d in dirs.into_iter().flatten() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file
                .strip_prefix("pubsub.")
                .and_then(|f| f.strip_suffix(".sock"))
            {
                let url = format!("shm://{name}");
                let report = inspect(&url);
                found.push((url, report));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.dedup_by(|a, b| a.0 == b.0);
    found
}

/// The rendezvous socket path of `shm://NAME` (in the per-user private directory).
#[cfg(not(loom))]
#[doc(hidden)]
pub fn socket_path(name: &str) -> crate::Result<std::path::PathBuf> {
    dir::socket_path(name)
}
