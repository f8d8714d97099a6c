//! Readiness for event loops: the link's socket is the descriptor.
//!
//! A consumer that found its ring empty and is about to wait in an event
//! loop sets the ring's `data_event` word (`[WAKE]`: store, full fence,
//! look at the ring again); a producer that publishes while the word is set
//! (it looks after the fence it already issues for the futex word)
//! exchanges it to 0 and sends one wake-up byte over the link's Unix
//! socket with `MSG_DONTWAIT`. The socket is also the death notice (it
//! hangs up when the peer exits), so one descriptor says both "a frame
//! may be there" and "the peer is gone" — see `docs/shm-layout.md` 5.3.
//!
//! Why the socket and not an eventfd passed over `SCM_RIGHTS`: flags such
//! as `O_NONBLOCK` belong to the open file description, which the peer
//! shares and can change at any time. A hostile reader could make our
//! write to its eventfd block (counter at its maximum, `O_NONBLOCK`
//! cleared) and hang the writing thread, which may be serving every other
//! client. `send(MSG_DONTWAIT)` and `recv(MSG_DONTWAIT)` never block,
//! whatever the peer does to its end; a full socket buffer just means a
//! wake-up is already pending.
//!
//! The consumer arms only once its descriptor has been handed out
//! ([`Channel::readiness`](crate::Channel::readiness)): an application that
//! polls with `try_recv` and never waits on the descriptor would otherwise
//! arm after every frame it took, and its producer would send a wake-up
//! byte (a system call) after nearly every frame, for nobody. Measured with
//! a client polling for replies at a fixed rate over a spinning link
//! (`utp bench --rate`, 500 k requests/s): a fifth to a quarter of its
//! round trips took 1.8–2.0 µs instead of 0.4 µs; never arming, 0.37–0.47
//! µs at p50–p90 (raw ring: 0.37–0.60; docs/benchmarks/journal.md,
//! 2026-12-06, forenoon).
//! The first hand-out arms at once, for a caller that found nothing before
//! it took the descriptor; `Readiness` asks for a drain with `try_recv`
//! before each wait anyway.
//!
//! A peer that spins (`sleeps = 0`) skips the `[WAKE]` fence. Its producer
//! therefore also loads our `sleeps` word after each publish (one load of a
//! line that is only written at attach, so it stays in its cache): the
//! first time a consumer arms, it sets its `sleeps` word, and a global
//! memory barrier (`membarrier`, expedited: once per link, microseconds)
//! makes sure a producer that loaded the old value has its stamp visible
//! to our re-check. From then on the producer does the fenced `[WAKE]`
//! step like for any sleeper.

use super::ShmLink;
use crate::error::Result;
use crate::shm::layout::SideField;
use crate::shm::sync::{Ordering, fence};
use std::os::fd::AsFd;
use std::sync::atomic::AtomicBool;

/// What the link knows about event-loop waiting; present when both ends
/// agreed on wake-up bytes in the handshake.
///
/// Flags the link's own thread keeps, in atomics (always `Relaxed`: no
/// other thread reads them) because the descriptor is handed out through
/// `&self` and its first hand-out arms; atomics rather than cells keep the
/// link `RefUnwindSafe`.
#[derive(Debug, Default)]
pub(crate) struct Events {
    /// Our `data_event` word is set (we asked for a wake-up).
    armed: AtomicBool,
    /// Our `sleeps` word is non-zero, so the peer does the fenced `[WAKE]` step.
    announced: AtomicBool,
    /// The readiness descriptor has been handed out: only from then on
    /// does a receive that finds nothing ask for a wake-up.
    handed_out: AtomicBool,
}

impl Events {
    pub(crate) fn new(our_wait_sleeps: bool) -> Events {
        Events {
            armed: AtomicBool::new(false),
            announced: AtomicBool::new(our_wait_sleeps),
            handed_out: AtomicBool::new(false),
        }
    }
}

/// Most reads one drain makes (an honest peer sends one byte per wake-up).
const DRAIN_READS: usize = 4;

