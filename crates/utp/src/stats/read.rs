//! Reading the counters regions of live processes (what `utp stat` does).
//!
//! A region is copied with one `read` and parsed from the copy, so a
//! region that another process shrinks or scribbles on cannot crash the
//! reader; every length and index in it is checked.

use super::layout::*;
use super::region::{directory, start_time};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One live block as read from a region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSnapshot {
    /// Index of the block in its region.
    pub index: usize,
    /// What the block counts.
    pub kind: Kind,
    /// Index of the listener block this accepted channel belongs to.
    pub parent: Option<usize>,
    /// When the block was taken, Unix milliseconds.
    pub created_ms: u64,
    /// The endpoint URL.
    pub label: String,
    /// Counter values, in [`Counter::ALL`] order.
    pub counters: Vec<u64>,
}

impl BlockSnapshot {
    /// The value of counter `c`.
    pub fn get(&self, c: Counter) -> u64 {
        self.counters.get(c as usize).copied().unwrap_or(0)
    }
}

/// The counters of one live process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessStats {
    /// The process.
    pub pid: u32,
    /// Its user.
    pub uid: u32,
    /// The region file.
    pub path: PathBuf,
    /// Its live blocks.
    pub blocks: Vec<BlockSnapshot>,
}

/// Directories that may hold regions this user can read: the user's own,
/// and every user's when running as root.
fn directories() -> Vec<PathBuf> {
    let mut dirs = vec![directory()];
    if rustix::process::getuid().is_root() {
        for (base, tail) in [("/tmp", "stats"), ("/run/user", "utp/stats")] {
            let Ok(entries) = std::fs::read_dir(base) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if base == "/tmp" && !name.starts_with("utp-") {
                    continue;
                }
                let dir = entry.path().join(tail);
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
    }
    dirs
}

/// The counters of every live utp process this user can read.
pub fn read_all() -> Vec<ProcessStats> {
    let mut all = Vec::new();
    for dir in directories() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".stats"))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(stats) = read_file(&entry.path(), pid) {
                all.push(stats);
            }
        }
    }
    all.sort_by_key(|p| p.pid);
    all
}

/// The counters of process `pid`, if it is live and keeps counters.
pub fn read_process(pid: u32) -> Option<ProcessStats> {
    directories()
        .into_iter()
        .find_map(|dir| read_file(&dir.join(format!("{pid}.stats")), pid))
}

fn read_file(path: &Path, pid: u32) -> Option<ProcessStats> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut bytes = Vec::with_capacity(FILE_BYTES);
    file.take(FILE_BYTES as u64).read_to_end(&mut bytes).ok()?;
    let word = |i: usize| -> u64 {
        bytes
            .get(i * 8..i * 8 + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    if bytes.len() < FILE_BYTES
        || word(H_MAGIC) != MAGIC
        || word(H_VERSION) != VERSION
        || word(H_PID) != u64::from(pid)
        || word(H_BLOCK_BYTES) != BLOCK_BYTES as u64
        || word(H_BLOCKS) != BLOCKS as u64
    {
        return None;
    }
    // A dead owner, or a new process that reused its pid: not live counters.
    let started = word(H_START);
    if start_time(pid).is_none_or(|now| started != 0 && now != started) {
        return None;
    }
    let mut blocks = Vec::new();
    for index in 0..BLOCKS {
        let base = (index + 1) * BLOCK_WORDS;
        if word(base + W_STATE) != 1 {
            continue;
        }
        let Some(kind) = Kind::from_code(word(base + W_KIND)) else {
            continue;
        };
        let len = (word(base + W_LABEL_LEN) as usize).min(LABEL_BYTES);
        let start = (base + W_LABEL) * 8;
        let label = String::from_utf8_lossy(&bytes[start..start + len]).into_owned();
        let parent = match word(base + W_PARENT) {
            0 => None,
            p => Some(p as usize - 1).filter(|&p| p < BLOCKS),
        };
        blocks.push(BlockSnapshot {
            index,
            kind,
            parent,
            created_ms: word(base + W_CREATED),
            label,
            counters: (0..Counter::ALL.len())
                .map(|c| word(base + W_COUNTERS + c))
                .collect(),
        });
    }
    Some(ProcessStats {
        pid,
        uid: meta.uid(),
        path: path.to_path_buf(),
        blocks,
    })
}
