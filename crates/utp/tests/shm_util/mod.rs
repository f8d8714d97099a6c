//! Helpers shared by the multi-process shm tests: unique names, a child
//! process handle that kills on drop, and the roles children play (the
//! test binary re-executes itself with `UTP_SHM_ROLE` set).

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use utp::frame::{Frame, flags, message_type};

pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "p{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn dev_shm_entries(name: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("utp.{name}.")))
        .collect()
}

/// A child process that is killed when dropped.
pub struct Proc {
    pub child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    pub fn spawn(role: &str, url: &str, arg: &str) -> Proc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_entry",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env("UTP_SHM_ROLE", role)
            .env("UTP_SHM_URL", url)
            .env("UTP_SHM_ARG", arg)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Proc { child, out }
    }

    /// The next line the child printed that starts with one of our tags.
    pub fn line(&mut self) -> String {
        loop {
            let mut s = String::new();
            if self.out.read_line(&mut s).unwrap() == 0 {
                return "EOF".into();
            }
            let s = s.trim().to_string();
            if ["READY", "BLOCKED", "ERR", "DONE", "FAIL"]
                .iter()
                .any(|t| s.starts_with(t))
            {
                return s;
            }
        }
    }

    pub fn expect(&mut self, tag: &str) -> String {
        let line = self.line();
        assert!(line.starts_with(tag), "expected {tag}, child said {line:?}");
        line
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

pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the role this process was started for, then exits; returns at once
/// in a normal test run. `extra` handles roles particular to one binary.
pub fn child_entry(extra: impl FnOnce(&str, &str, &str) -> bool) {
    let Ok(role) = std::env::var("UTP_SHM_ROLE") else {
        return;
    };
    let url = std::env::var("UTP_SHM_URL").unwrap();
    let arg = std::env::var("UTP_SHM_ARG").unwrap_or_default();
    match role.as_str() {
        "server" => serve(&url),
        "calls" => {
            let n: u64 = arg.parse().unwrap();
            let mut ch = utp::connect(&url).unwrap();
            let mut frame = Frame::default();
            for i in 0..n {
                let req = format!("ADD {i} {}", i * 3);
                ch.send(message_type::REQUEST, flags::CHECKSUM, req.as_bytes())
                    .unwrap();
                ch.recv_timeout(&mut frame, Some(Duration::from_secs(10)))
                    .unwrap();
                let want = format!("OK {}", i * 4);
                if frame.payload() != want.as_bytes() {
                    say(&format!(
                        "FAIL call {i}: {:?}",
                        String::from_utf8_lossy(frame.payload())
                    ));
                    std::process::exit(1);
                }
            }
            say("DONE");
        }
        "block-recv" | "block-send" => {
            let mut ch = utp::connect(&url).unwrap();
            let mut frame = Frame::default();
            let err = if role == "block-recv" {
                ch.send(message_type::REQUEST, 0, b"HOLD").unwrap();
                say("BLOCKED");
                ch.recv(&mut frame).unwrap_err()
            } else {
                ch.send(message_type::REQUEST, 0, b"STALL").unwrap();
                let big = vec![1u8; 60_000];
                // Fill the ring; the first send that cannot complete blocks.
                loop {
                    match ch.send_timeout(
                        message_type::DATA,
                        0,
                        &big,
                        Some(Duration::from_millis(50)),
                    ) {
                        Ok(()) => continue,
                        Err(e) if e.is_timeout() => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                say("BLOCKED");
                ch.send(message_type::DATA, 0, &big).unwrap_err()
            };
            say(&format!("ERR {err}"));
        }
        other => {
            if !extra(other, &url, &arg) {
                panic!("unknown role {other}")
            }
        }
    }
    std::process::exit(0);
}

/// The calculator, except `HOLD` (never answered) and `STALL` (stop reading).
pub fn serve(url: &str) {
    let mut listener = utp::listen(url).unwrap();
    say("READY");
    loop {
        let mut ch = listener.accept().unwrap();
        std::thread::spawn(move || {
            let mut frame = Frame::default();
            while ch.recv(&mut frame).is_ok() {
                match frame.payload() {
                    b"HOLD" => {}
                    b"STALL" => std::thread::sleep(Duration::from_secs(3600)),
                    request => {
                        let reply = utp::service::calc::evaluate(request);
                        if ch
                            .send(message_type::RESPONSE, flags::CHECKSUM, reply.as_bytes())
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
    }
}
