//! Reclaiming links of dead servers: per-link POSIX objects and files are
//! named with the server's pid, so a listener starting on a name removes
//! those whose pid no longer exists. (System V links are private segments
//! already marked for removal; the kernel reclaims them.)

use crate::endpoint::Address;
use std::path::Path;

/// Whether process `pid` exists (signal 0 does not fail with ESRCH).
pub fn pid_alive(pid: u32) -> bool {
    match rustix::process::Pid::from_raw(pid as i32) {
        Some(p) => rustix::process::test_kill_process(p) != Err(rustix::io::Errno::SRCH),
        None => false,
    }
}

/// If `entry` is `PREFIX.PID.N`, the pid.
pub fn link_pid(entry: &str, prefix: &str) -> Option<u32> {
    let rest = entry.strip_prefix(prefix)?.strip_prefix('.')?;
    let (pid, n) = rest.split_once('.')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Removes the per-link objects of `address` whose server pid is dead.
/// Returns how many were removed.
pub fn reclaim_stale(address: &Address) -> usize {
    match address {
        Address::Shm(name) => reclaim_in(Path::new("/dev/shm"), &format!("utp.{name}"), |e| {
            super::region::unlink_posix(&format!("/{e}"))
        }),
        Address::File(path) => {
            let (Some(dir), Some(file)) = (path.parent(), path.file_name()) else {
                return 0;
            };
            let file = file.to_string_lossy().into_owned();
            reclaim_in(dir, &file, |e| {
                let _ = std::fs::remove_file(dir.join(e));
            })
        }
        _ => 0,
    }
}

fn reclaim_in(dir: &Path, prefix: &str, remove: impl Fn(&str)) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = link_pid(&name, prefix)
            && !pid_alive(pid)
        {
            remove(&name);
            removed += 1;
        }
    }
    removed
}
