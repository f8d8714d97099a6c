//! [`View`]: a received message read in place. It offers copies and
//! comparisons, each re-checked against the ring afterwards, never a safe
//! `&[u8]` over memory the publisher may be overwriting; the unsafe
//! [`View::as_slice`] is there for callers who re-validate themselves.

use super::shm_subscriber::ShmSubscriber;
use crate::ProtocolReason;
use crate::error::{Error, Result};
use crate::frame::Header;
use std::cell::Cell;

/// A message lent in place until the view is dropped (which moves the
/// subscriber past it).
#[derive(Debug)]
pub struct View<'a> {
    inner: Inner<'a>,
    header: Header,
    lost_before: u64,
    /// The first copy's or comparison's verdict: once the caller holds an
    /// intact copy, the message counts as received even if the publisher
    /// overwrites it before the view is dropped.
    verdict: Cell<Option<bool>>,
}

#[derive(Debug)]
enum Inner<'a> {
    Shm(&'a mut ShmSubscriber),
    Owned(&'a [u8]),
}

impl<'a> View<'a> {
    pub(super) fn shm(sub: &'a mut ShmSubscriber, header: Header, lost_before: u64) -> View<'a> {
        View {
            inner: Inner::Shm(sub),
            header,
            lost_before,
            verdict: Cell::new(None),
        }
    }

    pub(super) fn owned(payload: &'a [u8], header: Header, lost_before: u64) -> View<'a> {
        View {
            inner: Inner::Owned(payload),
            header,
            lost_before,
            verdict: Cell::new(None),
        }
    }

    /// The message number (0 for the publisher's first message).
    pub fn sequence(&self) -> u64 {
        self.header.sequence
    }

    /// Messages lost just before this one (0 unless this subscriber fell a ring behind).
    #[inline]
    pub fn lost_before(&self) -> u64 {
        self.lost_before
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        self.header.payload_length as usize
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame's message type.
    pub fn message_type(&self) -> u8 {
        self.header.message_type
    }

    /// The frame's flags.
    pub fn flags(&self) -> u16 {
        self.header.flags
    }

    /// When the publisher published it (µs since the Unix epoch, 0 if it did not stamp).
    pub fn timestamp_us(&self) -> u64 {
        self.header.timestamp_us
    }

    fn still_in_place(&self) -> bool {
        match &self.inner {
            Inner::Shm(sub) => sub.intact(self.header.sequence),
            Inner::Owned(_) => true,
        }
    }

    /// Whether the message is still in place (always true off shared
    /// memory). The first answer (this, or a copy's or comparison's) decides
    /// whether the message counts as received or lost.
    pub fn is_intact(&self) -> bool {
        let intact = self.still_in_place();
        if self.verdict.get().is_none() {
            self.verdict.set(Some(intact));
        }
        intact
    }

    fn verified<T>(&self, value: T) -> Result<T> {
        if self.is_intact() {
            Ok(value)
        } else {
            Err(Error::Overwritten)
        }
    }

    /// Copies the payload (or its first `dst.len()` bytes) into `dst`;
    /// returns the bytes copied, or [`Error::Overwritten`] if the publisher
    /// overwrote the message meanwhile (the copy is then garbage).
    #[inline]
    pub fn copy_to(&self, dst: &mut [u8]) -> Result<usize> {
        let n = self.len().min(dst.len());
        match &self.inner {
            Inner::Shm(sub) => {
                if !sub
                    .ring()
                    .copy_payload(self.header.sequence, 0, &mut dst[..n])
                {
                    return Err(Error::protocol(
                        ProtocolReason::Corrupt,
                        "message payload outside the ring",
                    ));
                }
            }
            Inner::Owned(p) => crate::copy::copy_slice(&mut dst[..n], &p[..n]),
        }
        self.verified(n)
    }

    /// The payload as a new vector (see [`copy_to`](Self::copy_to)).
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.len()];
        self.copy_to(&mut out)?;
        Ok(out)
    }

    /// Appends the payload to `out`, reusing its allocation.
    pub fn extend_into(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.resize(start + self.len(), 0);
        let result = self.copy_to(&mut out[start..]).map(|_| ());
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Whether the payload equals `other`, compared in place.
    pub fn equals(&self, other: &[u8]) -> Result<bool> {
        let same = other.len() == self.len()
            && match &self.inner {
                Inner::Shm(sub) => sub.ring().payload_equals(self.header.sequence, other),
                Inner::Owned(p) => *p == other,
            };
        self.verified(same)
    }

    /// The payload as a slice, in place.
    ///
    /// # Safety
    ///
    /// On shared memory the publisher may overwrite these bytes at any
    /// moment (a reader a whole ring behind). Treat the contents as
    /// untrusted and call [`is_intact`](Self::is_intact) after reading:
    /// only if it returns true were the bytes read the message's.
    pub unsafe fn as_slice(&self) -> &[u8] {
        match &self.inner {
            // SAFETY: the caveat above is this function's contract.
            Inner::Shm(sub) => unsafe { sub.ring().payload(self.header.sequence, self.len()) },
            Inner::Owned(p) => p,
        }
    }
}

impl Drop for View<'_> {
    #[inline]
    fn drop(&mut self) {
        let intact = self.verdict.get().unwrap_or_else(|| self.still_in_place());
        if let Inner::Shm(sub) = &mut self.inner {
            sub.advance(intact);
        }
    }
}
