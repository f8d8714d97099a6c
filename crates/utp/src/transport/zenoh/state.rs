//! What the zenoh callbacks of one link tell the channel: frames received,
//! credit granted, whether the peer is there. Bounded, and woken by a condvar.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use zenoh::bytes::ZBytes;

/// Frames one side may have unconsumed by the receiver before it waits for
/// credit. The receiver's inbox holds at most this many frames...
pub(super) const WINDOW_FRAMES: u64 = 1024;
/// ...and at most this many bytes (plus the one message that crosses it).
pub(super) const WINDOW_BYTES: u64 = 4 << 20;

/// How long after the peer's token vanished a goodbye already on its way
/// may still arrive (tokens and data travel at different priorities).
pub(super) const GRACE: Duration = Duration::from_millis(200);

/// The mutable part, behind one mutex.
#[derive(Debug, Default)]
pub(super) struct Inner {
    /// Received messages (whole UTP frames; empty = goodbye), oldest first.
    pub frames: VecDeque<ZBytes>,
    /// Bytes in `frames`.
    pub queued_bytes: u64,
    /// The peer sent more than its window: it breaks the protocol.
    pub overflow: bool,
    /// Frames of ours the peer has consumed (cumulative, from its credit key).
    pub acked: u64,
    /// Bytes of ours the peer has consumed (cumulative).
    pub acked_bytes: u64,
    /// The peer's liveliness token was seen.
    pub peer_seen: bool,
    /// When the peer's liveliness token went away.
    pub peer_lost_at: Option<Instant>,
    /// The peer's goodbye was read.
    pub closed: bool,
    /// Threads waiting on the condvar (no wake-up syscall when none is).
    waiters: usize,
}

/// State shared between the zenoh callbacks and the channel.
#[derive(Debug, Default)]
pub(super) struct LinkState {
    inner: Mutex<Inner>,
    changed: Condvar,
    /// Rung after every change once the channel armed it (event loops; see
    /// `Link::arm`). Unset if no eventfd could be made.
    pub(super) bell: std::sync::OnceLock<std::sync::Arc<crate::wake::Doorbell>>,
}

impl LinkState {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `change` under the lock and wakes every waiter, if any.
    pub(super) fn update(&self, change: impl FnOnce(&mut Inner)) {
        let mut inner = self.lock();
        change(&mut inner);
        if inner.waiters > 0 {
            self.changed.notify_all();
        }
        drop(inner);
        if let Some(bell) = self.bell.get() {
            bell.ring();
        }
    }

    /// A message on the data key: queued, unless the peer overran its window.
    /// (An honest sender sends only while its unconsumed frames and bytes are
    /// under the window, and our queue is part of those, so this is exact.)
    pub(super) fn deliver(&self, message: ZBytes) {
        self.update(|s| {
            if s.frames.len() as u64 >= WINDOW_FRAMES || s.queued_bytes >= WINDOW_BYTES {
                s.overflow = true;
            } else {
                s.queued_bytes += message.len() as u64;
                s.frames.push_back(message);
            }
        });
    }

    /// The oldest queued message.
    pub(super) fn pop(inner: &mut Inner) -> Option<ZBytes> {
        let message = inner.frames.pop_front()?;
        inner.queued_bytes = inner.queued_bytes.saturating_sub(message.len() as u64);
        Some(message)
    }

    /// A credit message: the peer has consumed this many of our frames and
    /// bytes (16 bytes: two little-endian u64; anything else is ignored).
    pub(super) fn credit(&self, message: &ZBytes) {
        let bytes = message.to_bytes();
        if let Ok(raw) = <[u8; 16]>::try_from(&bytes[..]) {
            let (frames, consumed) = raw.split_at(8);
            let frames = u64::from_le_bytes(frames.try_into().unwrap_or_default());
            let consumed = u64::from_le_bytes(consumed.try_into().unwrap_or_default());
            self.update(|s| {
                s.acked = s.acked.max(frames);
                s.acked_bytes = s.acked_bytes.max(consumed);
            });
        }
    }

    /// Waits on the condvar until `until` (or forever for `None`).
    pub(super) fn wait<'a>(
        &self,
        mut guard: MutexGuard<'a, Inner>,
        until: Option<Instant>,
    ) -> MutexGuard<'a, Inner> {
        guard.waiters += 1;
        let mut guard = match until {
            None => self.changed.wait(guard).unwrap_or_else(|e| e.into_inner()),
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                self.changed
                    .wait_timeout(guard, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
        guard.waiters -= 1;
        guard
    }
}

