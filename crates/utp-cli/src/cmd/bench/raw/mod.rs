//! Raw baselines: each mechanism driven directly with its own system calls or
//! atomics and no utp framing, behind the same [`Link`] as utp.
//!
//! | kind | both sides | waits by |
//! |------|------------|----------|
//! | `SlotSpin` / `SlotFutex` | a mailbox per direction in POSIX shm | `spin_loop` / futex |
//! | `Ring` / `RingFutex` | an SPSC byte ring per direction in POSIX shm | `spin_loop` / futex |
//! | `UnixPath` / `UnixAbstract` / `Tcp` | one stream socket | blocking read |
//! | `UnixPathTokio` | one Unix stream socket, `tokio::net::UnixStream` | tokio's epoll |
//! | `Udp` | connected datagram sockets | blocking recv |
//! | `Pipe` | the peer's stdin and stdout | blocking read |
//! | `Fifo` | a FIFO per direction | blocking read |
//! | `Mq` | a POSIX message queue per direction | mq_timedreceive |
//! | `Inproc` | crossbeam channels between threads | looks a pause apart, then park |

pub mod fd;
pub mod inproc;
pub mod memcpy;
pub mod mq;
pub mod plain_ring;
pub mod ring;
pub mod shmem;
mod sleep;
pub mod slot;
pub mod tokio_unix;
pub mod udp;

use super::link::{Fallible, Link};
use super::spec::{PeerSpec, Wait};
use std::path::PathBuf;
use std::time::Duration;

/// A raw baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawKind {
    /// Mailbox ping-pong in shared memory, spinning.
    SlotSpin,
    /// Mailbox ping-pong in shared memory, futex wait/wake.
    SlotFutex,
    /// SPSC byte ring in shared memory, spinning.
    Ring,
    /// SPSC byte ring in shared memory, sleeping on a futex when full or empty.
    RingFutex,
    /// Unix stream socket on a path.
    UnixPath,
    /// Unix stream socket on a path, driven by tokio (the async rows).
    UnixPathTokio,
    /// Unix stream socket in the abstract namespace.
    UnixAbstract,
    /// TCP on loopback with TCP_NODELAY.
    Tcp,
    /// UDP on loopback.
    Udp,
    /// Anonymous pipes (the peer's stdin/stdout).
    Pipe,
    /// A pair of FIFOs.
    Fifo,
    /// POSIX message queues.
    Mq,
    /// Channels between two threads.
    Inproc,
}

impl RawKind {
    /// How the receiver waits.
    pub fn wait(self) -> Wait {
        match self {
            RawKind::SlotSpin | RawKind::Ring => Wait::Spin,
            RawKind::UnixPathTokio => Wait::Async,
            _ => Wait::Block,
        }
    }

