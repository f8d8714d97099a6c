//! Cost per operation of the seqlock against a raw baseline, for
//! `cargo bench --bench seqlock` and the `utp bench-seqlock` command.
//!
//! The caller runs [`reader`] in N other processes and [`writer`] in its
//! own, at the same time, for the same duration; each returns operations
//! and elapsed time. [`Mode::Raw`] does the same word copies with plain
//! Relaxed atomic stores and loads and no protocol (no sequence, no fences,
//! no clock, no waiter check): the floor the seqlock is measured against.

use super::SeqWriter;
use super::cell::{Cell, CellOptions};
use super::protocol;
use crate::error::Result;
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
    /// Consistent reads whose checksum failed (must be zero).
    pub torn: u64,
    /// Time taken.
    pub elapsed: Duration,
}

impl Count {
    /// Nanoseconds per operation.
    pub fn ns_per_op(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.ops.max(1) as f64
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

/// Publishes for `duration` into the cell at `url` (created if needed).
pub fn writer(url: &str, mode: Mode, duration: Duration) -> Result<Count> {
    let mut n = 0u64;
    match mode {
        Mode::Seqlock => {
            let mut w = SeqWriter::<Sample>::open(url)?;
            let samples: Vec<Sample> = (0..64).map(Sample::new).collect();
            Ok(run(duration, |_| {
                n += 1;
                w.publish(&samples[(n & 63) as usize]);
            }))
        }
        Mode::Raw => {
            let (cell, _) = Cell::create_or_open::<Sample>(url, &CellOptions::default())?;
            if cell.header.is_blank() {
                cell.header.init(cell.tag);
            }
            let words = cell.header.words();
            Ok(run(duration, |_| {
                n += 1;
                for (i, w) in words.iter().enumerate() {
                    w.store(n ^ i as u64, Ordering::Relaxed);
                }
            }))
        }
    }
}

/// Reads for `duration` from the cell at `url`, checking every consistent
/// copy's checksum (seqlock mode).
pub fn reader(url: &str, mode: Mode, duration: Duration) -> Result<Count> {
    match mode {
        Mode::Seqlock => {
            let cell = Cell::open::<Sample>(url, &CellOptions::default(), Duration::from_secs(1))?;
            let h = &cell.header;
            Ok(run(duration, |c| {
                let mut s = Sample::default();
                match protocol::try_read(h.seq(), h.words(), |i, w| s.words[i] = w) {
                    protocol::Attempt::Consistent(seq) => {
                        if seq != 0 && !s.is_intact() {
                            c.torn += 1;
                        }
                    }
                    _ => c.retries += 1,
                }
                std::hint::black_box(&s);
            }))
        }
        Mode::Raw => {
            let cell = Cell::open::<Sample>(url, &CellOptions::default(), Duration::from_secs(1))?;
            let words = cell.header.words();
            Ok(run(duration, |_| {
                let mut s = Sample::default();
                for (i, w) in words.iter().enumerate() {
                    s.words[i] = w.load(Ordering::Relaxed);
                }
                std::hint::black_box(&s);
            }))
        }
    }
}
