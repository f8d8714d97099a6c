//! The counters region, word by word. All words are little-endian `u64`.
//!
//! ```text
//! file    = header block, then BLOCKS blocks; every block is BLOCK_BYTES (512)
//! header  = w0 magic "UTPSTAT1", w1 version 1, w2 pid, w3 block size,
//!           w4 block count, w5 process start time (clock ticks, /proc/PID/stat)
//! block   = w0 state (0 free, 1 live), w1 kind, w2 parent block (index + 1, 0: none),
//!           w3 created (Unix ms), w4 label length, w5..w32 label bytes,
//!           w32..w64 counters (Counter order), on cache lines of their own
//! ```
//!
//! A block's words are written by one thread at a time (the owner of the
//! channel or listener); readers copy the file and may see a counter a
//! moment old, never a value from another block.

/// `"UTPSTAT1"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"UTPSTAT1");
/// Layout version.
pub const VERSION: u64 = 1;
/// Bytes per block (and of the header).
pub const BLOCK_BYTES: usize = 512;
/// `u64` words per block.
pub const BLOCK_WORDS: usize = BLOCK_BYTES / 8;
/// Blocks per process; channels beyond this are not counted.
pub const BLOCKS: usize = 1023;
/// Size of a region file.
pub const FILE_BYTES: usize = BLOCK_BYTES * (BLOCKS + 1);

/// Block word: state.
pub const W_STATE: usize = 0;
/// Block word: kind.
pub const W_KIND: usize = 1;
/// Block word: parent block index + 1.
pub const W_PARENT: usize = 2;
/// Block word: creation time, Unix milliseconds.
pub const W_CREATED: usize = 3;
/// Block word: label length in bytes.
pub const W_LABEL_LEN: usize = 4;
/// Block word: first word of the label.
pub const W_LABEL: usize = 5;
/// Longest label kept (longer ones are cut at a character boundary).
pub const LABEL_BYTES: usize = (W_COUNTERS - W_LABEL) * 8;
/// Block word: first counter (the start of the block's fifth cache line).
pub const W_COUNTERS: usize = 32;
/// Counters per block.
pub const COUNTERS: usize = BLOCK_WORDS - W_COUNTERS;

/// Header words.
pub const H_MAGIC: usize = 0;
/// Header word: layout version.
pub const H_VERSION: usize = 1;
/// Header word: pid of the owner.
pub const H_PID: usize = 2;
/// Header word: block size.
pub const H_BLOCK_BYTES: usize = 3;
/// Header word: block count.
pub const H_BLOCKS: usize = 4;
/// Header word: the owner's start time, to tell a reused pid.
pub const H_START: usize = 5;

/// What a block counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A listener (its label is the endpoint it serves).
    Listener,
    /// A channel this process connected (its label is the URL it connected to).
    Client,
    /// A channel a listener accepted (its parent is the listener's block).
    Accepted,
}

impl Kind {
    /// The number stored in the block.
    pub fn code(self) -> u64 {
        match self {
            Kind::Listener => 1,
            Kind::Client => 2,
            Kind::Accepted => 3,
        }
    }

    /// The kind stored as `code`, if valid.
    pub fn from_code(code: u64) -> Option<Kind> {
        match code {
            1 => Some(Kind::Listener),
            2 => Some(Kind::Client),
            3 => Some(Kind::Accepted),
            _ => None,
        }
    }

    /// A lower-case name: `listener`, `client`, `accepted`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Listener => "listener",
            Kind::Client => "client",
            Kind::Accepted => "accepted",
        }
    }
}

/// One counter of a block, in the order of the words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Counter {
    /// Frames sent.
    FramesSent,
    /// Bytes sent (payload plus the 32-byte header, per frame).
    BytesSent,
    /// Frames received.
    FramesReceived,
    /// Bytes received (payload plus the 32-byte header, per frame).
    BytesReceived,
    /// Sends that timed out.
    SendTimeouts,
    /// Receives that timed out (idle polls count here too).
    RecvTimeouts,
    /// Invalid frames from the peer.
    ErrorsFrame,
    /// The peer closed or died.
    ErrorsPeerGone,
    /// Payloads too large to send or receive.
    ErrorsTooLarge,
    /// Non-blocking sends that found no room.
    ErrorsFull,
    /// Every other error.
    ErrorsOther,
    /// Peers a listener accepted.
    PeersAccepted,
    /// Peers a listener refused (policy: uid, permissions).
    PeersRefused,
    /// Times a side went to sleep waiting (futex waits), where the link reports them.
    Waits,
    /// Wake-ups sent to a sleeping peer, where the link reports them.
    Wakeups,
    /// Bytes in the send ring not yet read by the peer, as this side last
    /// saw it (a level, not a count; the shared-memory link samples it
    /// with each heartbeat, before a wait and at close).
    RingUsed,
    /// Capacity of the send ring in bytes (a level; both rings of a
    /// shared-memory link have the same).
    RingCapacity,
}

impl Counter {
    /// Every counter, in word order.
    pub const ALL: [Counter; 17] = [
        Counter::FramesSent,
        Counter::BytesSent,
        Counter::FramesReceived,
        Counter::BytesReceived,
        Counter::SendTimeouts,
        Counter::RecvTimeouts,
        Counter::ErrorsFrame,
        Counter::ErrorsPeerGone,
        Counter::ErrorsTooLarge,
        Counter::ErrorsFull,
        Counter::ErrorsOther,
        Counter::PeersAccepted,
        Counter::PeersRefused,
        Counter::Waits,
        Counter::Wakeups,
        Counter::RingUsed,
        Counter::RingCapacity,
    ];

    /// The snake_case name used by `utp stat --json`.
    pub fn name(self) -> &'static str {
        match self {
            Counter::FramesSent => "frames_sent",
            Counter::BytesSent => "bytes_sent",
            Counter::FramesReceived => "frames_received",
            Counter::BytesReceived => "bytes_received",
            Counter::SendTimeouts => "send_timeouts",
            Counter::RecvTimeouts => "recv_timeouts",
            Counter::ErrorsFrame => "errors_frame",
            Counter::ErrorsPeerGone => "errors_peer_gone",
            Counter::ErrorsTooLarge => "errors_too_large",
            Counter::ErrorsFull => "errors_full",
            Counter::ErrorsOther => "errors_other",
            Counter::PeersAccepted => "peers_accepted",
            Counter::PeersRefused => "peers_refused",
            Counter::Waits => "waits",
            Counter::Wakeups => "wakeups",
            Counter::RingUsed => "ring_used",
            Counter::RingCapacity => "ring_capacity",
        }
    }

    /// Whether this is a level (set, not added to), such as ring fill.
    pub fn is_level(self) -> bool {
        matches!(self, Counter::RingUsed | Counter::RingCapacity)
    }
}

const _: () = assert!(Counter::ALL.len() <= COUNTERS);
const _: () = assert!(W_COUNTERS * 8 % 64 == 0, "counters start on a cache line");
