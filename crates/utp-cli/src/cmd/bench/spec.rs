//! What one measurement run is: the words shared by the coordinator and the
//! peer process (`utp bench-peer SPEC`, SPEC being this struct as JSON).

use serde::{Deserialize, Serialize};

/// Which implementation carries the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Impl {
    /// utp's transport for the mechanism, through `Channel` / `service`.
    Utp,
    /// The same mechanism driven directly, no framing.
    Raw,
    /// The iceoryx2 library (feature `peers`).
    Iceoryx2,
    /// The ipc-channel library (feature `peers`).
    IpcChannel,
}

impl Impl {
    /// The name used in the table and the JSON.
    pub fn label(self) -> &'static str {
        match self {
            Impl::Utp => "utp",
            Impl::Raw => "raw",
            Impl::Iceoryx2 => "iceoryx2",
            Impl::IpcChannel => "ipc-channel",
        }
    }
}

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Round trip of a request and a reply of the same size.
    Rtt,
    /// One-way streaming of many messages, acknowledged at the end.
    Stream,
    /// One-way streaming, [`BATCH`] messages handed over per call
    /// (`Channel::send_batch`; the raw baselines batch alike).
    Batch,
    /// Calculator calls end to end.
    Calc,
    /// Round trips at a fixed offered rate (`--rate`), latency corrected for
    /// coordinated omission.
    Rate,
}

impl Mode {
    /// The name used in the JSON.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Rtt => "rtt",
            Mode::Stream => "stream",
            Mode::Batch => "batch",
            Mode::Calc => "calc",
            Mode::Rate => "rate",
        }
    }
}

/// How the receiving side waits for a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Wait {
    /// Busy-polls (`spin_loop`), never sleeps.
    Spin,
    /// Sleeps in the kernel until woken (futex, read, poll).
    Block,
    /// An async task on a tokio runtime, woken through the channel's
    /// readiness descriptor (`utp::tokio`).
    Async,
}

impl Wait {
    /// The name used in the table and the JSON.
    pub fn label(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::Block => "block",
            Wait::Async => "async",
        }
    }
}

/// Everything the peer side of one run needs to know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSpec {
    /// Mechanism name from the table (`"unix"`, `"shm"`, ...).
    pub mechanism: String,
    /// Index of the mechanism in the table (several entries share a name).
    pub entry: usize,
    /// Implementation under test.
    pub implementation: Impl,
    /// What is measured.
    pub mode: Mode,
    /// Payload bytes per message.
    pub size: usize,
    /// Messages (stream), round trips or calls (rtt, calc) the client will make,
    /// warm-up included.
    pub count: u64,
    /// Stream only: the receiver acknowledges every `window` messages (0: only at the end).
    pub window: u64,
    /// Where the peer listens: a utp URL or a raw mechanism's address.
    pub address: String,
    /// The CPU the peer pins itself to, if any.
    pub cpu: Option<usize>,
    /// Whether the peer prints `ready` on stdout once it listens (false when
    /// stdin/stdout carry the messages, as for `pipe:`).
    pub announce: bool,
    /// Seconds any single wait may take before the peer gives up.
    pub idle_timeout_s: u64,
    /// Bytes of each direction's shared-memory ring (utp's `?ring=` and
    /// the raw ring's), for mechanisms that have one.
    pub ring: u64,
}

/// Messages per call in [`Mode::Batch`]: a burst a sender of small
/// messages plausibly has at hand, and what the flow-control window of a
/// datagram mechanism holds (so a batch never outruns it).
pub const BATCH: usize = 16;

/// Size of the acknowledgement a stream receiver sends back.
pub const ACK_LEN: usize = 8;

/// Size of a raw calculator message: a request or reply padded with spaces.
pub const CALC_MSG_LEN: usize = 32;
