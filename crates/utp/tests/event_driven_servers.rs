//! Servers hold shm, mq and inproc clients without a thread each (their
//! channels have readiness, so `Server` parks them in its epoll set).
//! Alone in its binary: it counts this process's threads.

use std::time::Duration;
use utp::service::{Client, Server, calc};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn hold_many(url: &str, clients: usize) {
    let mut server = Server::new(utp::listen(url).unwrap(), calc::handler());
    let stop = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());
    let mut held = Vec::new();
    // Warm up: the reactor and its first workers start with the first client.
    let mut first = Client::connect(url).unwrap();
    assert_eq!(first.call(b"ADD 1 2").unwrap(), b"OK 3");
    std::thread::sleep(Duration::from_millis(100));
    let before = threads();
    for i in 0..clients {
        let mut c = Client::connect(url).unwrap();
        let request = format!("ADD {i} 1");
        assert_eq!(
            c.call(request.as_bytes()).unwrap(),
            format!("OK {}", i + 1).as_bytes()
        );
        held.push(c);
    }
    // Every client is still served.
    for (i, c) in held.iter_mut().enumerate() {
        let request = format!("ADD {i} 2");
        assert_eq!(
            c.call(request.as_bytes()).unwrap(),
            format!("OK {}", i + 2).as_bytes()
        );
    }
    let after = threads();
    // A thread per client would add `clients`; the worker pool grows by a
    // few at most (docs/transports.md, "Servers").
    assert!(
        after < before + clients / 4,
        "{url}: {before} threads before, {after} with {clients} more clients"
    );
    drop(held);
    drop(first);
    stop.trigger();
    thread.join().unwrap().unwrap();
}

#[test]
fn shm_mq_and_inproc_clients_cost_no_thread() {
    let n = std::process::id();
    hold_many(&format!("shm://threads-{n}?ring=4096"), 64);
    hold_many(&format!("mq://threads-{n}"), 8);
    hold_many(&format!("inproc://threads-{n}"), 64);
}
