//! The reading end of a ring: acquire the tail `[TAIL]`, validate and lend
//! the next record, release it `[HEAD]`, wake a flagged writer `[WAKE]`.

use super::{
    Indices, PAD_MAGIC, PREFETCH_LINES, RECORD_ALIGN, RingBytes, check_capacity, corrupt, notify,
    record_len,
};
use crate::error::Result;
use crate::frame::{HEADER_LEN, Header, decode_header};
use crate::shm::sync::Ordering;

/// A record found by [`Consumer::peek`].
///
// Invariants (when returned by `peek`): `offset + len <= capacity`, `len`
// is the padded length of a valid header (its payload may exceed the
// consumer's limit: then `too_large` is set), and `offset..offset+len` is published and unreleased.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    /// Offset of the header in the data area.
    pub offset: usize,
    /// The validated header (payload checksum not yet verified).
    pub header: Header,
    /// The header bytes as read, for checksum verification.
    pub header_bytes: [u8; HEADER_LEN],
    /// Bytes the record occupies, padding included.
    pub len: usize,
    /// The payload is over the consumer's `max_payload`: release it unread.
    pub too_large: bool,
}

/// The reading end of a ring.
///
// Invariants: `cap` as for `Producer`; `head` is the position after the
// last record we released; `tail` is the last validated tail, with
// `tail - head <= cap` (wrapping).
#[derive(Debug)]
pub struct Consumer<B> {
    idx: Indices,
    bytes: B,
    cap: u64,
    head: u64,
    tail: u64,
    max_payload: usize,
}

impl<B: RingBytes> Consumer<B> {
    /// A consumer starting at position 0. Frames with payloads over
    /// `max_payload` are found by [`peek`](Consumer::peek) (so they can be
    /// skipped) but flagged by [`Record::too_large`].
    pub fn new(idx: Indices, bytes: B, max_payload: usize) -> Result<Self> {
        let cap = check_capacity(bytes.capacity())?;
        Ok(Consumer {
            idx,
            bytes,
            cap,
            head: 0,
            tail: 0,
            max_payload,
        })
    }

    /// The ring's indices.
    pub fn indices(&self) -> &Indices {
        &self.idx
    }

    /// The payload limit given to [`new`](Consumer::new).
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The data area.
    pub fn bytes(&self) -> &B {
        &self.bytes
    }

    /// Whether a record (or padding) is published, re-reading the tail.
    pub fn has_data(&mut self) -> Result<bool> {
        if self.tail == self.head {
            self.refresh_tail()?;
        }
        Ok(self.tail != self.head)
    }

    fn refresh_tail(&mut self) -> Result<()> {
        let tail = self.idx.tail().load(Ordering::Acquire); // [TAIL]
        if tail.wrapping_sub(self.head) > self.cap {
            return Err(corrupt(format_args!(
                "write position {tail} is more than {} bytes past the read position {}",
                self.cap, self.head
            )));
        }
        if tail.wrapping_sub(self.head) < self.tail.wrapping_sub(self.head) {
            return Err(corrupt(format_args!(
                "write position moved backwards from {} to {tail}",
                self.tail
            )));
        }
        self.tail = tail;
        Ok(())
    }

    /// The next record, skipping padding; `None` if nothing is published.
    pub fn peek(&mut self) -> Result<Option<Record>> {
        loop {
            if !self.has_data()? {
                return Ok(None);
            }
            let available = self.tail.wrapping_sub(self.head);
            let offset = (self.head & (self.cap - 1)) as usize;
            let contiguous = self.cap as usize - offset;
            if available < RECORD_ALIGN as u64 {
                return Err(corrupt(format_args!("only {available} bytes published")));
            }
            // Start fetching the published lines after the first now, so a
            // record's payload does not wait for its header to be decoded.
            let lines = (available.min(contiguous as u64) as usize).min(PREFETCH_LINES * 64);
            for line in (64..lines).step_by(64) {
                self.bytes.prefetch(offset + line);
            }
            let mut first = [0u8; 8];
            self.bytes.read(offset, &mut first);
            if u32::from_le_bytes([first[0], first[1], first[2], first[3]]) == PAD_MAGIC {
                let pad = u32::from_le_bytes([first[4], first[5], first[6], first[7]]) as usize;
                if pad != contiguous || pad as u64 > available {
                    return Err(corrupt(format_args!(
                        "padding of {pad} bytes at offset {offset} (expected {contiguous}, {available} published)"
                    )));
                }
                self.release(pad);
                continue;
            }
            if contiguous < HEADER_LEN || available < HEADER_LEN as u64 {
                return Err(corrupt(format_args!(
                    "no room for a header at offset {offset} ({available} bytes published)"
                )));
            }
            let mut header_bytes = [0u8; HEADER_LEN];
            self.bytes.read(offset, &mut header_bytes);
            // Structural bound only: a frame over our own limit but inside
            // the ring is well formed and can be skipped by the caller.
            let header = decode_header(&header_bytes, self.cap as usize)?;
            let len = record_len(header.payload_length as usize).unwrap_or(usize::MAX);
            if len > contiguous || len as u64 > available {
                return Err(corrupt(format_args!(
                    "frame of {len} bytes at offset {offset} exceeds the {} bytes published or the {contiguous} before the end",
                    available.min(contiguous as u64)
                )));
            }
            return Ok(Some(Record {
                offset,
                header,
                header_bytes,
                len,
                too_large: header.payload_length as usize > self.max_payload,
            }));
        }
    }

    /// Frees `len` bytes (a record returned by `peek`) for the producer.
    pub fn release(&mut self, len: usize) {
        self.head = self.head.wrapping_add(len as u64);
        self.idx.head().store(self.head, Ordering::Release); // [HEAD]
        notify(self.idx.space_waiters());
    }
}
