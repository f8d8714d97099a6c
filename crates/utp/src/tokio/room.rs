//! Waiting for room to send: what an [`AsyncChannel`](super::AsyncChannel)
//! watches while a send, or the end of a frame a byte stream took in part,
//! finds no room.
//!
//! Room is watched only while someone waits: a second duplicate of the
//! readiness descriptor is registered for writing when a wait begins and
//! dropped when it ends, whatever the channel's own registration asks for
//! (stream sockets ask for writability as well, for the early wake-up
//! `interest.rs` describes; the read end of a pipe or a message queue
//! does not, and the wait is the same for all of them).
//!
//! More than one task may wait at once (the two halves of a split
//! [`FrameStream`](super::FrameStream): a send, and a receive finishing a
//! frame's end). Tokio keeps one waker per registration and per timer, so
//! both are polled with a waker of this module's that wakes every waiting
//! task; a task that still finds no room adds itself again.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Sleep;

/// First retry of a send on a descriptor that does not signal room.
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
/// Longest pause between retries of a send waiting for room.
const MAX_BACKOFF: Duration = Duration::from_millis(16);
/// Tasks remembered as waiting (two in any real use).
const MAX_WAITERS: usize = 4;

/// A duplicate of the channel's readiness descriptor, registered for
/// writability while a wait lasts.
#[derive(Debug)]
struct RoomFd(OwnedFd);

impl AsRawFd for RoomFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl super::OwnsItsFd for RoomFd {}

/// The tasks waiting for room. Woken all at once, and forgotten: a task
/// that still waits adds itself again when polled.
#[derive(Debug, Default)]
struct Waiters(Mutex<Vec<Waker>>);

impl Waiters {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Waker>> {
        // A waker that panicked leaves a list that is still a list.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waiting = std::mem::take(&mut *self.list());
        for waker in waiting {
            waker.wake();
        }
    }
}

/// The wait for room of one channel: the writability registration and the
/// backoff timer, both made when a wait begins, and who waits.
#[derive(Debug)]
pub(super) struct RoomWatch {
    /// The descriptor registered for writability (`None` between waits,
    /// and where it could not be made: the timer alone retries then).
    room: Option<AsyncFd<RoomFd>>,
    /// Retries, for descriptors that do not signal room (the read end of a
    /// pipe pair, an eventfd): the timer and its current pause.
    backoff: Option<(Pin<Box<Sleep>>, Duration)>,
    waiters: Arc<Waiters>,
    /// Wakes every waiter: the waker the registration and timer keep.
    wake_all: Waker,
}

impl Default for RoomWatch {
    fn default() -> Self {
        let waiters = Arc::new(Waiters::default());
        RoomWatch {
            room: None,
            backoff: None,
            wake_all: Waker::from(waiters.clone()),
            waiters,
        }
    }
}

