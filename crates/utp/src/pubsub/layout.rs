//! The broadcast layout: byte offsets of the data region (header, then one
//! fixed-size slot per record) and of each subscriber's control block.
//! `docs/pubsub-layout.md` specifies the same numbers in prose; the vectors
//! in `docs/vectors/pubsub-*.json` are checked against these constants.

/// Layout version written at offset 4 of both regions.
pub const LAYOUT_VERSION: u32 = 1;

/// Magic at offset 0 of the data region: the bytes `UTPB`.
pub const DATA_MAGIC: u32 = u32::from_le_bytes(*b"UTPB");
/// Magic at offset 0 of a control block: the bytes `UTPC`.
pub const CONTROL_MAGIC: u32 = u32::from_le_bytes(*b"UTPC");

/// Data region header fields (offsets from the start of the region).
pub mod data {
    /// u32 magic [`DATA_MAGIC`](super::DATA_MAGIC).
    pub const MAGIC: usize = 0;
    /// u32 layout version.
    pub const VERSION: usize = 4;
    /// u32 number of slots, a power of two >= 2.
    pub const SLOT_COUNT: usize = 8;
    /// u32 bytes per slot, a multiple of 64, >= 128.
    pub const SLOT_SIZE: usize = 12;
    /// u64 total region length in bytes.
    pub const REGION_LEN: usize = 16;
    /// u32 process id of the publisher.
    pub const PUBLISHER_PID: usize = 24;
    /// u32 1 once the publisher has closed (0 while it publishes).
    pub const CLOSED: usize = 28;
    /// u64 number of messages published so far (the next message number).
    /// Own cache line: written once per publish.
    pub const TAIL: usize = 64;
    /// u32 futex word, bumped when a sleeping subscriber must wake.
    /// Own cache line: written only when someone sleeps.
    pub const WAKE: usize = 128;
    /// Bytes before the first slot.
    pub const HEADER_LEN: usize = 192;
}

/// Record fields (offsets from the start of a slot).
pub mod record {
    /// u64 stamp: 0 = never written, `2n+1` = message `n` being written,
    /// `2n+2` = message `n` complete.
    pub const STAMP: usize = 0;
    /// The 32-byte UTP frame header of the message (docs/frame.md):
    /// its sequence field is the message number `n`.
    pub const FRAME: usize = 32;
    /// Payload length inside the frame header (u32 at FRAME + 8).
    pub const PAYLOAD_LEN: usize = FRAME + 8;
    /// The payload: `slot_size - PAYLOAD` bytes of room.
    pub const PAYLOAD: usize = 64;
}

/// Control block fields (one page per subscriber, offsets from its start).
pub mod control {
    /// u32 magic [`CONTROL_MAGIC`](super::CONTROL_MAGIC).
    pub const MAGIC: usize = 0;
    /// u32 layout version.
    pub const VERSION: usize = 4;
    /// u32 subscriber id given by the publisher.
    pub const ID: usize = 8;
    /// u32 policy: 0 drop, 1 block.
    pub const POLICY: usize = 12;
    /// u32 wait mode: 0 spin, 1 block, 2 adaptive.
    pub const WAIT: usize = 16;
    /// u32 subscriber process id, from the socket credentials.
    pub const PID: usize = 20;
    /// u64 block-policy timeout in nanoseconds.
    pub const BLOCK_TIMEOUT_NS: usize = 24;
    /// u32 state: 0 active, 1 evicted by the publisher, 2 closed by the subscriber.
    pub const STATE: usize = 32;
    /// u64 next message number the subscriber will read (its cursor).
    pub const CURSOR: usize = 64;
    /// u64 messages received.
    pub const RECEIVED: usize = 72;
    /// u64 messages lost (overrun).
    pub const LOST: usize = 80;
    /// u64 0 while awake; `1 << 32 | w` while asleep on wake value `w`.
    pub const SLEEP: usize = 128;
    /// u32 1 while the publisher waits for this subscriber (block policy).
    pub const PUBLISHER_WAITING: usize = 192;
    /// Size of a control block.
    pub const LEN: usize = 4096;
}

/// Control block states.
pub mod state {
    /// Receiving.
    pub const ACTIVE: u32 = 0;
    /// Cut off by the publisher (block timeout or shutdown).
    pub const EVICTED: u32 = 1;
    /// The subscriber left.
    pub const CLOSED: u32 = 2;
}

/// The stamp of message `n` once complete.
pub const fn committed(n: u64) -> u64 {
    2 * n + 2
}

/// The stamp of message `n` while it is being written.
pub const fn writing(n: u64) -> u64 {
    2 * n + 1
}

/// Default number of slots.
pub const DEFAULT_SLOTS: u32 = 4096;
/// Default slot size (payloads up to 448 bytes).
pub const DEFAULT_SLOT_SIZE: u32 = 512;
/// Largest data region accepted (1 GiB).
pub const MAX_REGION: u64 = 1 << 30;

/// Region length for a geometry, or `None` if it is out of range.
pub fn region_len(slots: u32, slot_size: u32) -> Option<u64> {
    let ok = slots >= 2 && slots.is_power_of_two() && slot_size >= 128 && slot_size % 64 == 0;
    let len = (data::HEADER_LEN as u64).checked_add(slots as u64 * slot_size as u64)?;
    (ok && len <= MAX_REGION).then_some(len)
}
