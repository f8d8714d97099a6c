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
    wait_up(&url);
    let ls = utp().arg("ls").output().unwrap();
    let listed = String::from_utf8_lossy(&ls.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("pubsub") && l.contains(&url)),
        "{listed}"
    );
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
    assert!(!inspect_finds(&url));
}

/// Whether `utp inspect` finds a publisher at `url`.
fn inspect_finds(url: &str) -> bool {
    utp()
        .args(["inspect", url])
        .output()
        .unwrap()
        .status
        .success()
}

/// Sends SIGTERM to `child`.
fn terminate(child: &std::process::Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
}

fn wait_up(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !inspect_finds(url) {
        assert!(Instant::now() < deadline, "the publisher never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pub_frames_keep_their_type_and_sigterm_ends_the_publisher_cleanly() {
    let url = format!("shm://cli-pubsub-frames-{}", std::process::id());
    let mut publisher = utp()
        .args(["pub", &url, "--frames", "--wait-subscribers", "1"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_up(&url);
    let subscriber = utp()
        .args(["sub", &url, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    for (t, p) in [(0x01u8, &b"\x00\xff"[..]), (0x10, b"ADD 1 2")] {
        let header = utp::frame::Header::new(t, utp::frame::flags::CHECKSUM, 1, 0);
        stdin
            .write_all(&utp::frame::encode_to_vec(&header, p))
            .unwrap();
    }
    stdin.flush().unwrap();
    // stdin stays open: only the signal can end the publisher now.
    std::thread::sleep(Duration::from_millis(500));
    terminate(&publisher);
    assert!(publisher.wait().unwrap().success());
    let out = subscriber.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        (lines[0]["type"].as_u64(), lines[0]["hex"].as_str()),
        (Some(1), Some("00ff"))
    );
    assert_eq!(
        (lines[1]["type"].as_u64(), lines[1]["text"].as_str()),
        (Some(16), Some("ADD 1 2"))
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("publisher closed"));
    assert!(!inspect_finds(&url));
    drop(stdin);
}

/// Input that never pauses for 50 ms used to hide the signal: the flag was
/// only looked at when no line came.
#[test]
fn sigterm_ends_a_publisher_whose_input_never_pauses() {
    let url = format!("shm://cli-pubsub-busy-{}", std::process::id());
    let mut publisher = utp()
        .args(["pub", &url])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    let feeding = std::thread::spawn(move || {
        // Until the publisher is gone and the pipe breaks (bounded anyway).
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until && stdin.write_all(b"tick\n").is_ok() {
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    wait_up(&url);
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    terminate(&publisher);
    let deadline = signalled + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = publisher.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = publisher.kill();
            panic!("utp pub ignored SIGTERM while its input kept coming");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
    feeding.join().unwrap();
    let mut said = String::new();
    std::io::Read::read_to_string(&mut publisher.stderr.take().unwrap(), &mut said).unwrap();
    assert!(said.contains("interrupted"), "{said}");
    assert!(!inspect_finds(&url), "the publisher's endpoint outlived it");
}
