//! Which congestion control `tcp://` connections send with (the
//! `?congestion=` option): Reno between two sockets of this machine by
//! default, the system's choice with `system`, a named algorithm on both
//! ends when asked for, and a clear error when the kernel refuses one.
//! Read back from the sockets themselves with `getsockopt(TCP_CONGESTION)`.

use std::time::Duration;
use utp::frame::{Frame, message_type};
use utp::{Channel, Error};

const DEADLINE: Duration = Duration::from_secs(10);

/// The algorithm `channel`'s socket sends with.
fn algorithm(channel: &dyn Channel) -> String {
    let readiness = channel.readiness().expect("a TCP channel has its socket");
    rustix::net::sockopt::tcp_congestion(readiness.fd).expect("TCP_CONGESTION")
}

/// A kernel setting under /proc/sys/net/ipv4, trimmed.
fn sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .unwrap_or_else(|e| panic!("read {name}: {e}"))
        .trim()
        .to_owned()
}

/// A loopback listener and a connection to it, with `query` on both URLs;
/// a frame each way proves the connection works. (client, server) channels.
fn pair(query: &str) -> (Box<dyn Channel>, Box<dyn Channel>) {
    let mut listener = utp::listen(&format!("tcp://127.0.0.1:0{query}")).unwrap();
    let url = format!("{}{query}", listener.endpoint());
    let client = std::thread::spawn(move || {
        let mut client = utp::connect(&url).unwrap();
        let mut frame = Frame::default();
        client.send(message_type::DATA, 0, b"hello").unwrap();
        client.recv_timeout(&mut frame, Some(DEADLINE)).unwrap();
        assert_eq!(frame.payload(), b"back");
        client
    });
    let mut server = listener.accept_timeout(Some(DEADLINE)).unwrap();
    let mut frame = Frame::default();
    server.recv_timeout(&mut frame, Some(DEADLINE)).unwrap();
    assert_eq!(frame.payload(), b"hello");
    server.send(message_type::DATA, 0, b"back").unwrap();
    (client.join().unwrap(), server)
}

#[test]
fn loopback_connections_send_with_reno_by_default() {
    for query in ["", "?congestion=auto"] {
        let (client, server) = pair(query);
        assert_eq!(algorithm(&*client), "reno", "client, {query:?}");
        assert_eq!(algorithm(&*server), "reno", "server, {query:?}");
    }
}

#[test]
fn system_keeps_the_kernels_default() {
    let default = sysctl("tcp_congestion_control");
    let (client, server) = pair("?congestion=system");
    assert_eq!(algorithm(&*client), default);
    assert_eq!(algorithm(&*server), default);
}

/// An algorithm this kernel has other than Reno (CUBIC is built into most
/// kernels), and whether this process may choose it.
fn another_algorithm() -> Option<(String, bool)> {
    let available = sysctl("tcp_available_congestion_control");
    let name = available
        .split_whitespace()
        .find(|n| *n != "reno")?
        .to_owned();
    let allowed = sysctl("tcp_allowed_congestion_control")
        .split_whitespace()
        .any(|n| n == name)
        || rustix::process::geteuid().is_root();
    Some((name, allowed))
}

#[test]
fn a_named_algorithm_is_used_on_both_ends_or_refused_with_the_reason() {
    let Some((name, allowed)) = another_algorithm() else {
        eprintln!("skipped: this kernel has no algorithm but reno");
        return;
    };
    let query = format!("?congestion={name}");
    if allowed {
        let (client, server) = pair(&query);
        assert_eq!(algorithm(&*client), name);
        assert_eq!(algorithm(&*server), name);
    } else {
        let error = utp::listen(&format!("tcp://127.0.0.1:0{query}")).unwrap_err();
        assert!(
            error.to_string().contains("without CAP_NET_ADMIN"),
            "{error}"
        );
    }
}

#[test]
fn an_algorithm_the_kernel_lacks_fails_listen_and_connect_clearly() {
    let query = "?congestion=no_such_cc";
    let error = utp::listen(&format!("tcp://127.0.0.1:0{query}")).unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("does not have it"), "{error}");

    let mut listener = utp::listen("tcp://127.0.0.1:0").unwrap();
    let error = utp::connect(&format!("{}{query}", listener.endpoint())).unwrap_err();
    assert!(error.to_string().contains("does not have it"), "{error}");
    // The refused client closed its connection: the server sees it go.
    if let Ok(Some(mut accepted)) = listener.try_accept() {
        let mut frame = Frame::default();
        assert!(accepted.recv_timeout(&mut frame, Some(DEADLINE)).is_err());
    }
}

#[test]
fn a_malformed_name_is_a_bad_url() {
    for url in [
        "tcp://127.0.0.1:1?congestion=",
        "tcp://127.0.0.1:1?congestion=a.b",
        "tcp://127.0.0.1:1?congestion=much_too_long_name",
    ] {
        let error = utp::connect(url).unwrap_err();
        assert!(matches!(error, Error::BadUrl { .. }), "{url}: {error:?}");
    }
}
