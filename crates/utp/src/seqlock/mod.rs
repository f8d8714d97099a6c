//! Shared state for one writer and many readers: a seqlock cell in shared
//! memory (`shm://NAME`, `sysv://KEY`) or in a file (`file:///PATH`).
//!
//! Message passing does not fit every case. A market-data process that
//! publishes an order book many strategy processes read at full speed wants
//! the *latest* value, not a queue: the writer must never wait for a slow
//! reader, and readers must never lock. A [`SeqWriter`] publishes a
//! `#[repr(C)]` plain-old-data value ([`bytemuck::Pod`], checked at compile
//! time); a [`SeqReader`] gets a consistent copy or retries, and never sees
//! a torn value (the protocol and why it is sound: `docs/shm-layout.md`, section 14).
//!
//! ```
//! use utp::seqlock::{SeqReader, SeqWriter};
//!
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Position { x: f64, y: f64, frame: u64 }
//!
//! let url = format!("shm://doc-seqlock-{}", std::process::id());
//! let mut writer = SeqWriter::<Position>::open(&url)?;   // creates and claims
//! let reader = SeqReader::<Position>::open(&url)?;       // in any process
//!
//! writer.publish(&Position { x: 1.0, y: 2.0, frame: 1 });
//! let (pos, seq) = reader.read_seq()?;
//! assert_eq!((pos.frame, seq), (1, 2));
//!
//! // Sleep until the next publish instead of polling (futex, no CPU):
//! let waiter = std::thread::spawn({
//!     let url = url.clone();
//!     move || SeqReader::<Position>::open(&url)?.wait_next(seq, None).map(|(p, _)| p.frame)
//! });
//! std::thread::sleep(std::time::Duration::from_millis(20));
//! writer.publish(&Position { x: 1.5, y: 2.5, frame: 2 });
//! assert_eq!(waiter.join().unwrap()?, 2);
//! writer.remove()?;
//! # Ok::<(), utp::Error>(())
//! ```
//!
//! Guarantees and limits:
//!
//! - **One writer**: a second [`SeqWriter`] on the cell gets
//!   [`Error::InUse`](crate::Error::InUse); the claim of a dead writer is
//!   taken over.
//! - **Writer death mid-write**: readers get
//!   [`Error::PeerGone`](crate::Error::PeerGone) (within about 1 ms) rather
//!   than spinning forever; a new writer takes over and its first publish
//!   makes the cell readable again.
//! - **Wrong type**: a reader whose type has another size or type tag is
//!   refused ([`CellOptions::tag`] for a tag of your own).
//! - **Persistence**: cells live until removed. On `file://` the last
//!   value survives the writer's death (page cache) and, after
//!   [`SeqWriter::flush`] (`msync`), a reboot. POSIX and System V shared
//!   memory are lost at reboot.
//! - **Polling cheaply**: [`SeqReader::read_if_newer`] costs one load of the
//!   sequence word while nothing changed.
//! - **Notifications**: [`SeqReader::wait_next`] (futex),
//!   [`SeqWriter::serve_eventfds`] + [`subscribe_eventfd`] for event loops,
//!   [`SeqReader::subscribe_signal`] (`SIGUSR1`, see [`signal`]).
//!
//! Layout: section 14 of `docs/shm-layout.md`.

#[cfg(not(loom))]
pub(crate) mod cell;
#[cfg(not(loom))]
mod eventfd;
#[cfg(not(loom))]
pub(crate) mod futex;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod inspect;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod layout;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod place;
#[doc(hidden)]
pub mod protocol;
#[cfg(not(loom))]
mod reader;
#[cfg(not(loom))]
pub mod signal;
#[cfg(not(loom))]
mod writer;

#[cfg(not(loom))]
pub use cell::CellOptions;
#[cfg(not(loom))]
pub use eventfd::{EventfdSubscription, subscribe_eventfd};
#[cfg(not(loom))]
#[doc(inline)]
pub use layout::type_tag;
#[cfg(not(loom))]
pub use reader::SeqReader;
#[cfg(not(loom))]
pub use signal::SignalSubscription;
#[cfg(not(loom))]
pub use writer::SeqWriter;
