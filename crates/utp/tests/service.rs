//! The service layer over the in-process transport: concurrency, isolation
//! of misbehaving clients, the client limit and shutdown.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use utp::frame::{Frame, flags, message_type};
use utp::service::{Client, Server, calc};

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "inproc://{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn start(
    url: &str,
    server: impl FnOnce(Server) -> Server,
) -> (
    utp::service::Shutdown,
    std::thread::JoinHandle<utp::Result<()>>,
) {
    let mut server = server(Server::new(utp::listen(url).unwrap(), calc::handler()));
    let stop = server.shutdown_handle();
    (stop, std::thread::spawn(move || server.run()))
}

#[test]
fn unexpected_message_types_get_an_error_frame_and_the_connection_goes_on() {
    let url = unique("types");
    let (stop, thread) = start(&url, |s| s);
    let mut channel = utp::connect(&url).unwrap();
    channel
        .send(message_type::DATA, flags::CHECKSUM, b"hello")
        .unwrap();
    let mut frame = Frame::default();
    channel
        .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(frame.message_type(), message_type::ERROR);
    assert!(String::from_utf8_lossy(frame.payload()).contains("unexpected message type 0x01"));
    channel.send(message_type::HEARTBEAT, 0, b"").unwrap();
    channel
        .send(message_type::REQUEST, flags::CHECKSUM, b"ADD 1 1")
        .unwrap();
    channel
        .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        (frame.message_type(), frame.payload()),
        (message_type::RESPONSE, &b"OK 2"[..])
    );
    stop.trigger();
    thread.join().unwrap().unwrap();
}

/// Whether the gate is open, and how many requests wait at it.
type Gate = std::sync::Arc<(std::sync::Mutex<(bool, usize)>, std::sync::Condvar)>;

/// A calculator whose `WAIT` request blocks in the handler until the gate
/// opens (10 s at most), counting the requests that are waiting.
fn gated_calculator(
    url: &str,
    max_clients: usize,
) -> (
    utp::service::Shutdown,
    std::thread::JoinHandle<utp::Result<()>>,
    Gate,
) {
    use std::sync::{Arc, Condvar, Mutex};
    let gate = Arc::new((Mutex::new((false, 0usize)), Condvar::new()));
    let calc = calc::handler();
    let held = gate.clone();
    let handler = move |request: &[u8], peer: &utp::PeerInfo| {
        if request != b"WAIT" {
            return utp::service::Handler::handle(&calc, request, peer);
        }
        let (lock, changed) = &*held;
        let mut state = lock.lock().unwrap();
        state.1 += 1;
        changed.notify_all();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !state.0 && std::time::Instant::now() < deadline {
            state = changed
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap()
                .0;
        }
        b"OK waited".to_vec()
    };
    let mut server = Server::new(utp::listen(url).unwrap(), handler).max_clients(max_clients);
    let stop = server.shutdown_handle();
    (stop, std::thread::spawn(move || server.run()), gate)
}

#[test]
fn clients_beyond_the_limit_are_told_the_server_is_busy_when_all_are_mid_request() {
    let url = unique("busy");
    let (stop, thread, gate) = gated_calculator(&url, 2);
    // Two clients, each with a request the handler holds: both are busy.
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&url).unwrap();
                client.set_timeout(Some(Duration::from_secs(20)));
                client.call(b"WAIT").unwrap().to_vec()
            })
        })
        .collect();
    {
        let (lock, changed) = &*gate;
        let mut state = lock.lock().unwrap();
        while state.1 < 2 {
            state = changed.wait(state).unwrap();
        }
    }
    let mut third = Client::connect(&url).unwrap();
    let error = third.call(b"ADD 3 3").unwrap_err();
    assert!(error.to_string().contains("server busy"), "{error}");
    {
        let (lock, changed) = &*gate;
        lock.lock().unwrap().0 = true;
        changed.notify_all();
    }
    for client in waiting {
        assert_eq!(client.join().unwrap(), b"OK waited");
    }
    // Once one is free again, a new client is served. The two clients
    // have hung up, but the server learns it from its workers, which may
    // not have run yet (seen under ThreadSanitizer): until then it is still
    // full, and says so. It must not stay full.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut fourth = Client::connect(&url).unwrap();
        match fourth.call(b"ADD 4 4") {
            Ok(reply) => {
                assert_eq!(reply, b"OK 8");
                break;
            }
            Err(e) if e.to_string().contains("server busy") => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "still busy 10 s after both clients left"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    }
    stop.trigger();
    thread.join().unwrap().unwrap();
}

