//! The calculator over Unix sockets, with the real `utp` binary in separate processes.

mod util;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use util::{RemoveOnDrop, Server, run, socket_path, unique};
use utp::service::Client;

#[test]
fn serve_and_call_prints_the_result_and_sigterm_removes_the_socket() {
    let path = socket_path("calc");
    let url = format!("unix://{}", path.display());
    let server = Server::start("calc", &url);

    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket file must be private");

    let out = run(&["call", &url, "ADD", "10", "20"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "30\n");

    let out = run(&["call", &url, "SUB", "-5", "-7"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");

    let status = server.terminate();
    assert!(
        status.success(),
        "serve exits 0 after SIGTERM, got {status}"
    );
    assert!(!path.exists(), "socket file left behind after SIGTERM");
}

#[test]
fn abstract_namespace_sockets_work_too() {
    let url = format!("unix://@{}", unique("utp-test-calc"));
    let server = Server::start("calc", &url);
    let out = run(&["call", &url, "MUL", "6", "7"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "42\n", "{out:?}");
    assert!(server.terminate().success());
}

#[test]
fn an_err_reply_goes_to_stderr_with_exit_1() {
    let path = socket_path("calc-err");
    let url = format!("unix://{}", path.display());
    let _server = Server::start("calc", &url);
    let out = run(&["call", &url, "DIV", "1", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Division by zero"
    );

    let out = run(&["call", &url, "ADD", "1", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Not a 64-bit integer: x"));
}

#[test]
fn a_missing_endpoint_fails_fast_with_a_clear_message() {
    let path = socket_path("nobody-home");
    let url = format!("unix://{}", path.display());
    let started = Instant::now();
    let out = run(&["call", &url, "ADD", "1", "2"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no server at"), "{stderr}");
    assert!(stderr.contains("is the server running"), "{stderr}");
}

#[test]
fn an_unknown_scheme_lists_the_accepted_forms() {
    let out = run(&["call", "gopher://x", "ADD", "1", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown scheme \"gopher\""), "{stderr}");
    assert!(stderr.contains("accepted forms"), "{stderr}");
    assert!(stderr.contains("tcp://HOST:PORT"), "{stderr}");
}

#[test]
fn a_precise_url_error_is_one_line() {
    let out = run(&["call", "unix:/tmp/x.sock", "ADD", "1", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "utp: error: invalid endpoint URL \"unix:/tmp/x.sock\": expected unix://...\n"
    );
    let out = run(&["call", "udp://[::1", "ADD", "1", "2"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "utp: error: invalid endpoint URL \"udp://[::1\": \"[::1\" opens an IPv6 address with '[' \
         but never closes it: write [ADDR]:PORT, as in [::1]:7000\n"
    );
}

#[test]
fn a_server_that_never_answers_times_out_instead_of_hanging() {
    let path = socket_path("silent");
    let _cleanup = RemoveOnDrop(path.clone());
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let started = Instant::now();
    let out = run(&[
        "call",
        &format!("unix://{}", path.display()),
        "ADD",
        "1",
        "2",
        "--timeout",
        "300ms",
    ]);
    drop(listener);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "utp: error: timed out after 300ms waiting for a frame from the peer\n"
    );
}

#[test]
fn a_server_killed_mid_session_gives_peer_gone_not_a_hang() {
    let path = socket_path("dies");
    let url = format!("unix://{}", path.display());
    let _cleanup = RemoveOnDrop(path.clone());
    let server = Server::start("calc", &url);
    let mut client = Client::connect(&url).unwrap();
    assert_eq!(client.call(b"ADD 1 1").unwrap(), b"OK 2");
    server.kill();
    let error = client.call(b"ADD 1 1").unwrap_err();
    assert!(error.is_peer_gone(), "{error}");
}

#[test]
fn eight_concurrent_clients_times_500_calls_all_answered_correctly() {
    let path = socket_path("many");
    let url = format!("unix://{}", path.display());
    let server = Server::start("calc", &url);
    let workers: Vec<_> = (0..8i64)
        .map(|worker| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&url).unwrap();
                for i in 0..500i64 {
                    let a = worker * 1_000_000 + i;
                    let reply = client.call(format!("MUL {a} 3").as_bytes()).unwrap();
                    assert_eq!(reply, format!("OK {}", a * 3).as_bytes());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("client thread");
    }
    assert!(server.terminate().success());
}

#[test]
fn garbage_and_half_frames_do_not_disturb_other_clients() {
    let path = socket_path("garbage");
    let url = format!("unix://{}", path.display());
    let server = Server::start("calc", &url);
    let mut good = Client::connect(&url).unwrap();
    assert_eq!(good.call(b"ADD 1 2").unwrap(), b"OK 3");

    // Garbage: not a UTP magic and a "length" far above the limit.
    let mut garbage = UnixStream::connect(&path).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = garbage.read_to_end(&mut answer);
    let frame = utp::frame::decode(&answer, 1 << 20).expect("an ERROR frame, then close");
    assert_eq!(frame.0.message_type, utp::frame::message_type::ERROR);
    assert!(String::from_utf8_lossy(frame.1).contains("bad magic"));

    // A valid header announcing 4 GiB - 1: refused before any allocation.
    let mut huge = UnixStream::connect(&path).unwrap();
    let mut head = utp::frame::encode_to_vec(&utp::frame::Header::new(0x10, 0, 1, 0), b"");
    head[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    huge.write_all(&head).unwrap();

    // Half a frame, then the client vanishes.
    let mut half = UnixStream::connect(&path).unwrap();
    let whole = utp::frame::encode_to_vec(&utp::frame::Header::new(0x10, 1, 1, 0), b"ADD 5 5");
    half.write_all(&whole[..20]).unwrap();
    drop(half);

    for i in 0..50 {
        let reply = good.call(format!("ADD {i} {i}").as_bytes()).unwrap();
        assert_eq!(reply, format!("OK {}", 2 * i).as_bytes());
    }
    let mut fresh = Client::connect(&url).unwrap();
    assert_eq!(fresh.call(b"SUB 10 3").unwrap(), b"OK 7");
    drop(huge);
    assert!(server.terminate().success());
}

#[test]
fn the_tutorials_length_prefixed_client_gets_ok_30() {
    let path = socket_path("tutorial");
    let url = format!("unix://{}", path.display());
    let server = Server::start("calc", &url);
    let mut stream = UnixStream::connect(&path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for (request, expected) in [
        ("ADD 10 20", "OK 30"),
        ("DIV 1 0", "ERR Division by zero"),
        ("MUL -4 5", "OK -20"),
    ] {
        stream
            .write_all(&(request.len() as u32).to_le_bytes())
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        stream.read_exact(&mut body).unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), expected);
    }
    drop(stream);
    assert!(server.terminate().success());
}

#[test]
fn a_stale_socket_file_is_replaced_but_a_live_server_is_not_stolen() {
    let path = socket_path("stale");
    let url = format!("unix://{}", path.display());
    // A socket file whose server is gone.
    util::stale_socket(&path);
    assert!(path.exists());
    let server = Server::start("calc", &url);
    assert_eq!(
        String::from_utf8_lossy(&run(&["call", &url, "ADD", "2", "2"]).stdout),
        "4\n"
    );

    let second = run(&["serve", "calc", "--on", &url]);
    assert_eq!(second.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already in use"),
        "{second:?}"
    );
    // The first server still answers.
    assert_eq!(
        String::from_utf8_lossy(&run(&["call", &url, "ADD", "3", "3"]).stdout),
        "6\n"
    );
    assert!(server.terminate().success());
    assert!(!path.exists());
}
