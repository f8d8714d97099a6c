//! Async utp for tokio (feature `tokio`): channels, listeners, `Stream`/`Sink`
//! adapters and an async request/response [`service`].
//!
//! Every channel with a readiness descriptor ([`Channel::readiness`]) works:
//! its descriptor is registered with tokio's reactor, receives and sends are
//! the channel's own non-blocking [`try_recv`](Channel::try_recv) and
//! [`try_send`](Channel::try_send), so no thread waits for a channel and the
//! same frames, deadlines and limits apply as in the blocking API. The design
//! (and what another runtime needs: a few lines over the same descriptor) is
//! in docs/async.md.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> utp::Result<()> {
//! use utp::tokio::service::{Client, Server};
//!
//! let path = std::env::temp_dir().join(format!("utp-doc-tokio-{}.sock", std::process::id()));
//! let url = format!("unix://{}", path.display());
//! let server = Server::new(utp::tokio::listen(&url)?, utp::service::calc::handler());
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let serving = tokio::spawn(server.run_until(async { let _ = stopped.await; }));
//!
//! let mut client = Client::connect(&url).await?;
//! assert_eq!(client.call("ADD 10 20").await?, "OK 30");
//! client.close().await?;
//!
//! let _ = stop.send(());
//! serving.await.expect("server task")?;
//! assert!(!path.exists(), "the socket file is removed when the server stops");
//! # Ok(())
//! # }
//! ```
//!
//! Every transport's channels and listeners have readiness descriptors
//! (docs/event-loops.md). A channel without one (a third-party `Channel`,
//! an shm peer that offers no wake-ups) is refused with a clear error by
//! [`AsyncChannel::new`]: no hidden thread per channel. A listener without
//! one is served by one accepting thread ([`AsyncListener`]).

mod channel;
mod interest;
mod listener;
mod room;
pub mod service;
mod stream;

pub use channel::AsyncChannel;
pub use listener::AsyncListener;
pub use stream::{FrameStream, Outgoing};

use crate::channel::{Channel, Options};
use crate::error::{Error, Result};

/// Connects to `url` (any transport URL, as [`crate::connect`]) and wraps
/// the channel for tokio.
///
/// Connecting may wait (a full backlog, a TCP handshake, a shm link's
/// handshake), so it runs on tokio's blocking pool once; every receive and
/// send after that is event-driven.
pub async fn connect(url: &str) -> Result<AsyncChannel> {
    connect_with(url, &Options::default()).await
}

/// Like [`connect`], with options.
pub async fn connect_with(url: &str, options: &Options) -> Result<AsyncChannel> {
    let url = url.to_owned();
    let options = options.clone();
    let channel = ::tokio::task::spawn_blocking(move || crate::connect_with(&url, &options))
        .await
        .map_err(|e| Error::io("connect (tokio blocking pool)", std::io::Error::other(e)))??;
    AsyncChannel::new(channel)
}

/// Listens at `url` (as [`crate::listen`]) for tokio. Binding does not wait,
/// so this is not `async`; it must be called inside a tokio runtime.
pub fn listen(url: &str) -> Result<AsyncListener> {
    AsyncListener::new(crate::listen(url)?)
}

/// Like [`listen`], with options.
pub fn listen_with(url: &str, options: &Options) -> Result<AsyncListener> {
    AsyncListener::new(crate::listen_with(url, options)?)
}

/// Wraps an already connected blocking channel (same as [`AsyncChannel::new`]).
pub fn wrap(channel: Box<dyn Channel>) -> Result<AsyncChannel> {
    AsyncChannel::new(channel)
}

/// Something that owns the descriptor it registers: its `as_raw_fd` is an
/// [`OwnedFd`](std::os::fd::OwnedFd) it holds for its whole life.
trait OwnsItsFd: std::os::fd::AsRawFd {}

/// Registers `inner` with the current runtime's reactor.
fn register<T: OwnsItsFd>(
    inner: T,
    interest: ::tokio::io::Interest,
) -> std::io::Result<::tokio::io::unix::AsyncFd<T>> {
    // SAFETY: `T: OwnsItsFd`: the descriptor `inner.as_raw_fd()` returns is
    // an `OwnedFd` that `inner` holds and never replaces, and `inner` is
    // owned by the `AsyncFd` from here on; so the descriptor is open, the
    // same, and refers to the same file for the `AsyncFd`'s whole life.
    unsafe { ::tokio::io::unix::AsyncFd::register_with_interest(inner, interest) }
        .map_err(|e| e.into_parts().1)
}

fn no_runtime(what: &str) -> Error {
    Error::io(
        what.to_owned(),
        std::io::Error::other("not called inside a tokio runtime (no reactor to register with)"),
    )
}