    /// How this baseline is set up, for the report: what it shares with
    /// utp's side of the comparison (buffers, batching, waiting); `in_file`
    /// as for [`address`](Self::address); `ring_floor` the plan's
    /// smallest ring (`--ring`).
    pub fn describe(self, in_file: bool, ring_floor: u64) -> String {
        let prefaulted = if in_file {
            "a file in the temp directory, as utp's file:// region, prefaulted (MAP_POPULATE) on both sides"
        } else {
            "POSIX shm, prefaulted (MAP_POPULATE) on both sides"
        };
        // Derived from the plan, so the report cannot drift from what runs.
        let ring = {
            use crate::cmd::bench::{format::size, plan};
            format!(
                "{} per direction, or room for {} messages: {} at 1 MiB",
                size(plan::ring_bytes(0, ring_floor) as usize),
                plan::RING_MESSAGES,
                size(plan::ring_bytes(1 << 20, ring_floor) as usize)
            )
        };
        // The mailbox demotes as utp's link does (see `slot::SlotLink::send`).
        let demote = if utp::__bench::demote_supported() {
            format!(
                "; a message of up to {} is pushed to the shared cache once published (CLDEMOTE), as utp's link pushes a small answer",
                crate::cmd::bench::format::size(utp::__bench::SHM_DEMOTE_PAYLOAD_UP_TO)
            )
        } else {
            String::new()
        };
        let read_room = crate::cmd::bench::format::size(utp::__bench::STREAM_READ_ROOM);
        let slice_ms = utp::__bench::SHM_WAIT_SLICE.as_millis();
        let piece_kib = utp::shm::ring::PIECE / 1024;
        match self {
            RawKind::SlotSpin => format!(
                "one mailbox per direction ({prefaulted}), sequence word and length in the line of the first 48 data bytes (as utp's record carries stamp and header), receiver spins (spin_loop); copy in, copy out {UTP_SHM_COPY}{demote}"
            ),
            RawKind::SlotFutex => format!(
                "one mailbox per direction ({prefaulted}), sequence word and length in the line of the first 48 data bytes, receiver looks twice more a clock read apart (as utp's wait=block), then raises a flag and sleeps on a futex in waits of at most {slice_ms} ms (as utp's), sender wakes it only when the flag is up and takes it down (SeqCst fence, one wake-up per sleep, as utp); copy in, copy out {UTP_SHM_COPY}{demote}"
            ),
            RawKind::Ring => format!(
                "SPSC byte ring of the size utp's link gets ({ring}; {prefaulted}), each side caches the other's index, spins when full/empty; messages at utp's record stride (40 bytes in, padded to 64, the gaps not written), each published whole once there is room for all of it and stamped in its first word, which the consumer waits on, not the producer's index (as utp's records), one over {piece_kib} KiB written in pieces of {piece_kib} KiB, a progress stamp after each that a waiting consumer copies up to (as utp's links); copy in, copy out {UTP_SHM_COPY}; {RING_ASKS_AHEAD}; bytes given back once an eighth of the ring is read and whenever the ring is found empty, nothing written into the lines read (as utp's with keyed stamps)"
            ),
            RawKind::RingFutex => format!(
                "SPSC byte ring of the size utp's link gets ({ring}; {prefaulted}), cached indices, futex sleep when full/empty after two more looks a clock read apart (as utp's wait=block), in waits of at most {slice_ms} ms (as utp's), woken only when the other side sleeps, the waker taking the flag down (flag on its own line + SeqCst fence, one wake-up per sleep, as utp); messages at utp's record stride (40 bytes in, padded to 64, the gaps not written), each published whole once there is room for all of it and stamped in its first word, which the consumer waits on, not the producer's index (as utp's records), one over {piece_kib} KiB written in pieces of {piece_kib} KiB, a progress stamp after each that a waiting consumer copies up to (as utp's links); copy in, copy out {UTP_SHM_COPY}; {RING_ASKS_AHEAD}; bytes given back once an eighth of the ring is read and whenever the ring is found empty, nothing written into the lines read (as utp's with keyed stamps)"
            ),
            RawKind::UnixPath | RawKind::UnixAbstract => format!(
                "one Unix stream socket, default buffers, blocking write_all; reads of whatever has arrived into a {read_room} buffer, messages of 16 KiB or more read straight into a 64-byte-aligned place (as utp's reader)"
            ),
            RawKind::UnixPathTokio => format!(
                "one Unix stream socket driven by tokio as a tokio program drives it (tokio::net::UnixStream: registered for reading and writing, as utp's AsyncChannel registers a stream socket; a short read tells it the socket is empty), a current-thread runtime at each end, block_on per send and receive (as utp's async side); write_all; reads of whatever has arrived into a {read_room} buffer, messages of 16 KiB or more read straight into a 64-byte-aligned place (as utp's reader)"
            ),
            RawKind::Tcp => format!(
                "TCP on loopback, TCP_NODELAY, congestion control Reno (as utp on one machine), default buffers, blocking write_all; reads of whatever has arrived into a {read_room} buffer, messages of 16 KiB or more read straight into a 64-byte-aligned place (as utp's reader) in reads of at most 512 KiB"
            ),
            RawKind::Udp => {
                "connected UDP sockets, one datagram per message, blocking send/recv, acknowledged every 16 messages (as utp's row)".into()
            }
            RawKind::Pipe => {
                "the peer's stdin/stdout pipes, 256 KiB each (as utp's), blocking write_all in pieces of at most 64 KiB; blocking reads of whole messages, as many as fit in 4 KiB, into a 64-byte-aligned buffer, messages of 16 KiB or more straight into a 64-byte-aligned place in pieces of at most 64 KiB (as utp's)".into()
            }
            RawKind::Fifo => {
                "a FIFO per direction, 256 KiB each (as utp's), blocking write_all in pieces of at most 64 KiB; blocking reads of whole messages, as many as fit in 4 KiB, into a 64-byte-aligned buffer, messages of 16 KiB or more straight into a 64-byte-aligned place in pieces of at most 64 KiB (as utp's)".into()
            }
            RawKind::Mq => {
                let (depth, msg_size) = mq::queue_shape();
                format!(
                    "a POSIX queue per direction, {depth} messages of {msg_size} bytes (utp's default queue shape), blocking mq_timedsend / mq_timedreceive in waits of at most {} ms (as utp's), the receive queue watched by an epoll set (as utp's readiness)",
                    utp::transport::mq::LIVENESS_CHECK.as_millis()
                )
            }
            RawKind::Inproc => {
                format!(
                    "bounded crossbeam channels ({} deep, as utp's inproc) of byte vectors between threads, each copied {UTP_COPY} and queued in an element of utp's queued-frame size ({} bytes, the room for the header's fields not written); a receive looks a CPU pause apart for {} µs before crossbeam's blocking receive, and a send into a full queue tries again the same way before crossbeam's blocking send (as utp's); the receiver hands each vector back to the sender for reuse, one of {} B or more at a time through a small bounded queue, smaller ones in batches (as utp's)",
                    utp::__bench::INPROC_QUEUE_DEPTH,
                    utp::__bench::INPROC_MESSAGE_BYTES,
                    utp::__bench::INPROC_EARLY_LOOK_WINDOW.as_micros(),
                    utp::__bench::INPROC_SPARE_SMALLEST,
                )
            }
        }
    }

