//! The broadcast ring over a data region: the publisher's side (stamp,
//! write in place, commit) and every subscriber's side (look at one stamp,
//! copy, re-check the stamp).
//!
//! Message `n` lives in slot `n mod slot_count`. Its stamp goes
//! `writing(n)` (odd) before the publisher touches the slot and
//! `committed(n)` (even) after; stamps of a slot only grow. A reader at
//! cursor `c` reads the stamp once: `committed(c)` means ready, anything
//! smaller means not yet, anything larger means the publisher has lapped
//! it. After copying it re-reads the stamp (seqlock): unchanged means the
//! copy is intact, changed means the message was overwritten under it.

use super::layout::{self, data, record};
use super::memory::Mapping;
use super::protocol::{self, Seen};
use crate::ProtocolReason;
use crate::error::{Error, Result};
use crate::frame::Header;
use std::sync::atomic::Ordering;

/// A data region with its geometry.
#[derive(Debug)]
pub struct Ring {
    map: Mapping,
    slot_count: u32,
    slot_size: u32,
    mask: u64,
}

/// What a reader finds at its cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Message complete; its frame header (payload length checked).
    Ready(Header),
    /// Not published yet.
    Empty,
    /// The publisher has overwritten the slot with a later message.
    Lapped,
}

impl Ring {
    /// Writes a fresh header into a zeroed publisher mapping.
    pub fn init(map: Mapping, slot_count: u32, slot_size: u32) -> Ring {
        map.u32(data::VERSION)
            .store(layout::LAYOUT_VERSION, Ordering::Relaxed);
        map.u32(data::SLOT_COUNT)
            .store(slot_count, Ordering::Relaxed);
        map.u32(data::SLOT_SIZE).store(slot_size, Ordering::Relaxed);
        map.u64(data::REGION_LEN)
            .store(map.byte_len() as u64, Ordering::Relaxed);
        map.u32(data::PUBLISHER_PID)
            .store(std::process::id(), Ordering::Relaxed);
        map.u32(data::MAGIC)
            .store(layout::DATA_MAGIC, Ordering::Release);
        Ring::wrap(map, slot_count, slot_size)
    }

    fn wrap(map: Mapping, slot_count: u32, slot_size: u32) -> Ring {
        Ring {
            map,
            slot_count,
            slot_size,
            mask: slot_count as u64 - 1,
        }
    }

    /// A subscriber's view: checks the header against the handshake's
    /// geometry (each field read once).
    pub fn attach(map: Mapping, slot_count: u32, slot_size: u32) -> Result<Ring> {
        let expect = layout::region_len(slot_count, slot_size).ok_or_else(|| {
            Error::protocol(
                ProtocolReason::Corrupt,
                format!("bad ring geometry {slot_count} x {slot_size}"),
            )
        })?;
        let fields = (
            map.u32(data::MAGIC).load(Ordering::Acquire),
            map.u32(data::VERSION).load(Ordering::Relaxed),
            map.u32(data::SLOT_COUNT).load(Ordering::Relaxed),
            map.u32(data::SLOT_SIZE).load(Ordering::Relaxed),
            map.u64(data::REGION_LEN).load(Ordering::Relaxed),
        );
        let want = (
            layout::DATA_MAGIC,
            layout::LAYOUT_VERSION,
            slot_count,
            slot_size,
            expect,
        );
        if fields != want || map.byte_len() as u64 != expect {
            return Err(Error::protocol(
                ProtocolReason::Corrupt,
                format!("pub/sub region header {fields:?} does not match the handshake {want:?}"),
            ));
        }
        Ok(Ring::wrap(map, slot_count, slot_size))
    }

    /// Slots in the ring.
    pub fn slot_count(&self) -> u32 {
        self.slot_count
    }

    /// Bytes per slot.
    pub fn slot_size(&self) -> u32 {
        self.slot_size
    }

    /// Largest payload.
    pub fn max_payload(&self) -> usize {
        self.slot_size as usize - record::PAYLOAD
    }

    /// The mapping (for futex addresses and header fields).
    pub fn map(&self) -> &Mapping {
        &self.map
    }

    fn slot(&self, n: u64) -> usize {
        data::HEADER_LEN + (n & self.mask) as usize * self.slot_size as usize
    }

    /// Messages published so far.
    pub fn tail(&self) -> u64 {
        self.map.u64(data::TAIL).load(Ordering::Acquire)
    }

    /// Whether the publisher has closed.
    pub fn closed(&self) -> bool {
        self.map.u32(data::CLOSED).load(Ordering::Acquire) != 0
    }

