//! # utp — fast, safe inter-process communication
//!
//! One frame format (UTP: a 32-byte header with magic, version, type, flags,
//! length, sequence, timestamp and CRC-32C), every Linux IPC mechanism behind
//! one [`Channel`] API chosen by a URL, a shared-memory link as the fast path,
//! a request/response [`service`] layer, [`pubsub`] and a [`seqlock`] cell.
//!
//! ```toml
//! [dependencies]
//! utp = { version = "0.1", features = ["serde"] }  # features: see below
//! ```
//!
//! # Connect, send, receive
//!
//! A server listens at a URL, a client connects to it; both get a
//! [`Channel`]: frames go both ways, in order, each with a message type,
//! flags and a payload. The same code runs over `shm://`, `unix://`,
//! `tcp://`, ...: only the URL changes.
//!
//! ```
//! use utp::frame::{Frame, flags, message_type};
//!
//! let mut listener = utp::listen("inproc://crate-doc")?;
//! let mut client = utp::connect("inproc://crate-doc")?;
//! let mut server = listener.accept()?;
//!
//! client.send(message_type::REQUEST, flags::CHECKSUM, b"ADD 10 20")?;
//! let mut frame = Frame::default(); // reused: no allocation per message
//! server.recv(&mut frame)?;
//! let reply = utp::service::calc::evaluate(frame.payload());
//! server.send(message_type::RESPONSE, flags::CHECKSUM, reply.as_bytes())?;
//!
//! client.recv(&mut frame)?;
//! assert_eq!(frame.payload(), b"OK 30");
//! # Ok::<(), utp::Error>(())
//! ```
//!
//! Every blocking call has a `_timeout` form, and [`Options`] sets limits and
//! deadlines: `utp::connect_with(url, &Options::default().with_max_payload(64 << 10))`.
//! A peer that leaves shows up as [`Error::PeerGone`], whose [`GoneReason`]
//! says whether it closed in order or died:
//!
//! ```
//! use utp::{Error, GoneReason};
//! let mut listener = utp::listen("inproc://crate-doc-gone")?;
//! let client = utp::connect("inproc://crate-doc-gone")?;
//! let mut server = listener.accept()?;
//! drop(client);
//! match server.recv(&mut utp::frame::Frame::default()) {
//!     Err(Error::PeerGone { reason: GoneReason::Closed, .. }) => {} // an orderly goodbye
//!     Err(Error::PeerGone { reason, detail }) => panic!("{reason:?}: {detail}"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), utp::Error>(())
//! ```
//!
//! # Request/response
//!
//! [`service::Server`] serves a handler (any `Fn(&[u8], &PeerInfo) -> Vec<u8>`)
//! to many clients; [`service::Client::call`] sends a request and waits for
//! its answer, with a deadline.
//!
//! ```
//! use utp::service::{Client, Server, calc};
//!
//! let listener = utp::listen("inproc://crate-doc-service")?;
//! let mut server = Server::new(listener, calc::handler());
//! let stop = server.shutdown_handle();
//! let serving = std::thread::spawn(move || server.run());
//!
//! let mut client = Client::connect("inproc://crate-doc-service")?;
//! assert_eq!(client.call(b"MUL 6 7")?, b"OK 42");
//! client.close()?;
//!
//! stop.trigger();
//! serving.join().unwrap()?;
//! # Ok::<(), utp::Error>(())
//! ```
//!
//! # Typed messages
//!
//! `typed::TypedChannel` (cargo feature `serde`) sends and receives any
//! `Serialize`/`Deserialize` type over any channel (postcard encoding);
//! [`typed::send_pod`]/[`typed::recv_pod`] move `#[repr(C)]` plain-old-data
//! ([`bytemuck::Pod`], re-exported) without serde. The wire stays UTP frames
//! of documented message types, so other languages can read them.
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use utp::typed::TypedChannel;
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! enum Order { Buy { symbol: String, qty: u32 }, Cancel(u64) }
//!
//! let mut listener = utp::listen("inproc://crate-doc-typed")?;
//! let mut client = TypedChannel::<Order>::new(utp::connect("inproc://crate-doc-typed")?);
//! let mut server = TypedChannel::<Order>::new(listener.accept()?);
//! client.send(&Order::Cancel(7))?;
//! assert_eq!(server.recv()?, Order::Cancel(7));
//! # }
//! # Ok::<(), utp::Error>(())
//! ```
//!
//! # Zero-copy on shared memory
//!
//! [`shm::connect`] returns the concrete [`shm::ShmLink`]: besides being a
//! [`Channel`], it lends room in the ring to write a payload in place
//! ([`shm::ShmLink::reserve`]) and lends received payloads in place
//! ([`shm::ShmLink::recv_view`]). Memory the peer can write is never a plain
//! `&[u8]`: views are read through [`shm::ShmSlice`]. The [`shm`] module has
//! the full example; `examples/zero_copy.rs` runs it.
//!
//! Every channel lends received frames too: [`Channel::recv_ref`] returns a
//! [`frame::FrameRef`] borrowed from the channel, so sockets, pipes, FIFOs,
//! message queues and UDP hand out a frame where they read it instead of
//! copying it into a [`frame::Frame`] (docs/api.md, "Lent receives").
//!
//! # Event loops
//!
//! Every channel can be polled without blocking: [`Channel::try_recv`] and
//! [`Channel::try_send`] never wait, and [`Channel::readiness`] gives a
//! descriptor for epoll, mio or any poller, level-triggered: once
//! `try_recv` returned `false`, the descriptor turns readable when a
//! receive may make progress. `examples/event_loop.rs` serves three
//! transports (one of them shm) from one mio poll.
//!
//! ```
//! use utp::frame::{Frame, flags, message_type};
//! use rustix::event::{PollFd, PollFlags, poll};
//!
//! let url = format!("unix:///tmp/utp-crate-doc-{}.sock", std::process::id());
//! let mut listener = utp::listen(&url)?;
//! let mut client = utp::connect(&url)?;
//! let mut server = listener.accept()?;
//! let mut frame = Frame::default();
//! assert!(!server.try_recv(&mut frame)?); // nothing yet: wait on the descriptor
//!
//! client.send(message_type::DATA, flags::CHECKSUM, b"tick")?;
//! {
//!     let ready = server.readiness().expect("a Unix socket has a descriptor");
//!     let mut fds = [PollFd::new(&ready.fd, PollFlags::IN)];
//!     let limit = rustix::time::Timespec { tv_sec: 5, tv_nsec: 0 };
//!     poll(&mut fds, Some(&limit)).expect("poll");
//!     assert!(fds[0].revents().contains(PollFlags::IN));
//! }
//! assert!(server.try_recv(&mut frame)?);
//! assert_eq!(frame.payload(), b"tick");
//! # Ok::<(), utp::Error>(())
//! ```
//!
//! # Async
//!
//! With the cargo feature `tokio`, the module `utp::tokio` offers
//! `AsyncChannel` and `AsyncListener` (async receive, send and accept),
//! `Stream`/`Sink` adapters and an async service client and server, all
//! built on the readiness descriptors above. Without the feature, a blocking
//! channel works from async code through `spawn_blocking`, at the cost of a
//! thread hop per call.
//!
//! # Choosing a transport
//!
//! | URL | mechanism | pick it for |
//! |-----|-----------|-------------|
//! | `shm://NAME` (`sysv://KEY`, `file:///PATH`) | shared-memory rings, one link per client | lowest latency and highest throughput on one machine |
//! | `unix:///PATH`, `unix://@NAME` | Unix stream socket | the everyday local choice; peer credentials, descriptor passing |
//! | `tcp://HOST:PORT` | TCP | crossing machines |
//! | `udp://HOST:PORT` | one frame per datagram | lossy, connectionless traffic |
//! | `pipe:CMD` | anonymous pipes to a child process | talking to a process you spawn |
//! | `fifo:///PATH` | named pipes, one client at a time | tools that only know files |
//! | `mq://NAME` | POSIX message queues | priorities per message |
//! | `inproc://NAME` | threads of one process | tests, embedding |
//!
//! `docs/transports.md` in the repository gives each one's limits and
//! figures; [`transport`] documents the per-transport entry points.
//!
//! # Beyond channels
//!
//! - [`pubsub`]: one publisher, many subscribers, each receiving every
//!   message from its join point; a slow or dead subscriber loses messages
//!   (and is told how many) instead of stalling the others.
//! - [`seqlock`]: the latest value of a plain-old-data type in shared
//!   memory, for one writer and any number of lock-free readers.
//! - [`stats`]: counters of every channel, readable from another process
//!   (`utp stat`).
//! - [`frame`]: the frame format itself, no I/O.
//!
//! # Cargo features
//!
//! | feature | adds |
//! |---------|------|
//! | `serde` | `typed::TypedChannel` (serde + postcard) |
//! | `tokio` | the async layer `utp::tokio` |
//! | `zenoh` | the `zenoh://KEY` transport across hosts (~200 more crates) |
//! | `zenoh-tls` | `zenoh://` over TLS with user/password authentication |
//!
//! No feature is on by default; every local transport is always built (they
//! cost no dependency; `docs/api.md` has the measurements).
//!
//! # Stability
//!
//! What these docs show is the API. Items hidden from them (modules such as
//! `shm::ring` or `utp::__bench`) exist for the `utp` tool, the benchmarks
//! and the tests, and may change in any release. The public API is checked
//! against a baseline (`crates/utp/public-api.txt`, see `docs/api.md`).

