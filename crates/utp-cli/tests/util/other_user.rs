//! Acting as another local user (uid/gid 65534, `nobody`) through `setpriv`.
//! Needs root; tests call [`as_root`] first and skip with a message otherwise.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The uid and gid the tests impersonate: `nobody`.
pub const OTHER: u32 = 65534;

/// Whether this process can act as another user.
pub fn as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `PROGRAM ARGS` run as uid/gid 65534 with no supplementary groups.
pub fn command_as_other(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            &format!("--reuid={OTHER}"),
            &format!("--regid={OTHER}"),
            "--clear-groups",
            program,
        ])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// `utp ARGS` run as uid/gid 65534.
pub fn utp_as_other(args: &[&str]) -> Command {
    command_as_other(env!("CARGO_BIN_EXE_utp"), args)
}

/// Runs `PROGRAM ARGS` as uid 65534 to completion.
pub fn run_as_other(program: &str, args: &[&str]) -> Output {
    command_as_other(program, args)
        .output()
        .expect("run setpriv")
}

/// stdout and stderr of `out` as one string.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `utp serve` run by uid 65534: SIGTERMed on drop (so it removes its
/// endpoint), SIGKILLed if it lingers.
pub struct OtherServer(pub Child);

impl OtherServer {
    /// Starts `utp serve SERVICE --on URL` as uid 65534 and waits until a
    /// call from this process reaches it (served, or refused by identity).
    pub fn start(service: &str, url: &str) -> OtherServer {
        let child = utp_as_other(&["serve", service, "--on", url])
            .stdout(Stdio::null())
            .spawn()
            .expect("setpriv utp serve");
        let mut server = OtherServer(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = server.0.try_wait().unwrap() {
                panic!("the server for {url} run as uid {OTHER} exited early: {status}");
            }
            let out = super::run(&["call", url, "ADD", "1", "1", "--timeout", "1s"]);
            if out.status.success() || text(&out).contains("uid") {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "no server at {url}: {}",
                text(&out)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OtherServer {
    fn drop(&mut self) {
        // setpriv execs utp, so the child's pid is the server's.
        let pid = rustix::process::Pid::from_child(&self.0);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
