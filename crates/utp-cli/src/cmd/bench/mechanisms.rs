//! The table of mechanisms: each entry is a utp URL template and the raw
//! baselines it is compared with. Adding a mechanism is adding a row.
//!
//! A row whose utp transport is not in this build is still listed: its utp
//! runs are skipped with a note (utp::connect answers `BadUrl` "not
//! available in this build") and its raw baselines run all the same, so once
//! the transport lands the row measures it with no change here.

use super::raw::RawKind;
use super::spec::{Mode, Wait};

/// One mechanism as the benchmark measures it.
#[derive(Clone, Copy, Debug)]
pub struct Mechanism {
    /// Name shown in the table and the JSON, and matched by `--only`.
    pub name: &'static str,
    /// How utp's receiver waits on this row (`?wait=` for the shm links).
    pub wait: Wait,
    /// utp URL, with placeholders `{name}` (unique object name), `{path}`
    /// (unique path in the temp dir), `{port}` (free loopback port), `{key}`
    /// (unique System V key), `{exe}` and `{spec}` (the peer command, for
    /// transports that spawn their peer).
    pub template: &'static str,
    /// Raw baseline for round trips and calculator calls.
    pub raw_rtt: RawKind,
    /// Raw baseline for streaming.
    pub raw_stream: RawKind,
    /// Largest payload the mechanism carries in one message.
    pub limit: Limit,
    /// Stream flow control: the receiver acknowledges every `window`
    /// messages (needed where the mechanism drops what overflows, as UDP does).
    pub window: u64,
    /// Whether the mechanism can connect two machines.
    pub crosses_machines: bool,
    /// Whether it may drop messages (datagrams): never recommended over a
    /// reliable mechanism that was measured.
    pub lossy: bool,
    /// Whether both ends live in one process (the peer is a thread).
    pub in_process: bool,
    /// Whether utp's transport spawns the peer process itself (`pipe:COMMAND`).
    pub spawns_peer: bool,
    /// Whether the shared-memory baselines map a file in the temp directory
    /// (as utp's `file://` region) rather than a POSIX shared-memory object.
    pub raw_in_file: bool,
}

/// How large one message of a mechanism may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// No limit below the sizes measured.
    None,
    /// At most this many payload bytes.
    Bytes(usize),
    /// The system's POSIX queue message limit (/proc/sys/fs/mqueue/msgsize_max),
    /// less the frame header.
    MqMsgSize,
}

impl Limit {
    /// The limit in bytes, `None` for no limit.
    pub fn bytes(self) -> Option<usize> {
        match self {
            Limit::None => None,
            Limit::Bytes(n) => Some(n),
            Limit::MqMsgSize => Some(
                std::fs::read_to_string("/proc/sys/fs/mqueue/msgsize_max")
                    .ok()
                    .and_then(|s| s.trim().parse::<usize>().ok())
                    .unwrap_or(8192)
                    .saturating_sub(utp::frame::HEADER_LEN),
            ),
        }
    }
}

/// Largest UDP payload on loopback (65535 - IP and UDP headers) less the frame header.
const UDP_MAX: usize = 65_507 - utp::frame::HEADER_LEN;

const fn row(
    name: &'static str,
    wait: Wait,
    template: &'static str,
    raw_rtt: RawKind,
    raw_stream: RawKind,
) -> Mechanism {
    Mechanism {
        name,
        wait,
        template,
        raw_rtt,
        raw_stream,
        limit: Limit::None,
        window: 0,
        crosses_machines: false,
        lossy: false,
        in_process: false,
        spawns_peer: false,
        raw_in_file: false,
    }
}

/// Every mechanism, in the order they are measured and shown. Shared-memory
/// links get the ring of [`super::plan::ring_bytes`] for the point's message
/// size (`{ring}`), as the raw ring does: 2 MiB, or room for four messages.
pub const TABLE: &[Mechanism] = &[
    row(
        "shm",
        Wait::Spin,
        "shm://{name}?wait=spin&ring={ring}",
        RawKind::SlotSpin,
        RawKind::Ring,
    ),
    row(
        "shm",
        Wait::Block,
        "shm://{name}?wait=block&ring={ring}",
        RawKind::SlotFutex,
        RawKind::RingFutex,
    ),
    row(
        "shm",
        Wait::Async,
        "shm://{name}?wait=block&ring={ring}",
        RawKind::SlotFutex,
        RawKind::RingFutex,
    ),
    row(
        "sysv",
        Wait::Spin,
        "sysv://{key}?wait=spin&ring={ring}",
        RawKind::SlotSpin,
        RawKind::Ring,
    ),
    Mechanism {
        raw_in_file: true,
        ..row(
            "file",
            Wait::Spin,
            "file://{path}.region?wait=spin&ring={ring}",
            RawKind::SlotSpin,
            RawKind::Ring,
        )
    },
    row(
        "unix",
        Wait::Block,
        "unix://{path}.sock",
        RawKind::UnixPath,
        RawKind::UnixPath,
    ),
    row(
        "unix",
        Wait::Async,
        "unix://{path}.sock",
        RawKind::UnixPathTokio,
        RawKind::UnixPathTokio,
    ),
    row(
        "abstract",
        Wait::Block,
        "unix://@{name}",
        RawKind::UnixAbstract,
        RawKind::UnixAbstract,
    ),
    Mechanism {
        crosses_machines: true,
        ..row(
            "tcp",
            Wait::Block,
            "tcp://127.0.0.1:{port}",
            RawKind::Tcp,
            RawKind::Tcp,
        )
    },
    Mechanism {
        crosses_machines: true,
        lossy: true,
        limit: Limit::Bytes(UDP_MAX),
        window: 16,
        ..row(
            "udp",
            Wait::Block,
            "udp://127.0.0.1:{port}",
            RawKind::Udp,
            RawKind::Udp,
        )
    },
    Mechanism {
        spawns_peer: true,
        ..row(
            "pipe",
            Wait::Block,
            "pipe:{exe} bench-peer {spec}",
            RawKind::Pipe,
            RawKind::Pipe,
        )
    },
    row(
        "fifo",
        Wait::Block,
        "fifo://{path}",
        RawKind::Fifo,
        RawKind::Fifo,
    ),
    Mechanism {
        limit: Limit::MqMsgSize,
        ..row("mq", Wait::Block, "mq://{name}", RawKind::Mq, RawKind::Mq)
    },
    Mechanism {
        in_process: true,
        ..row(
            "inproc",
            Wait::Block,
            "inproc://{name}",
            RawKind::Inproc,
            RawKind::Inproc,
        )
    },
];

