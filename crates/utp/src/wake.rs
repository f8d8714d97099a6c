//! Readiness descriptors for transports whose data does not arrive on a
//! socket or pipe of their own (see [`Channel::readiness`](crate::Channel::readiness)):
//! eventfd helpers, a [`Doorbell`] that a sender rings only when the
//! receiver declared it waits, an epoll [`PollSet`] that turns several
//! descriptors into one, and a periodic [`Ticker`] for transports whose
//! peer can die without any descriptor noticing (POSIX message queues).
//!
//! Everything here is in-process: an eventfd is never written by a
//! descriptor received from another process (a peer could make it
//! blocking), which is why shared-memory links wake each other through
//! their socket instead (`shm/link/events.rs`).

use crate::error::{Error, Result};
use rustix::event::{EventfdFlags, eventfd};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::time::Duration;

/// A new non-blocking, close-on-exec eventfd with a zero count.
pub(crate) fn new_eventfd() -> Result<OwnedFd> {
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(|e| Error::io("eventfd", e))
}

/// Adds 1 to the eventfd `fd` (non-blocking: a full counter is already readable).
#[inline]
pub(crate) fn signal(fd: impl AsFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Reads and resets the count of the non-blocking eventfd `fd` (0 if none).
#[inline]
pub(crate) fn drain(fd: impl AsFd) -> u64 {
    let mut buf = [0u8; 8];
    match rustix::io::read(fd, &mut buf) {
        Ok(8) => u64::from_ne_bytes(buf),
        _ => 0,
    }
}

/// An eventfd a sender rings only when the receiver said it will wait on
/// it: a receiver that never waits on the descriptor costs the sender one
/// load, one that does a fence and a load.
///
/// Protocol (a Dekker pair, like the shm ring's `[WAKE]`): the receiver
/// finds its queue empty, calls [`arm`](Self::arm) (drain, flag, fence),
/// then looks at the queue once more before waiting on [`fd`](Self::fd);
/// the sender queues, then calls [`ring`](Self::ring) (fence, test the
/// flag, clear it, write the eventfd). Either the receiver's second look
/// sees the item or the sender sees the flag.
///
/// The sender's fence is skipped until the receiver first arms: `ring`
/// looks at `waits` and returns if it is unset. The first `arm` sets
/// `waits` and then runs a memory barrier on every thread of the process
/// ([`global_barrier`], the one the shm link uses), which stands in for
/// the fence the sender left out: a sender that read `waits` unset has its
/// queued item visible to the receiver's second look by the time the
/// barrier returns; one that reads it after the barrier sees it set and
/// fences. The shm link's event-loop wake-ups work the same way
/// (`shm/link/events.rs`). Why: the fence
/// waits for the queue's stores to reach the receiver's core; without it
/// an `inproc://` stream of 64 B frames ran 1–15 % faster (three paired
/// rounds, docs/benchmarks/journal.md, 2026-12-04).
#[derive(Debug)]
pub(crate) struct Doorbell {
    fd: OwnedFd,
    armed: AtomicBool,
    /// The receiver has armed at least once: from then on `ring` fences.
    waits: AtomicBool,
    /// The descriptor has been handed out to be waited on (see
    /// [`hand_out`](Self::hand_out)).
    handed_out: AtomicBool,
}

impl Doorbell {
    pub(crate) fn new() -> Result<Doorbell> {
        Ok(Doorbell {
            fd: new_eventfd()?,
            armed: AtomicBool::new(false),
            waits: AtomicBool::new(false),
            handed_out: AtomicBool::new(false),
        })
    }

    /// The descriptor to wait on: readable after a [`ring`](Self::ring).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The descriptor, handed to an application that will wait on it: from
    /// then on the receiver's `try_take` arms whenever it finds nothing
    /// ([`handed_out`](Self::handed_out)). A receiver that polls and never
    /// takes the descriptor never arms, so its sender never writes the
    /// eventfd: a system call per frame saved on both sides.
    ///
    /// The first hand-out arms and leaves the descriptor readable once:
    /// an item queued before it (after a look that found nothing, which
    /// did not arm) rang nobody, so the caller's event loop comes back
    /// for one more look instead of waiting for the next item.
    pub(crate) fn hand_out(&self) -> BorrowedFd<'_> {
        if !self.handed_out.swap(true, Ordering::Relaxed) {
            self.arm();
            signal(&self.fd);
        }
        self.fd.as_fd()
    }

    /// Whether [`hand_out`](Self::hand_out) was called.
    pub(crate) fn handed_out(&self) -> bool {
        self.handed_out.load(Ordering::Relaxed)
    }

    /// The receiver is about to wait: reset the count and ask to be rung.
    /// Look at the queue again afterwards.
    pub(crate) fn arm(&self) {
        drain(&self.fd);
        if !self.waits.load(Ordering::Relaxed) {
            self.waits.store(true, Ordering::Relaxed);
            // Once per doorbell: a sender that skipped its fence on the old
            // value has its item visible to our next look (see above).
            register_for_barriers();
            global_barrier();
        }
        self.armed.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// After queueing: wakes a receiver that armed.
    #[inline]
    pub(crate) fn ring(&self) {
        if !self.waits.load(Ordering::Relaxed) {
            // The receiver never armed; its first `arm` runs a barrier on
            // this thread in place of the fence.
            return;
        }
        fence(Ordering::SeqCst);
        if self.armed.load(Ordering::Relaxed) && self.armed.swap(false, Ordering::Relaxed) {
            signal(&self.fd);
        }
    }

    /// Wakes the receiver whether it armed or not: for hang-ups and closes,
    /// which must be seen even by a receiver that never waited.
    pub(crate) fn ring_always(&self) {
        self.armed.store(false, Ordering::Relaxed);
        signal(&self.fd);
    }
}

/// Registers this process for expedited global barriers, once. A process
/// whose memory another thread or process fences with [`global_barrier`]
/// registers first (a shm link with wake-ups before its handshake
/// finishes, a [`Doorbell`] before its first barrier), so the barrier
/// reaches it with an interrupt instead of waiting for a grace period.
pub(crate) fn register_for_barriers() {
    use rustix::thread::{MembarrierCommand, membarrier};
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        let _ = membarrier(MembarrierCommand::RegisterGlobalExpedited);
    });
}

