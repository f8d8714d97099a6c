//! `utp pub` / `utp sub` / `utp inspect` with real processes.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn utp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_utp"))
}

#[test]
fn pub_lines_reach_sub_json_and_inspect_shows_the_subscriber() {
    let url = format!("shm://cli-pubsub-{}", std::process::id());
    let mut publisher = utp()
        .args(["pub", &url, "--wait-subscribers", "1", "--linger", "3s"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the publisher to answer before subscribing.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !utp()
        .args(["inspect", &url])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the publisher never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let subscriber = utp()
        .args(["sub", &url, "--json", "--count", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = utp().args(["inspect", "--json", &url]).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if report["subscribers"].as_array().unwrap().len() == 1 {
            assert_eq!(report["transport"], "shm");
            assert_eq!(report["subscribers"][0]["policy"], "drop");
            break;
        }
        assert!(Instant::now() < deadline, "the subscriber never showed up");
        std::thread::sleep(Duration::from_millis(20));
    }
    publisher
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nworld\nthird\n")
        .unwrap();
    let out = subscriber.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let texts: Vec<_> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["hello", "world", "third"]);
    let seqs: Vec<_> = lines
        .iter()
        .map(|l| l["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("received 3, lost 0"));
    assert!(publisher.wait().unwrap().success());
    // The publisher removed its socket when it ended.
    assert!(
        !utp()
            .args(["inspect", &url])
            .output()
            .unwrap()
            .status
            .success()
    );
}
