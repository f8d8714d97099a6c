//! Shared-memory links between real processes: round trips, many clients,
//! wait modes, misbehaving clients. Children are this binary re-executed
//! (see `shm_util`).
//!
//! Also run under AddressSanitizer (clean on 2026-11-25), like the other
//! shm test binaries:
//! `RUSTFLAGS="-Zsanitizer=address" cargo +nightly test -p utp --test shm_process
//! --target x86_64-unknown-linux-gnu --target-dir target/asan`

mod shm_util;

use shm_util::{Proc, dev_shm_entries, unique};
use std::time::{Duration, Instant};
use utp::frame::{Frame, flags, message_type};

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    shm_util::child_entry(|_, _, _| false);
}

#[test]
fn round_trip_across_two_processes() {
    let name = unique("rt2");
    let url = format!("shm://{name}");
    let mut server = Proc::spawn("server", &url, "");
    server.expect("READY");
    let mut ch = utp::connect(&url).unwrap();
    assert_eq!(ch.peer().pid, Some(server.child.id()));
    let mut frame = Frame::default();
    ch.send(message_type::REQUEST, flags::CHECKSUM, b"MUL 6 7")
        .unwrap();
    ch.recv_timeout(&mut frame, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(frame.payload(), b"OK 42");
    drop(ch);
    server.kill();
    // The client was the survivor of its link and removed it.
    assert!(
        dev_shm_entries(&name).is_empty(),
        "{:?}",
        dev_shm_entries(&name)
    );
}

#[test]
fn four_client_processes_times_500_calls() {
    let name = unique("four");
    let url = format!("shm://{name}");
    let mut server = Proc::spawn("server", &url, "");
    server.expect("READY");
    let mut clients: Vec<Proc> = (0..4).map(|_| Proc::spawn("calls", &url, "500")).collect();
    for c in &mut clients {
        c.expect("DONE");
        c.wait_ok();
    }
    server.kill();
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        dev_shm_entries(&name).is_empty(),
        "{:?}",
        dev_shm_entries(&name)
    );
}

#[test]
fn spin_and_block_modes_across_processes() {
    for mode in ["spin", "block"] {
        let name = unique(mode);
        let url = format!("shm://{name}?wait={mode}&ring=4k");
        let mut server = Proc::spawn("server", &url, "");
        server.expect("READY");
        let mut client = Proc::spawn("calls", &url, "300");
        client.expect("DONE");
        client.wait_ok();
        server.kill();
        assert!(dev_shm_entries(&name).is_empty());
    }
}

#[test]
fn garbage_and_silent_clients_do_not_stop_the_listener() {
    use std::io::Write as _;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixStream};
    let name = unique("garbage");
    let url = format!("shm://{name}");
    let mut server = Proc::spawn("server", &url, "");
    server.expect("READY");
    let addr = SocketAddr::from_abstract_name(format!("utp/shm/{name}")).unwrap();
    // Not a frame at all; a HELLO with a wrong layout version; one that says nothing.
    let mut junk = UnixStream::connect_addr(&addr).unwrap();
    junk.write_all(&[0xAB; 100]).unwrap();
    let mut wrong = UnixStream::connect_addr(&addr).unwrap();
    let hello = utp::frame::encode_to_vec(
        &utp::frame::Header::new(message_type::LINK_HELLO, flags::CHECKSUM, 1, 0),
        &[9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    wrong.write_all(&hello).unwrap();
    let _silent = UnixStream::connect_addr(&addr).unwrap();
    // A real client is served at once: handshakes run concurrently, so the
    // silent client (dropped after 2 s) does not hold it up.
    let start = Instant::now();
    let mut client = Proc::spawn("calls", &url, "20");
    client.expect("DONE");
    client.wait_ok();
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    server.kill();
    assert!(dev_shm_entries(&name).is_empty());
}
