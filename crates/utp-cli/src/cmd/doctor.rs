//! `utp doctor`: checks this machine for what utp needs and prints, for
//! each problem, the command that fixes it.

use crate::exit::{CmdResult, Exit};
use serde_json::json;

/// Arguments of `utp doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the checks as one JSON object.
    #[arg(long)]
    json: bool,
    /// Skip the vCPU placement probe (two pinned processes, about a second).
    #[arg(long)]
    no_probe: bool,
}

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Fine.
    Ok,
    /// Worth knowing, not a problem.
    Info,
    /// A problem: something of utp will fail or misbehave.
    Problem,
}

/// One check: what was looked at, what was found, and the fix.
#[derive(Debug)]
struct Check {
    name: &'static str,
    status: Status,
    detail: String,
    fix: Option<String>,
}

fn ok(name: &'static str, detail: String) -> Check {
    Check {
        name,
        status: Status::Ok,
        detail,
        fix: None,
    }
}

fn info(name: &'static str, detail: String) -> Check {
    Check {
        name,
        status: Status::Info,
        detail,
        fix: None,
    }
}

fn problem(name: &'static str, detail: String, fix: String) -> Check {
    Check {
        name,
        status: Status::Problem,
        detail,
        fix: Some(fix),
    }
}

const MIB: u64 = 1 << 20;

fn mib(bytes: u64) -> String {
    if bytes >= 10 * 1024 * MIB {
        format!("{:.1} GiB", bytes as f64 / (1024 * MIB) as f64)
    } else {
        format!("{:.0} MiB", bytes as f64 / MIB as f64)
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_number(path: &str) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

fn mounted(mount_point: &str) -> Option<String> {
    read("/proc/mounts")?.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (_, point, fs) = (f.next()?, f.next()?, f.next()?);
        (point == mount_point).then(|| fs.to_string())
    })
}

fn dev_shm() -> Check {
    let name = "/dev/shm";
    let Some(fs) = mounted("/dev/shm") else {
        return problem(
            name,
            "not mounted: shm:// and seqlock cells cannot be created".into(),
            "sudo mount -t tmpfs -o size=1G,mode=1777 tmpfs /dev/shm".into(),
        );
    };
    let Ok(st) = rustix::fs::statvfs("/dev/shm") else {
        return problem(
            name,
            "cannot be read".into(),
            "ls -ld /dev/shm  # must be a world-writable sticky tmpfs".into(),
        );
    };
    let size = st.f_blocks * st.f_frsize;
    let free = st.f_bavail * st.f_frsize;
    let detail = format!("{fs}, {} of {} free", mib(free), mib(size));
    if free < 64 * MIB {
        problem(
            name,
            format!("{detail}: a few links of large rings will not fit"),
            "sudo mount -o remount,size=1G /dev/shm   # in Docker: run with --shm-size=1g".into(),
        )
    } else {
        ok(name, detail)
    }
}

/// The last `RemoveIPC=` of a logind.conf text (comments skipped); later
/// files override earlier ones, as logind reads them.
fn remove_ipc_in(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .filter(|(key, _)| key.trim() == "RemoveIPC")
        .map(|(_, v)| v.trim().to_string())
        .next_back()
}

fn remove_ipc() -> Check {
    let name = "systemd RemoveIPC";
    let logind_running = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == "systemd-logind")
        });
    if !logind_running {
        return ok(
            name,
            "systemd-logind is not running here: nothing removes live segments".into(),
        );
    }
    let mut setting = None;
    let mut files = vec!["/etc/systemd/logind.conf".to_string()];
    if let Ok(dir) = std::fs::read_dir("/etc/systemd/logind.conf.d") {
        let mut extra: Vec<String> = dir
            .flatten()
            .map(|e| e.path().to_string_lossy().into_owned())
            .filter(|p| p.ends_with(".conf"))
            .collect();
        extra.sort();
        files.extend(extra);
    }
    for file in &files {
        if let Some(value) = remove_ipc_in(&read(file).unwrap_or_default()) {
            setting = Some((value, file.clone()));
        }
    }
    match setting {
        Some((value, file)) if matches!(value.as_str(), "no" | "false" | "0" | "off") => {
            ok(name, format!("RemoveIPC={value} ({file})"))
        }
        other => problem(
            name,
            format!(
                "RemoveIPC={}: systemd-logind deletes the shared memory and message queues of \
                 a non-system user (uid 1000 and up) when their last session ends, under live servers",
                other.map_or_else(
                    || "yes (the default)".to_string(),
                    |(v, f)| format!("{v} ({f})")
                )
            ),
            "sudo mkdir -p /etc/systemd/logind.conf.d && printf '[Login]\\nRemoveIPC=no\\n' | \
             sudo tee /etc/systemd/logind.conf.d/utp.conf && sudo systemctl restart systemd-logind"
                .into(),
        ),
    }
}

