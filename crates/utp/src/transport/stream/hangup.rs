//! [`HangupWatch`]: how a FIFO client learns that its server ended the
//! session while it was only sending.
//!
//! The server closes `PATH.resp`, but the listener goes on reading
//! `PATH.req` (and the client's own lock descriptor reads it too), so the
//! client's writes never fail by themselves: they find room until the pipe
//! is full, and a blocking write into it would then wait for ever. A
//! non-blocking write with a poll of both ends when full would end that
//! wait, but cost a failed write and a poll each time the pipe fills,
//! which a blocking write does not. So
//! writes stay blocking, and the client looks for the hang-up of
//! `PATH.resp` (one `poll` of no time, on that quiet pipe, never on the
//! one it writes) each time a quarter of the pipe's capacity has been
//! written since the last look, and before any frame larger than that,
//! which is written without blocking instead.
//!
//! Why that never waits for ever: when the session ends, everything the
//! client sent and the server did not read is thrown away (see
//! `fifo::slot`); after that only a listener waiting to accept reads
//! `PATH.req`, to throw the bytes away too. A look that came
//! between the two (`PATH.resp` not closed yet) lets at most a quarter of
//! the pipe in, and the next look, after at most another quarter, sees the
//! hang-up: at most half the pipe is ever written into the void.

use crate::error::Result;
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

/// What the watch says about a frame about to be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Write it as usual.
    Write,
    /// Larger than a look's span: write it without blocking, watching the
    /// hang-up while waiting for room.
    WriteWatching,
    /// The peer hung up.
    HungUp,
}

impl HangupWatch {
    /// Before writing `len` bytes: looks at `read` when due.
    pub(super) fn before_write(&mut self, len: usize, read: BorrowedFd<'_>) -> Result<Verdict> {
        if self.unchecked.saturating_add(len) <= self.look_every {
            self.unchecked += len;
            return Ok(Verdict::Write);
        }
        let hung_up = crate::transport::wait::poll_now(read, PollFlags::empty())
            .is_some_and(|got| got.intersects(PollFlags::HUP | PollFlags::ERR));
        if hung_up {
            return Ok(Verdict::HungUp);
        }
        if len > self.look_every {
            // And a look before the next frame, whatever its size.
            self.unchecked = self.look_every;
            return Ok(Verdict::WriteWatching);
        }
        self.unchecked = len;
        Ok(Verdict::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// The peer's hang-up is found within a quarter of the pipe's capacity
    /// of writes, a larger frame is written watching, and no look is made
    /// between.
    #[test]
    fn the_hang_up_is_seen_within_a_quarter_of_the_pipe() {
        let (_data_read, data_write) = rustix::pipe::pipe().unwrap();
        let (replies_read, replies_write) = rustix::pipe::pipe().unwrap();
        let capacity = rustix::pipe::fcntl_getpipe_size(&data_write).unwrap();
        let mut watch = HangupWatch::new(data_write.as_fd());
        assert_eq!(watch.look_every, capacity / 4);
        let verdict =
            |watch: &mut HangupWatch, len| watch.before_write(len, replies_read.as_fd()).unwrap();
        let polls = || crate::transport::wait::POLLS.with(|n| n.get());
        let before = polls();
        for _ in 0..(capacity / 4 / 100) {
            assert_eq!(verdict(&mut watch, 100), Verdict::Write);
        }
        assert_eq!(polls(), before, "no look within a quarter of the pipe");
        assert_eq!(verdict(&mut watch, 100), Verdict::Write);
        assert_eq!(polls(), before + 1, "then one");
        assert_eq!(verdict(&mut watch, capacity), Verdict::WriteWatching);

        drop(replies_write);
        let mut written = 0;
        loop {
            match verdict(&mut watch, 100) {
                Verdict::Write => written += 100,
                Verdict::HungUp => break,
                Verdict::WriteWatching => panic!("100 bytes are never watched"),
            }
            assert!(
                written <= capacity / 4,
                "{written} bytes written after the hang-up"
            );
        }
    }
}
