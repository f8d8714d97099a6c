//! Is the peer still there? The cheap per-message check (its state word)
//! and the one between wait slices (rendezvous socket hang-up, `kill(pid, 0)`).

use super::ShmLink;
use crate::GoneReason;
use crate::error::{Error, Result};
use crate::shm::layout::{SideField, state};
use crate::shm::sync::Ordering;

impl ShmLink {
    pub(super) fn gone(&mut self, reason: GoneReason, why: String) -> Error {
        let msg = format!("{}: {why}", self.endpoint);
        self.gone = Some((reason, msg.clone()));
        Error::peer_gone(reason, msg)
    }

    /// Fails if we closed, or the peer closed or died. Costs syscalls
    /// (poll, kill 0): called between wait slices, not per message.
    pub(crate) fn check_peer(&mut self) -> Result<()> {
        self.check_cheap()?;
        if let Some(sock) = &self.socket {
            use rustix::event::PollFlags;
            let revents = crate::transport::wait::poll_now(sock, PollFlags::IN | PollFlags::RDHUP)
                .unwrap_or(PollFlags::empty());
            // On a link with wake-ups, input may be wake-up bytes: only a
            // hang-up or end of file means the peer is gone.
            let hung_up = if self.expects_wake_bytes() && revents == PollFlags::IN {
                self.socket_hung_up()
            } else {
                !revents.is_empty()
            };
            if hung_up {
                let pid = self.peer.pid.map(|p| format!(" {p}")).unwrap_or_default();
                return Err(self.gone(
                    GoneReason::Died,
                    format!(
                        "peer process{pid} died or closed the link (its rendezvous socket hung up)"
                    ),
                ));
            }
        }
        if let Some(pid) = self
            .peer
            .pid
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
            && rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
        {
            return Err(self.gone(
                GoneReason::Died,
                format!("peer process {pid} no longer exists"),
            ));
        }
        Ok(())
    }

    /// [`check_peer`](Self::check_peer) for a caller that polls
    /// (`try_recv` on a link without wake-ups): the state word every time,
    /// the system calls at most once per wait slice
    /// ([`SLICE`](crate::shm::wait::SLICE)), as a
    /// blocking wait makes them. Made on every poll that found nothing,
    /// they cost each such poll some 0.75 µs on the Intel guest measured
    /// (`poll` 0.35, `kill` 0.4–0.5), and a frame that arrived meanwhile
    /// waited for them. A peer that died is still reported within a slice
    /// and a tick of the coarse clock.
    pub(crate) fn check_peer_now_and_then(&mut self) -> Result<()> {
        self.check_cheap()?;
        if !self.peer_check.due() {
            return Ok(());
        }
        self.check_peer()
    }

    /// Fails (for good) if the SIGBUS guard had to replace our mapping:
    /// the peer truncated the region under us.
    #[inline]
    pub(crate) fn check_poison(&mut self) -> Result<()> {
        if self.region.poisoned() && self.gone.is_none() {
            return Err(self.gone(GoneReason::Broken, format!(
                "the link region {} was truncated under us (by the peer or another process                  of its user); the link is closed, the process and its other links go on",
                self.region.location()
            )));
        }
        if let Some((reason, msg)) = &self.gone {
            return Err(Error::peer_gone(*reason, msg.clone()));
        }
        Ok(())
    }

    /// The per-message checks: closed locally, peer gone or marked CLOSED,
    /// region poisoned.
    #[inline(always)]
    pub(crate) fn check_cheap(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.check_poison()?;
        let peer_state = self
            .control
            .side_u32(self.peer_index(), SideField::State)
            .load(Ordering::Acquire);
        if peer_state == state::CLOSED {
            // Not sticky: the word lives in shared memory and is re-read each time.
            return Err(Error::peer_gone(
                GoneReason::Closed,
                format!("{}: the peer closed the link", self.endpoint),
            ));
        }
        Ok(())
    }
}
