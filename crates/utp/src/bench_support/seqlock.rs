//! Cost per operation of the seqlock against a raw baseline, for
//! `cargo bench --bench seqlock` and the `utp bench-seqlock` command.
//!
//! The caller runs [`BenchReader::run`] in N other processes and
//! [`BenchWriter::run`] in its own, at the same time; each returns
//! operations and elapsed time. [`Mode::Raw`] does the same word copies with plain
//! Relaxed atomic stores and loads and no protocol (no sequence, no fences,
//! no clock, no waiter check): the floor the seqlock is measured against.

use crate::error::Result;
use crate::seqlock::SeqWriter;
use crate::seqlock::cell::{Cell, CellOptions};
use crate::seqlock::protocol;
use crate::shm::sync::Ordering;
use std::time::{Duration, Instant};

/// The benchmark value: 64 bytes, the last word a checksum of the others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Sample {
    /// Seven data words and their checksum.
    pub words: [u64; 8],
}

impl Sample {
    /// The sample for counter `n`, checksum included.
    pub fn new(n: u64) -> Sample {
        let mut words = [0u64; 8];
        for (i, w) in words.iter_mut().take(7).enumerate() {
            *w = n
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(i as u32 * 9)
                ^ i as u64;
        }
        words[7] = Sample::checksum(&words);
        Sample { words }
    }

    fn checksum(words: &[u64; 8]) -> u64 {
        words[..7].iter().fold(0x51ed_270b_2710_0000, |h, w| {
            (h ^ w).wrapping_mul(0x100_0000_01b3)
        })
    }

    /// Whether the checksum matches (a torn copy almost surely fails it).
    pub fn is_intact(&self) -> bool {
        self.words[7] == Sample::checksum(&self.words)
    }
}

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `SeqWriter::publish` / `SeqReader::try_read`.
    Seqlock,
    /// The same words with plain Relaxed stores/loads, no protocol.
    Raw,
}

impl Mode {
    /// `seqlock` or `raw`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Seqlock => "seqlock",
            Mode::Raw => "raw",
        }
    }
}

/// Operations done in a measured interval.
#[derive(Clone, Copy, Debug, Default)]
pub struct Count {
    /// Operations (publishes, or read attempts).
    pub ops: u64,
    /// Read attempts that had to be retried (seqlock only).
    pub retries: u64,
    /// Reads whose checksum failed: must be zero for the seqlock; for the
    /// raw copy, evidence of what the protocol prevents.
    pub torn: u64,
    /// Time taken.
    pub elapsed: Duration,
}

impl Count {
    /// Nanoseconds per operation.
    pub fn ns_per_op(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.ops.max(1) as f64
    }

    /// Nanoseconds per *consistent* read: retried attempts are cheap (they
    /// stop at the odd sequence) but deliver nothing, so they are charged
    /// to the reads that succeed.
    pub fn ns_per_good_op(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.ops.saturating_sub(self.retries).max(1) as f64
    }
}

fn run(duration: Duration, mut op: impl FnMut(&mut Count)) -> Count {
    let mut count = Count::default();
    let start = Instant::now();
    loop {
        for _ in 0..1024 {
            op(&mut count);
        }
        count.ops += 1024;
        let elapsed = start.elapsed();
        if elapsed >= duration {
            count.elapsed = elapsed;
            return count;
        }
    }
}

enum WriterKind {
    Seqlock(Box<SeqWriter<Sample>>),
    Raw(Cell),
}

/// The writing side of a benchmark: owns the cell it creates.
pub struct BenchWriter {
    kind: WriterKind,
    samples: Vec<Sample>,
    n: u64,
}

impl std::fmt::Debug for BenchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchWriter").field("n", &self.n).finish()
    }
}

impl BenchWriter {
    /// Creates the cell at `url` (removing a stale one) and, for
    /// [`Mode::Seqlock`], claims it.
    pub fn create(url: &str, mode: Mode) -> Result<BenchWriter> {
        crate::seqlock::place::Place::parse(url)?.remove()?;
        let kind = match mode {
            Mode::Seqlock => {
                let mut w = SeqWriter::<Sample>::open(url)?;
                w.publish(&Sample::new(0));
                WriterKind::Seqlock(Box::new(w))
            }
            Mode::Raw => {
                let (cell, _) = Cell::create_or_open::<Sample>(url, &CellOptions::default())?;
                if cell.header.is_blank() {
                    cell.header.init(cell.tag);
                }
                WriterKind::Raw(cell)
            }
        };
        let samples = (0..64).map(Sample::new).collect();
        Ok(BenchWriter {
            kind,
            samples,
            n: 0,
        })
    }

    /// One write: a publish, or the raw word stores (of the same samples).
    #[inline]
    pub fn write_once(&mut self) {
        self.n += 1;
        let sample = &self.samples[(self.n & 63) as usize];
        match &mut self.kind {
            WriterKind::Seqlock(w) => w.publish(sample),
            WriterKind::Raw(cell) => {
                for (w, v) in cell.header.words().iter().zip(sample.words) {
                    w.store(v, Ordering::Relaxed);
                }
            }
        }
    }

    /// Writes for `duration`.
    pub fn run(&mut self, duration: Duration) -> Count {
        run(duration, |_| self.write_once())
    }

    /// Removes the cell.
    pub fn remove(self) -> Result<()> {
        match self.kind {
            WriterKind::Seqlock(w) => w.remove(),
            WriterKind::Raw(cell) => cell.place.remove(),
        }
    }
}

/// The reading side of a benchmark.
#[derive(Debug)]
pub struct BenchReader {
    cell: Cell,
    mode: Mode,
}

impl BenchReader {
    /// Opens the cell a [`BenchWriter`] created.
    pub fn open(url: &str, mode: Mode) -> Result<BenchReader> {
        let cell = Cell::open::<Sample>(url, &CellOptions::default(), Duration::from_secs(1))?;
        Ok(BenchReader { cell, mode })
    }

    /// One read attempt; counts retries and (seqlock) torn copies.
    #[inline]
    pub fn read_once(&self, c: &mut Count) -> Sample {
        let h = &self.cell.header;
        let mut s = Sample::default();
        match self.mode {
            Mode::Seqlock => match protocol::try_read(h.seq(), h.words(), |i, w| s.words[i] = w) {
                protocol::Attempt::Consistent(_) => {
                    if !s.is_intact() {
                        c.torn += 1;
                    }
                }
                _ => c.retries += 1,
            },
            Mode::Raw => {
                for (i, w) in h.words().iter().enumerate() {
                    s.words[i] = w.load(Ordering::Relaxed);
                }
                // No protocol: a copy racing a write mixes two samples.
                if !s.is_intact() && s.words != [0; 8] {
                    c.torn += 1;
                }
            }
        }
        s
    }

    /// Reads for `duration`.
    pub fn run(&self, duration: Duration) -> Count {
        run(duration, |c| {
            std::hint::black_box(self.read_once(c));
        })
    }
}
