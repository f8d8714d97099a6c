//! The orderbook example as two real processes: a writer and a reader
//! (spinning, then sleeping on the futex), as a user runs it in two
//! terminals. `cargo test` builds examples before it runs tests; when only
//! this test target was built, the test says so and checks nothing.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The writer process and its cell, stopped and removed if the test fails
/// part-way (a passing run has already seen the writer remove its cell).
struct Writer {
    child: Child,
    cell: String,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.cell);
    }
}

fn example() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join("orderbook");
    path.exists().then_some(path)
}

#[test]
fn orderbook_writer_and_reader_processes() {
    let Some(bin) = example() else {
        eprintln!("orderbook example not built (run `cargo test` without --test to include it)");
        return;
    };
    let url = format!("shm://test-orderbook-{}", std::process::id());
    let name = url.trim_start_matches("shm://");
    let mut writer = Writer {
        child: Command::new(&bin)
            .args(["writer", &url, "--secs", "3", "--interval-us", "100"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
        cell: format!("/dev/shm/utp.cell.{name}"),
    };
    let mut out = BufReader::new(writer.child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("writer pid"), "{first:?}");
    // Keep reading the writer's reports so it never writes to a closed pipe.
    let drain = std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    for mode in [&[][..], &["--wait"][..]] {
        let out = Command::new(&bin)
            .args(["reader", &url, "--secs", "1"])
            .args(mode)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode:?}: {text}");
        assert!(
            text.contains("best bid") && text.contains("| ask"),
            "{mode:?}: {text}"
        );
        // The writer's pid as a number, not a Rust `Some(..)`.
        let header = format!("reader of {url} (writer pid {}), ", writer.child.id());
        assert!(text.starts_with(&header), "{mode:?}: {text}");
    }
    let status = writer.child.wait().unwrap();
    assert!(status.success());
    drain.join().unwrap().unwrap();
    // The writer removed its cell when it stopped.
    assert!(!std::path::Path::new(&writer.cell).exists());
}
