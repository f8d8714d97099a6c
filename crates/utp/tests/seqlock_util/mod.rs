//! Helpers of the seqlock process tests: a checksummed value, child
//! processes that re-execute the test binary, cleanup guards.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use utp::seqlock::place::Place;

/// 256 bytes: 31 data words and a checksum of them (spans 4 cache lines,
/// so an unprotected copy would tear easily).
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Checked {
    pub words: [u64; 32],
}

impl Checked {
    pub fn new(n: u64) -> Self {
        let mut words = [0u64; 32];
        for (i, w) in words.iter_mut().take(31).enumerate() {
            *w = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64) << 56;
        }
        words[31] = Self::sum(&words);
        Checked { words }
    }
    fn sum(words: &[u64; 32]) -> u64 {
        words[..31]
            .iter()
            .fold(7, |h, w| (h ^ w).wrapping_mul(0x100_0000_01b3))
    }
    pub fn intact(&self) -> bool {
        self.words[31] == Self::sum(&self.words)
    }
}

/// A name unique to this process and call.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "p{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A child process (this test binary, `child_entry`, role in
/// `UTP_SEQ_ROLE`), SIGKILLed when dropped.
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
            .env("UTP_SEQ_ROLE", role)
            .env("UTP_SEQ_URL", url)
            .env("UTP_SEQ_ARG", arg)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Proc { child, out }
    }

    pub fn line(&mut self) -> String {
        loop {
            let mut s = String::new();
            if self.out.read_line(&mut s).unwrap() == 0 {
                return "EOF".into();
            }
            let s = s.trim();
            if ["READY", "DONE", "FAIL"].iter().any(|t| s.starts_with(t)) {
                return s.to_string();
            }
        }
    }

    pub fn expect(&mut self, tag: &str) -> Vec<String> {
        let line = self.line();
        assert!(line.starts_with(tag), "expected {tag}, child said {line:?}");
        line.split_whitespace().skip(1).map(String::from).collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Removes a cell when dropped, so a failing test leaves nothing behind.
pub struct Remove(pub String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = Place::parse(&self.0).map(|p| p.remove());
    }
}

pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
