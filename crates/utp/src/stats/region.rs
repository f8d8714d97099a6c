//! This process's counters region: created on first use, mapped for the
//! life of the process, removed at exit. All `unsafe` of the stats module
//! is here.

use super::layout::*;
use crate::DeniedReason;
use crate::error::{Error, Result};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The mapped region: `FILE_BYTES / 8` words, never unmapped.
struct Region {
    words: &'static [AtomicU64],
    used: Mutex<Vec<bool>>,
}

static REGION: OnceLock<Option<Region>> = OnceLock::new();
/// The creating process and its region file, for the exit handler.
static PATH: OnceLock<(u32, PathBuf)> = OnceLock::new();

/// Whether counters are kept in this process (`UTP_STATS=off` turns them
/// off; so does a counters directory that is not safe to use).
pub fn enabled() -> bool {
    region().is_some()
}

/// The directory of this user's counters regions:
/// `$XDG_RUNTIME_DIR/utp/stats` when `XDG_RUNTIME_DIR` is set to a
/// directory of this user, else `/tmp/utp-UID/stats`.
pub fn directory() -> PathBuf {
    let uid = rustix::process::getuid().as_raw();
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
        let runtime = PathBuf::from(runtime);
        if std::fs::symlink_metadata(&runtime).is_ok_and(|m| m.is_dir() && m.uid() == uid) {
            return runtime.join("utp").join("stats");
        }
    }
    PathBuf::from(format!("/tmp/utp-{uid}")).join("stats")
}

/// Creates `dir` (mode 0700) if missing and checks that it, and its parent
/// when that is utp's own, are directories of this user, private, not
/// symlinks: another user must not be able to read or plant counters.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    let uid = rustix::process::getuid().as_raw();
    let parent = dir.parent().unwrap_or(Path::new("/"));
    for path in [parent, dir] {
        match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("create {}", path.display()), e)),
        }
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| Error::io(format!("inspect {}", path.display()), e))?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
            return Err(Error::denied(
                DeniedReason::Unsafe,
                format!(
                    "{} must be a directory of uid {uid} with mode 0700 (it is {}, uid {}, mode {:o}); \
                 remove it and utp recreates it",
                    path.display(),
                    if meta.file_type().is_symlink() {
                        "a symlink"
                    } else if meta.is_dir() {
                        "a directory"
                    } else {
                        "a file"
                    },
                    meta.uid(),
                    meta.mode() & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

/// This process's start time in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), which tells a live owner from a reused pid.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

fn region() -> Option<&'static Region> {
    REGION
        .get_or_init(|| {
            if std::env::var("UTP_STATS").is_ok_and(|v| v == "off" || v == "0") {
                return None;
            }
            match create() {
                Ok(region) => Some(region),
                Err(e) => {
                    log::warn!("utp counters are off in this process: {e}");
                    None
                }
            }
        })
        .as_ref()
}

fn create() -> Result<Region> {
    let dir = directory();
    private_dir(&dir)?;
    sweep_dead(&dir);
    let pid = std::process::id();
    let path = dir.join(format!("{pid}.stats"));
    // A file of a dead process that had our pid: ours to replace.
    let _ = std::fs::remove_file(&path);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    file.set_len(FILE_BYTES as u64)
        .map_err(|e| Error::io(format!("size {}", path.display()), e))?;
    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    // SAFETY: a null hint lets the kernel choose a fresh range that overlaps
    // no Rust object; the length is the file's size, set just above.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            FILE_BYTES,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            &file,
            0,
        )
    }
    .map_err(|e| Error::io(format!("map {}", path.display()), e))?;
    // SAFETY: the mapping is page aligned (so aligned for u64), FILE_BYTES
    // long, readable and writable, and never unmapped (the region lives as
    // long as the process), so a 'static slice of atomics over it is valid.
    // Other processes may write it (only this user's: the file is 0600 in a
    // 0700 directory); every access is an atomic load or store, which is
    // sound under concurrent modification.
    let words: &'static [AtomicU64] =
        unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU64>(), FILE_BYTES / 8) };
    words[H_VERSION].store(VERSION, Ordering::Relaxed);
    words[H_PID].store(u64::from(pid), Ordering::Relaxed);
    words[H_BLOCK_BYTES].store(BLOCK_BYTES as u64, Ordering::Relaxed);
    words[H_BLOCKS].store(BLOCKS as u64, Ordering::Relaxed);
    words[H_START].store(start_time(pid).unwrap_or(0), Ordering::Relaxed);
    words[H_MAGIC].store(MAGIC, Ordering::Release);
    let _ = PATH.set((pid, path));
    // SAFETY: `remove_at_exit` is an `extern "C" fn()` that does not unwind
    // (it catches nothing and only removes a file, ignoring errors).
    unsafe { libc::atexit(remove_at_exit) };
    Ok(Region {
        words,
        used: Mutex::new(vec![false; BLOCKS]),
    })
}