impl Inner {
    /// Why the peer counts as gone, if it does: its token vanished more than
    /// [`GRACE`] ago, or it never appeared within `attach` of `created`.
    pub(super) fn gone(&self, created: Instant, attach: Duration) -> Option<&'static str> {
        if self.closed {
            return Some("it closed the channel");
        }
        if let Some(at) = self.peer_lost_at {
            if at.elapsed() >= GRACE {
                return Some(
                    "its zenoh liveliness token vanished (process ended or host unreachable)",
                );
            }
        } else if !self.peer_seen && created.elapsed() >= attach {
            return Some("it never showed up on the zenoh network");
        }
        None
    }

    /// When `gone` may change next without a callback: the end of the grace
    /// period or of the attach time.
    pub(super) fn next_check(&self, created: Instant, attach: Duration) -> Option<Instant> {
        match self.peer_lost_at {
            Some(at) => Some(at + GRACE),
            None if !self.peer_seen => Some(created + attach),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbox_past_the_window_flags_overflow_instead_of_growing() {
        let state = LinkState::default();
        for _ in 0..WINDOW_FRAMES {
            state.deliver(ZBytes::from(vec![1u8]));
        }
        assert!(!state.lock().overflow);
        state.deliver(ZBytes::from(vec![1u8]));
        let s = state.lock();
        assert!(s.overflow);
        assert_eq!(s.frames.len() as u64, WINDOW_FRAMES);
    }

    #[test]
    fn an_inbox_past_the_byte_window_flags_overflow() {
        let state = LinkState::default();
        let big = vec![0u8; 1 << 20];
        for _ in 0..(WINDOW_BYTES >> 20) {
            state.deliver(ZBytes::from(big.clone()));
        }
        assert!(!state.lock().overflow);
        state.deliver(ZBytes::from(vec![1u8]));
        assert!(state.lock().overflow);
        let mut s = state.lock();
        assert!(LinkState::pop(&mut s).is_some());
        assert_eq!(s.queued_bytes, WINDOW_BYTES - (1 << 20));
    }

    /// The doorbell of event-loop readiness: rung by a delivery only once
    /// the channel armed it, and only once per arming.
    #[test]
    fn a_delivery_rings_the_doorbell_only_after_the_channel_armed_it() {
        let readable = |bell: &crate::wake::Doorbell| crate::wake::readable(bell.fd());
        let state = LinkState::default();
        let bell = std::sync::Arc::new(crate::wake::Doorbell::new().unwrap());
        state.bell.set(bell.clone()).unwrap();
        state.deliver(ZBytes::from(vec![1u8]));
        assert!(
            !readable(&bell),
            "not armed: a busy receiver costs no wake-up"
        );
        bell.arm();
        assert!(!readable(&bell));
        state.deliver(ZBytes::from(vec![2u8]));
        assert!(readable(&bell), "armed: the next delivery wakes the loop");
        bell.arm(); // drains and asks again
        assert!(!readable(&bell));
        state.update(|s| s.closed = true);
        assert!(
            readable(&bell),
            "any change wakes an armed loop (here: closed)"
        );
    }

    #[test]
    fn credit_only_grows_and_ignores_malformed_messages() {
        let state = LinkState::default();
        let credit = |frames: u64, bytes: u64| {
            let mut m = frames.to_le_bytes().to_vec();
            m.extend_from_slice(&bytes.to_le_bytes());
            ZBytes::from(m)
        };
        state.credit(&credit(5, 500));
        state.credit(&credit(3, 300));
        state.credit(&ZBytes::from(vec![1u8, 2, 3]));
        let s = state.lock();
        assert_eq!((s.acked, s.acked_bytes), (5, 500));
    }

    #[test]
    fn a_peer_is_gone_after_the_grace_or_if_it_never_came() {
        let created = Instant::now() - Duration::from_secs(10);
        let mut s = Inner::default();
        assert!(s.gone(created, Duration::from_secs(5)).is_some());
        s.peer_seen = true;
        assert!(s.gone(created, Duration::from_secs(5)).is_none());
        s.peer_lost_at = Some(Instant::now());
        assert!(s.gone(created, Duration::from_secs(5)).is_none());
        s.peer_lost_at = Some(Instant::now() - GRACE);
        assert!(s.gone(created, Duration::from_secs(5)).is_some());
    }
}
