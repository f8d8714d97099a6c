//! The real `utp` binary on seqlock cells: `utp inspect` and the hidden
//! `utp bench-seqlock` table.

use std::process::Command;
use utp::seqlock::SeqWriter;

const UTP: &str = env!("CARGO_BIN_EXE_utp");

#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Quote {
    bid: f64,
    ask: f64,
}

fn inspect(url: &str) -> (i32, String) {
    let out = Command::new(UTP).args(["inspect", url]).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn inspect_shows_writer_sequence_and_age() {
    let url = format!("shm://cli-cell-{}", std::process::id());
    let mut w = SeqWriter::<Quote>::open(&url).unwrap();
    w.publish(&Quote { bid: 1.0, ask: 2.0 });
    w.publish(&Quote { bid: 1.5, ask: 2.5 });
    let (code, text) = inspect(&url);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("seqlock cell"), "{text}");
    assert!(text.contains("value: 16 bytes"), "{text}");
    assert!(
        text.contains(&format!("writer: pid {} (alive)", std::process::id())),
        "{text}"
    );
    assert!(
        text.contains("sequence: 4 (2 publishes, consistent)"),
        "{text}"
    );
    assert!(
        text.contains("last update: ") && !text.contains("never"),
        "{text}"
    );
    let ls = Command::new(UTP).arg("ls").output().unwrap();
    let ls = String::from_utf8_lossy(&ls.stdout);
    let row = ls
        .lines()
        .find(|l| l.starts_with("seqlock ") && l.contains(&format!(" {url} ")))
        .unwrap_or_else(|| panic!("no row for {url}:\n{ls}"));
    assert!(
        row.contains(&format!(" {} ", std::process::id()))
            && row.ends_with("seqlock cell, 16 bytes, sequence 4, writer alive"),
        "{row}"
    );
    drop(w);
    let (code, text) = inspect(&url);
    assert_eq!(code, 1, "no writer: {text}");
    assert!(text.contains("writer: none"), "{text}");
    utp::seqlock::place::Place::parse(&url)
        .unwrap()
        .remove()
        .unwrap();
}

#[test]
fn bench_seqlock_prints_a_table_without_torn_reads() {
    let child = Command::new(UTP)
        .args([
            "bench-seqlock",
            "--readers",
            "1",
            "--ms",
            "50",
            "--rounds",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("| 1 |"))
        .expect("a row for 1 reader");
    let cols: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cols[9], "0", "torn seqlock reads: {row}");
    let left = format!("utp.cell.bench-seqlock-{pid}");
    assert!(
        !std::path::Path::new("/dev/shm").join(left).exists(),
        "cell left behind"
    );
}
