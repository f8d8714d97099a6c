//! One admitted shared-memory subscriber as the publisher sees it: its
//! control block (which the subscriber can scribble on, so every field is
//! read as an untrusted number) and its rendezvous connection.

use super::layout::{control, state};
use super::memory::Mapping;
use super::options::{Policy, Wait};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// A subscriber admitted by the publisher.
#[derive(Debug)]
pub struct Member {
    /// The publisher's number for it.
    pub id: u32,
    /// Its process id (from `SO_PEERCRED`).
    pub pid: u32,
    /// Drop or block.
    pub policy: Policy,
    /// How it waits (spinners are never woken, so never checked).
    pub wait: Wait,
    /// Its control block (shared with it, read-write on both sides).
    pub control: Mapping,
    /// Its rendezvous connection: hang-up means it died or left.
    pub socket: UnixStream,
    /// The message number it joined at.
    pub joined_at: u64,
    /// Its eventfd (non-blocking), written when it is armed and a message comes.
    pub notify: Option<OwnedFd>,
    gone: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Member {
    /// A member around a filled-in control block.
    // Eight plain fields of one admission; a builder would add nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u32,
        pid: u32,
        policy: Policy,
        wait: Wait,
        control: Mapping,
        socket: UnixStream,
        joined_at: u64,
        notify: Option<OwnedFd>,
    ) -> Member {
        Member {
            id,
            pid,
            policy,
            wait,
            control,
            socket,
            joined_at,
            notify,
            gone: AtomicBool::new(false),
            reason: Mutex::new(None),
        }
    }

    /// Its cursor as it last wrote it (untrusted).
    pub fn cursor(&self) -> u64 {
        self.control.u64(control::CURSOR).load(Ordering::Acquire)
    }

    /// Whether it sleeps on wake value `wake` (and so needs a futex wake).
    pub fn sleeps_on(&self, wake: u32) -> bool {
        super::protocol::sleeps_on(self.control.u64(control::SLEEP), wake)
    }

    /// Signals its eventfd, if it has one (never blocks: the fd is non-blocking).
    pub fn notify(&self) {
        if let Some(fd) = &self.notify {
            let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
        }
    }

    /// Whether it was removed (died, left or evicted).
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    /// Why it was removed.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Removes it: marks it gone (first reason wins), tells it through
    /// its control block (`EVICTED` when `evict`), and hangs up.
    pub fn remove(&self, why: &str, evict: bool) {
        if self.gone.swap(true, Ordering::AcqRel) {
            return;
        }
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
        if evict {
            self.control
                .u32(control::STATE)
                .store(state::EVICTED, Ordering::Release);
        }
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }

    /// Received and lost counts it reports (untrusted: for display only).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.control.u64(control::RECEIVED).load(Ordering::Relaxed),
            self.control.u64(control::LOST).load(Ordering::Relaxed),
        )
    }

    /// The state word it reports (`CLOSED` when it left in an orderly way).
    pub fn state(&self) -> u32 {
        self.control.u32(control::STATE).load(Ordering::Acquire)
    }
}
