//! The shared-memory link (`shm://`, `sysv://`, `file:///`): utp's fast path.
//!
//! Through [`connect`](crate::connect)/[`listen`](crate::listen) a link is
//! just another [`Channel`](crate::Channel). Connecting through
//! [`shm::connect`](connect) gives the [`ShmLink`] itself, with a zero-copy API
//! beside the channel one: [`ShmLink::reserve`] lends room in the ring to
//! write a payload in place, [`ShmLink::recv_view`] lends a received payload
//! in place until the [`View`] is dropped.
//!
//! ```
//! use std::time::Duration;
//! use utp::frame::{flags, message_type, Frame};
//! use utp::Channel;
//!
//! let url = format!("shm://doc-{}?wait=adaptive", std::process::id());
//! let mut listener = utp::listen(&url)?;
//! let client = std::thread::spawn({
//!     let url = url.clone();
//!     move || -> utp::Result<()> {
//!         let mut link = utp::shm::connect(&url.parse()?, &utp::Options::default())?;
//!         let mut room = link.reserve(9, Some(Duration::from_secs(1)))?;
//!         room.payload_mut().copy_from(b"ADD 10 20"); // written in place
//!         room.commit(message_type::REQUEST, flags::CHECKSUM); // no syscall
//!         let reply = link.recv_view(Some(Duration::from_secs(5)))?;
//!         assert!(reply.payload().eq_bytes(b"OK 30")); // compared in place
//!         let mut copy = Vec::new();
//!         reply.copy_payload(&mut copy)?; // one copy, checksum verified on it
//!         assert_eq!(copy, b"OK 30");
//!         Ok(())
//!     }
//! });
//! let mut server = listener.accept_timeout(Some(Duration::from_secs(5)))?;
//! let mut frame = Frame::default();
//! server.recv(&mut frame)?;
//! let answer = utp::service::calc::evaluate(frame.payload());
//! server.send(message_type::RESPONSE, flags::CHECKSUM, answer.as_bytes())?;
//! client.join().unwrap()?;
//! # Ok::<(), utp::Error>(())
//! ```
//!
//! Layers: the region (the memory: a sealed memfd, System V or a file) →
//! the ring (SPSC frames) → [`ShmLink`] (duplex, waiting per [`WaitMode`],
//! liveness) → [`ShmListener`] (rendezvous over a Unix socket in a per-user
//! directory, identity checked, one region per client). Regions, rings and
//! the inspection code behind `utp inspect` are internal. The byte layout and the protocol (layout version 2)
//! are specified in `docs/shm-layout.md`, precisely enough to write a
//! client in another language.
//!
//! URL options: `?wait=spin|block|adaptive` (default adaptive: spin 50 µs,
//! then sleep on a futex), `?ring=SIZE` (each direction, power of two,
//! default 1 MiB; a frame's payload can be up to SIZE - 104 bytes),
//! `?allow_uid=U1,U2` / `?allow_gid=G1` (trust peers of those ids besides
//! your own uid and root).

#[doc(hidden)]
pub mod ring;
#[doc(hidden)]
pub mod sync;

#[cfg(not(loom))]
mod accept;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod bytes;
#[cfg(not(loom))]
#[cfg(not(loom))]
pub(crate) mod guard;
#[cfg(not(loom))]
mod handshake;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod layout;
#[cfg(not(loom))]
mod link;
#[cfg(not(loom))]
mod listener;
#[cfg(not(loom))]
pub(crate) mod reclaim;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod region;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod rendezvous;
#[cfg(not(loom))]
pub(crate) mod wait;

#[cfg(not(loom))]
pub use accept::{EVICT_AGE, EVICT_AGE_ATTACHED, MAX_PENDING, MAX_PENDING_PER_UID};
#[cfg(not(loom))]
#[doc(inline)]
pub use bytes::{ShmSlice, ShmSliceMut};
#[cfg(not(loom))]
pub use handshake::{HANDSHAKE_TIMEOUT, MAX_CLIENT_CAPACITY, connect};
#[cfg(not(loom))]
#[doc(hidden)]
pub use link::Side;
#[cfg(not(loom))]
pub use link::{Reservation, ShmLink, View};
#[cfg(not(loom))]
pub use listener::{BACKLOG, ShmListener, listen};
#[cfg(not(loom))]
pub use wait::{ADAPTIVE_SPIN, SLICE, WaitMode};
#[cfg(not(loom))]
#[doc(hidden)]
pub mod inspect;
