//! Helpers shared by the CLI integration tests: unique names, the real `utp`
//! binary, and server processes that are always cleaned up.

#![allow(dead_code)] // each test binary uses a different subset

pub mod other_user;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A name no other test (in this or a parallel process) uses: `prefix-pid-n`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A socket path in /tmp that no other test uses.
pub fn socket_path(prefix: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/{}.sock", unique(prefix)))
}

/// The `utp` binary under test.
pub fn utp() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_utp"));
    command.env("RUST_LOG", "warn");
    command
}

/// Runs `utp ARGS...` to completion.
pub fn run(args: &[&str]) -> Output {
    utp()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run utp")
}

/// A `utp serve` child process, killed on drop if still running.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// The `--ready-file` of [`Server::start_announced`], removed on drop
    /// (the server removes it itself, unless it was killed).
    ready_file: Option<RemoveOnDrop>,
}

impl Server {
    /// Starts `utp serve SERVICE --on URL` and waits until it accepts calls.
    pub fn start(service: &str, url: &str) -> Server {
        let child = utp()
            .args(["serve", service, "--on", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn utp serve");
        let mut server = Server {
            child,
            url: url.to_string(),
            ready_file: None,
        };
        server.wait_ready();
        server
    }

    /// Starts `utp serve SERVICE --on URL --ready-file F` and returns it
    /// with `url` set to the address the server announced in F. This is
    /// how tests get a TCP or UDP port: URL asks for port 0
    /// (`tcp://127.0.0.1:0`). A port picked by binding and dropping a socket
    /// could be taken by another process (a parallel test's thousands of
    /// connections) before the server binds it.
    pub fn start_announced(service: &str, url: &str) -> Server {
        let announced = spawn_announced(
            utp()
                .args(["serve", service, "--on", url])
                .stdin(Stdio::null())
                .stdout(Stdio::null()),
        );
        Server {
            child: announced.child,
            url: announced.url,
            ready_file: Some(announced.ready_file),
        }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("utp serve --on {} exited early with {status}", self.url);
            }
            match utp::connect(&self.url) {
                Ok(mut channel) => {
                    let _ = channel.close();
                    return;
                }
                Err(e) if Instant::now() > deadline => {
                    panic!("server at {} not ready after 10 s: {e}", self.url)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    pub fn pid(&self) -> rustix::process::Pid {
        rustix::process::Pid::from_child(&self.child)
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: rustix::process::Signal) {
        rustix::process::kill_process(self.pid(), signal).expect("signal the server");
    }

    /// Sends SIGTERM and waits (at most 5 s) for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        self.wait_exit(Duration::from_secs(5))
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    /// SIGTERM first, so the server removes its endpoint; SIGKILL if it lingers.
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(3));
    }
}

/// A process that announced its address through `--ready-file`.
pub struct Announced {
    pub child: Child,
    /// The URL it wrote there: with port 0 asked for, the port it got.
    pub url: String,
    /// Removed on drop (the process removes it itself, unless killed).
    pub ready_file: RemoveOnDrop,
}

/// Spawns `command` (`utp serve`, `listen` or `bridge`) with
/// `--ready-file PATH` appended, PATH unique in /tmp, and waits (at most
/// 10 s) for the URL it writes there; panics, with the child stopped, if it
/// exits first or writes nothing in time.
pub fn spawn_announced(command: &mut Command) -> Announced {
    let ready_file = RemoveOnDrop(PathBuf::from(format!("/tmp/{}.ready", unique("utp-ready"))));
    let mut child = command
        .arg("--ready-file")
        .arg(&ready_file.0)
        .spawn()
        .expect("spawn utp");
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = loop {
        // The file is written whole (renamed into place): no partial reads.
        if let Ok(text) = std::fs::read_to_string(&ready_file.0) {
            break text.trim_end().to_string();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("utp exited with {status} before writing its ready file");
        }
        if Instant::now() > deadline {
            stop(&mut child, Duration::from_secs(3));
            panic!("no ready file at {} after 10 s", ready_file.0.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Announced {
        child,
        url,
        ready_file,
    }
}

/// Removes a path when dropped (for files a test creates itself).
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A child process that gets SIGTERM (then SIGKILL) when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        stop(&mut self.0, Duration::from_secs(3));
    }
}

/// Stops `child` if it still runs: SIGTERM, so that it removes what it
/// made (a socket file, a publisher's endpoint), then SIGKILL if it is
/// still there after `grace`. Reaps it either way.
pub fn stop(child: &mut Child, grace: Duration) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::TERM,
    );
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

// The same helper as utp's tests, from there.
#[path = "../../../utp/tests/util/stale_socket.rs"]
mod stale_socket;
#[allow(unused_imports)] // each test binary uses a different subset
pub use stale_socket::stale_socket;
