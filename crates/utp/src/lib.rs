//! # utp — fast, safe inter-process communication
//!
//! One frame format (UTP: a 32-byte header with magic, version, type, flags,
//! length, sequence, timestamp and CRC-32C), every Linux IPC mechanism behind
//! one [`Channel`] API chosen by a URL, a shared-memory link as the fast path,
//! and a request/response [`service`] layer.
//!
//! ```
//! use utp::frame::{Frame, flags, message_type};
//!
//! // The same code runs over shm://, unix://, tcp://, ... : only the URL changes.
//! let mut listener = utp::listen("inproc://crate-doc")?;
//! let mut client = utp::connect("inproc://crate-doc")?;
//! let mut server = listener.accept()?;
//!
//! client.send(message_type::REQUEST, flags::CHECKSUM, b"ADD 10 20")?;
//! let mut frame = Frame::default();
//! server.recv(&mut frame)?;
//! let reply = utp::service::calc::evaluate(frame.payload());
//! server.send(message_type::RESPONSE, flags::CHECKSUM, reply.as_bytes())?;
//!
//! client.recv(&mut frame)?;
//! assert_eq!(frame.payload(), b"OK 30");
//! # Ok::<(), utp::Error>(())
//! ```
//!
//! Layers, bottom up: [`frame`] (no I/O), [`transport`] (one module per
//! mechanism), [`channel`] (the traits), [`service`] (server, client,
//! calculator); [`seqlock`] for shared state with one writer and many readers.

#![deny(missing_docs)]

pub mod channel;
pub mod endpoint;
pub mod error;
pub mod frame;
pub mod halves;
pub mod identity;
pub mod procnet;
pub mod pubsub;
pub mod runtime_dir;
pub mod seqlock;
pub mod service;
pub mod shm;
pub mod stats;
pub mod transport;
pub mod typed;

/// Re-exported so `#[derive(bytemuck::Pod)]` types for [`typed`] need no extra dependency line.
pub use bytemuck;

pub use channel::{Channel, Listener, Options, PeerInfo, Readiness};
pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use halves::{RecvHalf, SendHalf};
pub use transport::{connect, connect_with, listen, listen_with};

/// The Rust blocks of the repository's README.md, compiled and run as
/// doctests so the README cannot drift from the API (the other blocks are
/// run by `crates/utp-cli/tests/docs_blocks.rs`).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