#[test]
fn at_the_limit_a_new_client_takes_the_place_of_the_longest_idle_one() {
    let url = unique("evict");
    let (stop, thread, _gate) = gated_calculator(&url, 2);
    let mut first = Client::connect(&url).unwrap();
    let mut second = Client::connect(&url).unwrap();
    assert_eq!(first.call(b"ADD 1 2").unwrap(), b"OK 3");
    // A worker notes a client's last activity after its reply is sent; one
    // preempted in between can note it after the next client's. Apart by
    // far more than a preemption, the first is unambiguously the older.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(second.call(b"ADD 2 2").unwrap(), b"OK 4");
    // Both idle (a worker lingers 2 ms for a client's next request).
    std::thread::sleep(Duration::from_millis(200));
    let mut third = Client::connect(&url).unwrap();
    assert_eq!(third.call(b"ADD 3 3").unwrap(), b"OK 6");
    // The longest idle, the first, was told why and closed.
    first.set_timeout(Some(Duration::from_secs(5)));
    let error = first.call(b"ADD 1 1").unwrap_err();
    assert!(
        error.to_string().contains("server full") || error.is_peer_gone(),
        "{error}"
    );
    assert_eq!(second.call(b"ADD 5 5").unwrap(), b"OK 10");
    stop.trigger();
    thread.join().unwrap().unwrap();
}

#[test]
fn a_panicking_handler_costs_only_that_client() {
    let url = unique("panic");
    let listener = utp::listen(&url).unwrap();
    let mut server = Server::new(listener, |request: &[u8], _: &utp::PeerInfo| {
        assert!(request != b"boom", "handler bug");
        request.to_vec()
    });
    let stop = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());
    let mut victim = Client::connect(&url).unwrap();
    let mut bystander = Client::connect(&url).unwrap();
    victim.set_timeout(Some(Duration::from_secs(5)));
    assert!(victim.call(b"boom").unwrap_err().is_peer_gone());
    assert_eq!(bystander.call(b"still here").unwrap(), b"still here");
    stop.trigger();
    thread.join().unwrap().unwrap();
}

#[test]
fn many_threads_calling_at_once_all_get_their_own_answers() {
    let url = unique("many");
    let (stop, thread) = start(&url, |s| s);
    let workers: Vec<_> = (0..8i64)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&url).unwrap();
                for i in 0..200i64 {
                    let reply = calc::call(
                        &mut client,
                        &calc::Request {
                            op: calc::Op::Sub,
                            a: w * 1000 + i,
                            b: i,
                        },
                    )
                    .unwrap();
                    assert_eq!(reply, calc::Reply::Ok(w * 1000));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.trigger();
    thread.join().unwrap().unwrap();
}

#[test]
fn an_idle_limit_closes_idle_clients_of_thread_served_transports() {
    let url = unique("idle");
    let (stop, thread) = start(&url, |s| s.idle_timeout(Some(Duration::from_millis(300))));
    let mut idle = Client::connect(&url).unwrap();
    assert_eq!(idle.call(b"ADD 1 1").unwrap(), b"OK 2");
    let mut busy = Client::connect(&url).unwrap();
    // The busy client calls more often than the limit and stays.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(busy.call(b"ADD 2 2").unwrap(), b"OK 4");
    }
    let error = idle.call(b"ADD 1 1").unwrap_err();
    assert!(
        error.to_string().contains("idle") || error.is_peer_gone(),
        "{error}"
    );
    stop.trigger();
    thread.join().unwrap().unwrap();
}

/// shm and mq channels have readiness now, so the server serves them
/// event-driven; the idle limit of their URL (`?idle_timeout_ms=`) applies
/// like on stream transports.
#[test]
fn shm_and_mq_clients_get_the_idle_limit_of_their_url() {
    let n = std::process::id();
    for url in [
        format!("shm://idle-url-{n}?idle_timeout_ms=300"),
        format!("mq://idle-url-{n}?idle_timeout_ms=300"),
    ] {
        let (stop, thread) = start(&url, |s| s);
        let mut idle = Client::connect(&url).unwrap();
        assert_eq!(idle.call(b"ADD 1 1").unwrap(), b"OK 2");
        let mut busy = Client::connect(&url).unwrap();
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(busy.call(b"ADD 2 2").unwrap(), b"OK 4", "{url}");
        }
        let error = idle.call(b"ADD 1 1").unwrap_err();
        assert!(
            error.to_string().contains("idle") || error.is_peer_gone(),
            "{url}: {error}"
        );
        stop.trigger();
        thread.join().unwrap().unwrap();
    }
}

/// A call's timeout is a deadline for the whole call: a server that keeps
/// sending heartbeats and replies to other requests, but never the answer,
/// does not keep the client waiting past it.
#[test]
fn frames_that_are_not_the_answer_do_not_extend_a_call() {
    let url = unique("chatty");
    let mut listener = utp::listen(&url).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let chatting = stop.clone();
    let server = std::thread::spawn(move || {
        let mut channel = listener.accept().unwrap();
        let mut frame = Frame::default();
        channel
            .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
            .unwrap();
        let request = frame.header.sequence;
        // For at most 3 s: a client whose deadline restarted with each
        // frame would wait all that time.
        for i in 0..150 {
            if chatting.load(Ordering::Relaxed) {
                break;
            }
            let _ = if i % 2 == 0 {
                channel.send(message_type::HEARTBEAT, 0, b"")
            } else {
                channel.reply_timeout(message_type::RESPONSE, 0, b"OK 0", request + 1, None)
            };
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut client = Client::connect(&url).unwrap();
    client.set_timeout(Some(Duration::from_millis(300)));
    let start = std::time::Instant::now();
    let error = client.call(b"ADD 1 1").unwrap_err();
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    assert!(error.is_timeout(), "{error}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "the call took {took:?} with a 300 ms timeout"
    );
}
