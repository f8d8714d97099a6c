//! Reading a cell from outside, for `utp inspect`: no type needed, only
//! reads, every field validated.

use super::layout::{
    CELL_MAGIC, CELL_VERSION, Header, OFF_LEN, OFF_SIZE, OFF_TAG, SIGNAL_SLOTS, region_len,
};
use super::place::Place;
use crate::ProtocolReason;
use crate::error::{Error, Result};
use crate::frame::now_micros;
use crate::shm::reclaim::pid_alive;
use crate::shm::sync::Ordering;
use std::ptr::NonNull;
use std::time::Duration;

/// A cell's state as read from its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellState {
    /// Where the cell lives.
    pub location: String,
    /// Value size in bytes.
    pub value_size: usize,
    /// Type tag.
    pub tag: u64,
    /// Sequence number (odd: a write in progress, or a writer died mid-write).
    pub sequence: u64,
    /// Pid of the writer holding the claim (0: none).
    pub writer_pid: u32,
    /// Whether that pid exists.
    pub writer_alive: bool,
    /// Time since the last publish (coarse clock, ~4 ms resolution).
    pub update_age: Option<Duration>,
    /// Pids subscribed to `SIGUSR1` notices.
    pub signal_subscribers: Vec<u32>,
}

/// Reads the header of the cell at `url`.
pub fn cell_state(url: &str) -> Result<CellState> {
    let place = Place::parse(url)?;
    let len = place.existing_len()?.ok_or_else(|| Error::NotFound {
        endpoint: url.into(),
        reason: "no seqlock cell there".into(),
    })?;
    let region = place.open(len)?;
    let base = NonNull::new(region.as_ptr()).ok_or(Error::Closed)?;
    // SAFETY: `region` maps `len >= 4096 == region_len(1)` page-aligned bytes
    // (Place::open checked the size) and outlives `probe` (declared later).
    let probe = unsafe { Header::new(base, len, 1) };
    let magic = probe.u32_at(0).load(Ordering::Acquire);
    let version = probe.u32_at(4).load(Ordering::Relaxed);
    if magic != CELL_MAGIC || version != CELL_VERSION {
        return Err(Error::protocol(
            ProtocolReason::Version,
            format!(
                "{place} is not a utp seqlock cell v{CELL_VERSION} (magic 0x{magic:08x}, version {version})"
            ),
        ));
    }
    let size = probe.u32_at(OFF_SIZE).load(Ordering::Relaxed) as usize;
    let declared = probe.u64_at(OFF_LEN).load(Ordering::Relaxed);
    if region_len(size).ok() != Some(len) || declared != len as u64 {
        return Err(Error::protocol(
            ProtocolReason::Corrupt,
            format!("{place}: value size {size} and length {declared} do not fit its {len} bytes"),
        ));
    }
    let writer_pid = probe.writer().load(Ordering::Relaxed);
    let updated = probe.updated().load(Ordering::Relaxed);
    Ok(CellState {
        location: place.to_string(),
        value_size: size,
        tag: probe.u64_at(OFF_TAG).load(Ordering::Relaxed),
        sequence: probe.seq().load(Ordering::Acquire),
        writer_pid,
        writer_alive: writer_pid != 0 && pid_alive(writer_pid),
        update_age: (updated != 0)
            .then(|| Duration::from_micros(now_micros().saturating_sub(updated))),
        signal_subscribers: (0..SIGNAL_SLOTS)
            .map(|i| probe.signal_slot(i).load(Ordering::Relaxed))
            .filter(|&p| p != 0)
            .collect(),
    })
}

/// The POSIX seqlock cells on this machine (`/dev/shm/utp.cell.*`), as
/// `shm://NAME` URLs with their state, for `utp ls`.
pub fn list_cells() -> Vec<(String, Result<CellState>)> {
    let mut names: Vec<String> = std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("utp.cell.").map(String::from)
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let url = format!("shm://{n}");
            let state = cell_state(&url);
            (url, state)
        })
        .collect()
}
