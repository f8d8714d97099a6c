//! The zero-copy API: write a payload in place ([`Reservation`]), read one
//! in place ([`View`]). No allocation and no system call per message while
//! both sides are active.
//!
//! The bytes lent are in memory the peer process can write, so they come as
//! [`ShmSliceMut`] / [`ShmSlice`] (copy in, copy out, compare), never as a
//! safe `&mut [u8]` / `&[u8]`; `unsafe` accessors exist for peers you trust.
//! A checksum is verified on a private copy ([`View::copy_payload`]), so
//! what was checked is what you use.

use super::{Payload, ShmLink};
use crate::error::{Error, Result};
use crate::shm::bytes::{ShmSlice, ShmSliceMut};
use crate::shm::ring::{PAYLOAD_OFFSET, RECORD_ALIGN, Record};
use crate::shm::wait::WaitFor;
use std::time::Duration;

impl ShmLink {
    /// Waits for room for a `len`-byte payload: the record's offset and length.
    #[inline(always)]
    pub(super) fn reserve_raw(
        &mut self,
        len: usize,
        timeout: Option<Duration>,
    ) -> Result<(usize, usize)> {
        self.check_cheap()?;
        self.reserve_checked(len, timeout)
            .map(|(offset, rec, _waited)| (offset, rec))
    }

    /// [`reserve_raw`](Self::reserve_raw) without the look at the link's
    /// and the peer's state first; also says whether it waited for room.
    #[inline(always)]
    pub(super) fn reserve_checked(
        &mut self,
        len: usize,
        timeout: Option<Duration>,
    ) -> Result<(usize, usize, bool)> {
        if len > self.max_frame_payload() {
            return Err(self.too_large(len));
        }
        // No overflow, and at most the producer's capacity: the limit is
        // the ring's capacity (at most 2^30) less a line and a header.
        let rec = (PAYLOAD_OFFSET + len).next_multiple_of(RECORD_ALIGN);
        let (offset, waited) = match self.try_reserve_waking(rec)? {
            Some(offset) => (offset, false),
            None if timeout == Some(Duration::ZERO) => return Err(Error::Full),
            None => (
                self.wait_until(WaitFor::Space, timeout, |l| l.try_reserve_waking(rec))?,
                true,
            ),
        };
        // A stream's records ask for the lines of later ones; an answer
        // does not: in a round trip those lines would change hands while
        // the peer reads this record (the rule `demote` uses the other
        // way round).
        if !self.after_receive {
            self.tx.claim_ahead(offset, rec);
            #[cfg(test)]
            {
                self.asked_ahead += 1;
            }
        }
        Ok((offset, rec, waited))
    }

    #[cold]
    #[inline(never)]
    fn too_large(&self, len: usize) -> Error {
        Error::TooLarge {
            len,
            limit: self.max_frame_payload(),
            transport: "this shm link; its ring size limits a frame: ask for a bigger \
                        ring with ?ring=SIZE on the client's URL",
        }
    }

    /// `try_reserve`, then the wake-up an event-loop reader asked for if
    /// padding was published: a writer that then waits for room would
    /// otherwise never wake a reader that must consume the padding first.
    #[inline(always)]
    fn try_reserve_waking(&mut self, rec: usize) -> Result<Option<usize>> {
        let reserved = self.tx.try_reserve(rec)?;
        if reserved.is_none() && !self.tx.peer_sleeps() {
            self.watch_peer_sleeps();
        }
        if self.tx.take_event_due() {
            self.send_wake();
        }
        Ok(reserved)
    }

    /// Waits at most `timeout` for the next record (not yet released).
    #[inline(always)]
    pub(super) fn next_record(&mut self, timeout: Option<Duration>) -> Result<Record> {
        let record = self.receive(timeout, false, |l| l.rx.peek())?;
        self.after_receive = true;
        Ok(record)
    }

    /// What every receive shares: fails if the link is closed or its
    /// region poisoned, then `take`s what is there, or waits at most
    /// `timeout` for a stamp and takes what came. `take` builds its
    /// result where it is used, and the waiting is out of line, so a
    /// receive that finds its frame at once carries none of it. `copying`:
    /// `take` copies the record out, so the wait copies what is written
    /// of a record in pieces.
    #[inline(always)]
    pub(super) fn receive<T>(
        &mut self,
        timeout: Option<Duration>,
        copying: bool,
        mut take: impl FnMut(&mut Self) -> Result<Option<T>>,
    ) -> Result<T> {
        self.check_receivable()?;
        if let Some(taken) = take(self)? {
            return Ok(taken);
        }
        self.wait_then_take(timeout, copying, take)
    }