    /// Whether this is a shared-memory byte ring.
    pub fn is_ring(self) -> bool {
        matches!(self, RawKind::Ring | RawKind::RingFutex)
    }

    /// The address the client generates for this kind (`unique` is a name
    /// no other run uses); kinds whose peer picks the address get "".
    /// `in_file`: shared memory in a file in the temp directory (a path)
    /// rather than a POSIX object (a name).
    pub fn address(self, unique: &str, in_file: bool) -> String {
        let tmp = std::env::temp_dir();
        match self {
            RawKind::SlotSpin | RawKind::SlotFutex | RawKind::Ring | RawKind::RingFutex
                if in_file =>
            {
                tmp.join(format!("{unique}.region")).display().to_string()
            }
            RawKind::SlotSpin
            | RawKind::SlotFutex
            | RawKind::Ring
            | RawKind::RingFutex
            | RawKind::Mq => {
                format!("/{unique}")
            }
            RawKind::UnixPath | RawKind::UnixPathTokio => {
                tmp.join(format!("{unique}.sock")).display().to_string()
            }
            RawKind::UnixAbstract => format!("@{unique}"),
            RawKind::Fifo => tmp.join(unique).display().to_string(),
            RawKind::Inproc => unique.to_string(),
            RawKind::Tcp | RawKind::Udp | RawKind::Pipe => String::new(),
        }
    }
}

/// Largest message a run of `spec` sends (payload, acknowledgement or calculator text).
fn capacity(spec: &PeerSpec) -> usize {
    spec.size
        .max(super::spec::ACK_LEN)
        .max(super::spec::CALC_MSG_LEN)
}

/// Peer side: creates the mechanism's objects at `spec.address`, calls
/// `announce` with the address the client must use, and waits for the client.
pub fn serve(
    kind: RawKind,
    spec: &PeerSpec,
    announce: &mut dyn FnMut(&str),
) -> Fallible<Box<dyn Link>> {
    let idle = Duration::from_secs(spec.idle_timeout_s);
    let address = spec.address.as_str();
    Ok(match kind {
        RawKind::SlotSpin | RawKind::SlotFutex => {
            let region = shmem::Region::create(address, slot::region_len(capacity(spec)))?;
            announce(address);
            let futex = kind == RawKind::SlotFutex;
            Box::new(slot::SlotLink::new(
                region,
                capacity(spec),
                true,
                futex,
                idle,
            ))
        }
        RawKind::Ring | RawKind::RingFutex => {
            let capacity = spec.ring;
            let region = shmem::Region::create(address, ring::region_len(capacity)?)?;
            announce(address);
            let futex = kind == RawKind::RingFutex;
            Box::new(ring::RingLink::new(region, true, futex, idle)?)
        }
        RawKind::UnixPath | RawKind::UnixAbstract => Box::new(fd::unix_serve(address, announce)?),
        RawKind::UnixPathTokio => tokio_unix::serve(address, announce)?,
        RawKind::Tcp => Box::new(fd::tcp_serve(announce)?),
        RawKind::Udp => Box::new(udp::serve(idle, announce)?),
        RawKind::Pipe => {
            announce("");
            Box::new(fd::pipe_serve()?)
        }
        RawKind::Fifo => Box::new(fd::fifo_serve(address, announce)?),
        RawKind::Mq => Box::new(mq::serve(address, capacity(spec), idle, announce)?),
        RawKind::Inproc => Box::new(inproc::serve(address, announce)),
    })
}

