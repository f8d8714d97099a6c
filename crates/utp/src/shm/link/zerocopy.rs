//! The zero-copy API: write a payload in place ([`Reservation`]), read one
//! in place ([`View`]). No allocation and no system call per message while
//! both sides are active.

use super::ShmLink;
use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::frame::HEADER_LEN;
use crate::shm::ring::{Record, record_len};
use crate::shm::wait::WaitFor;
use std::time::Duration;

impl ShmLink {
    /// Reserves room for a frame with `len` bytes of payload, waiting at
    /// most `timeout` (`Some(ZERO)`: don't wait, fail with [`Error::Full`]).
    pub fn reserve(&mut self, len: usize, timeout: Option<Duration>) -> Result<Reservation<'_>> {
        self.check_cheap()?;
        let rec = record_len(len)
            .filter(|&r| r <= self.tx.capacity() && len <= u32::MAX as usize)
            .ok_or_else(|| Error::TooLarge {
                len,
                limit: self.max_frame_payload(),
                transport: "shm",
            })?;
        let offset = if timeout == Some(Duration::ZERO) {
            self.tx.try_reserve(rec)?.ok_or(Error::Full)?
        } else {
            self.wait_until(WaitFor::Space, timeout, |l| l.tx.try_reserve(rec))?
        };
        Ok(Reservation {
            link: self,
            offset,
            len,
            rec,
        })
    }

    /// Sends without waiting: [`Error::Full`] if the ring has no room.
    pub fn try_send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<()> {
        self.send_timeout(message_type, flags, payload, Some(Duration::ZERO))
    }

    /// Waits at most `timeout` for the next frame and lends it in place.
    /// Dropping the [`View`] frees its space in the ring.
    pub fn recv_view(&mut self, timeout: Option<Duration>) -> Result<View<'_>> {
        if self.closed {
            return Err(Error::Closed);
        }
        let record = self.wait_until(WaitFor::Data, timeout, |l| match l.rx.peek()? {
            Some(r) => Ok(Some(r)),
            None => l.check_cheap().map(|()| None),
        })?;
        let view = View { link: self, record };
        let header = view.record.header;
        if view.record.too_large {
            // Dropping the view skips the frame; the link goes on.
            return Err(crate::frame::DecodeError::TooLarge {
                length: header.payload_length,
                limit: view.link.rx.max_payload(),
            }
            .into());
        }
        if header.has_checksum() {
            let actual = crate::frame::frame_checksum(&view.record.header_bytes, view.payload());
            if actual != header.checksum {
                // Dropping the view skips the bad frame; the link goes on.
                return Err(crate::frame::DecodeError::ChecksumMismatch {
                    expected: header.checksum,
                    actual,
                }
                .into());
            }
        }
        Ok(view)
    }
}

/// Room for one frame in the send ring; write the payload, then [`commit`](Reservation::commit).
/// Dropping it without committing sends nothing.
///
// Invariants: `offset..offset+rec` was returned by `try_reserve` on
// `link.tx` and is not yet published; `HEADER_LEN + len <= rec`; the
// `&mut` borrow of the link keeps anyone else from reserving or sending.
#[derive(Debug)]
pub struct Reservation<'a> {
    link: &'a mut ShmLink,
    offset: usize,
    len: usize,
    rec: usize,
}

impl Reservation<'_> {
    /// The payload bytes, in the ring; their previous contents are unspecified.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        // SAFETY: `offset..offset+rec` was reserved by try_reserve and is not
        // published, so the peer does not read or write it; `&mut self`
        // makes this the only slice of it.
        unsafe {
            self.link
                .tx
                .bytes()
                .slice_mut(self.offset + HEADER_LEN, self.len)
        }
    }

    /// Writes the header (sequence, timestamp, checksum if flagged) and publishes the frame.
    pub fn commit(self, message_type: u8, flags: u16) {
        let mut head = [0u8; HEADER_LEN];
        let link = &mut *self.link;
        let header = link.next_header(message_type, flags);
        // SAFETY: our reservation (see payload_mut); the shared slice ends
        // before the header is written below.
        let payload = unsafe { link.tx.bytes().slice(self.offset + HEADER_LEN, self.len) };
        let header = header.encode_for(payload, &mut head);
        self.link.tx.write(self.offset, &head);
        self.link.published(self.rec, header.timestamp_us);
    }

    /// The channel's send path: copies `payload` (exactly the reserved
    /// length) into the ring and publishes it.
    pub(super) fn fill_and_commit(self, message_type: u8, flags: u16, payload: &[u8]) {
        debug_assert_eq!(payload.len(), self.len);
        let mut head = [0u8; HEADER_LEN];
        let header = self
            .link
            .next_header(message_type, flags)
            .encode_for(payload, &mut head);
        self.link.tx.write(self.offset + HEADER_LEN, payload);
        self.link.tx.write(self.offset, &head);
        self.link.published(self.rec, header.timestamp_us);
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
    /// The frame's header.
    pub fn header(&self) -> &crate::frame::Header {
        &self.record.header
    }

    /// The payload, in shared memory. Its bytes come from the peer and are
    /// untrusted like any received data.
    pub fn payload(&self) -> &[u8] {
        let len = self.record.header.payload_length as usize;
        // SAFETY: the record is published and not released until drop, so
        // the peer does not legitimately write it; bounds were validated by
        // peek (and slice() re-checks them).
        unsafe {
            self.link
                .rx
                .bytes()
                .slice(self.record.offset + HEADER_LEN, len)
        }
    }
}

impl Drop for View<'_> {
    fn drop(&mut self) {
        self.link.rx.release(self.record.len);
    }
}