impl RoomWatch {
    /// After an attempt found no room: `Ready(Ok)` when room may have come
    /// (try again), `Pending` with `cx` to be woken when it may. `fd` is the
    /// channel's readiness descriptor.
    pub(super) fn poll_room(
        &mut self,
        cx: &Context<'_>,
        fd: &OwnedFd,
    ) -> Poll<std::io::Result<()>> {
        {
            let mut waiting = self.waiters.list();
            if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                if waiting.len() == MAX_WAITERS {
                    // Bounded: the oldest looks again (and comes back).
                    waiting.remove(0).wake();
                }
                waiting.push(cx.waker().clone());
            }
        }
        let mut all = Context::from_waker(&self.wake_all);
        if self.room.is_none() {
            // No descriptor left to duplicate: the timer alone will do.
            self.room = fd
                .try_clone()
                .ok()
                .and_then(|fd| super::register(RoomFd(fd), Interest::WRITABLE).ok());
        }
        if let Some(room) = &self.room {
            match room.poll_write_ready(&mut all) {
                Poll::Ready(Ok(mut guard)) => {
                    // Used up by the attempt that follows; a later event
                    // sets it again.
                    guard.clear_ready();
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        arm_backoff(&mut self.backoff)
            .as_mut()
            .poll(&mut all)
            .map(Ok)
    }

    /// The wait of `cx`'s task is over (its operation went through, failed
    /// or was given up; `None`: whoever waited): the watch ends, and other
    /// tasks that were waiting are woken to look again.
    pub(super) fn done(&mut self, cx: Option<&Context<'_>>) {
        if self.room.is_none() && self.backoff.is_none() {
            // Nobody has waited since the last end (waiters are only ever
            // added with the timer armed).
            return;
        }
        self.room = None;
        self.backoff = None;
        let others = {
            let mut waiting = self.waiters.list();
            if let Some(cx) = cx {
                waiting.retain(|w| !w.will_wake(cx.waker()));
            }
            std::mem::take(&mut *waiting)
        };
        for waker in others {
            waker.wake();
        }
    }

    /// Before a receive waits: with nobody left waiting for room (all
    /// woken, none back), the watch ends, so the peer's reads wake no one.
    pub(super) fn end_if_unwatched(&mut self) {
        if (self.room.is_some() || self.backoff.is_some()) && self.waiters.list().is_empty() {
            self.room = None;
            self.backoff = None;
        }
    }
}

/// Arms the retry timer, or lengthens it once it has fired: 1, 2, 4, 8,
/// then every 16 ms.
fn arm_backoff(backoff: &mut Option<(Pin<Box<Sleep>>, Duration)>) -> &mut Pin<Box<Sleep>> {
    let (timer, pause) =
        backoff.get_or_insert_with(|| (Box::pin(tokio::time::sleep(FIRST_BACKOFF)), FIRST_BACKOFF));
    if timer.is_elapsed() {
        *pause = (*pause * 2).min(MAX_BACKOFF);
        let next = tokio::time::Instant::now() + *pause;
        timer.as_mut().reset(next);
    }
    timer
}

#[cfg(test)]
mod tests {
    use super::RoomWatch;
    use std::os::fd::OwnedFd;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::{Duration, Instant};

    /// A waker that counts its wake-ups.
    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountWakes>, Waker) {
        let count = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        (count, waker)
    }

    /// Runs `test` on a current-thread runtime with I/O and timers.
    fn block_on<F: std::future::Future>(test: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(test)
    }

    /// A Unix socket pair whose first end has no room left.
    fn full_pair() -> (OwnedFd, OwnedFd) {
        use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let chunk = [1u8; 4096];
        while rustix::net::send(&a, &chunk, SendFlags::DONTWAIT).is_ok() {}
        (a, b)
    }

    /// Two tasks wait for room on one channel (the halves of a split
    /// stream); when the peer reads, both are woken, though tokio keeps one
    /// waker per registration and the second task polled last.
    #[test]
    fn every_task_waiting_for_room_is_woken_when_room_comes() {
        block_on(async {
            let (full, peer) = full_pair();
            let mut watch = RoomWatch::default();
            let (send_wakes, send_waker) = counting();
            let (recv_wakes, recv_waker) = counting();
            assert!(
                watch
                    .poll_room(&Context::from_waker(&send_waker), &full)
                    .is_pending()
            );
            assert!(
                watch
                    .poll_room(&Context::from_waker(&recv_waker), &full)
                    .is_pending()
            );
            // The peer reads everything: the socket is writable again.
            let mut sink = [0u8; 65536];
            while rustix::io::read(&peer, &mut sink).is_ok_and(|n| n > 0) {}
            let deadline = Instant::now() + Duration::from_secs(10);
            while send_wakes.0.load(Ordering::SeqCst) == 0
                || recv_wakes.0.load(Ordering::SeqCst) == 0
            {
                assert!(
                    Instant::now() < deadline,
                    "woken: send {}, receive {}",
                    send_wakes.0.load(Ordering::SeqCst),
                    recv_wakes.0.load(Ordering::SeqCst)
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // The receive looks again and finds room, the send goes
            // through: that ends the watch, and the receive, still on the
            // list, is woken to look again.
            let before = recv_wakes.0.load(Ordering::SeqCst);
            assert!(
                watch
                    .poll_room(&Context::from_waker(&recv_waker), &full)
                    .is_ready()
            );
            watch.done(Some(&Context::from_waker(&send_waker)));
            assert!(watch.room.is_none() && watch.backoff.is_none());
            assert_eq!(recv_wakes.0.load(Ordering::SeqCst), before + 1);
            assert_eq!(
                send_wakes.0.load(Ordering::SeqCst),
                1,
                "not woken by its own end"
            );
        });
    }

    /// With nobody waiting, the watch ends before a receive sleeps: the
    /// peer's reads then wake nothing.
    #[test]
    fn a_watch_nobody_waits_on_ends() {
        block_on(async {
            let (full, _peer) = full_pair();
            let mut watch = RoomWatch::default();
            let (_wakes, waker) = counting();
            let cx = Context::from_waker(&waker);
            assert!(matches!(watch.poll_room(&cx, &full), Poll::Pending));
            watch.end_if_unwatched();
            assert!(watch.room.is_some(), "a task still waits");
            // All woken (the timer's wake-up) and none back: the watch ends.
            watch.wake_all.wake_by_ref();
            watch.end_if_unwatched();
            assert!(watch.room.is_none() && watch.backoff.is_none());
        });
    }
}
