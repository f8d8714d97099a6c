//! Byte layout of a link region (see `docs/shm-layout.md`, which is normative).
//!
//! ```text
//! 0      control header            64 bytes
//! 64     status line, side 0/1     2 x 64 bytes (state, pid, sleeps: polled)
//! 192    counters, side 0/1        2 x 64 bytes (written per message)
//! 512    ring 0 indices           256 bytes  (server -> client)
//! 768    ring 1 indices           256 bytes  (client -> server)
//! 1024   reserved, zero           up to 4096
//! 4096   ring 0 data              capacity bytes
//! 4096+C ring 1 data              capacity bytes
//! ```

use super::ring::{self, Indices};
use super::sync::{AtomicU32, AtomicU64, Ordering};
use crate::ProtocolReason;
use crate::error::{Error, Result};
use std::ptr::NonNull;

/// `magic` at offset 0: bytes `55 4C 4E 4B` ("ULNK").
pub const LINK_MAGIC: u32 = 0x4B4E_4C55;
/// `layout_version` at offset 4.
pub const LAYOUT_VERSION: u32 = 2;
/// Offset of ring `r`'s index block.
pub const fn ring_header_offset(r: usize) -> usize {
    512 + 256 * r
}
/// Offset of the first ring's data area.
pub const DATA_OFFSET: usize = 4096;
/// Default capacity of each ring: 1 MiB.
pub const DEFAULT_CAPACITY: usize = 1 << 20;
/// Offset in the control header of ring `r`'s stamp key (`docs/shm-layout.md`
/// 3.1): used only when both ends agreed to keyed stamps, zero otherwise.
pub const fn stamp_key_offset(r: usize) -> usize {
    40 + 8 * r
}
/// Offset of side `s`'s status line (0 server, 1 client): state, pid, sleeps.
pub const fn side_offset(s: usize) -> usize {
    64 + 64 * s
}
/// Offset of side `s`'s counters line: heartbeat, messages, bytes.
pub const fn counters_offset(s: usize) -> usize {
    192 + 64 * s
}

/// Side states (`state` word of a side block).
pub mod state {
    /// Nobody attached yet.
    pub const EMPTY: u32 = 0;
    /// Attached and running.
    pub const READY: u32 = 1;
    /// Closed in an orderly way; no more frames will come.
    pub const CLOSED: u32 = 2;
}

/// Total region size for rings of `capacity` bytes.
pub fn region_len(capacity: usize) -> Option<usize> {
    capacity.checked_mul(2)?.checked_add(DATA_OFFSET)
}

/// Whether `capacity` is an acceptable ring capacity.
pub fn valid_capacity(capacity: usize) -> bool {
    capacity.is_power_of_two() && (ring::MIN_CAPACITY..=ring::MAX_CAPACITY).contains(&capacity)
}

/// Typed access to the control block of a mapped region.
///
// Invariants: `base` points to at least DATA_OFFSET + 2 * capacity mapped
// bytes, page aligned, alive as long as this value (the link owns the
// region and drops it last). Every field is read through atomics, so
// concurrent writes by the other process are not a data race for us, and
// any value read is validated before use.
#[derive(Debug)]
pub struct Control {
    base: NonNull<u8>,
}

// SAFETY: only atomics are accessed through `base`.
unsafe impl Send for Control {}

/// Fields of a side's status line (u32) and counters line (u64).
#[derive(Clone, Copy, Debug)]
pub enum SideField {
    /// Status u32 at +0: [`state`].
    State,
    /// Status u32 at +4: process id.
    Pid,
    /// Status u32 at +8: 1 if this side may sleep on a futex (its peer must
    /// then do the `[WAKE]` step), 0 if it only spins.
    Sleeps,
    /// Counters u64 at +0: heartbeat counter.
    Heartbeat,
    /// Counters u64 at +8: time of the last heartbeat, µs since the Unix epoch.
    HeartbeatMicros,
    /// Counters u64 at +16: frames sent.
    Messages,
    /// Counters u64 at +24: bytes sent (records).
    Bytes,
}

impl SideField {
    /// Offset of this field for side `side` (0 or 1).
    pub const fn offset(self, side: usize) -> usize {
        let side = side & 1;
        match self {
            SideField::State => side_offset(side),
            SideField::Pid => side_offset(side) + 4,
            SideField::Sleeps => side_offset(side) + 8,
            SideField::Heartbeat => counters_offset(side),
            SideField::HeartbeatMicros => counters_offset(side) + 8,
            SideField::Messages => counters_offset(side) + 16,
            SideField::Bytes => counters_offset(side) + 24,
        }
    }
}

