//! Reclaiming links of dead servers: per-link POSIX objects and files are
//! named with the server's pid, so a listener starting on a name removes
//! those whose pid no longer exists. (System V links are private segments
//! already marked for removal; the kernel reclaims them.)

use crate::endpoint::Address;
use std::path::Path;

/// Whether process `pid` exists (signal 0 does not fail with ESRCH).
pub fn pid_alive(pid: u32) -> bool {
    // A pid read from shared memory is untrusted: above i32::MAX it would be
    // negative (a process group for kill(2)), and rustix asserts on it.
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match rustix::process::Pid::from_raw(raw) {
        Some(p) => rustix::process::test_kill_process(p) != Err(rustix::io::Errno::SRCH),
        None => false,
    }
}

/// If `entry` is exactly `PREFIX.PID.N` (PID and N decimal digits), the pid.
pub fn link_pid(entry: &str, prefix: &str) -> Option<u32> {
    let rest = entry.strip_prefix(prefix)?.strip_prefix('.')?;
    let (pid, n) = rest.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
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

#[cfg(test)]
mod tests {
    use super::link_pid;

    #[test]
    fn link_names_parse_exactly() {
        assert_eq!(link_pid("utp.calc.42.7", "utp.calc"), Some(42));
        // Links of shm://calc.5 are not links of shm://calc.
        assert_eq!(link_pid("utp.calc.5.42.7", "utp.calc"), None);
        assert_eq!(link_pid("utp.calc.5.42.7", "utp.calc.5"), Some(42));
        for bad in [
            "utp.calc.42",
            "utp.calc.+4.7",
            "utp.calc.4.",
            "utp.calc..7",
            "utp.calcx.4.7",
            "utp.calc.4.7/..",
        ] {
            assert_eq!(link_pid(bad, "utp.calc"), None, "{bad}");
        }
    }
}
