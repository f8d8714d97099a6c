//! Re-executing the test binary as a peer process: the child runs
//! `child_entry` with its role, URL and argument in `UTP_CHILD_*`, and
//! reports progress as tagged lines on stdout (`READY`, `BLOCKED`, `ERR ...`,
//! `DONE ...`, `FAIL ...`). Shared by the shm and seqlock process tests.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Lines a child prints for the parent; anything else (test harness output) is skipped.
const TAGS: [&str; 5] = ["READY", "BLOCKED", "ERR", "DONE", "FAIL"];

/// A name unique to this process and call: `p<pid>-<tag>-<n>`.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "p{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// In a child: its (role, url, arg); `None` in a normal test run.
pub fn role() -> Option<(String, String, String)> {
    let role = std::env::var("UTP_CHILD_ROLE").ok()?;
    let url = std::env::var("UTP_CHILD_URL").unwrap_or_default();
    let arg = std::env::var("UTP_CHILD_ARG").unwrap_or_default();
    Some((role, url, arg))
}

/// Prints one tagged line for the parent, flushed at once.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A child process (this test binary, `child_entry`), SIGKILLed when dropped.
pub struct Proc {
    pub child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    pub fn spawn(role: &str, url: &str, arg: &str) -> Proc {
        Proc::spawn_with(
            Command::new(std::env::current_exe().unwrap()),
            role,
            url,
            arg,
        )
    }

    /// Like [`spawn`](Self::spawn), as uid and gid 65534 (nobody) through
    /// `setpriv`, without `XDG_RUNTIME_DIR` unless `env` sets it. Needs root.
    pub fn spawn_as_nobody(role: &str, url: &str, arg: &str, env: &[(&str, &str)]) -> Proc {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(std::env::current_exe().unwrap())
            .env_remove("XDG_RUNTIME_DIR");
        for (k, v) in env {
            command.env(k, v);
        }
        Proc::spawn_with(command, role, url, arg)
    }

    /// Runs `wrapper` (e.g. `unshare -m sh -c '...; exec "$0" "$@"'`) with
    /// the test binary and its child arguments appended.
    pub fn spawn_wrapped(wrapper: &[&str], role: &str, url: &str, arg: &str) -> Proc {
        let mut command = Command::new(wrapper[0]);
        command
            .args(&wrapper[1..])
            .arg(std::env::current_exe().unwrap());
        Proc::spawn_with(command, role, url, arg)
    }

    /// Like [`spawn`](Self::spawn) with extra environment.
    pub fn spawn_env(role: &str, url: &str, arg: &str, env: &[(&str, &str)]) -> Proc {
        let mut command = Command::new(std::env::current_exe().unwrap());
        for (k, v) in env {
            command.env(k, v);
        }
        Proc::spawn_with(command, role, url, arg)
    }

    fn spawn_with(mut command: Command, role: &str, url: &str, arg: &str) -> Proc {
        let mut child = command
            .args([
                "--exact",
                "child_entry",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env("UTP_CHILD_ROLE", role)
            .env("UTP_CHILD_URL", url)
            .env("UTP_CHILD_ARG", arg)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Proc { child, out }
    }

    /// The next tagged line the child printed, or `EOF`.
    pub fn line(&mut self) -> String {
        loop {
            let mut s = String::new();
            if self.out.read_line(&mut s).unwrap() == 0 {
                return "EOF".into();
            }
            let s = s.trim();
            if TAGS.iter().any(|t| s.starts_with(t)) {
                return s.to_string();
            }
        }
    }

    /// The next tagged line, which must start with `tag`.
    pub fn expect(&mut self, tag: &str) -> String {
        let line = self.line();
        assert!(line.starts_with(tag), "expected {tag}, child said {line:?}");
        line
    }

    /// The fields after `tag` on the next tagged line, which must start with it.
    pub fn expect_fields(&mut self, tag: &str) -> Vec<String> {
        let line = self.expect(tag);
        line.split_whitespace().skip(1).map(String::from).collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait_ok(&mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
