//! The shared-memory link (`shm://`, `sysv://`, `file:///`): utp's fast path.
//!
//! Layers: [`region`] (the memory) → [`ring`] (SPSC frames) → link (duplex,
//! waiting, liveness) → listener (rendezvous over an abstract Unix socket).
//! The byte layout is specified in `docs/shm-layout.md`.

pub mod ring;
pub mod sync;

#[cfg(not(loom))]
pub mod bytes;
#[cfg(not(loom))]
pub mod layout;
#[cfg(not(loom))]
mod link;
#[cfg(not(loom))]
mod listener;
#[cfg(not(loom))]
pub mod reclaim;
#[cfg(not(loom))]
pub mod region;
#[cfg(not(loom))]
pub mod rendezvous;
#[cfg(not(loom))]
mod wait;

#[cfg(not(loom))]
pub use link::{Reservation, ShmLink, Side, View};
#[cfg(not(loom))]
pub use listener::{HANDSHAKE_TIMEOUT, MAX_CLIENT_CAPACITY, ShmListener, connect, listen};
#[cfg(not(loom))]
pub use wait::{ADAPTIVE_SPIN, SLICE, WaitMode};
#[cfg(not(loom))]
pub mod inspect;