fn rlimit(resource: rustix::process::Resource) -> (Option<u64>, Option<u64>) {
    let limit = rustix::process::getrlimit(resource);
    (limit.current, limit.maximum)
}

fn show_limit(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".into(), |v| v.to_string())
}

fn mq_limits() -> Vec<Check> {
    let dir = "/proc/sys/fs/mqueue";
    let mut out = Vec::new();
    match read_number(&format!("{dir}/msgsize_max")) {
        None => out.push(problem(
            "mq limits",
            format!("{dir} is missing: this kernel has no POSIX message queues (mq://)"),
            "use another transport, or a kernel with CONFIG_POSIX_MQUEUE".into(),
        )),
        Some(size) if size < 8192 => out.push(problem(
            "mq msgsize_max",
            format!(
                "{size} bytes, below Linux's default of 8192: mq:// payloads are limited to {} bytes",
                size.saturating_sub(32)
            ),
            "sudo sysctl -w fs.mqueue.msgsize_max=1048576".into(),
        )),
        Some(size) if size < 64 * 1024 => out.push(info(
            "mq msgsize_max",
            format!(
                "{size} bytes: mq:// payloads up to {} bytes (larger ones: \
                 sudo sysctl -w fs.mqueue.msgsize_max=1048576)",
                size - 32
            ),
        )),
        Some(size) => out.push(ok(
            "mq msgsize_max",
            format!("{size} bytes (mq:// payloads up to {} bytes)", size - 32),
        )),
    }
    if let Some(queues) = read_number(&format!("{dir}/queues_max")) {
        // Each mq:// server uses one accept queue and two per client.
        if queues < 64 {
            out.push(problem(
                "mq queues_max",
                format!(
                    "{queues}: at most {} mq:// clients on the machine",
                    queues / 2
                ),
                "sudo sysctl -w fs.mqueue.queues_max=1024".into(),
            ));
        } else {
            out.push(ok("mq queues_max", format!("{queues} queues")));
        }
    }
    // Each mq:// link has two queues of msg_max messages of up to
    // msgsize_max bytes, charged to the user that creates them.
    let limits = utp::transport::mq::limits();
    let per_link = 2 * limits.msg_max as u64 * (limits.msgsize_max as u64 + 64);
    let (soft, _) = rlimit(rustix::process::Resource::Msgqueue);
    match soft {
        Some(bytes) if bytes / per_link.max(1) < 16 => out.push(problem(
            "RLIMIT_MSGQUEUE",
            format!(
                "{bytes} bytes: room for about {} mq:// links of this user at once \
                 (two queues of {} messages of up to {} bytes each)",
                bytes / per_link.max(1),
                limits.msg_max,
                limits.msgsize_max
            ),
            "ulimit -q unlimited   # for good: a msgqueue line in /etc/security/limits.conf".into(),
        )),
        other => out.push(ok("RLIMIT_MSGQUEUE", show_limit(other))),
    }
    match mounted("/dev/mqueue") {
        Some(_) => out.push(ok(
            "/dev/mqueue",
            "mounted (utp ls can list mq:// queues)".into(),
        )),
        None => out.push(info(
            "/dev/mqueue",
            "not mounted: mq:// works, but `utp ls` cannot list queues \
             (to list them: sudo mkdir -p /dev/mqueue && sudo mount -t mqueue none /dev/mqueue)"
                .into(),
        )),
    }
    out
}

fn open_files() -> Check {
    let (soft, hard) = rlimit(rustix::process::Resource::Nofile);
    match soft {
        Some(n) if n < 4096 => problem(
            "open files (ulimit -n)",
            format!(
                "{n} (hard limit {}): a server uses one or two descriptors per client",
                show_limit(hard)
            ),
            format!(
                "ulimit -n {}   # for good: a nofile line in /etc/security/limits.conf",
                hard.map_or(65536, |h| h.min(65536))
            ),
        ),
        other => ok(
            "open files (ulimit -n)",
            format!("{} (hard limit {})", show_limit(other), show_limit(hard)),
        ),
    }
}

fn memlock() -> Check {
    let (soft, _) = rlimit(rustix::process::Resource::Memlock);
    info(
        "locked memory (ulimit -l)",
        format!(
            "{}: utp does not lock memory itself; raise it (ulimit -l) only to mlock rings",
            soft.map_or_else(|| "unlimited".into(), mib)
        ),
    )
}