/// Names accepted by `--only`: each table name, plus `memcpy`. (Peer
/// libraries run beside the `shm` rows.)
pub fn known_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = TABLE.iter().map(|m| m.name).collect();
    names.dedup();
    names.push("memcpy");
    names
}

/// Round trips above this many bytes use the streaming baseline where it is a
/// shared-memory ring: a mailbox rewritten in place makes every large reply
/// invalidate lines the peer still holds, while a ring writes fresh lines, as
/// utp's does; measured, the ring is the faster floor there and the mailbox
/// below it.
pub const RING_RTT_ABOVE: usize = 4096;

impl Mechanism {
    /// The raw baseline of `mode` at `size` bytes.
    pub fn raw_kind(&self, mode: Mode, size: usize) -> RawKind {
        match mode {
            Mode::Stream | Mode::Batch => self.raw_stream,
            Mode::Rtt if size > RING_RTT_ABOVE && self.raw_stream.is_ring() => self.raw_stream,
            // Fixed-rate requests overlap, and a mailbox holds one message:
            // the ring, as utp's link is one.
            Mode::Rate if self.raw_stream.is_ring() => self.raw_stream,
            Mode::Rtt | Mode::Calc | Mode::Rate => self.raw_rtt,
        }
    }

    /// Whether utp sends a batch with less than a loop of sends costs, so
    /// that [`Mode::Batch`] is measured: shared-memory links (one clock
    /// read and one count per batch), sockets, pipes and FIFOs (one system
    /// call per run of frames). Message queues and in-process channels
    /// send a batch frame by frame: their batch would be their stream.
    pub fn sends_batches(&self) -> bool {
        !matches!(self.raw_stream, RawKind::Mq | RawKind::Inproc)
    }

    /// Messages each direction is sure to hold, as far as the fixed-rate
    /// client needs to know (it never has more requests in flight than
    /// this, so no send of either side waits for the other to read):
    /// a message queue's depth (utp's default, the raw queue's too), a
    /// datagram mechanism's flow-control window, else no limit that
    /// matters (rings, sockets and pipes hold hundreds of small messages).
    pub fn holds_in_flight(&self) -> usize {
        if self.raw_rtt == RawKind::Mq {
            super::raw::mq::queue_shape().0
        } else if self.window > 0 {
            self.window as usize
        } else {
            usize::MAX
        }
    }
}

/// Whether `size` fits in one message of `mechanism`.
pub fn fits(mechanism: &Mechanism, size: usize) -> bool {
    mechanism.limit.bytes().is_none_or(|max| size <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed-rate requests overlap: shared memory runs against the raw
    /// ring (a mailbox holds one message), and the client's window fits
    /// what each mechanism holds.
    #[test]
    fn fixed_rate_runs_use_rings_and_a_window_each_mechanism_holds() {
        for m in TABLE {
            let kind = m.raw_kind(Mode::Rate, 64);
            if m.raw_stream.is_ring() {
                assert!(kind.is_ring(), "{}: {kind:?}", m.name);
            }
            let window = m.holds_in_flight();
            match m.name {
                "mq" => assert_eq!(window, super::super::raw::mq::queue_shape().0),
                "udp" => assert_eq!(window, m.window as usize),
                _ => assert_eq!(window, usize::MAX, "{}", m.name),
            }
            assert!(window >= 1);
        }
    }

    #[test]
    fn every_template_names_a_unique_object() {
        for m in TABLE {
            assert!(
                ["{name}", "{path}", "{port}", "{key}", "{spec}"]
                    .iter()
                    .any(|p| m.template.contains(p)),
                "{} has no unique placeholder",
                m.name
            );
        }
    }

    #[test]
    fn udp_refuses_what_a_datagram_cannot_hold() {
        let udp = TABLE.iter().find(|m| m.name == "udp").unwrap();
        assert!(fits(udp, 1024));
        assert!(!fits(udp, 65536));
        assert!(known_names().contains(&"memcpy"));
        let mq = TABLE.iter().find(|m| m.name == "mq").unwrap();
        assert!(fits(mq, 64) && !fits(mq, 1 << 30));
    }
}
