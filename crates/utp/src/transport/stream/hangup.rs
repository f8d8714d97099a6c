//! [`HangupWatch`]: how a FIFO client learns that its server ended the
//! session, or died, while it was only sending.
//!
//! The server closes `PATH.resp`, but the listener goes on reading
//! `PATH.req`, and the client's own lock descriptor reads it too (the
//! hand-off lock is taken on a reader: see `fifo`). So the client's writes
//! never fail by themselves: they find room while the listener throws
//! them away, and once nobody reads any more (the server process is gone,
//! only the lock descriptor is left) a blocking write into the full pipe
//! would wait for ever. Two things keep that from happening:
//!
//! - the client's writes never block: a write that finds the pipe full
//!   waits in a `poll` of both ends (room in `PATH.req`, a hang-up of
//!   `PATH.resp`), so a server that dies while the pipe is full ends the
//!   wait (`stream::wait_for_room`). That costs a failed write and a
//!   `poll` each time the pipe fills, which a blocking write would not
//!   (docs/benchmarks/journal.md, 2026-12-08);
//! - while the pipe has room the client looks for the hang-up of
//!   `PATH.resp` (one `poll` of no time, on that quiet pipe) each time a
//!   quarter of the pipe's capacity has been written since the last look,
//!   and before and after any frame larger than that.
//!
//! Why the looks bound what goes into the void: when the session ends,
//! everything the client sent and the server did not read is thrown away
//! (see `fifo::slot`); after that only a listener waiting to accept reads
//! `PATH.req`, to throw the bytes away too. A look that came between the
//! two (`PATH.resp` not closed yet) lets at most a quarter of the pipe in,
//! and the next look, after at most another quarter, sees the hang-up: at
//! most half the pipe is ever written into the void.

use rustix::event::PollFlags;
use std::os::fd::BorrowedFd;

/// Bytes written since the last look for a hang-up, and when to look again.
#[derive(Clone, Copy, Debug)]
pub(super) struct HangupWatch {
    unchecked: usize,
    /// A quarter of the pipe's capacity.
    look_every: usize,
}

impl HangupWatch {
    /// A watch for writes into the pipe behind `write`, whose capacity is
    /// asked once, here: asking takes the pipe's lock, which its reader
    /// holds while it copies. A FIFO client grows the pipe before (see
    /// `fifo::connect`), so this is the size it keeps; a pipe that grows
    /// later only makes the looks more frequent than they need be (asked
    /// before the server had grown the pipe, a client would look every
    /// four 4 KiB frames: docs/benchmarks/journal.md, 2026-12-07, late
    /// evening).
    pub(super) fn new(write: BorrowedFd<'_>) -> Self {
        let capacity = rustix::pipe::fcntl_getpipe_size(write).unwrap_or(DEFAULT_CAPACITY);
        HangupWatch {
            unchecked: 0,
            look_every: (capacity / 4).max(1),
        }
    }

    /// The same watch, nothing written yet (for the send half of a split).
    pub(super) fn fresh(&self) -> Self {
        HangupWatch {
            unchecked: 0,
            ..*self
        }
    }
}

/// The capacity of a pipe that does not say (Linux's default).
const DEFAULT_CAPACITY: usize = 64 * 1024;

impl HangupWatch {
    /// Before writing `len` bytes: whether the peer has hung up `read`,
    /// looked at when due (`false` without a look).
    pub(super) fn hung_up_before(&mut self, len: usize, read: BorrowedFd<'_>) -> bool {
        if self.unchecked.saturating_add(len) <= self.look_every {
            self.unchecked += len;
            return false;
        }
        let hung_up = crate::transport::wait::poll_now(read, PollFlags::empty())
            .is_some_and(|got| got.intersects(PollFlags::HUP | PollFlags::ERR));
        // A frame larger than a look's span: a look before the next frame
        // too, whatever its size.
        self.unchecked = len.min(self.look_every);
        hung_up
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// The peer's hang-up is found within a quarter of the pipe's capacity
    /// of writes, a larger frame is looked at before and after, and no
    /// look is made between.
    #[test]
    fn the_hang_up_is_seen_within_a_quarter_of_the_pipe() {
        let (_data_read, data_write) = rustix::pipe::pipe().unwrap();
        let (replies_read, replies_write) = rustix::pipe::pipe().unwrap();
        let capacity = rustix::pipe::fcntl_getpipe_size(&data_write).unwrap();
        let mut watch = HangupWatch::new(data_write.as_fd());
        assert_eq!(watch.look_every, capacity / 4);
        let hung_up =
            |watch: &mut HangupWatch, len| watch.hung_up_before(len, replies_read.as_fd());
        let polls = || crate::transport::wait::POLLS.with(|n| n.get());
        let before = polls();
        for _ in 0..(capacity / 4 / 100) {
            assert!(!hung_up(&mut watch, 100));
        }
        assert_eq!(polls(), before, "no look within a quarter of the pipe");
        assert!(!hung_up(&mut watch, 100));
        assert_eq!(polls(), before + 1, "then one");
        assert!(!hung_up(&mut watch, capacity));
        assert_eq!(polls(), before + 2, "one before a large frame");
        assert!(!hung_up(&mut watch, 1));
        assert_eq!(polls(), before + 3, "and one after it");

        drop(replies_write);
        let mut written = 0;
        while !hung_up(&mut watch, 100) {
            written += 100;
            assert!(
                written <= capacity / 4,
                "{written} bytes written after the hang-up"
            );
        }
    }
}