    /// `receive` when nothing was there: waits until a record (not
    /// padding) is published, then takes it. The poll is the stamp load
    /// alone (`wait_until` checks the peer's state word between polls).
    #[inline(never)]
    pub(super) fn wait_then_take<T>(
        &mut self,
        timeout: Option<Duration>,
        copying: bool,
        mut take: impl FnMut(&mut Self) -> Result<Option<T>>,
    ) -> Result<T> {
        self.wait_until(WaitFor::Data, timeout, |l| {
            Ok(l.rx.ready(copying)?.then_some(()))
        })?;
        // Only the producer writes stamps, and never clears a published one.
        take(self)?.ok_or_else(|| {
            crate::shm::ring::corrupt("a published record's stamp was taken back by its producer")
        })
    }

    /// Fails if this side closed the link or its region was truncated.
    #[inline(always)]
    pub(super) fn check_receivable(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.check_poison()
    }

    /// Reserves room for a frame with `len` bytes of payload, waiting at
    /// most `timeout` (`Some(ZERO)`: don't wait, fail with [`Error::Full`]).
    pub fn reserve(&mut self, len: usize, timeout: Option<Duration>) -> Result<Reservation<'_>> {
        let (offset, rec) = self.reserve_raw(len, timeout)?;
        Ok(Reservation {
            link: self,
            offset,
            len,
            rec,
        })
    }

    /// Sends without waiting: [`Error::Full`] if the ring has no room.
    pub fn try_send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<()> {
        use crate::channel::Channel;
        self.send_timeout(message_type, flags, payload, Some(Duration::ZERO))
    }

    /// Waits at most `timeout` for the next frame and lends it in place.
    /// Dropping the [`View`] frees its space in the ring. The checksum is
    /// not verified in place (the peer could change the bytes after the
    /// check): [`View::copy_payload`] verifies it on the copy.
    pub fn recv_view(&mut self, timeout: Option<Duration>) -> Result<View<'_>> {
        let record = self.next_record(timeout)?;
        let view = View { link: self, record };
        if view.link.rx.too_large(&view.record) {
            // Dropping the view skips the frame; the link goes on.
            let length = view.record.header.payload_length as usize;
            return Err(view.link.rx.too_large_error(length));
        }
        Ok(view)
    }
}

/// Room for one frame in the send ring; write the payload, then [`commit`](Reservation::commit).
/// Dropping it without committing sends nothing.
///
// Invariants: `offset..offset+rec` was returned by `try_reserve` on
// `link.tx` and is not yet published; `PAYLOAD_OFFSET + len <= rec`; the
// `&mut` borrow of the link keeps anyone else from reserving or sending.
#[derive(Debug)]
pub struct Reservation<'a> {
    link: &'a mut ShmLink,
    offset: usize,
    len: usize,
    rec: usize,
}

impl Reservation<'_> {
    /// The payload room, in the ring; its previous contents are unspecified.
    pub fn payload_mut(&mut self) -> ShmSliceMut<'_> {
        // SAFETY: `offset..offset+rec` is inside the data area (try_reserve)
        // and the view borrows `self`, so it cannot outlive the link.
        unsafe {
            self.link
                .tx
                .bytes()
                .view_mut(self.offset + PAYLOAD_OFFSET, self.len)
        }
    }

    /// Writes the header (sequence, timestamp, checksum if flagged) and publishes the frame.
    pub fn commit(self, message_type: u8, flags: u16) {
        self.link.publish(
            self.offset,
            self.rec,
            message_type,
            flags,
            Payload::InRing(self.len),
            crate::frame::coarse_micros(),
        );
    }
}

/// A received frame, lent in place from the ring; its space is freed on drop.
///
// Invariants: `record` came from `link.rx.peek()` (see `Record`) and is
// released exactly once, by `drop`.
#[derive(Debug)]
pub struct View<'a> {
    link: &'a mut ShmLink,
    record: Record,
}

impl View<'_> {
    /// The frame's header (copied out of the ring once and validated).
    pub fn header(&self) -> &crate::frame::Header {
        &self.record.header
    }

    /// The payload, in shared memory, checksum NOT verified. Its bytes come
    /// from the peer, which could still change them: copy what you use.
    pub fn payload(&self) -> ShmSlice<'_> {
        let len = self.record.header.payload_length as usize;
        // SAFETY: bounds were validated by peek (and `view` re-checks
        // them); the view borrows `self`, so it cannot outlive the link.
        unsafe {
            self.link
                .rx
                .bytes()
                .view(self.record.offset + PAYLOAD_OFFSET, len)
        }
    }

    /// Copies the payload into `out` (replacing its contents) and, if the
    /// frame carries a checksum, verifies it on that copy.
    pub fn copy_payload(&self, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        self.payload().extend_vec(out);
        self.verify_copy(out)
    }

    /// Verifies the frame's checksum (if flagged) over `copy`, a private
    /// copy of the payload.
    pub fn verify_copy(&self, copy: &[u8]) -> Result<()> {
        Ok(crate::frame::verify_checksum(self.record.header, copy)?)
    }
}

impl Drop for View<'_> {
    fn drop(&mut self) {
        self.link.rx.release(self.record.len);
    }
}
