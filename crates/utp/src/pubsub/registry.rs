//! The publisher's list of subscribers, shared between the publishing
//! thread (which takes a snapshot only when the version changes) and the
//! rendezvous thread (which admits and removes members).

use super::member::Member;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How many departed subscribers `utp inspect` remembers.
pub const DEPARTED_KEPT: usize = 16;

/// A departed subscriber, for `utp inspect`.
#[derive(Clone, Debug)]
pub struct Departed {
    /// Its id.
    pub id: u32,
    /// Its process id.
    pub pid: u32,
    /// Why it left.
    pub reason: String,
}

/// Members, a version bumped on every change, and the stop flag.
#[derive(Debug, Default)]
pub struct Registry {
    members: Mutex<Vec<Arc<Member>>>,
    departed: Mutex<VecDeque<Departed>>,
    version: AtomicU64,
    stop: AtomicBool,
}

impl Registry {
    /// The current version (one relaxed load: the hot path's check).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// A copy of the member list and the version it belongs to.
    pub fn snapshot(&self) -> (u64, Vec<Arc<Member>>) {
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        (self.version(), members.clone())
    }

    /// Number of members.
    pub fn count(&self) -> usize {
        self.members.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Adds a member.
    pub fn add(&self, member: Arc<Member>) {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        members.push(member);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops every member marked gone, remembering why.
    pub fn sweep(&self) {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let before = members.len();
        let mut departed = self.departed.lock().unwrap_or_else(|p| p.into_inner());
        members.retain(|m| {
            if !m.is_gone() {
                return true;
            }
            if departed.len() == DEPARTED_KEPT {
                departed.pop_front();
            }
            departed.push_back(Departed {
                id: m.id,
                pid: m.pid,
                reason: m.reason().unwrap_or_default(),
            });
            false
        });
        if members.len() != before {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Recently departed subscribers, oldest first.
    pub fn departed(&self) -> Vec<Departed> {
        self.departed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Asks the rendezvous thread to stop.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Whether a stop was requested.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}
