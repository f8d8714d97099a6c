//! zenoh:// between real processes on loopback, with explicit endpoints
//! (no multicast): frames byte for byte with their sequence numbers, the
//! credit window, a killed server (clear error within the deadline, then
//! reconnection), two servers of one key, and hostile bytes on a link.

#![cfg(feature = "zenoh")]

mod child;

use child::{Proc, unique};
use std::time::{Duration, Instant};
use utp::frame::{Frame, flags, message_type};
use utp::{Channel, Error};

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Some((role, url, _)) = child::role() else {
        return;
    };
    assert_eq!(role, "echo");
    let mut listener = utp::listen(&url).unwrap();
    child::say("READY");
    loop {
        let mut channel = listener.accept().unwrap();
        std::thread::spawn(move || {
            let mut frame = Frame::default();
            while channel.recv(&mut frame).is_ok() {
                // Who answered and what arrived: the client checks both.
                let reply = format!(
                    "{} seq={} flags={} len={}",
                    std::process::id(),
                    frame.header.sequence,
                    frame.header.flags,
                    frame.payload().len()
                );
                let _ = channel.send(message_type::RESPONSE, flags::CHECKSUM, reply.as_bytes());
            }
        });
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server child on `key`, listening on its own loopback port.
fn server(key: &str, port: u16) -> Proc {
    let mut proc = Proc::spawn(
        "echo",
        &format!("zenoh://{key}?listen=tcp/127.0.0.1:{port}"),
        "",
    );
    proc.expect("READY");
    proc
}

fn client_url(key: &str, ports: &[u16], extra: &str) -> String {
    let endpoints: Vec<String> = ports.iter().map(|p| format!("tcp/127.0.0.1:{p}")).collect();
    format!("zenoh://{key}?connect={}{extra}", endpoints.join(","))
}

/// One request, the server's pid and what it saw.
fn call(channel: &mut dyn Channel, payload: &[u8], timeout: Duration) -> utp::Result<String> {
    channel.send_timeout(
        message_type::REQUEST,
        flags::CHECKSUM,
        payload,
        Some(timeout),
    )?;
    let mut frame = Frame::default();
    channel.recv_timeout(&mut frame, Some(timeout))?;
    assert_eq!(frame.message_type(), message_type::RESPONSE);
    Ok(String::from_utf8(frame.payload().to_vec()).unwrap())
}

fn pid_of(reply: &str) -> u32 {
    reply.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn frames_cross_processes_with_their_sequence_numbers_beyond_the_window() {
    let key = unique("zn-frames");
    let port = free_port();
    let _server = server(&key, port);
    let mut channel = utp::connect(&client_url(&key, &[port], "")).unwrap();
    // 200 frames, 40 of 256 KiB, sent 32 ahead of their replies: more bytes
    // than the credit window (4 MiB), so the sender must wait for credit,
    // and nothing may be dropped.
    let sizes = [0usize, 1, 31, 4096, 256 << 10];
    for i in 0..200 {
        let payload = vec![i as u8; sizes[i % sizes.len()]];
        channel
            .send_timeout(
                message_type::REQUEST,
                flags::CHECKSUM,
                &payload,
                Some(Duration::from_secs(20)),
            )
            .unwrap();
        // Read as we go once the window is full, as a real client would.
        if i >= 32 {
            read_reply(&mut *channel, i - 32, &sizes);
        }
    }
    for i in 168..200 {
        read_reply(&mut *channel, i, &sizes);
    }
}

fn read_reply(channel: &mut dyn Channel, i: usize, sizes: &[usize]) {
    let mut frame = Frame::default();
    channel
        .recv_timeout(&mut frame, Some(Duration::from_secs(20)))
        .unwrap();
    let text = String::from_utf8(frame.payload().to_vec()).unwrap();
    let want = format!(
        "seq={} flags={} len={}",
        i + 1,
        flags::CHECKSUM,
        sizes[i % sizes.len()]
    );
    assert!(text.ends_with(&want), "frame {i}: {text} (want {want})");
    assert_eq!(frame.header.sequence, i as u64 + 1, "reply sequence");
}

#[test]
fn a_killed_server_is_a_clear_error_within_the_deadline_then_a_new_one_is_found() {
    let key = unique("zn-kill");
    let port = free_port();
    let mut first = server(&key, port);
    let mut channel = utp::connect(&client_url(&key, &[port], "")).unwrap();
    let deadline = Duration::from_secs(3);
    assert_eq!(
        pid_of(&call(&mut *channel, b"x", deadline).unwrap()),
        first.pid()
    );
    first.kill();
    let started = Instant::now();
    let err = call(&mut *channel, b"x", deadline).unwrap_err();
    let took = started.elapsed();
    eprintln!("after SIGKILL of the server: {err} (after {took:?})");
    assert!(
        err.is_peer_gone() || err.is_timeout() || matches!(err, Error::NotFound { .. }),
        "{err}"
    );
    // The call's deadline is the bound (slack for a loaded machine).
    assert!(
        took < deadline * 2 + Duration::from_secs(1),
        "took {took:?}"
    );

    let second = server(&key, port);
    let started = Instant::now();
    let reply = loop {
        match call(&mut *channel, b"x", Duration::from_secs(5)) {
            Ok(reply) => break reply,
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no reconnection: {e}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(pid_of(&reply), second.pid());
    eprintln!(
        "reconnected to the new server after {:?}",
        started.elapsed()
    );
}

#[test]
fn with_reconnect_off_a_lost_server_stays_lost() {
    let key = unique("zn-noreconnect");
    let port = free_port();
    let mut first = server(&key, port);
    let mut channel = utp::connect(&client_url(&key, &[port], "&reconnect=off")).unwrap();
    call(&mut *channel, b"x", Duration::from_secs(3)).unwrap();
    first.kill();
    let _second = server(&key, port);
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..3 {
        let err = call(&mut *channel, b"x", Duration::from_secs(2)).unwrap_err();
        assert!(err.is_peer_gone(), "{err}");
    }
}

#[test]
fn two_servers_of_one_key_each_link_sticks_to_one_and_the_other_takes_over() {
    let key = unique("zn-two");
    let ports = [free_port(), free_port()];
    let mut servers = [server(&key, ports[0]), server(&key, ports[1])];
    let url = client_url(&key, &ports, "");
    let timeout = Duration::from_secs(5);
    let mut channels: Vec<Box<dyn Channel>> = (0..6).map(|_| utp::connect(&url).unwrap()).collect();
    let mut owners = Vec::new();
    for channel in &mut channels {
        let pid = pid_of(&call(&mut **channel, b"a", timeout).unwrap());
        assert!(servers.iter().any(|s| s.pid() == pid), "{pid}");
        // Every call of one channel goes to the same server.
        for _ in 0..3 {
            assert_eq!(pid_of(&call(&mut **channel, b"b", timeout).unwrap()), pid);
        }
        owners.push(pid);
    }
    eprintln!("servers chosen by 6 connections: {owners:?}");
    // Kill the server of channel 0: that channel errs once, then reaches the other.
    let victim = servers.iter().position(|s| s.pid() == owners[0]).unwrap();
    let survivor = servers[1 - victim].pid();
    servers[victim].kill();
    // The call right after the kill fails, unless the loss was already seen
    // (a loaded machine) and the send went to the other server at once.
    match call(&mut *channels[0], b"c", timeout) {
        Ok(reply) => assert_eq!(pid_of(&reply), survivor),
        Err(err) => assert!(err.is_peer_gone() || err.is_timeout(), "{err}"),
    }
    let started = Instant::now();
    let reply = loop {
        match call(&mut *channels[0], b"d", timeout) {
            Ok(reply) => break reply,
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(30), "{e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(pid_of(&reply), survivor);
}

#[test]
fn no_server_is_not_found_within_the_connect_timeout() {
    let key = unique("zn-nobody");
    let port = free_port();
    let url = format!("zenoh://{key}?listen=tcp/127.0.0.1:{port}&connect_timeout_ms=700");
    let started = Instant::now();
    let err = utp::connect(&url).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("?connect=tcp/HOST:PORT"), "{err}");
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn the_zenoh_url_options_are_checked() {
    for (url, needle) in [
        ("zenoh://k?mode=satellite", "mode"),
        ("zenoh://k?scout=maybe", "scout"),
        ("zenoh://k?lease_ms=5", "lease_ms"),
        ("zenoh://k?config=/nonexistent/zenoh.json5", "config file"),
        (
            "zenoh://k?reconnect=sometimes&connect_timeout_ms=100&scout=off",
            "reconnect",
        ),
    ] {
        let err = utp::connect(url).unwrap_err();
        assert!(err.to_string().contains(needle), "{url}: {err}");
    }
}

/// Waits up to `within` for `fd` to turn readable.
fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, within: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let ts = Timespec {
        tv_sec: within.as_secs() as i64,
        tv_nsec: i64::from(within.subsec_nanos()),
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    matches!(poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
}

#[test]
fn an_event_loop_waits_on_zenoh_listeners_and_channels_without_a_thread() {
    let key = unique("zready");
    let port = free_port();
    let mut listener = utp::listen(&format!("zenoh://{key}?listen=tcp/127.0.0.1:{port}")).unwrap();
    assert!(listener.try_accept().unwrap().is_none());
    let url = format!("zenoh://{key}?connect=tcp/127.0.0.1:{port}");
    // connect waits for the server to answer its query, which try_accept does.
    let client = std::thread::spawn(move || utp::connect(&url).unwrap());
    let fd = listener
        .readiness()
        .expect("a zenoh listener has a descriptor");
    assert!(
        wait_readable(fd, Duration::from_secs(20)),
        "no wake-up for a client"
    );
    let mut server = loop {
        if let Some(server) = listener.try_accept().unwrap() {
            break server;
        }
        let fd = listener.readiness().unwrap();
        assert!(wait_readable(fd, Duration::from_secs(20)), "no client");
    };
    let mut client = client.join().unwrap();

    let mut frame = Frame::default();
    assert!(!server.try_recv(&mut frame).unwrap());
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        client
            .send(message_type::DATA, flags::CHECKSUM, b"late")
            .unwrap();
        client
    });
    let started = Instant::now();
    loop {
        let fd = server
            .readiness()
            .expect("a zenoh channel has a descriptor")
            .fd;
        assert!(wait_readable(fd, Duration::from_secs(20)), "no wake-up");
        if server.try_recv(&mut frame).unwrap() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never arrived");
    }
    assert_eq!(frame.payload(), b"late");
    // The client leaves: the descriptor wakes and the receive says so.
    drop(sender.join().unwrap());
    let started = Instant::now();
    let gone = loop {
        let fd = server.readiness().unwrap().fd;
        wait_readable(fd, Duration::from_secs(1));
        match server.try_recv(&mut frame) {
            Ok(false) => assert!(started.elapsed() < Duration::from_secs(20), "never gone"),
            other => break other,
        }
    };
    assert!(matches!(gone, Err(Error::PeerGone { .. })), "{gone:?}");
}