extern "C" fn remove_at_exit() {
    // A child forked without exec inherits the handler: only the process
    // that created the region removes it.
    match PATH.get() {
        Some((pid, path)) if *pid == std::process::id() => {
            let _ = std::fs::remove_file(path);
        }
        _ => {}
    }
}

/// Removes the regions of processes that died without removing their own.
fn sweep_dead(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
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
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A live block's counters: a cheap handle, cloned into the parts of a
/// link that count (such as the shared-memory link's waits and ring fill).
/// The block is freed when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct Counters(Arc<Block>);

#[derive(Debug)]
struct Block {
    index: usize,
    /// A fixed-size array, not a slice: a counter's index is then checked
    /// when compiled, not on every count.
    words: &'static [AtomicU64; BLOCK_WORDS],
}

/// Takes a free block for a channel or listener labelled `label` (its
/// URL); `None` when counting is off or every block is taken.
pub fn register(kind: Kind, label: &str, parent: Option<&Counters>) -> Option<Counters> {
    let region = region()?;
    let index = {
        let mut used = region.used.lock().unwrap_or_else(|p| p.into_inner());
        let index = used.iter().position(|u| !u)?;
        used[index] = true;
        index
    };
    let start = (index + 1) * BLOCK_WORDS;
    let words: &'static [AtomicU64; BLOCK_WORDS] = region.words[start..start + BLOCK_WORDS]
        .try_into()
        .expect("a block is BLOCK_WORDS words");
    for word in &words[W_KIND..] {
        word.store(0, Ordering::Relaxed);
    }
    let mut cut = label.len().min(LABEL_BYTES);
    while !label.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut padded = [0u8; LABEL_BYTES];
    padded[..cut].copy_from_slice(&label.as_bytes()[..cut]);
    for (word, chunk) in words[W_LABEL..W_COUNTERS]
        .iter()
        .zip(padded.chunks_exact(8))
    {
        word.store(
            u64::from_le_bytes(chunk.try_into().expect("8 bytes")),
            Ordering::Relaxed,
        );
    }
    words[W_LABEL_LEN].store(cut as u64, Ordering::Relaxed);
    words[W_KIND].store(kind.code(), Ordering::Relaxed);
    words[W_PARENT].store(
        parent.map_or(0, |p| p.0.index as u64 + 1),
        Ordering::Relaxed,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    words[W_CREATED].store(now, Ordering::Relaxed);
    words[W_STATE].store(1, Ordering::Release);
    Some(Counters(Arc::new(Block { index, words })))
}

impl Counters {
    /// Adds `n` to counter `c`.
    ///
    /// A plain load and store, not a locked read-modify-write: each block
    /// has one writer at a time (the thread that holds the `&mut` channel
    /// or listener), so no increment is lost, and the hot path pays no
    /// atomic instruction. The words live in this process's own file, on
    /// cache lines no peer polls.
    #[inline]
    pub fn add(&self, c: Counter, n: u64) {
        let word = &self.0.words[W_COUNTERS + c as usize];
        word.store(
            word.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds `n` to counter `c` with an atomic read-modify-write, for a
    /// block several threads add to (a listener's block: its accepting
    /// thread, and each accepted channel folding in its totals as it closes).
    pub fn add_shared(&self, c: Counter, n: u64) {
        self.0.words[W_COUNTERS + c as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a level such as [`Counter::RingUsed`].
    #[inline]
    pub fn set(&self, c: Counter, value: u64) {
        self.0.words[W_COUNTERS + c as usize].store(value, Ordering::Relaxed);
    }

    /// The current value of counter `c` in this process.
    pub fn get(&self, c: Counter) -> u64 {
        self.0.words[W_COUNTERS + c as usize].load(Ordering::Relaxed)
    }

    /// Marks the block as no longer live before its counts are folded into
    /// its listener's, so a reader never counts them twice (the block is
    /// freed for reuse when the last handle drops).
    pub(crate) fn retire(&self) {
        self.0.words[W_STATE].store(0, Ordering::Release);
    }

    /// The block's index in the region (for tests and tools).
    pub fn index(&self) -> usize {
        self.0.index
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        self.words[W_STATE].store(0, Ordering::Release);
        if let Some(region) = region() {
            let mut used = region.used.lock().unwrap_or_else(|p| p.into_inner());
            used[self.index] = false;
        }
    }
}