/// Client side: connects to the address the peer announced. `pipes` are the
/// peer's stdin and stdout, for [`RawKind::Pipe`].
pub fn connect(
    kind: RawKind,
    spec: &PeerSpec,
    announced: &str,
    pipes: Option<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)>,
) -> Fallible<Box<dyn Link>> {
    let idle = Duration::from_secs(spec.idle_timeout_s);
    Ok(match kind {
        RawKind::SlotSpin | RawKind::SlotFutex => {
            let region = shmem::Region::open(announced)?;
            let futex = kind == RawKind::SlotFutex;
            Box::new(slot::SlotLink::new(
                region,
                capacity(spec),
                false,
                futex,
                idle,
            ))
        }
        RawKind::Ring | RawKind::RingFutex => {
            let region = shmem::Region::open(announced)?;
            let futex = kind == RawKind::RingFutex;
            Box::new(ring::RingLink::new(region, false, futex, idle)?)
        }
        RawKind::UnixPath | RawKind::UnixAbstract => Box::new(fd::unix_connect(announced)?),
        RawKind::UnixPathTokio => tokio_unix::connect(announced)?,
        RawKind::Tcp => Box::new(fd::tcp_connect(announced)?),
        RawKind::Udp => Box::new(udp::connect(announced, idle)?),
        RawKind::Pipe => {
            let (to_peer, from_peer) = pipes.ok_or("raw pipes need the peer's stdin and stdout")?;
            Box::new(fd::FdLink::pipes(from_peer, to_peer)?)
        }
        RawKind::Fifo => Box::new(fd::fifo_connect(announced)?),
        RawKind::Mq => Box::new(mq::connect(announced, idle)?),
        RawKind::Inproc => Box::new(inproc::connect(announced)?),
    })
}

/// Removes a file (socket, FIFO) when dropped; a missing file is fine.
#[derive(Debug)]
pub struct RemoveOnDrop(pub PathBuf);

/// How the raw shared-memory and in-process baselines copy payloads: as
/// utp does (`utp::__bench::copy_nonoverlapping`), so that neither pays
/// the page-aliasing penalty alone.
const UTP_COPY: &str = "with utp's copy (2 KiB pieces in rep movsb's slow window)";

/// What the ring baseline's producer does before writing a message, as
/// utp's (`utp::__bench::claim_ahead`), and its consumer while behind, as
/// utp's (`utp::shm::ring::read_ahead`).
const RING_ASKS_AHEAD: &str = "a message under 8 KiB first asks for the lines 1 KiB past it with PREFETCHW, if the consumer has given them back (as utp's producer does with a frame that does not answer one); the producer stores its index each sixteenth of the ring, and a consumer that finds it 2 KiB or more ahead (read with each batch it gives back) asks for the lines up to 2 KiB ahead with PREFETCHT0 (as utp's consumer reads ahead)";

/// How the shared-memory baselines copy: utp's copy, and into the region
/// utp's copy into shared memory, which asks for each chunk's lines ahead
/// (`utp::__bench::copy_into_shared`), as utp's link writes its rings.
const UTP_SHM_COPY: &str = "with utp's copy (2 KiB pieces in rep movsb's slow window; a copy of 8 KiB or more into shared memory asks for each 2 KiB chunk's lines ahead with PREFETCHW, as utp's)";

/// Where raw baselines read and copy: the kernel's and glibc's `rep movsb`
/// run at half speed or far less here when the destination sits 1–31 bytes
/// past the source modulo a 4 KiB page, and the allocator only promises 16
/// (docs/benchmarks/journal.md, "2026-12-03, afternoon" and "evening"); a baseline
/// that reads into wherever a vector lands is no floor. A 64-byte-aligned
/// place stays out of that window for sources at multiples of 32.
const ALIGN: usize = 64;

/// `len` bytes of `buf` starting on a 64-byte boundary, growing `buf` to hold them.
pub fn aligned(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len + ALIGN {
        buf.resize(len + ALIGN, 0);
    }
    let at = buf.as_ptr().align_offset(ALIGN);
    &mut buf[at..at + len]
}

/// Whether `fd` has something to read now (a `poll` that does not wait):
/// how the descriptor baselines' `try_recv` learns that a message has begun
/// to arrive. A hang-up or an error counts: the read that follows reports it.
pub fn readable_now(fd: impl std::os::fd::AsFd) -> Fallible<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    Ok(poll(&mut fds, Some(&now))? > 0)
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligned_places_start_on_a_line_whatever_the_vector() {
        for extra in 0..4 {
            let mut buf = vec![0u8; 100 + extra * 16];
            let place = super::aligned(&mut buf, 100);
            assert_eq!(place.as_ptr().addr() % super::ALIGN, 0);
            assert_eq!(place.len(), 100);
        }
    }
}
