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
    shm_util::child_entry(|role, url, _| {
        role == "echo" && {
            echo(url);
            true
        }
    });
}

/// Child: serves `url`, sending every frame back as it came, checksum
/// verified on the way in (by `recv`) and set on the way out.
fn echo(url: &str) {
    let mut listener = utp::listen(url).unwrap();
    shm_util::say("READY");
    let mut ch = listener.accept().unwrap();
    let mut frame = Frame::default();
    while ch.recv(&mut frame).is_ok() {
        ch.send(message_type::DATA, flags::CHECKSUM, frame.payload())
            .unwrap();
    }
}

/// Frames larger than a piece (`utp::shm::ring::PIECE`, 16 KiB of record)
/// go out in pieces both ways between two processes that agreed to them,
/// and every byte comes back, checksum verified, received by copy or in
/// place, spinning or sleeping.
#[test]
fn frames_in_pieces_cross_between_processes_intact() {
    use utp::Channel;
    use utp::shm::ShmLink;
    use utp::shm::ring::{PAYLOAD_OFFSET, PIECE};
    let first = PIECE - PAYLOAD_OFFSET;
    // Around the first piece's end, a few pieces, a ragged end, 1 MB.
    let sizes = [first, first + 1, 3 * PIECE, 65_536, 200_001, 1_000_000];
    for mode in ["spin", "block"] {
        let name = unique(&format!("pieces-{mode}"));
        let url = format!("shm://{name}?wait={mode}&ring=4M");
        let mut server = Proc::spawn("echo", &url, "");
        server.expect("READY");
        let mut ch = utp::connect(&url)
            .unwrap()
            .downcast::<ShmLink>()
            .expect("an shm link");
        let mut frame = Frame::default();
        let mut copy = Vec::new();
        for (i, &len) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..len).map(|j| (j * 7 + i) as u8).collect();
            for in_place in [false, true] {
                ch.send(message_type::DATA, flags::CHECKSUM, &payload)
                    .unwrap();
                if in_place {
                    let view = ch.recv_view(Some(Duration::from_secs(10))).unwrap();
                    view.copy_payload(&mut copy).unwrap();
                } else {
                    ch.recv_timeout(&mut frame, Some(Duration::from_secs(10)))
                        .unwrap();
                    copy.clear();
                    copy.extend_from_slice(frame.payload());
                }
                assert!(copy == payload, "{mode}: {len} bytes, in place: {in_place}");
            }
        }
        drop(ch);
        server.kill();
        shm_util::remove_socket(&url);
        assert!(dev_shm_entries(&name).is_empty());
    }
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
    shm_util::remove_socket(&url);
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
    shm_util::remove_socket(&url);
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
        shm_util::remove_socket(&url);
        assert!(dev_shm_entries(&name).is_empty());
    }
}

#[test]
fn garbage_and_silent_clients_do_not_stop_the_listener() {
    use std::io::{Read as _, Write as _};
    use std::os::unix::net::UnixStream;
    let name = unique("garbage");
    let url = format!("shm://{name}");
    let mut server = Proc::spawn("server", &url, "");
    server.expect("READY");
    let addr = utp::runtime_dir::private_dir()
        .unwrap()
        .join(format!("shm.{name}"));
    // Not a frame at all; HELLOs of other layout versions; one that says nothing.
    let mut junk = UnixStream::connect(&addr).unwrap();
    junk.write_all(&[0xAB; 100]).unwrap();
    for (version, advice) in [(1u8, "upgrade the client"), (9, "upgrade the server")] {
        let mut wrong = UnixStream::connect(&addr).unwrap();
        let mut payload = [0u8; 16];
        payload[0] = version;
        let hello = utp::frame::encode_to_vec(
            &utp::frame::Header::new(message_type::LINK_HELLO, flags::CHECKSUM, 1, 0),
            &payload,
        );
        wrong.write_all(&hello).unwrap();
        // The v2 server answers with an ERROR frame that says why, then closes.
        wrong
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reply = Vec::new();
        wrong.read_to_end(&mut reply).unwrap();
        let (header, text) = utp::frame::decode(&reply, 4096).unwrap();
        assert_eq!(header.message_type, message_type::ERROR);
        let text = String::from_utf8_lossy(text);
        assert!(
            text.contains(&format!(
                "speaks shm layout version 2, the client sent version {version}"
            )) && text.contains(advice),
            "{text}"
        );
    }
    let _silent = UnixStream::connect(&addr).unwrap();
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
    shm_util::remove_socket(&url);
    assert!(dev_shm_entries(&name).is_empty());
}