#![deny(missing_docs)]
// The loom build (`--cfg loom`, for the models in tests/loom_*.rs) leaves out
// the code that needs real threads and system calls, so helpers only that
// code uses go unused there.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

pub mod channel;
pub(crate) mod claim;
pub(crate) mod copy;
#[cfg(not(loom))]
pub(crate) mod demote;
pub mod endpoint;
pub mod error;
pub mod frame;
pub mod halves;
pub(crate) mod handshake_io;
pub mod identity;
// Used by the async layer; built in tests too, where Miri checks it.
#[cfg(any(feature = "tokio", test))]
pub(crate) mod lend;
pub(crate) mod line_hint;
pub(crate) mod now_and_then;
pub mod pubsub;
pub mod seqlock;
pub mod service;
pub mod shm;
pub mod stats;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod transport;
pub mod typed;
pub(crate) mod wake;

// Not part of the API (hidden from the docs, not covered by semver): what
// the `utp` command-line tool, the benchmarks and the integration tests need
// from the inside. See docs/api.md, "What is public".
#[doc(hidden)]
#[cfg(not(loom))]
#[path = "bench_support/mod.rs"]
pub mod __bench;
#[doc(hidden)]
pub mod procnet;
#[doc(hidden)]
pub mod runtime_dir;

/// Re-exported so `#[derive(bytemuck::Pod)]` types for [`typed`] need no extra dependency line.
pub use bytemuck;

pub use channel::{Channel, Listener, Options, PeerInfo, Readiness};
pub use endpoint::Endpoint;
pub use error::{DeniedReason, Error, GoneReason, ProtocolReason, Result};
pub use halves::{RecvHalf, SendHalf};
pub use transport::{connect, connect_with, listen, listen_with};

/// The Rust blocks of the repository's README.md, compiled and run as
/// doctests so the README cannot drift from the API (the other blocks are
/// run by `crates/utp-cli/tests/docs_blocks.rs`).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The Rust blocks of docs/api.md, run as doctests for the same reason.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/api.md")]
pub struct ApiDocDoctests;
