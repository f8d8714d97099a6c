//! The tokio layer (feature `tokio`) across real processes: cancellation-safe
//! receives, backpressure, deadlines, the Stream/Sink adapter, and the async
//! calculator server with 1,000 concurrent clients in other processes.

mod child;

use child::{Proc, say, unique};
use std::future::poll_fn;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};
use utp::frame::{Frame, flags, message_type};
use utp::tokio::service::{Client, Server};
use utp::tokio::{AsyncChannel, Outgoing};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A unix:// URL in the temp directory, unique to this test, and its path.
fn unix_url(tag: &str) -> (String, PathBuf) {
    let path = std::env::temp_dir().join(format!("utp-{}.sock", unique(tag)));
    (format!("unix://{}", path.display()), path)
}

/// The payload of frame `i` (from 1): lengths from 0 to ~70 KB, so large
/// frames arrive in several reads and a cancelled receive sees half frames.
fn payload(i: u64) -> Vec<u8> {
    let len = (i * 7919 % 70_000) as usize * usize::from(i % 3 == 0);
    (0..len).map(|j| (i as usize + j) as u8).collect()
}

/// Receives frames 1..=n of a `sender` child, checking number and payload.
async fn receive_numbered(channel: &mut utp::tokio::AsyncChannel, frame: &mut Frame, n: u64) {
    for i in 1..=n {
        channel
            .recv_timeout(frame, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(frame.header.sequence, i);
        assert!(frame.payload() == payload(i), "payload of frame {i}");
    }
}

/// Every `sender` child got its channel and sent everything.
fn senders_finish(senders: &mut [Proc]) {
    for sender in senders {
        sender.expect("READY");
        sender.expect("DONE");
    }
}

/// Removes a file when dropped (a test that fails leaves nothing behind).
struct Remove(PathBuf);
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn wait_for_file(path: &Path) {
    let until = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < until, "no go signal at {}", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The entry point of child processes (see tests/child).
#[test]
fn child_entry() {
    let Some((role, url, arg)) = child::role() else {
        return;
    };
    // A failure anywhere in a child (a task of its runtime included) ends the
    // process at once with a FAIL line, so the parent fails instead of waiting.
    std::panic::set_hook(Box::new(|info| {
        say(&format!("FAIL {}", info.to_string().replace('\n', " ")));
        std::process::exit(1);
    }));
    match role.as_str() {
        // Sends frames 1..=N with `payload(i)`, pausing now and then.
        "sender" => {
            let count: u64 = arg.parse().unwrap();
            let mut channel = utp::connect(&url).unwrap();
            say("READY");
            for i in 1..=count {
                channel
                    .send(message_type::DATA, flags::CHECKSUM, &payload(i))
                    .unwrap();
                if i % 8 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            say("DONE");
            // Stay until the receiver has everything (it closes first).
            let mut frame = Frame::default();
            let _ = channel.recv_timeout(&mut frame, Some(Duration::from_secs(60)));
        }
        // Connects, reads nothing until the go file exists, then checks
        // every frame until the peer closes.
        "slow_reader" => {
            let mut channel = utp::connect(&url).unwrap();
            channel
                .send(message_type::DATA, flags::CHECKSUM, b"hello")
                .unwrap();
            say("READY");
            wait_for_file(Path::new(&arg));
            let mut frame = Frame::default();
            let mut count = 0u64;
            let mut first = None;
            loop {
                match channel.recv_timeout(&mut frame, Some(Duration::from_secs(30))) {
                    Ok(()) => {
                        count += 1;
                        // Numbered one by one (FIFO clients start at a random number).
                        let first = *first.get_or_insert(frame.header.sequence);
                        assert_eq!(frame.header.sequence, first.wrapping_add(count - 1));
                        assert!(
                            frame.payload() == payload(count),
                            "payload of frame {count}"
                        );
                    }
                    Err(e) if e.is_peer_gone() => break,
                    Err(e) => panic!("slow reader: {e}"),
                }
            }
            say(&format!("DONE {count}"));
        }
        // TASKS async clients: all connect and make one call, READY, then
        // after the go file each makes CALLS more; DONE with the count.
        "calc_clients" => {
            let fields: Vec<&str> = arg.split(' ').collect();
            let tasks: u64 = fields[0].parse().unwrap();
            let go = PathBuf::from(fields[1]);
            let calls: u64 = fields[2].parse().unwrap();
            let answered = runtime().block_on(calc_clients(url, tasks, go, calls));
            say(&format!("DONE {answered}"));
        }
        other => panic!("unknown child role {other}"),
    }
}

async fn calc_clients(url: String, tasks: u64, go: PathBuf, calls: u64) -> u64 {
    let connected = std::sync::Arc::new(tokio::sync::Barrier::new(tasks as usize + 1));
    let mut running = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let url = url.clone();
        let connected = connected.clone();
        let go = go.clone();
        running.spawn(async move {
            let mut client = Client::connect(&url).await.unwrap();
            client.set_timeout(Some(Duration::from_secs(60)));
            let seed = std::process::id() as i64 * 1_000_003 + task as i64;
            assert_eq!(
                client.call(&format!("ADD {seed} 1")).await.unwrap(),
                format!("OK {}", seed + 1)
            );
            connected.wait().await;
            while !go.exists() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut answered = 1;
            for call in 0..calls as i64 {
                let (a, b) = (seed - call * 7, call * 13 - 5);
                let (request, expected) = match call % 3 {
                    0 => (format!("ADD {a} {b}"), a + b),
                    1 => (format!("SUB {a} {b}"), a - b),
                    _ => (format!("MUL {a} {b}"), a * b),
                };
                assert_eq!(
                    client.call(&request).await.unwrap(),
                    format!("OK {expected}"),
                    "{request}"
                );
                answered += 1;
            }
            client.close().await.unwrap();
            answered
        });
    }
    connected.wait().await;
    say("READY");
    let mut answered = 0;
    while let Some(done) = running.join_next().await {
        answered += done.unwrap();
    }
    answered
}

/// Receives N frames sent by a child process while racing every receive
/// against a timer and a yield (`select!`): many receives are cancelled,
/// some with half a frame read, and every frame must arrive, whole, in order.
/// `lent`: received with `recv_ref` (lent from the channel's buffers), else
/// with `recv` into a `Frame`.
fn cancelled_receives_lose_no_frame(url: &str, lent: bool) {
    const N: u64 = 3000;
    let rt = runtime();
    rt.block_on(async {
        let mut listener = utp::tokio::listen(url).unwrap();
        let mut sender = Proc::spawn("sender", &listener.endpoint(), &N.to_string());
        let mut channel = listener.accept().await.unwrap();
        sender.expect("READY");
        let mut frame = Frame::default();
        let (mut next, mut cancelled) = (1u64, 0u64);
        let mut first = None;
        let mut rounds = 0u64;
        while next <= N {
            rounds += 1;
            let pause = Duration::from_micros(rounds % 3 * 400);
            // Sequence and payload of the frame received, if one was.
            let received = async {
                if lent {
                    let frame = channel.recv_ref(&mut frame).await.unwrap();
                    (frame.header.sequence, frame.payload == payload(next))
                } else {
                    channel.recv(&mut frame).await.unwrap();
                    (frame.header.sequence, frame.payload() == payload(next))
                }
            };
            tokio::select! {
                (sequence, payload_right) = received => {
                    // Numbered one by one (FIFO clients start at a random number).
                    let first = *first.get_or_insert(sequence);
                    assert_eq!(sequence, first.wrapping_add(next - 1));
                    assert!(payload_right, "payload of frame {next}");
                    next += 1;
                }
                () = tokio::time::sleep(pause) => cancelled += 1,
                () = tokio::task::yield_now(), if rounds % 2 == 0 => cancelled += 1,
            }
        }
        sender.expect("DONE");
        assert!(cancelled > 100, "only {cancelled} receives were cancelled");
        listener.close().await.unwrap();
    });
}

// Each transport receives copied (`recv`) and lent (`recv_ref`) in turn.
#[test]
fn cancelled_receives_lose_no_frame_over_unix() {
    for (tag, lent) in [("cancel", false), ("cancel-lent", true)] {
        let (url, path) = unix_url(tag);
        let _cleanup = Remove(path);
        cancelled_receives_lose_no_frame(&url, lent);
    }
}

#[test]
fn cancelled_receives_lose_no_frame_over_tcp() {
    for lent in [false, true] {
        cancelled_receives_lose_no_frame("tcp://127.0.0.1:0", lent);
    }
}

#[test]
fn cancelled_receives_lose_no_frame_over_fifo() {
    for (tag, lent) in [("fifo-cancel", false), ("fifo-cancel-lent", true)] {
        let path = std::env::temp_dir().join(format!("utp-{}", unique(tag)));
        cancelled_receives_lose_no_frame(&format!("fifo://{}", path.display()), lent);
    }
}

#[test]
fn cancelled_receives_lose_no_frame_over_shm() {
    for (tag, lent) in [("cancel", false), ("cancel-lent", true)] {
        cancelled_receives_lose_no_frame(&format!("shm://{}", unique(tag)), lent);
    }
}

/// A reader in another process that does not read: `send_timeout` fails
/// after its limit with nothing sent in part; once it reads, every frame
/// sent (waiting for room), one by one and then in batches, arrives whole
/// and in order.
fn sends_wait_for_room(url: &str) {
    let go = std::env::temp_dir().join(format!("utp-{}.go", unique("room")));
    let _cleanup = Remove(go.clone());
    runtime().block_on(async {
        let mut listener = utp::tokio::listen(url).unwrap();
        let mut reader = Proc::spawn("slow_reader", &listener.endpoint(), go.to_str().unwrap());
        let mut channel = listener.accept().await.unwrap();
        reader.expect("READY");
        // FIFO sessions start with the client's first frame.
        let mut hello = Frame::default();
        channel
            .recv_timeout(&mut hello, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(hello.payload(), b"hello");
        let mut sent = 0u64;
        let limit = Duration::from_millis(300);
        loop {
            let started = Instant::now();
            match channel
                .send_timeout(
                    message_type::DATA,
                    flags::CHECKSUM,
                    &payload(sent + 1),
                    limit,
                )
                .await
            {
                Ok(()) => sent += 1,
                Err(e) => {
                    assert!(e.is_timeout(), "{e}");
                    // The deadline is the point: not early (slack for a busy machine afterwards).
                    assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
                    break;
                }
            }
            assert!(sent < 100_000, "the peer never filled up");
        }
        assert!(sent > 0);
        std::fs::write(&go, b"go").unwrap();
        for _ in 0..100 {
            sent += 1;
            channel
                .send(message_type::DATA, flags::CHECKSUM, &payload(sent))
                .await
                .unwrap();
        }
        // Then batches, into a channel still full: each takes what fits,
        // then waits for room, until all of it is sent.
        for _ in 0..20 {
            let payloads: Vec<Vec<u8>> = (sent + 1..=sent + 10).map(payload).collect();
            let batch: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            channel
                .send_batch(message_type::DATA, flags::CHECKSUM, &batch)
                .await
                .unwrap();
            sent += 10;
        }
        channel.flush().await.unwrap();
        channel.close().unwrap();
        let fields = reader.expect_fields("DONE");
        assert_eq!(fields[0], sent.to_string());
        reader.wait_ok();
        listener.close().await.unwrap();
    });
}

#[test]
fn sends_wait_for_room_over_unix() {
    let (url, path) = unix_url("room");
    let _cleanup = Remove(path);
    sends_wait_for_room(&url);
}

#[test]
fn sends_wait_for_room_over_shm() {
    // 256 KiB rings: room for three of the largest payloads (about 70 KB).
    sends_wait_for_room(&format!("shm://{}?ring=256k", unique("shm-room")));
}

#[test]
fn sends_wait_for_room_over_fifo() {
    let path = std::env::temp_dir().join(format!("utp-{}", unique("fifo-room")));
    sends_wait_for_room(&format!("fifo://{}", path.display()));
}

/// A peer that sends half a frame and stalls: the async receive fails at the
/// frame deadline, as the blocking one does; lent or not.
#[test]
fn a_stalled_frame_fails_at_its_deadline() {
    for lent in [false, true] {
        a_stalled_frame_fails_at_its_deadline_when(lent);
    }
}

fn a_stalled_frame_fails_at_its_deadline_when(lent: bool) {
    let (url, path) = unix_url("stall");
    let _cleanup = Remove(path.clone());
    runtime().block_on(async {
        let mut listener = utp::tokio::listen(&format!("{url}?frame_timeout_ms=300")).unwrap();
        let mut raw = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let mut channel = listener.accept().await.unwrap();
        // The first 8 bytes of a 32-byte header: magic, version, type.
        std::io::Write::write_all(&mut raw, b"BPTU\x01\x01\x00\x00").unwrap();
        let started = Instant::now();
        let mut frame = Frame::default();
        let result = if lent {
            match tokio::time::timeout(Duration::from_secs(10), channel.recv_ref(&mut frame)).await
            {
                Ok(received) => received.map(|_| ()),
                Err(_) => panic!("the call's 10 s passed, not the frame deadline"),
            }
        } else {
            channel
                .recv_timeout(&mut frame, Duration::from_secs(10))
                .await
        };
        let took = started.elapsed();
        let error = result.expect_err("half a frame must not be received");
        assert!(
            !error.is_timeout(),
            "the frame deadline, not the call's: {error}"
        );
        // 300 ms deadline: not before it, and well before the 10 s call limit.
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(5),
            "{took:?}: {error}"
        );
        listener.close().await.unwrap();
    });
}

/// Polls a sink/stream method to completion.
async fn ready<T>(mut f: impl FnMut(&mut std::task::Context<'_>) -> std::task::Poll<T>) -> T {
    poll_fn(|cx| f(cx)).await
}

#[test]
fn frames_flow_through_the_stream_and_sink_adapters() {
    use futures_core::Stream;
    use futures_sink::Sink;
    let (url, path) = unix_url("stream");
    let _cleanup = Remove(path);
    runtime().block_on(async {
        let mut listener = utp::tokio::listen(&url).unwrap();
        let client = utp::tokio::connect(&url).await.unwrap();
        let server = listener.accept().await.unwrap();
        let mut sink = client.into_stream();
        let writer = tokio::spawn(async move {
            for i in 1..=300u64 {
                ready(|cx| Pin::new(&mut sink).poll_ready(cx))
                    .await
                    .unwrap();
                Pin::new(&mut sink)
                    .start_send(Outgoing::new(message_type::DATA, payload(i)))
                    .unwrap();
            }
            ready(|cx| Pin::new(&mut sink).poll_close(cx))
                .await
                .unwrap();
        });
        let mut stream = server.into_stream();
        let mut count = 0u64;
        while let Some(frame) = ready(|cx| Pin::new(&mut stream).poll_next(cx)).await {
            let frame = frame.unwrap();
            count += 1;
            assert_eq!(frame.header.sequence, count);
            assert!(
                frame.payload() == payload(count),
                "payload of frame {count}"
            );
        }
        assert_eq!(
            count, 300,
            "the stream ends when the peer closes, after every frame"
        );
        writer.await.unwrap();
        listener.close().await.unwrap();
    });
}

/// The async calculator server in this process; `clients` processes of
/// `tasks` async clients each, all connected at once, every answer checked.
fn serve_many(url: &str, processes: u64, tasks: u64, calls: u64) {
    let go = std::env::temp_dir().join(format!("utp-{}.go", unique("many")));
    let _cleanup = Remove(go.clone());
    let rt = runtime();
    rt.block_on(async {
        let server = Server::new(
            utp::tokio::listen(url).unwrap(),
            utp::service::calc::handler(),
        );
        let endpoint = server.endpoint();
        let stats = server.stats();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        let arg = format!("{tasks} {} {calls}", go.display());
        let mut children: Vec<Proc> = (0..processes)
            .map(|_| Proc::spawn("calc_clients", &endpoint, &arg))
            .collect();
        let waiting = tokio::task::spawn_blocking(move || {
            for child in &mut children {
                child.expect("READY");
            }
            children
        });
        let mut children = waiting.await.unwrap();
        // Every client has connected, made a call and holds its connection.
        let connections = stats.connections.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(connections, processes * tasks);
        std::fs::write(&go, b"go").unwrap();
        let children = tokio::task::spawn_blocking(move || {
            for child in &mut children {
                assert_eq!(
                    child.expect_fields("DONE")[0],
                    (tasks * (calls + 1)).to_string()
                );
                child.wait_ok();
            }
        });
        children.await.unwrap();
        let requests = stats.requests.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(requests, processes * tasks * (calls + 1));
        assert_eq!(
            stats
                .client_errors
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        let _ = stop.send(());
        serving.await.unwrap().unwrap();
    });
}

#[test]
fn a_thousand_async_clients_over_unix() {
    let (url, path) = unix_url("thousand");
    serve_many(&url, 4, 250, 10);
    assert!(!path.exists(), "the socket file is removed at shutdown");
}

#[test]
fn many_async_clients_over_tcp() {
    serve_many("tcp://127.0.0.1:0", 4, 50, 10);
}

/// 100 handshakes at once from one uid: more than the acceptor keeps per
/// uid (64), on a thread busy making regions. It used to close the oldest
/// after 50 ms even when its client had already sent LINK_READY, which
/// then failed its first call with "the peer closed the link".
#[test]
fn many_async_clients_over_shm() {
    serve_many(&format!("shm://{}", unique("tokio-many")), 2, 50, 10);
}

#[test]
fn the_async_server_closes_idle_clients_and_refuses_beyond_its_limit() {
    let (url, path) = unix_url("limits");
    let _cleanup = Remove(path);
    runtime().block_on(async {
        let server = Server::new(
            utp::tokio::listen(&url).unwrap(),
            utp::service::calc::handler(),
        )
        .max_clients(2)
        .idle_timeout(Some(Duration::from_millis(300)));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        let mut first = Client::connect(&url).await.unwrap();
        let mut second = Client::connect(&url).await.unwrap();
        assert_eq!(first.call("ADD 1 2").await.unwrap(), "OK 3");
        assert_eq!(second.call("MUL 6 7").await.unwrap(), "OK 42");
        let mut third = Client::connect(&url).await.unwrap();
        let refused = third.call("ADD 1 1").await.unwrap_err();
        assert!(refused.to_string().contains("server busy"), "{refused}");

        // An idle client is told why and closed after its idle timeout.
        let started = Instant::now();
        let mut frame = Frame::default();
        let channel = first.channel();
        channel
            .recv_timeout(&mut frame, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(frame.message_type(), message_type::ERROR);
        assert!(String::from_utf8_lossy(frame.payload()).contains("idle"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let gone = channel
            .recv_timeout(&mut frame, Duration::from_secs(10))
            .await;
        assert!(gone.unwrap_err().is_peer_gone());
        let _ = stop.send(());
        serving.await.unwrap().unwrap();
    });
}

#[test]
fn a_channel_without_readiness_is_refused_clearly() {
    runtime().block_on(async {
        let url = format!("inproc://{}", unique("no-readiness"));
        let mut listener = utp::listen(&url).unwrap();
        let client = utp::connect(&url).unwrap();
        let _server = listener.accept().unwrap();
        let has_readiness = client.readiness().is_some();
        match AsyncChannel::new(client) {
            Ok(_) => assert!(has_readiness),
            Err(e) => {
                assert!(!has_readiness);
                assert!(e.to_string().contains("no readiness descriptor"), "{e}");
            }
        }
    });
}

#[test]
fn outside_a_runtime_is_an_error_not_a_panic() {
    let (url, path) = unix_url("no-runtime");
    let _cleanup = Remove(path);
    let error = utp::tokio::listen(&url).unwrap_err();
    assert!(error.to_string().contains("tokio runtime"), "{error}");
}

/// A listener with a readiness descriptor, as every listener gets one from
/// branch `ready`: a Unix socket whose accepted connections are utp stream
/// channels. It exercises `AsyncListener`'s reactor path, which the
/// listeners of this branch (all without readiness) do not reach.
#[derive(Debug)]
struct ReadyListener {
    socket: std::os::unix::net::UnixListener,
    path: PathBuf,
}

impl utp::Listener for ReadyListener {
    fn accept_timeout(&mut self, _timeout: Option<Duration>) -> utp::Result<Box<dyn utp::Channel>> {
        match self.socket.accept() {
            Ok((stream, _)) => Ok(Box::new(utp::transport::stream::StreamChannel::new(
                utp::transport::stream::StreamIo::Socket {
                    fd: stream.into(),
                    passes_fds: false,
                },
                utp::transport::stream::Framing::Detect,
                1 << 20,
                self.endpoint(),
                utp::PeerInfo::default(),
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(utp::Error::Timeout {
                waiting_for: "a client",
                after: Duration::ZERO,
            }),
            Err(e) => Err(utp::Error::io("accept", e)),
        }
    }

    fn endpoint(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn close(&mut self) -> utp::Result<()> {
        let _ = std::fs::remove_file(&self.path);
        Ok(())
    }

    fn readiness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(std::os::fd::AsFd::as_fd(&self.socket))
    }
}

#[test]
fn a_listener_with_readiness_is_served_on_the_reactor() {
    let (url, path) = unix_url("ready-listener");
    let _cleanup = Remove(path.clone());
    runtime().block_on(async {
        let socket = std::os::unix::net::UnixListener::bind(&path).unwrap();
        socket.set_nonblocking(true).unwrap();
        let listener = ReadyListener {
            socket,
            path: path.clone(),
        };
        let mut listener = utp::tokio::AsyncListener::new(Box::new(listener)).unwrap();
        assert!(listener.is_event_driven());
        let mut senders: Vec<Proc> = (0..3).map(|_| Proc::spawn("sender", &url, "200")).collect();
        let mut frame = Frame::default();
        for _ in 0..3 {
            // accept is cancellation-safe: race it against a short timer.
            let mut channel = loop {
                tokio::select! {
                    accepted = listener.accept() => break accepted.unwrap(),
                    () = tokio::time::sleep(Duration::from_millis(1)) => {}
                }
            };
            receive_numbered(&mut channel, &mut frame, 200).await;
        }
        senders_finish(&mut senders);
        listener.close().await.unwrap();
        assert!(!path.exists());
    });
}

/// A listener that hides its readiness descriptor, as a third-party
/// `Listener` without one would: `AsyncListener` serves it with one
/// accepting thread.
#[derive(Debug)]
struct NoReadiness(Box<dyn utp::Listener>);

impl utp::Listener for NoReadiness {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> utp::Result<Box<dyn utp::Channel>> {
        self.0.accept_timeout(timeout)
    }

    fn endpoint(&self) -> String {
        self.0.endpoint()
    }

    fn close(&mut self) -> utp::Result<()> {
        self.0.close()
    }
}

#[test]
fn a_listener_without_readiness_is_served_by_one_thread() {
    let (url, path) = unix_url("thread-listener");
    let _cleanup = Remove(path.clone());
    runtime().block_on(async {
        let inner = utp::listen(&url).unwrap();
        let mut listener = utp::tokio::AsyncListener::new(Box::new(NoReadiness(inner))).unwrap();
        assert!(!listener.is_event_driven());
        let mut senders: Vec<Proc> = (0..2).map(|_| Proc::spawn("sender", &url, "100")).collect();
        let mut frame = Frame::default();
        for _ in 0..2 {
            let mut channel = listener.accept().await.unwrap();
            receive_numbered(&mut channel, &mut frame, 100).await;
        }
        senders_finish(&mut senders);
        listener.close().await.unwrap();
        assert!(
            !path.exists(),
            "close().await returns once the endpoint is removed"
        );
    });
}

/// This thread's voluntary context switches: each time it slept.
fn times_this_thread_slept() -> u64 {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
        .map(|n| n.trim().parse().unwrap())
        .unwrap()
}

/// A receive that waits on a Unix socket is woken each time the peer
/// takes a frame this side sent (the socket turns writable again): the
/// early wake-up that has the runtime awake when an answer follows a
/// request (`tokio/interest.rs`). The receive itself still completes only
/// with the answer. Registered for reading alone, the thread slept once.
#[test]
fn a_waiting_receive_is_woken_early_when_its_peer_reads() {
    use std::io::{Read, Write};
    let (url, path) = unix_url("no-room-wakes");
    let _cleanup = Remove(path.clone());
    const FRAMES: usize = 20;
    const FRAME_LEN: usize = 32 + 64;
    // A plain socket peer that reads one frame at a time, slowly, then answers.
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let peer = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut frame = [0u8; FRAME_LEN];
        for _ in 0..FRAMES {
            std::thread::sleep(Duration::from_millis(5));
            socket.read_exact(&mut frame).unwrap();
        }
        let answer = b"read them all";
        let mut head = [0u8; 32];
        utp::frame::Stamper::default().stamp(
            message_type::DATA,
            flags::CHECKSUM,
            answer,
            &mut head,
        );
        socket.write_all(&head).unwrap();
        socket.write_all(answer).unwrap();
        // Until the client has the answer and closes.
        let _ = socket.read(&mut frame);
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut channel = AsyncChannel::new(utp::connect(&url).unwrap()).unwrap();
        for i in 0..FRAMES {
            channel
                .send(message_type::DATA, flags::CHECKSUM, &[i as u8; 64])
                .await
                .unwrap();
        }
        let slept_before = times_this_thread_slept();
        let mut frame = Frame::default();
        channel
            .recv_timeout(&mut frame, Duration::from_secs(30))
            .await
            .unwrap();
        let slept = times_this_thread_slept() - slept_before;
        assert_eq!(frame.payload(), b"read them all");
        assert!(
            slept >= FRAMES as u64 / 2,
            "slept {slept} times while the peer read {FRAMES} frames, 5 ms apart: \
             the peer's reads did not wake the runtime"
        );
        channel.close().unwrap();
    });
    peer.join().unwrap();
}

/// A lent receive's future is `Send`: a task spawned on the multi-threaded
/// runtime receives lent frames while another task sends them.
#[test]
fn lent_receives_run_in_spawned_tasks() {
    let (url, path) = unix_url("lent-spawn");
    let _cleanup = Remove(path);
    runtime().block_on(async {
        let mut listener = utp::tokio::listen(&url).unwrap();
        let mut client = utp::tokio::connect(&url).await.unwrap();
        let mut server = listener.accept().await.unwrap();
        let receiving = tokio::spawn(async move {
            let mut spare = Frame::default();
            let mut sum = 0u64;
            for _ in 0..100 {
                let frame = server.recv_ref(&mut spare).await.unwrap();
                sum += u64::from_le_bytes(frame.payload.try_into().unwrap());
            }
            sum
        });
        for i in 0..100u64 {
            client
                .send(message_type::DATA, 0, &i.to_le_bytes())
                .await
                .unwrap();
        }
        assert_eq!(receiving.await.unwrap(), (0..100).sum::<u64>());
        listener.close().await.unwrap();
    });
}