fn hugepages() -> Check {
    let meminfo = read("/proc/meminfo").unwrap_or_default();
    let field = |key: &str| {
        meminfo.lines().find_map(|l| {
            l.strip_prefix(key)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
    };
    let shmem_thp = read("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    info(
        "huge pages",
        format!(
            "{} reserved of {} kB; transparent huge pages for shmem: {shmem_thp} \
             (utp's rings use normal pages)",
            field("HugePages_Total:").unwrap_or(0),
            field("Hugepagesize:").unwrap_or(0)
        ),
    )
}

fn container() -> Check {
    let cgroup = read("/proc/1/cgroup").unwrap_or_default();
    let marker = if std::path::Path::new("/.dockerenv").exists() {
        Some("docker (/.dockerenv)")
    } else if std::path::Path::new("/run/.containerenv").exists() {
        Some("podman (/run/.containerenv)")
    } else if std::env::var_os("container").is_some() {
        Some("$container is set")
    } else if ["docker", "kubepods", "lxc", "containerd"]
        .iter()
        .any(|k| cgroup.contains(k))
    {
        Some("/proc/1/cgroup")
    } else {
        None
    };
    match marker {
        Some(how) => info(
            "container",
            format!(
                "inside a container ({how}): its /dev/shm, System V and mq namespaces are \
                 private, so shm://, sysv:// and mq:// reach only processes of this container \
                 (share them with docker run --ipc=host or --ipc=container:NAME)"
            ),
        ),
        None => ok("container", "not in a container".into()),
    }
}

fn placement() -> Check {
    let name = "vCPU placement";
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return info(
            name,
            "fewer than 2 CPUs: no probe; latencies include a context switch".into(),
        );
    }
    match super::bench_seqlock::placement_probe() {
        Ok(rtt) => {
            let us = rtt.as_secs_f64() * 1e6;
            let what = if us < 0.3 {
                "near: CPUs 0 and 1 share a cache"
            } else {
                "far (or busy): cache lines cross sockets or the host is loaded; \
                 benchmark figures will vary, compare them as ratios from one run"
            };
            info(
                name,
                format!("spin round trip CPU 0 <-> 1: {us:.2} µs ({what})"),
            )
        }
        Err(e) => problem(
            name,
            format!("the probe failed: {}", describe(&e)),
            "utp doctor -v   # and check /dev/shm above".into(),
        ),
    }
}

fn describe(e: &Exit) -> String {
    match e {
        Exit::Error(text) => text.clone(),
        Exit::Failed(code) => format!("exit {code}"),
    }
}

/// Runs every check; exit 0 when there is no problem, 1 when there is.
pub fn run(args: Args) -> CmdResult {
    let mut checks = vec![dev_shm(), remove_ipc()];
    checks.extend(mq_limits());
    checks.extend([open_files(), memlock(), hugepages(), container()]);
    if !args.no_probe {
        checks.push(placement());
    }
    let problems = checks
        .iter()
        .filter(|c| c.status == Status::Problem)
        .count();
    if args.json {
        let list: Vec<serde_json::Value> = checks
            .iter()
            .map(|c| {
                json!({
                    "check": c.name,
                    "status": match c.status {
                        Status::Ok => "ok",
                        Status::Info => "info",
                        Status::Problem => "problem",
                    },
                    "detail": c.detail,
                    "fix": c.fix,
                })
            })
            .collect();
        println!("{}", json!({"problems": problems, "checks": list}));
    } else {
        for c in &checks {
            let tag = match c.status {
                Status::Ok => "ok     ",
                Status::Info => "info   ",
                Status::Problem => "PROBLEM",
            };
            println!("{tag} {}: {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                println!("        fix: {fix}");
            }
        }
        println!(
            "{}",
            match problems {
                0 => "no problems found".to_string(),
                1 => "1 problem found".to_string(),
                n => format!("{n} problems found"),
            }
        );
    }
    if problems == 0 {
        Ok(())
    } else {
        Err(Exit::Failed(1))
    }
}

#[cfg(test)]
mod tests {
    use super::remove_ipc_in;

    #[test]
    fn remove_ipc_is_read_like_logind_reads_it() {
        let default = "[Login]\n#RemoveIPC=yes\n#KillUserProcesses=no\n";
        assert_eq!(
            remove_ipc_in(default),
            None,
            "commented out: the default (yes)"
        );
        assert_eq!(
            remove_ipc_in("[Login]\nRemoveIPC=yes\nRemoveIPC = no\nRemoveIPC=no \n"),
            Some("no".into())
        );
        assert_eq!(
            remove_ipc_in("[Login]\n  RemoveIPC=no\n"),
            Some("no".into())
        );
    }
}