/// A memory barrier on every CPU running a thread of a registered process
/// ([`register_for_barriers`]: the shm link's peer, or this process's
/// other threads): `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (microseconds), else
/// `MEMBARRIER_CMD_GLOBAL` (every process; a few milliseconds). If the
/// kernel refuses both (a seccomp filter, say), a short pause does the
/// same in practice (a store buffer drains within nanoseconds).
pub(crate) fn global_barrier() {
    use rustix::thread::{MembarrierCommand, membarrier};
    if membarrier(MembarrierCommand::GlobalExpedited).is_ok()
        || membarrier(MembarrierCommand::Global).is_ok()
    {
        return;
    }
    std::thread::sleep(Duration::from_millis(1));
}

/// One descriptor that is readable when any of its members is (an epoll
/// instance; level-triggered, so it stays readable while a member does).
#[derive(Debug)]
pub(crate) struct PollSet {
    epoll: OwnedFd,
}

impl PollSet {
    /// A set watching each member for input and hang-up.
    pub(crate) fn new(members: &[BorrowedFd<'_>]) -> Result<PollSet> {
        use rustix::event::epoll;
        let epoll =
            epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| Error::io("epoll_create", e))?;
        let set = PollSet { epoll };
        for (i, fd) in members.iter().enumerate() {
            set.add(*fd, i as u64)?;
        }
        Ok(set)
    }

    /// Watches `fd` (again) for input and hang-up, reported as `token`.
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64) -> Result<()> {
        use rustix::event::epoll;
        epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(token),
            epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
        )
        .map_err(|e| Error::io("epoll_ctl add", e))
    }

    /// Stops watching `fd`. A watched pipe costs its writer an epoll
    /// callback on every write, so a member that cannot matter for a while
    /// is better taken out than ignored.
    pub(crate) fn remove(&self, fd: BorrowedFd<'_>) -> Result<()> {
        rustix::event::epoll::delete(&self.epoll, fd).map_err(|e| Error::io("epoll_ctl del", e))
    }

    /// The set's descriptor.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

/// A timerfd that turns readable every `period`: for a transport whose
/// peer can vanish without any descriptor showing it, so an event loop
/// comes back to check liveness (in [`Channel::try_recv`](crate::Channel::try_recv)).
///
/// Its ticks matter only to an event loop that waits on the descriptor
/// (alone or in a [`PollSet`]), so [`reset`](Self::reset) consumes them only
/// once the owner [`hand_out`](Self::hand_out)s it: a caller that polls
/// with `try_recv` or `try_accept` makes no read of the timer per call.
#[derive(Debug)]
pub(crate) struct Ticker {
    fd: OwnedFd,
    handed_out: AtomicBool,
}

impl Ticker {
    pub(crate) fn new(period: Duration) -> Result<Ticker> {
        use rustix::time::{
            Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
            timerfd_settime,
        };
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
        )
        .map_err(|e| Error::io("timerfd_create", e))?;
        let period = Timespec {
            tv_sec: period.as_secs() as i64,
            tv_nsec: period.subsec_nanos() as i64,
        };
        timerfd_settime(
            &fd,
            TimerfdTimerFlags::empty(),
            &Itimerspec {
                it_interval: period,
                it_value: period,
            },
        )
        .map_err(|e| Error::io("timerfd_settime", e))?;
        Ok(Ticker {
            fd,
            handed_out: AtomicBool::new(false),
        })
    }

    /// The timer's descriptor.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// An event loop will wait on the timer (through the owner's
    /// readiness descriptor): from now on [`reset`](Self::reset) consumes
    /// its ticks.
    pub(crate) fn hand_out(&self) {
        self.handed_out.store(true, Ordering::Relaxed);
    }

    /// Consumes the expirations so far (the descriptor is readable until
    /// then) and returns how many there were; 0, without a system call,
    /// before the first [`hand_out`](Self::hand_out).
    pub(crate) fn reset(&self) -> u64 {
        if !self.handed_out.load(Ordering::Relaxed) {
            return 0;
        }
        drain(&self.fd)
    }
}