#[cfg(test)]
thread_local! {
    /// Reads this thread's drains made: for the test that a drain which
    /// empties the socket stops there.
    pub(super) static DRAINING_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What draining the socket found.
enum Drained {
    /// Nothing more to read: the peer is there as far as the socket knows.
    Open,
    /// End of file or an error: the peer closed its end or died.
    HungUp,
}

impl ShmLink {
    /// Reads and discards wake-up bytes without blocking.
    fn drain_socket(&self) -> Drained {
        let Some(sock) = &self.socket else {
            return Drained::Open;
        };
        let mut buf = [0u8; 256];
        // Bounded: a peer that floods the socket keeps it readable (the
        // loop comes back) but never keeps this call busy.
        for _ in 0..DRAIN_READS {
            #[cfg(test)]
            DRAINING_READS.with(|n| n.set(n.get() + 1));
            match rustix::net::recv(sock, &mut buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((0, _)) => return Drained::HungUp,
                // A stream socket hands over all it holds, up to the
                // buffer: a shorter read emptied it, and asking again
                // would only hear EAGAIN (a system call per wait, 0.7-1
                // µs on the AMD guest of docs/benchmarks/journal.md).
                Ok((n, _)) if n < buf.len() => return Drained::Open,
                Ok(_) => continue,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return Drained::Open,
                Err(_) => return Drained::HungUp,
            }
        }
        Drained::Open
    }

    /// Sends the wake-up byte the consumer asked for (never blocks).
    #[cold]
    pub(super) fn send_wake(&self) {
        if let Some(sock) = &self.socket {
            let _ = rustix::net::send(
                sock,
                &[1],
                rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
            );
        }
        if let Some(c) = &self.counters {
            c.add(crate::stats::Counter::Wakeups, 1);
        }
    }

    /// After a publish to a peer that declared it only spins: has it since
    /// started waiting in an event loop? One load per message; see the module docs.
    #[inline]
    pub(super) fn watch_peer_sleeps(&mut self) {
        if self
            .control
            .side_u32(self.peer_index(), SideField::Sleeps)
            .load(Ordering::Relaxed)
            != 0
        {
            self.peer_started_sleeping();
        }
    }

    #[cold]
    fn peer_started_sleeping(&mut self) {
        self.tx.set_peer_sleeps(true);
        self.rx.set_peer_sleeps(true);
        // This publish too: fence, then look at the event and futex words.
        self.tx.wake_consumer();
    }

    /// Asks the peer for a wake-up byte when it next publishes, after
    /// draining the ones already sent. Fails if the socket hung up.
    fn arm(&mut self) -> Result<()> {
        if let Drained::HungUp = self.drain_socket() {
            // A peer that closed in order marked its side CLOSED before its
            // socket went: that is GoneReason::Closed, not a death.
            self.check_cheap()?;
            let pid = self.peer.pid.map(|p| format!(" {p}")).unwrap_or_default();
            return Err(self.gone(
                crate::GoneReason::Died,
                format!("peer process{pid} died or closed the link (its socket hung up)"),
            ));
        }
        self.ask_for_wake_up();
        Ok(())
    }

    /// The consumer's `[WAKE]` steps once the socket is drained: our
    /// `sleeps` word announced (once), `data_event` set, a full fence. The
    /// caller looks at the ring again afterwards.
    fn ask_for_wake_up(&self) {
        let Some(events) = self.events.as_ref() else {
            return;
        };
        if !events.announced.load(Ordering::Relaxed) {
            events.announced.store(true, Ordering::Relaxed);
            self.control
                .side_u32(self.side as usize, SideField::Sleeps)
                .store(1, Ordering::Relaxed);
            crate::wake::global_barrier();
        }
        let word = self.rx.indices().data_event();
        // Armed and not yet cleared by the producer: nothing to do.
        if !(events.armed.load(Ordering::Relaxed) && word.load(Ordering::Relaxed) != 0) {
            word.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst); // [WAKE] pairs with the producer's notify fence
            events.armed.store(true, Ordering::Relaxed);
        }
    }

    /// A frame arrived while armed: stop asking for wake-ups, so a busy
    /// consumer costs the producer no system call.
    #[inline]
    fn disarm(&mut self) {
        if let Some(events) = self.events.as_ref()
            && events.armed.swap(false, Ordering::Relaxed)
        {
            self.rx.indices().data_event().store(0, Ordering::Relaxed);
        }
    }

    /// [`Channel::try_recv`](crate::Channel::try_recv): a frame that is
    /// there, or `Ok(false)` with a wake-up requested (event-loop links).
    pub(super) fn try_recv_frame(&mut self, frame: &mut crate::frame::Frame) -> Result<bool> {
        self.check_receivable()?;
        if self.take_arrived(frame)? {
            return Ok(true);
        }
        self.count_consumer_wakes();
        let checked = if self
            .events
            .as_ref()
            .is_some_and(|e| e.handed_out.load(Ordering::Relaxed))
        {
            self.arm().and_then(|()| self.check_cheap())
        } else {
            self.check_peer_now_and_then()
        };
        // Whatever the peer published before it went is still delivered.
        if self.take_arrived(frame)? {
            return Ok(true);
        }
        checked.map(|()| false)
    }

    /// A frame that is there, if any, into `frame`; a wake-up asked for is
    /// no longer needed once one is taken (or refused).
    fn take_arrived(&mut self, frame: &mut crate::frame::Frame) -> Result<bool> {
        let taken = self.take_into(frame);
        if !matches!(taken, Ok(false)) {
            self.disarm();
        }
        taken
    }

    /// [`Channel::readiness`](crate::Channel::readiness): the socket, when
    /// the peer agreed to send wake-ups.
    pub(super) fn readiness_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        let events = self.events.as_ref()?;
        let socket = self.socket.as_ref()?;
        if !events.handed_out.swap(true, Ordering::Relaxed) {
            // From now on a receive that finds nothing asks for a wake-up;
            // ask now too (a hung-up socket is readable as it is).
            if let Drained::Open = self.drain_socket() {
                self.ask_for_wake_up();
            }
        }
        Some(socket.as_fd())
    }

    /// Whether readable input on the socket may be wake-up bytes rather
    /// than a hang-up (for the liveness check).
    pub(super) fn expects_wake_bytes(&self) -> bool {
        self.events.is_some()
    }

    /// Whether the socket has reached end of file (wake-up bytes aside).
    pub(super) fn socket_hung_up(&self) -> bool {
        let Some(sock) = &self.socket else {
            return false;
        };
        let mut buf = [0u8; 1];
        matches!(
            rustix::net::recv(
                sock,
                &mut buf,
                rustix::net::RecvFlags::DONTWAIT | rustix::net::RecvFlags::PEEK
            ),
            Ok((0, _)) | Err(rustix::io::Errno::CONNRESET)
        )
    }
}
