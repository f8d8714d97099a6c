//! Reclaiming links of dead servers: per-link files are named
//! `PATH.PID.RANDOM` with the server's pid, so a listener starting on PATH
//! removes those (that it owns) whose pid no longer exists. (memfd and
//! System V links are freed by the kernel with their last holder.)

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

/// If `entry` is exactly `PREFIX.PID.RANDOM` (PID decimal digits, RANDOM
/// 16 lowercase hex digits), the pid.
pub fn link_pid(entry: &str, prefix: &str) -> Option<u32> {
    let rest = entry.strip_prefix(prefix)?.strip_prefix('.')?;
    let (pid, random) = rest.split_once('.')?;
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    let hex = random.len() == 16
        && random
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !digits || !hex {
        return None;
    }
    pid.parse().ok()
}

/// Removes the per-link objects of `address` whose server pid is dead.
/// Returns how many were removed.
pub fn reclaim_stale(address: &Address) -> usize {
    match address {
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
        use std::os::unix::fs::MetadataExt;
        let ours = entry
            .metadata()
            .is_ok_and(|m| m.uid() == rustix::process::geteuid().as_raw());
        if let Some(pid) = link_pid(&name, prefix)
            && ours
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
        let r = "0123456789abcdef";
        assert_eq!(link_pid(&format!("/t/c.42.{r}"), "/t/c"), Some(42));
        // Links of file:///t/c.5 are not links of file:///t/c.
        assert_eq!(link_pid(&format!("/t/c.5.42.{r}"), "/t/c"), None);
        assert_eq!(link_pid(&format!("/t/c.5.42.{r}"), "/t/c.5"), Some(42));
        for bad in [
            "/t/c.42".to_string(),
            "/t/c.42.7".to_string(),
            format!("/t/c.+4.{r}"),
            format!("/t/c..{r}"),
            format!("/t/cx.4.{r}"),
            "/t/c.4.0123456789ABCDEF".to_string(),
            format!("/t/c.4.{r}0"),
        ] {
            assert_eq!(link_pid(&bad, "/t/c"), None, "{bad}");
        }
    }
}