/// Whether `fd` is readable now (a `poll` that does not wait): for tests.
#[cfg(test)]
pub(crate) fn readable(fd: BorrowedFd<'_>) -> bool {
    crate::transport::wait::poll_now(fd, rustix::event::PollFlags::IN)
        .is_some_and(|got| !got.is_empty())
}

/// Waits up to `limit` for `fd` to turn readable: for tests.
#[cfg(test)]
pub(crate) fn readable_within(fd: BorrowedFd<'_>, limit: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let limit = rustix::time::Timespec::try_from(limit).unwrap();
    poll(&mut fds, Some(&limit)).unwrap_or(0) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_hand_out_arms_and_looks_again_and_later_ones_change_nothing() {
        let bell = Doorbell::new().unwrap();
        assert!(!bell.handed_out());
        let fd = bell.hand_out();
        assert!(bell.handed_out());
        assert!(readable(fd), "the first hand-out brings the loop back once");
        bell.arm();
        assert!(!readable(fd), "arming drains it");
        bell.ring();
        assert!(readable(fd), "a receiver that took the descriptor is rung");
        let again = bell.hand_out();
        assert!(readable(again), "later hand-outs do not drain");
    }

    #[test]
    fn a_doorbell_rings_only_when_armed() {
        let bell = Doorbell::new().unwrap();
        bell.ring();
        assert!(!readable(bell.fd()), "rang without a waiter");
        bell.arm();
        bell.ring();
        assert!(readable(bell.fd()));
        bell.arm();
        assert!(!readable(bell.fd()), "arm drains the count");
        bell.ring_always();
        assert!(readable(bell.fd()));
    }

    /// A receiver's first `arm` races a sender's `ring` on a fresh
    /// doorbell, both released at once, the sender's item anywhere from
    /// before the receiver's first look to after its second (3000 rounds:
    /// here about 40 find it at once, 500 during `arm`, 2400 are woken by
    /// `ring`). Each time the receiver gets the item; a lost wake-up
    /// leaves the poll to time out (as when `arm` does not set `waits`).
    /// The store-buffer reordering the barrier guards against cannot be
    /// forced from a test: this covers the paths around it.
    #[test]
    fn a_first_arm_racing_a_ring_is_never_left_asleep() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicU32;
        const ROUNDS: usize = 3000;
        let release = |go: &AtomicU32| {
            go.fetch_add(1, Ordering::AcqRel);
            while go.load(Ordering::Acquire) < 2 {
                std::hint::spin_loop();
            }
        };
        for round in 0..ROUNDS {
            let bell = Arc::new(Doorbell::new().unwrap());
            let queued = Arc::new(AtomicBool::new(false));
            let go = Arc::new(AtomicU32::new(0));
            let sender = std::thread::spawn({
                let (bell, queued, go) = (bell.clone(), queued.clone(), go.clone());
                move || {
                    release(&go);
                    // Anywhere from at once to a few microseconds later:
                    // before the receiver's first look, during its `arm`,
                    // or after its second look (then only `ring` wakes it).
                    for _ in 0..(round * 7919) % 2048 {
                        std::hint::spin_loop();
                    }
                    queued.store(true, Ordering::Release);
                    bell.ring();
                }
            });
            release(&go);
            if !queued.load(Ordering::Acquire) {
                bell.arm();
                if !queued.load(Ordering::Acquire) {
                    assert!(
                        readable_within(bell.fd(), Duration::from_secs(5)),
                        "round {round}: the receiver armed, missed the item and was never woken"
                    );
                }
            }
            sender.join().unwrap();
        }
    }

    #[test]
    fn a_poll_set_is_readable_while_a_member_is() {
        let a = new_eventfd().unwrap();
        let b = new_eventfd().unwrap();
        let set = PollSet::new(&[a.as_fd(), b.as_fd()]).unwrap();
        assert!(!readable(set.fd()));
        signal(&b);
        assert!(readable(set.fd()));
        assert!(readable(set.fd()), "level-triggered");
        drain(&b);
        assert!(!readable(set.fd()));
    }

    #[test]
    fn a_ticker_ticks() {
        let t = Ticker::new(Duration::from_millis(5)).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        assert!(readable(t.fd()));
        assert_eq!(t.reset(), 0, "nobody waits on it yet: left as it is");
        assert!(readable(t.fd()));
        t.hand_out();
        assert!(t.reset() > 0);
        assert!(!readable(t.fd()));
    }
}
