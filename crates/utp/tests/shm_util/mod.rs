//! Helpers shared by the multi-process shm tests: unique names, a child
//! process handle that kills on drop, and the roles children play (the
//! test binary re-executes itself, see `child`).

#![allow(dead_code)] // each test binary uses a different subset

#[path = "../child/mod.rs"]
mod child;

pub use child::{Proc, say, unique};
use std::time::Duration;
use utp::frame::{Frame, flags, message_type};

/// The live memfd links of `shm://NAME` (found through /proc/PID/fd), and
/// anything left in /dev/shm under its name (v2 leaves nothing there).
pub fn dev_shm_entries(name: &str) -> Vec<String> {
    let mut out: Vec<String> = utp::shm::inspect::memfd_links(Some(name))
        .into_iter()
        .map(|l| l.name)
        .collect();
    out.extend(
        std::fs::read_dir("/dev/shm")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("utp.{name}."))),
    );
    out
}

/// Removes the rendezvous socket a SIGKILLed server of `url` left behind
/// (a later listener would replace it; tests use unique names, so they
/// clean up).
pub fn remove_socket(url: &str) {
    let endpoint: utp::Endpoint = url.parse().unwrap();
    let file = utp::shm::rendezvous::socket_file(&endpoint.address).unwrap();
    for dir in [
        utp::runtime_dir::private_dir().unwrap(),
        utp::runtime_dir::shared_dir().unwrap(),
    ] {
        let _ = std::fs::remove_file(dir.join(&file));
    }
}

/// Runs the role this process was started for, then exits; returns at once
/// in a normal test run. `extra` handles roles particular to one binary.
pub fn child_entry(extra: impl FnOnce(&str, &str, &str) -> bool) {
    let Some((role, url, arg)) = child::role() else {
        return;
    };
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
            // The reason too, so that tests can tell a dead peer from a closed one.
            let reason = match &err {
                utp::Error::PeerGone { reason, .. } => format!(" [reason={reason:?}]"),
                _ => String::new(),
            };
            say(&format!("ERR {err}{reason}"));
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