    // ---- publisher side ----

    /// Marks slot of message `n` as being written (destroys the message a
    /// lap earlier). Publisher only.
    pub fn begin(&self, n: u64) {
        protocol::begin(self.map.u64(self.slot(n) + record::STAMP), n);
    }

    /// The payload room of message `n` (after [`begin`](Self::begin)).
    ///
    /// # Safety
    ///
    /// Publisher only, between `begin(n)` and `commit(n)`, with no other
    /// reference to that slot alive.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn payload_mut(&self, n: u64, len: usize) -> &mut [u8] {
        let at = self.slot(n) + record::PAYLOAD;
        // SAFETY: in bounds (len <= max_payload, checked by the caller) and
        // exclusive by this function's contract.
        unsafe { self.map.bytes_mut(at, len.min(self.max_payload())) }.unwrap_or_default()
    }

    /// Writes the frame header of message `n` and publishes it.
    pub fn commit(&self, n: u64, message_type: u8, flags: u16, len: usize, timestamp_us: u64) {
        let mut header = Header::new(message_type, flags, n, timestamp_us);
        header.payload_length = len as u32;
        // Four 8-byte stores straight into the slot (slot_size >= 128, the
        // frame at an 8-aligned offset): no header bytes assembled on the
        // stack and reloaded, a store-forwarding stall.
        self.map
            .store_words(self.slot(n) + record::FRAME, &header.words());
        protocol::commit(
            self.map.u64(self.slot(n) + record::STAMP),
            self.map.u64(data::TAIL),
            n,
        );
    }

    /// Marks the ring closed (subscribers see it at their next wait).
    pub fn close(&self) {
        self.map.u32(data::CLOSED).store(1, Ordering::Release);
    }

    /// The wake futex word (bumped by the publisher).
    pub fn wake(&self) -> &std::sync::atomic::AtomicU32 {
        self.map.u32(data::WAKE)
    }

    // ---- subscriber side ----

    /// One read of message `n`'s stamp; when ready, its header.
    pub fn probe(&self, n: u64) -> Probe {
        match protocol::look(self.map.u64(self.slot(n) + record::STAMP), n) {
            Seen::Empty => Probe::Empty,
            Seen::Lapped => Probe::Lapped,
            Seen::Ready => {
                let h = Header::from_words(self.map.load_words(self.slot(n) + record::FRAME));
                Probe::Ready(Header {
                    // The number is the slot's (its stamp said so); the
                    // publisher never sets a checksum here.
                    sequence: n,
                    checksum: 0,
                    // A length past the slot can only come from a torn read
                    // (re-checked by `intact`) or a broken publisher: clamp it.
                    payload_length: h.payload_length.min(self.max_payload() as u32),
                    ..h
                })
            }
        }
    }

    /// Copies the first `dst.len()` payload bytes of message `n`.
    pub fn copy_payload(&self, n: u64, offset: usize, dst: &mut [u8]) -> bool {
        offset % 8 == 0
            && offset + dst.len() <= self.max_payload()
            && self
                .map
                .copy_out(self.slot(n) + record::PAYLOAD + offset, dst)
    }

    /// Compares message `n`'s payload with `other`.
    pub fn payload_equals(&self, n: u64, other: &[u8]) -> bool {
        other.len() <= self.max_payload() && self.map.equals(self.slot(n) + record::PAYLOAD, other)
    }

    /// The payload of message `n` as a slice (see `Mapping::bytes`).
    ///
    /// # Safety
    ///
    /// The publisher may overwrite it at any moment once lapped; the
    /// contents are only trustworthy if [`intact`](Self::intact) holds
    /// after the caller is done reading.
    pub unsafe fn payload(&self, n: u64, len: usize) -> &[u8] {
        // SAFETY: bounds checked by `bytes`; content caveat forwarded.
        unsafe {
            self.map
                .bytes(self.slot(n) + record::PAYLOAD, len.min(self.max_payload()))
        }
        .unwrap_or_default()
    }

    /// Whether message `n` is still in its slot (call after copying).
    pub fn intact(&self, n: u64) -> bool {
        protocol::intact(self.map.u64(self.slot(n) + record::STAMP), n)
    }

    /// Where a reader lapped at `cursor` resumes.
    pub fn resume_after_lap(&self, cursor: u64) -> u64 {
        protocol::resume_after_lap(self.map.u64(data::TAIL), cursor, self.slot_count as u64)
    }
}
