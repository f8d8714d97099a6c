//! Counters you can watch from another process (in the manner of Aeron's
//! counters and its `AeronStat` tool).
//!
//! Every channel and listener made by [`connect`](crate::connect) and
//! [`listen`](crate::listen) keeps counters — frames and bytes each way,
//! errors by kind, timeouts, peers accepted and refused, and, where the link
//! reports them, waits, wake-ups and ring fill — in a per-process *counters
//! region*: a 0600 file `PID.stats` in a private directory of the user
//! ([`directory`]): `$XDG_RUNTIME_DIR/utp/stats/` when that is set, else
//! `/tmp/utp-UID/stats/`. The directory must be owned by the user, mode 0700
//! and not a symlink, or no counters are kept (a warning is logged once).
//! `utp stat URL` reads the regions of live processes; the file is removed
//! when the process exits normally and by the next utp process of the user
//! when it died.
//!
//! The hot path pays a plain load and store per counter on cache lines that
//! only this process writes and no peer polls (see [`Counters::add`]); the
//! shared-memory link counts its own sends and stores each count from its
//! own (a store per counter, nothing read back), zero-copy sends included.
//! `UTP_STATS=off` in the environment turns counting off.
//!
//! A link that knows more than frames and errors — the shared-memory link's
//! ring fill, futex waits and wake-ups — overrides
//! [`Channel::attach_counters`](crate::Channel::attach_counters), keeps the
//! [`Counters`] handle it is given, and calls [`Counters::add`] with
//! [`Counter::Waits`] / [`Counter::Wakeups`] and [`Counters::set`] with
//! [`Counter::RingUsed`] / [`Counter::RingCapacity`] (and its frames and
//! bytes sent) from its own thread.
//!
//! ```
//! use utp::frame::{Frame, flags, message_type};
//! let url = format!("inproc://stats-doc-{}", std::process::id());
//! let mut listener = utp::listen(&url)?;
//! let mut client = utp::connect(&url)?;
//! let mut server = listener.accept()?;
//! client.send(message_type::REQUEST, flags::CHECKSUM, b"ADD 1 2")?;
//! server.recv(&mut Frame::default())?;
//!
//! if utp::stats::enabled() {
//!     let mine = utp::stats::read_process(std::process::id()).unwrap();
//!     let listener_block = mine.blocks.iter().find(|b| b.label == url && b.kind == utp::stats::Kind::Listener).unwrap();
//!     assert_eq!(listener_block.get(utp::stats::Counter::PeersAccepted), 1);
//! }
//! # Ok::<(), utp::Error>(())
//! ```

mod counted;
mod layout;
mod read;
mod region;

#[doc(hidden)]
pub use counted::{count_channel, count_listener};
pub use layout::{COUNTERS, Counter, Kind, VERSION};
pub use read::{BlockSnapshot, ProcessStats, read_all, read_process};
#[doc(hidden)]
pub use region::register;
pub use region::{Counters, directory, enabled};
