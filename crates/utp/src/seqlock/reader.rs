//! Readers of a cell: any number, in any process, never blocking the writer.

use super::cell::{Cell, CellOptions};
use super::protocol::{self, Attempt};
use super::signal::SignalSubscription;
use super::{futex, layout};
use crate::GoneReason;
use crate::error::{Error, Result};
use crate::shm::reclaim::pid_alive;
use crate::shm::sync::{Ordering, spin_hint};
use bytemuck::Pod;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// How long a reader waits for a writer to initialise a new cell.
const INIT_WAIT: Duration = Duration::from_millis(500);
/// A sleeping [`SeqReader::wait_next`] wakes at least this often to check
/// that the writer lives.
const SLICE: Duration = Duration::from_millis(10);

/// A reader of a cell holding values of type `T`.
///
/// [`read`](Self::read) returns a consistent copy: never a mix of two
/// publishes. If the writer is mid-write the reader retries; if the
/// writer died mid-write it gets [`Error::PeerGone`] within about a
/// millisecond, and [`Error::Timeout`] if a live writer stays mid-write for
/// longer than [`CellOptions::stall_timeout`].
#[derive(Debug)]
pub struct SeqReader<T: Pod> {
    cell: Cell,
    stall: Duration,
    _value: PhantomData<fn() -> T>,
}

impl<T: Pod> SeqReader<T> {
    /// Opens the existing cell at `url` and checks it holds `T`
    /// (magic, version, size and type tag).
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &CellOptions::default())
    }

    /// [`open`](Self::open) with options (type tag, stall timeout).
    pub fn open_with(url: &str, opts: &CellOptions) -> Result<Self> {
        layout::assert_value_fits::<T>();
        Ok(SeqReader {
            cell: Cell::open::<T>(url, opts, INIT_WAIT)?,
            stall: opts.stall_timeout,
            _value: PhantomData,
        })
    }

    /// One attempt: the value and its sequence, or `None` if a write was in
    /// progress or raced the copy.
    #[inline]
    pub fn try_read(&self) -> Option<(T, u64)> {
        let mut value = T::zeroed();
        let bytes = bytemuck::bytes_of_mut(&mut value);
        let h = &self.cell.header;
        match protocol::try_read(h.seq(), h.words(), |i, w| layout::set_word(bytes, i, w)) {
            Attempt::Consistent(seq) => Some((value, seq)),
            _ => None,
        }
    }

    /// A consistent copy of the current value (the zeroed value before the
    /// first publish).
    #[inline]
    pub fn read(&self) -> Result<T> {
        self.read_seq().map(|(v, _)| v)
    }

    /// A consistent copy and its sequence number (even; `seq / 2` publishes
    /// since the cell was created).
    pub fn read_seq(&self) -> Result<(T, u64)> {
        if let Some(got) = self.try_read() {
            return Ok(got);
        }
        let mut stuck: Option<(u64, Instant)> = None;
        let mut next_check = Instant::now();
        loop {
            for _ in 0..64 {
                if let Some(got) = self.try_read() {
                    return Ok(got);
                }
                spin_hint();
            }
            let seq = self.cell.header.seq().load(Ordering::Acquire);
            if seq & 1 == 0 {
                stuck = None; // racing a busy writer: progress, keep going
                continue;
            }
            let now = Instant::now();
            let since = match stuck {
                Some((s, since)) if s == seq => since,
                _ => {
                    stuck = Some((seq, now));
                    now
                }
            };
            if now >= next_check && now - since >= Duration::from_millis(1) {
                next_check = now + Duration::from_millis(1);
                let pid = self.cell.writer_pid();
                if pid == 0 || !pid_alive(pid) {
                    return Err(Error::peer_gone(
                        GoneReason::Died,
                        format!(
                            "seqlock writer pid {pid} died mid-write (sequence {seq} stays odd); \
                         the value at {} is torn until a new writer publishes",
                            self.cell.url
                        ),
                    ));
                }
                if now - since >= self.stall {
                    return Err(Error::Timeout {
                        waiting_for: "the seqlock writer to finish a write (sequence stayed odd)",
                        after: self.stall,
                    });
                }
                std::thread::yield_now();
            }
        }
    }

    /// The value if it changed since sequence `after`, else `None`: a
    /// polling reader pays one load of the sequence word (a cache hit while
    /// nothing changes) instead of a copy.
    #[inline]
    pub fn read_if_newer(&self, after: u64) -> Result<Option<(T, u64)>> {
        if self.cell.header.seq().load(Ordering::Acquire) == after {
            return Ok(None);
        }
        self.read_seq().map(Some)
    }

    /// Waits until the sequence differs from `after` (a value from
    /// [`read_seq`](Self::read_seq), or [`sequence`](Self::sequence)), then
    /// reads. Sleeps on a futex on the sequence word after a short spin;
    /// the writer only makes a system call when a reader sleeps.
    /// [`Error::PeerGone`] if no live writer holds the cell,
    /// [`Error::Timeout`] after `timeout`.
    pub fn wait_next(&self, after: u64, timeout: Option<Duration>) -> Result<(T, u64)> {
        let h = &self.cell.header;
        let start = Instant::now();
        for _ in 0..256 {
            if h.seq().load(Ordering::Acquire) != after {
                return self.read_seq();
            }
            spin_hint();
        }
        loop {
            if protocol::arm(h.waiters(), h.seq()) != after {
                return self.read_seq();
            }
            let pid = self.cell.writer_pid();
            if pid == 0 || !pid_alive(pid) {
                return Err(Error::peer_gone(
                    GoneReason::Died,
                    format!(
                        "no live writer holds the seqlock cell {} (last writer pid {pid})",
                        self.cell.url
                    ),
                ));
            }
            let mut sleep = SLICE;
            if let Some(t) = timeout {
                let left = t.saturating_sub(start.elapsed());
                if left.is_zero() {
                    return Err(Error::Timeout {
                        waiting_for: "the next seqlock publish",
                        after: t,
                    });
                }
                sleep = sleep.min(left);
            }
            futex::wait(h.seq_futex_addr(), after as u32, sleep);
        }
    }

    /// The current sequence number (odd while a write is in progress).
    pub fn sequence(&self) -> u64 {
        self.cell.header.seq().load(Ordering::Acquire)
    }

    /// The writer's pid, if a writer holds the cell.
    pub fn writer_pid(&self) -> Option<u32> {
        Some(self.cell.writer_pid()).filter(|&p| p != 0)
    }

    /// Subscribes this process to `SIGUSR1` notices of each publish (see
    /// [`signal`](super::signal) for the limits).
    pub fn subscribe_signal(&self) -> Result<SignalSubscription<'_>> {
        SignalSubscription::new(&self.cell.header)
    }
}
