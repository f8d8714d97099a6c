//! The writing end of a ring: reserve room (writing padding at the wrap),
//! fill, publish `[TAIL]`, wake a flagged reader `[WAKE]`.

use super::{Indices, PAD_MAGIC, RECORD_ALIGN, RingBytes, check_capacity, corrupt, notify};
use crate::error::{Error, Result};
use crate::shm::sync::Ordering;

/// The writing end of a ring.
///
// Invariants: `cap` = `bytes.capacity()` is a power of two in
// MIN_CAPACITY..=MAX_CAPACITY (checked by `new`... by the link's layout);
// `tail` is the position we last published or will publish next;
// `tail - head <= cap` (wrapping), where `head` is the last validated head.
#[derive(Debug)]
pub struct Producer<B> {
    idx: Indices,
    bytes: B,
    cap: u64,
    tail: u64,
    head: u64,
}

impl<B: RingBytes> Producer<B> {
    /// A producer starting at position 0 (a freshly zeroed ring).
    pub fn new(idx: Indices, bytes: B) -> Result<Self> {
        let cap = check_capacity(bytes.capacity())?;
        Ok(Producer {
            idx,
            bytes,
            cap,
            tail: 0,
            head: 0,
        })
    }

    /// The ring's indices.
    pub fn indices(&self) -> &Indices {
        &self.idx
    }

    /// The data area.
    pub fn bytes(&self) -> &B {
        &self.bytes
    }

    /// Largest record that fits: the capacity.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Finds room for a record of `record_len` bytes (a multiple of
    /// [`RECORD_ALIGN`], at most the capacity), writing and publishing a
    /// padding marker first if the record would cross the end. Returns the
    /// record's offset, or `None` if the ring is too full right now.
    pub fn try_reserve(&mut self, record_len: usize) -> Result<Option<usize>> {
        let rec = record_len as u64;
        if rec > self.cap || rec % RECORD_ALIGN as u64 != 0 || rec == 0 {
            return Err(Error::Protocol(format!(
                "record of {record_len} bytes does not fit a ring of {}",
                self.cap
            )));
        }
        let mut refreshed = false;
        loop {
            let free = self.cap - self.tail.wrapping_sub(self.head);
            let offset = self.tail & (self.cap - 1);
            let contiguous = self.cap - offset;
            if rec <= contiguous {
                if rec <= free {
                    return Ok(Some(offset as usize));
                }
            } else if contiguous <= free {
                let mut marker = [0u8; 8];
                marker[..4].copy_from_slice(&PAD_MAGIC.to_le_bytes());
                marker[4..].copy_from_slice(&(contiguous as u32).to_le_bytes());
                self.bytes.write(offset as usize, &marker);
                self.tail = self.tail.wrapping_add(contiguous);
                self.publish();
                continue;
            }
            if refreshed || !self.refresh_head()? {
                return Ok(None);
            }
            refreshed = true;
        }
    }

    /// Copies `src` into the ring at `offset` (inside a reserved record).
    pub fn write(&self, offset: usize, src: &[u8]) {
        self.bytes.write(offset, src);
    }

    /// Publishes the record of `record_len` bytes reserved by `try_reserve`.
    pub fn commit(&mut self, record_len: usize) {
        self.tail = self.tail.wrapping_add(record_len as u64);
        self.publish();
    }

    fn publish(&self) {
        self.idx.tail().store(self.tail, Ordering::Release); // [TAIL]
        notify(self.idx.data_waiters());
    }

    /// Re-reads the consumer's head; true if it moved.
    fn refresh_head(&mut self) -> Result<bool> {
        let head = self.idx.head().load(Ordering::Acquire); // [HEAD]
        let moved = head.wrapping_sub(self.head);
        if moved > self.tail.wrapping_sub(self.head) {
            return Err(corrupt(format_args!(
                "read position {head} is outside {}..={}",
                self.head, self.tail
            )));
        }
        self.head = head;
        Ok(moved != 0)
    }

    /// Bytes published and not yet consumed, as last seen.
    pub fn used(&self) -> u64 {
        self.tail.wrapping_sub(self.head)
    }
}
