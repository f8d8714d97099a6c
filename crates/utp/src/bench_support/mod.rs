//! Benchmark support for `utp bench-seqlock` and `cargo bench --bench
//! seqlock`: not part of the API, not covered by semver.
//!
//! It lives in the library, hidden, rather than in `utp-cli` because it
//! measures the seqlock cell from the inside (the raw baseline writes the
//! cell's words with the protocol taken out), which needs the cell's
//! private layout. Moving it out would mean making that layout public.

pub mod probe;
pub mod seqlock;

/// utp's byte copy (module `copy`: `memcpy`, in pieces where `rep movsb`
/// would be slow), raw and into a new vector, and its copy into shared
/// memory (`copy_into_shared`: from 8 KiB, each chunk's lines asked for in
/// a writable state ahead of the copy). The raw shared-memory and
/// in-process baselines copy with them, so that a baseline never pays a
/// penalty utp does not.
pub use crate::copy::{copy_into_shared, copy_nonoverlapping, to_vec as copy_to_vec};

/// How utp's ring producer asks for the lines of a later record before it
/// writes one under 8 KiB (`claim::ahead`); the raw ring does the same, so
/// its producer never waits on lines utp's has already asked for.
pub use crate::claim::{AHEAD as CLAIM_AHEAD, ahead as claim_ahead};

/// How utp's shared-memory link pushes a small answer to the shared cache
/// once published (module `demote`): a frame of at most
/// [`SHM_DEMOTE_PAYLOAD_UP_TO`] payload bytes sent right after a receive.
/// The raw shared-memory mailbox demotes its messages by the same rule, so
/// a baseline never waits on a cache snoop that utp avoids.
pub use crate::demote::{lines as demote_lines, supported as demote_supported};

/// The largest payload whose record utp's link demotes
/// (`demote::RECORD_UP_TO` less the record's stamp and header).
pub const SHM_DEMOTE_PAYLOAD_UP_TO: usize =
    crate::demote::RECORD_UP_TO - crate::shm::ring::PAYLOAD_OFFSET;

/// How a stream channel reads sockets (module `transport::stream::inbox`):
/// reads of whatever has arrived, up to [`STREAM_READ_ROOM`] bytes at a
/// time, and payloads of [`STREAM_DIRECT_READ_MIN`] bytes or more straight
/// into their own place, over TCP in reads of at most
/// [`STREAM_TCP_READ_PIECE`]. The raw socket baselines read the same way,
/// so a baseline never makes more system calls per message than utp.
pub use crate::transport::stream::inbox::{
    BUFFER_ROOM as STREAM_READ_ROOM, DIRECT_READ_MIN as STREAM_DIRECT_READ_MIN,
    TCP_READ_PIECE as STREAM_TCP_READ_PIECE,
};

/// How a stream channel reads pipes and FIFOs: whole frames the size of the
/// last, as many as fit in a page (`stream_pipe_read_len(frame length)`
/// bytes a read). The raw pipe and FIFO baselines read their messages the
/// same way.
pub use crate::transport::stream::inbox::pipe_read_len as stream_pipe_read_len;

/// How a stream channel writes a batch's run of frames (module
/// `transport::stream::batch`): copied into one buffer when the run comes
/// to [`STREAM_COALESCE_RUN_MAX`] bytes or less or its payloads are each
/// [`STREAM_COALESCE_PAYLOAD_MAX`] or less, vectored otherwise. The raw
/// descriptor baselines write a batch the same way.
pub use crate::transport::stream::batch::{
    COALESCE_PAYLOAD_MAX as STREAM_COALESCE_PAYLOAD_MAX,
    COALESCE_RUN_MAX as STREAM_COALESCE_RUN_MAX,
};

/// What utp's `tcp://` connections between two sockets of one machine
/// send with (module `transport::tcp::congestion`): the raw TCP baseline
/// sets the same, so a baseline never pays for a pacing default utp avoids.
pub use crate::transport::tcp::congestion::LOCAL_DEFAULT as TCP_LOCAL_CONGESTION;

/// The longest single futex sleep of a waiting shared-memory link
/// (module `shm::wait`): the raw shared-memory baselines sleep in waits of
/// the same length, because on the measured guest the distance of a
/// sleeper's timer changed how fast it was woken.
pub use crate::shm::wait::SLICE as SHM_WAIT_SLICE;

/// Bytes of one frame in an `inproc://` queue (the payload vector and the
/// header fields beside it): the raw in-process baseline queues its
/// vectors in elements of this size, so both queues have slots of one
/// size (crossbeam's slot geometry moved the 4 KiB stream by a fifth).
pub const INPROC_MESSAGE_BYTES: usize = crate::transport::inproc::MESSAGE_BYTES;

/// Frames an `inproc://` queue holds per direction before a send waits:
/// the raw in-process baseline's queues hold as many.
pub const INPROC_QUEUE_DEPTH: usize = crate::transport::inproc::QUEUE_DEPTH;

/// How `inproc://` waits (module `transport::queue`): a receive looks at
/// the queue a CPU pause apart for [`INPROC_EARLY_LOOK_WINDOW`]
/// ([`inproc_look_first`]) before crossbeam's blocking receive; a send
/// ([`inproc_send`]) that finds the queue full looks again, further
/// apart, for the room [`inproc_room_awaited`] gives for its payload,
/// then takes any room, before crossbeam's blocking send. The raw
/// in-process baseline waits the same way.
pub use crate::transport::queue::{
    EARLY_LOOK_WINDOW as INPROC_EARLY_LOOK_WINDOW, Looked as InprocLooked,
    look_first as inproc_look_first, send as inproc_send,
};

/// The room an `inproc://` send at a full queue waits for while it
/// looks, for a payload of this many bytes (see [`inproc_send`]).
pub fn inproc_room_awaited(payload_len: usize) -> usize {
    crate::transport::inproc::room_awaited(payload_len)
}

/// How `inproc://` reuses payload vectors (module `transport::spares`):
/// a receiver hands the buffer its previous message held back to the
/// sender ([`InprocReturns::give_back`]) through small bounded queues
/// ([`inproc_spares`]), one at a time from [`INPROC_SPARE_SMALLEST`]
/// bytes up and in batches below, and a sender fills one when it can
/// ([`InprocSupply::filled`]). The raw in-process baseline does the same.
pub use crate::transport::spares::{
    Returns as InprocReturns, SMALLEST as INPROC_SPARE_SMALLEST, Supply as InprocSupply,
    queue as inproc_spares,
};

pub use seqlock::{BenchReader, BenchWriter, Count, Mode, Sample};
