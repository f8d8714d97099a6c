//! `utp bridge FROM TO` between real processes, without zenoh: a calculator
//! on a Unix socket served on TCP through the bridge. Many clients at once,
//! a client dying mid-frame, the service and the bridge restarting, and
//! backpressure instead of a growing queue.

mod util;

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use util::{Server, run, socket_path, utp};
use utp::frame::{flags, message_type};
use utp::service::Client;

/// A `utp bridge FROM TO` child, stopped with SIGTERM (then SIGKILL) on drop.
struct Bridge {
    child: Child,
    /// TO as the bridge announced it: with TO on port 0
    /// (`tcp://127.0.0.1:0`), the port it got. A port picked by binding
    /// and dropping a socket could be taken before the bridge binds it.
    url: String,
    _ready_file: util::RemoveOnDrop,
}

impl Bridge {
    /// Starts the bridge and waits until a calculator answers through it.
    fn start(from: &str, to: &str) -> Bridge {
        let bridge = Bridge::spawn(from, to, &["--connect-timeout", "2s"]);
        wait_until_calls(&bridge.url);
        bridge
    }

    /// Starts `utp bridge FROM TO ARGS...` and waits for its ready file.
    fn spawn(from: &str, to: &str, args: &[&str]) -> Bridge {
        let announced = util::spawn_announced(
            utp()
                .args(["bridge", from, to])
                .args(args)
                .stdin(Stdio::null()),
        );
        Bridge {
            child: announced.child,
            url: announced.url,
            _ready_file: announced.ready_file,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        util::stop(&mut self.child, Duration::from_secs(3));
    }
}

/// Waits (at most 20 s) until a calculator answers at `url`.
fn wait_until_calls(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = Client::connect(url).and_then(|mut c| c.call(b"ADD 0 0").map(|r| r.to_vec()));
        match attempt {
            Ok(reply) if reply == b"OK 0" => return,
            other if Instant::now() > deadline => panic!("{url} never answered: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn calc_behind_bridge() -> (Server, Bridge, util::RemoveOnDrop) {
    let sock = socket_path("bridge-svc");
    let service = format!("unix://{}", sock.display());
    let server = Server::start("calc", &service);
    let bridge = Bridge::start(&service, "tcp://127.0.0.1:0");
    (server, bridge, util::RemoveOnDrop(sock))
}

#[test]
fn many_clients_at_once_get_their_own_answers() {
    let (_server, bridge, _sock) = calc_behind_bridge();
    let exposed = &bridge.url;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let url = exposed.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&url).unwrap();
                for i in 0..25 {
                    let reply = client.call(format!("ADD {t} {i}").as_bytes()).unwrap();
                    assert_eq!(reply, format!("OK {}", t + i).as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // The CLI, through the bridge.
    let out = run(&["call", exposed, "MUL", "6", "7"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

#[test]
fn a_client_dying_mid_frame_ends_only_its_own_bridge() {
    let (_server, bridge, _sock) = calc_behind_bridge();
    let exposed = &bridge.url;
    let mut healthy = Client::connect(exposed).unwrap();
    assert_eq!(healthy.call(b"ADD 1 2").unwrap(), b"OK 3");
    for _ in 0..5 {
        // Half a header, then gone.
        let addr = exposed.trim_start_matches("tcp://");
        let mut raw = std::net::TcpStream::connect(addr).unwrap();
        raw.write_all(&utp::frame::MAGIC_BYTES).unwrap();
        drop(raw);
    }
    assert_eq!(healthy.call(b"ADD 2 3").unwrap(), b"OK 5");
    assert_eq!(run(&["call", exposed, "SUB", "9", "4"]).stdout, b"5\n");
}

#[test]
fn a_restarted_service_is_an_error_then_reachable_again() {
    let sock = socket_path("bridge-restart");
    let _cleanup = util::RemoveOnDrop(sock.clone());
    let service = format!("unix://{}", sock.display());
    let server = Server::start("calc", &service);
    let bridge = Bridge::start(&service, "tcp://127.0.0.1:0");
    let exposed = bridge.url.clone();
    let mut client = Client::connect(&exposed).unwrap();
    assert_eq!(client.call(b"ADD 1 1").unwrap(), b"OK 2");
    server.kill();
    // The client in the middle of a session hears why.
    let err = client.call(b"ADD 1 1").unwrap_err();
    assert!(
        err.to_string().contains("service went away") || err.is_peer_gone(),
        "{err}"
    );
    // A new client is told the bridge cannot reach the service.
    let _ = std::fs::remove_file(&sock);
    let out = run(&["call", &exposed, "ADD", "1", "1", "--timeout", "5s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cannot reach"),
        "{stderr}"
    );
    let _server = Server::start("calc", &service);
    assert_eq!(run(&["call", &exposed, "ADD", "20", "22"]).stdout, b"42\n");
}

#[test]
fn a_restarted_bridge_is_noticed_by_its_clients_and_serves_again() {
    let (server, mut bridge, _sock) = calc_behind_bridge();
    let exposed = bridge.url.clone();
    let mut client = Client::connect(&exposed).unwrap();
    assert_eq!(client.call(b"ADD 1 1").unwrap(), b"OK 2");
    bridge.kill();
    let started = Instant::now();
    let err = client.call(b"ADD 1 1").unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let _bridge = Bridge::start(&server.url, &exposed);
    let mut client = Client::connect(&exposed).unwrap();
    assert_eq!(client.call(b"ADD 2 2").unwrap(), b"OK 4");
}

#[test]
fn a_service_that_stops_reading_pushes_back_on_the_client() {
    // The "service" accepts and never reads: the bridge may hold one frame,
    // the sockets a few MiB; the client's sends must then time out.
    let mut listener = utp::listen("tcp://127.0.0.1:0").unwrap();
    let service = listener.endpoint();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let channel = listener.accept().unwrap();
        let _ = released.recv_timeout(Duration::from_secs(60));
        drop(channel);
    });
    let bridge = Bridge::spawn(&service, "tcp://127.0.0.1:0", &["--send-timeout", "30s"]);
    // The ready file is written once the bridge listens.
    let mut client = utp::connect(&bridge.url).expect("the bridge listens");
    let chunk = vec![7u8; 1 << 20];
    let mut sent = 0usize;
    let err = loop {
        match client.send_timeout(
            message_type::DATA,
            flags::CHECKSUM,
            &chunk,
            Some(Duration::from_secs(2)),
        ) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(
            sent < 200,
            "200 MiB accepted: something queues without bound"
        );
    };
    assert!(err.is_timeout(), "{err}");
    eprintln!("backpressure after {sent} MiB");
    release.send(()).unwrap();
    holder.join().unwrap();
}

#[test]
fn a_pubsub_bridge_announces_its_port_and_relays_a_feed() {
    use utp::pubsub::{Publisher, Subscriber};
    let topic = format!("shm://{}", util::unique("bridge-feed"));
    let mut publisher = Publisher::create(&topic).unwrap();
    let bridge = Bridge::spawn(&topic, "tcp://127.0.0.1:0", &["--pubsub"]);
    let port = bridge
        .url
        .strip_prefix("tcp://127.0.0.1:")
        .expect("tcp URL");
    assert!(port.parse::<u16>().is_ok_and(|p| p != 0), "{}", bridge.url);
    // The bridge subscribes when it starts; until our subscriber and the
    // bridge are both attached, messages are not seen: publish until one is.
    let mut subscriber = Subscriber::connect(&bridge.url).unwrap();
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0u32;
    loop {
        sent += 1;
        publisher.send(format!("tick {sent}").as_bytes()).unwrap();
        if subscriber
            .recv(&mut buf, Some(Duration::from_millis(50)))
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing relayed after {sent} messages"
        );
    }
    let text = String::from_utf8(buf).unwrap();
    assert!(text.starts_with("tick "), "{text}");
}