impl Control {
    /// # Safety
    ///
    /// `base` must satisfy the invariants above for the value's lifetime.
    pub unsafe fn new(base: NonNull<u8>) -> Self {
        Control { base }
    }

    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset + 4 <= DATA_OFFSET && offset % 4 == 0);
        // SAFETY: offsets used are constants below DATA_OFFSET, 4-aligned,
        // inside the mapping (invariants); the pointee lives as long as self.
        unsafe { super::sync::atomic_u32_at(self.base.as_ptr().add(offset)).as_ref() }
    }

    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset + 8 <= DATA_OFFSET && offset % 8 == 0);
        // SAFETY: as for `u32_at`, 8-aligned.
        unsafe { super::sync::atomic_u64_at(self.base.as_ptr().add(offset)).as_ref() }
    }

    /// Writes the header fields; called once by the creator on a zeroed
    /// region. `stamp_keys` are the rings' keys when both ends agreed to
    /// keyed stamps, `[0, 0]` otherwise.
    pub fn init(&self, region_len: usize, capacity: usize, link_id: u32, stamp_keys: [u64; 2]) {
        for (r, key) in stamp_keys.into_iter().enumerate() {
            self.u64_at(stamp_key_offset(r))
                .store(key, Ordering::Relaxed);
        }
        self.u64_at(8).store(region_len as u64, Ordering::Relaxed);
        self.u64_at(16).store(capacity as u64, Ordering::Relaxed);
        self.u64_at(24).store(DATA_OFFSET as u64, Ordering::Relaxed);
        self.u32_at(32).store(link_id, Ordering::Relaxed);
        self.u32_at(4).store(LAYOUT_VERSION, Ordering::Relaxed);
        // Release: a reader that sees the magic sees the fields above.
        self.u32_at(0).store(LINK_MAGIC, Ordering::Release);
    }

    /// Checks magic, version and sizes against what the region really is.
    /// Returns the ring capacity.
    pub fn validate(&self, region_len: usize) -> Result<usize> {
        let magic = self.u32_at(0).load(Ordering::Acquire);
        let version = self.u32_at(4).load(Ordering::Relaxed);
        let len = self.u64_at(8).load(Ordering::Relaxed);
        let cap = self.u64_at(16).load(Ordering::Relaxed);
        let data = self.u64_at(24).load(Ordering::Relaxed);
        let bad = |what: String| {
            Err(Error::protocol(
                ProtocolReason::Corrupt,
                format!("not a utp link region: {what}"),
            ))
        };
        if magic != LINK_MAGIC {
            return bad(format!("magic 0x{magic:08x}, expected 0x{LINK_MAGIC:08x}"));
        }
        if version != LAYOUT_VERSION {
            return bad(format!(
                "layout version {version}, this build speaks {LAYOUT_VERSION}"
            ));
        }
        let cap = usize::try_from(cap).unwrap_or(0);
        if !valid_capacity(cap) || data != DATA_OFFSET as u64 {
            return bad(format!("ring capacity {cap} / data offset {data}"));
        }
        if len != region_len as u64 || region_len_of(cap) != Some(region_len) {
            return bad(format!(
                "declares {len} bytes, mapped {region_len}, rings of {cap}"
            ));
        }
        Ok(cap)
    }

    /// Ring `r`'s stamp key (meaningful only if both ends agreed to keyed
    /// stamps). Read once, when the link starts using it.
    pub fn stamp_key(&self, r: usize) -> u64 {
        self.u64_at(stamp_key_offset(r & 1)).load(Ordering::Relaxed)
    }

    /// The link id written by the creator.
    pub fn link_id(&self) -> u32 {
        self.u32_at(32).load(Ordering::Relaxed)
    }

    /// A status line word (`State`, `Pid`, `Sleeps`).
    pub fn side_u32(&self, side: usize, field: SideField) -> &AtomicU32 {
        debug_assert!(matches!(
            field,
            SideField::State | SideField::Pid | SideField::Sleeps
        ));
        self.u32_at(field.offset(side))
    }

    /// A counters line word (`Heartbeat`, `HeartbeatMicros`, `Messages`, `Bytes`).
    pub fn side_u64(&self, side: usize, field: SideField) -> &AtomicU64 {
        debug_assert!(!matches!(
            field,
            SideField::State | SideField::Pid | SideField::Sleeps
        ));
        self.u64_at(field.offset(side))
    }

    /// Indices of ring `r` (0 server to client, 1 client to server).
    pub fn ring_indices(&self, r: usize) -> Indices {
        // SAFETY: ring_header_offset(r & 1) + 256 <= 1024 < DATA_OFFSET, and
        // 256-aligned within a page-aligned mapping that lives as long as
        // self (invariants), which the link in turn outlives its rings.
        unsafe { Indices::from_raw(self.base.as_ptr().add(ring_header_offset(r & 1))) }
    }
}

fn region_len_of(cap: usize) -> Option<usize> {
    region_len(cap)
}
