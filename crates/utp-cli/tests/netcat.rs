//! `utp send`, `utp recv` and `utp listen`: frames and lines with any
//! endpoint, through the real binary.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use util::{RemoveOnDrop, Server, run, socket_path, unique, utp};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn send_lines_from_stdin_to_the_calculator_over_several_transports() {
    let path = socket_path("send");
    for url in [
        format!("unix://{}", path.display()),
        format!("shm://{}", unique("send")),
        format!("unix://@{}", unique("send")),
    ] {
        let _server = Server::start("calc", &url);
        let mut child = utp()
            .args(["send", &url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"ADD 1 2\nMUL 6 7\nDIV 1 0\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{url}");
        assert_eq!(stdout(&out), "OK 3\nOK 42\nERR Division by zero\n", "{url}");
    }
}

#[test]
fn send_json_hex_and_type() {
    let path = socket_path("sendjson");
    let url = format!("unix://{}", path.display());
    let _server = Server::start("echo", &url);
    let out = run(&["send", &url, "--hex", "--json", "00ff41"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["type"], "response");
    assert_eq!(v["payload_hex"], "00ff41");
    assert_eq!(v["payload"], serde_json::Value::Null, "not UTF-8: no text");
    // A TEXT frame to a service is answered with an ERROR: exit 1, reason on stderr.
    let out = run(&["send", &url, "--type", "text", "hello"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unexpected message type 0x05"),
        "{out:?}"
    );
    let out = run(&["send", &url, "--type", "banana", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn listen_prints_what_send_sends_and_answers() {
    let path = socket_path("listen");
    let url = format!("unix://{}", path.display());
    let ready = RemoveOnDrop(format!("{}.ready", path.display()).into());
    let listener = utp()
        .args([
            "listen",
            &url,
            "--count",
            "2",
            "--reply",
            "got it",
            "--ready-file",
        ])
        .arg(&ready.0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(run(&["wait", &url]).status.success());
    let out = run(&["send", &url, "first line"]);
    assert_eq!(stdout(&out), "got it\n");
    let out = run(&["send", &url, "--no-reply", "--type", "data", "second"]);
    assert!(out.status.success());
    let out = listener.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out), "first line\nsecond\n");
    assert!(!path.exists(), "listen removes its socket");
}

#[test]
fn recv_prints_frames_pushed_by_a_server() {
    // `utp listen --echo` answers; `utp recv` is the client side that only
    // reads: here a Rust listener pushes three frames and closes.
    let path = socket_path("recv");
    let url = format!("unix://{}", path.display());
    let mut listener = utp::listen(&url).unwrap();
    let mut child = utp()
        .args(["recv", &url, "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut channel = listener.accept().unwrap();
    for text in ["one", "two", "three"] {
        channel
            .send(utp::frame::message_type::DATA, 1, text.as_bytes())
            .unwrap();
    }
    channel.close().unwrap();
    let lines: Vec<serde_json::Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["payload"], "two");
    assert_eq!(lines[1]["type"], "data");
    assert_eq!(lines[2]["sequence"], 3);
}

#[test]
fn listen_refuses_pipe_and_inproc() {
    for url in ["pipe:", "inproc://x"] {
        let out = run(&["listen", url]);
        assert_eq!(out.status.code(), Some(2), "{url}");
    }
}
