//! Shared-memory link within one process: round trips, wrap-around and
//! padding, backpressure, the zero-copy API, every region kind, cleanup.

mod util;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use utp::Channel;
use utp::frame::{Frame, flags, message_type};
use utp::shm::ShmLink;

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn dev_shm_entries(name: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("utp.{name}.")))
        .collect()
}

fn pair(url: &str) -> (Box<dyn utp::Listener>, ShmLink, Box<dyn utp::Channel>) {
    let mut listener = utp::listen(url).unwrap();
    let url2 = url.to_string();
    let client = std::thread::spawn(move || {
        utp::shm::connect(&url2.parse().unwrap(), &utp::Options::default()).unwrap()
    });
    let server = listener
        .accept_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    (listener, client.join().unwrap(), server)
}

#[test]
fn round_trip_over_a_sealed_memfd_with_nothing_in_dev_shm() {
    let name = unique("rt");
    let (listener, mut client, mut server) = pair(&format!("shm://{name}"));
    assert!(dev_shm_entries(&name).is_empty(), "v2 links have no name");
    let links = utp::shm::inspect::memfd_links(Some(&name));
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].pids, vec![std::process::id()]);
    assert_eq!(links[0].size, 4096 + 2 * (1 << 20));
    use std::os::unix::fs::PermissionsExt;
    let socket = utp::runtime_dir::private_dir()
        .unwrap()
        .join(format!("shm.{name}"));
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{socket:?}");
    let dir = std::fs::symlink_metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o077, 0);
    // `utp inspect` finds the listener and the memfd link through /proc.
    let state =
        utp::shm::inspect::endpoint_state(&format!("shm://{name}").parse().unwrap()).unwrap();
    assert!(state.listening, "{state:?}");
    assert_eq!(state.socket, socket.display().to_string());
    assert_eq!(state.links.len(), 1, "{state:?}");
    let link = state.links[0].1.as_ref().unwrap();
    for side in &link.sides {
        assert_eq!(side.state, "READY");
        assert_eq!(side.pid, std::process::id());
    }
    assert_eq!(link.rings[0].capacity, 1 << 20);
    let listed = utp::shm::inspect::list();
    assert!(
        listed
            .iter()
            .any(|e| e.kind == "listener" && e.detail == format!("shm://{name}")),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .any(|e| e.kind == "shm-link" && e.detail.starts_with(&format!("shm://{name} "))),
        "{listed:?}"
    );

    client
        .send(message_type::REQUEST, flags::CHECKSUM, b"ADD 1 2")
        .unwrap();
    let mut frame = Frame::default();
    server.recv(&mut frame).unwrap();
    assert_eq!(frame.payload(), b"ADD 1 2");
    assert_eq!(frame.header.sequence, 1);
    server
        .send(message_type::RESPONSE, flags::CHECKSUM, b"OK 3")
        .unwrap();
    client.recv(&mut frame).unwrap();
    assert_eq!(frame.payload(), b"OK 3");
    assert_eq!(client.peer().pid, Some(std::process::id()));

    drop(client);
    let err = server
        .recv_timeout(&mut frame, Some(Duration::from_secs(1)))
        .unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
    drop(server);
    drop(listener);
    assert!(utp::shm::inspect::memfd_links(Some(&name)).is_empty());
    assert!(!socket.exists(), "the listener removes its socket");
}

#[test]
fn many_frames_wrap_the_ring_with_padding() {
    let name = unique("wrap");
    let (_l, mut client, mut server) = pair(&format!("shm://{name}?ring=4k"));
    let t = std::thread::spawn(move || {
        let mut frame = Frame::default();
        for i in 0..5000u32 {
            server.recv(&mut frame).unwrap();
            let n = (i as usize * 37) % 900;
            assert_eq!(frame.payload().len(), n, "frame {i}");
            assert!(frame.payload().iter().all(|&b| b == i as u8));
            assert_eq!(frame.header.sequence, i as u64 + 1);
        }
        server
    });
    for i in 0..5000u32 {
        let n = (i as usize * 37) % 900;
        let payload = vec![i as u8; n];
        let f = if i % 2 == 0 { flags::CHECKSUM } else { 0 };
        client.send(message_type::DATA, f, &payload).unwrap();
    }
    drop(t.join().unwrap());
}

#[test]
fn full_ring_try_send_and_timeout() {
    let name = unique("full");
    let (_l, mut client, _server) = pair(&format!("shm://{name}?ring=4k&wait=block"));
    let payload = [7u8; 1000];
    let mut sent = 0;
    loop {
        match client.try_send(message_type::DATA, 0, &payload) {
            Ok(()) => sent += 1,
            Err(utp::Error::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        sent, 3,
        "3 records of 1088 bytes fit a 4 KiB ring (minus its slack line)"
    );
    let start = std::time::Instant::now();
    let err = client
        .send_timeout(
            message_type::DATA,
            0,
            &payload,
            Some(Duration::from_millis(50)),
        )
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(50));
    let err = client
        .try_send(message_type::DATA, 0, &[0u8; 5000])
        .unwrap_err();
    assert!(matches!(err, utp::Error::TooLarge { .. }), "{err}");
}

#[test]
fn zero_copy_reserve_and_view() {
    let name = unique("zc");
    let (_l, mut client, server) = pair(&format!("shm://{name}"));
    let mut r = client.reserve(5, None).unwrap();
    assert!(r.payload_mut().copy_from(b"hello"));
    r.commit(message_type::TEXT, flags::CHECKSUM);
    // The server end is a Box<dyn Channel>; receive with a second zero-copy link instead.
    let mut server = server;
    let mut frame = Frame::default();
    server.recv(&mut frame).unwrap();
    assert_eq!(frame.payload(), b"hello");
    server.send(message_type::TEXT, 0, b"world").unwrap();
    {
        let view = client.recv_view(Some(Duration::from_secs(1))).unwrap();
        assert!(view.payload().eq_bytes(b"world"));
        assert!(!view.payload().eq_bytes(b"worle"));
        assert_eq!(view.payload().get(4), Some(b'd'));
        let mut copy = Vec::new();
        view.copy_payload(&mut copy).unwrap();
        assert_eq!(copy, b"world");
        assert_eq!(view.header().message_type, message_type::TEXT);
    }
    let err = client
        .recv_view(Some(Duration::from_millis(20)))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[test]
fn sysv_and_file_links() {
    let key = 0x7000_0000 | (std::process::id() & 0xffff) as i32;
    let (_l, mut client, mut server) = pair(&format!("sysv://{key}"));
    client
        .send(message_type::DATA, flags::CHECKSUM, b"sysv")
        .unwrap();
    let mut frame = Frame::default();
    server.recv(&mut frame).unwrap();
    assert_eq!(frame.payload(), b"sysv");

    let dir = std::env::temp_dir().join(unique("file"));
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("link");
    {
        let (_l, mut client, mut server) = pair(&format!("file://{}", path.display()));
        client
            .send(message_type::DATA, flags::CHECKSUM, b"file")
            .unwrap();
        server.recv(&mut frame).unwrap();
        assert_eq!(frame.payload(), b"file");
        // The link's region is a file next to PATH named PATH.PID.RANDOM
        // (the server's pid, 16 hex digits), docs/shm-layout.md 2.6.
        let regions: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("link."))
            .collect();
        assert_eq!(regions.len(), 1, "{regions:?}");
        let (pid, random) = regions[0]["link.".len()..].split_once('.').unwrap();
        assert_eq!(pid, std::process::id().to_string());
        assert!(
            random.len() == 16 && u64::from_str_radix(random, 16).is_ok(),
            "{random}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn second_listener_is_refused_and_connect_without_server_is_not_found() {
    let name = unique("inuse");
    let _l = utp::listen(&format!("shm://{name}")).unwrap();
    let err = utp::listen(&format!("shm://{name}")).unwrap_err();
    assert!(matches!(err, utp::Error::InUse { .. }), "{err}");
    let err = utp::connect(&format!("shm://{name}-nobody")).unwrap_err();
    assert!(matches!(err, utp::Error::NotFound { .. }), "{err}");
    let err = utp::listen(&format!("shm://{name}?wait=sometimes")).unwrap_err();
    assert!(err.to_string().contains("spin, block or adaptive"), "{err}");
}

#[test]
fn frames_sent_before_close_are_delivered_then_peer_gone() {
    let name = unique("drain");
    let (_l, mut client, mut server) = pair(&format!("shm://{name}"));
    for i in 0..3u8 {
        client
            .send(message_type::DATA, flags::CHECKSUM, &[i; 10])
            .unwrap();
    }
    client.close().unwrap();
    let mut frame = Frame::default();
    for i in 0..3u8 {
        server
            .recv_timeout(&mut frame, Some(Duration::from_secs(1)))
            .unwrap();
        assert_eq!(frame.payload(), &[i; 10]);
    }
    let err = server
        .recv_timeout(&mut frame, Some(Duration::from_secs(1)))
        .unwrap_err();
    assert!(
        err.is_peer_gone() && err.to_string().contains("closed"),
        "{err}"
    );
    let err = server.send(message_type::DATA, 0, b"x").unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
    let err = client.send(message_type::DATA, 0, b"x").unwrap_err();
    assert!(matches!(err, utp::Error::Closed), "{err}");
}

/// The race the bench and ThreadSanitizer found: a receiver already waiting
/// looks at the ring (empty), the peer publishes its last frame and closes,
/// the receiver sees CLOSED. The frame must still be delivered first.
#[test]
fn a_last_frame_sent_while_the_receiver_waits_is_delivered_before_the_close() {
    let name = unique("lastframe");
    let url = format!("shm://{name}?wait=spin");
    for round in 0..200u32 {
        let (_l, mut client, mut server) = pair(&url);
        let sender = std::thread::spawn(move || {
            // Let the receiver start waiting on an empty ring first.
            for _ in 0..(round % 50) * 20 {
                std::hint::spin_loop();
            }
            client
                .send(message_type::DATA, flags::CHECKSUM, &round.to_le_bytes())
                .unwrap();
            client.close().unwrap();
        });
        let mut frame = Frame::default();
        server
            .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("round {round}: the last frame was lost: {e}"));
        assert_eq!(frame.payload(), &round.to_le_bytes());
        sender.join().unwrap();
    }
}

#[test]
fn listen_reclaims_file_links_of_dead_servers_only() {
    let dir = std::env::temp_dir().join(unique("stale"));
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("calc");
    let r = "0123456789abcdef";
    // pid 999999999 is above any pid_max, so it is certainly dead.
    let dead = format!("{}.999999999.{r}", path.display());
    let live = format!("{}.{}.{r}", path.display(), std::process::id());
    let other = format!("{}x.999999999.{r}", path.display());
    for p in [&dead, &live, &other] {
        std::fs::write(p, b"").unwrap();
    }
    let listener = utp::listen(&format!("file://{}", path.display())).unwrap();
    assert!(
        !std::path::Path::new(&dead).exists(),
        "stale link not reclaimed"
    );
    assert!(
        std::path::Path::new(&live).exists(),
        "a live server's link was removed"
    );
    assert!(
        std::path::Path::new(&other).exists(),
        "another endpoint's link was removed"
    );
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn closing_a_listener_frees_the_name_at_once() {
    let url = format!("shm://{}", unique("reopen"));
    for _ in 0..3 {
        let mut listener = utp::listen(&url).unwrap();
        listener.close().unwrap();
        let err = listener
            .accept_timeout(Some(Duration::from_millis(10)))
            .unwrap_err();
        assert!(matches!(err, utp::Error::Closed), "{err}");
        assert!(utp::connect(&url).is_err());
    }
    let _listener = utp::listen(&url).unwrap();
}

#[test]
fn a_frame_over_the_receivers_limit_is_refused_and_skipped() {
    let name = unique("limit");
    let (_l, mut client, mut server) = pair(&format!("shm://{name}?max_payload=100"));
    client
        .send(message_type::DATA, flags::CHECKSUM, &[1u8; 200])
        .unwrap();
    client
        .send(message_type::DATA, flags::CHECKSUM, &[2u8; 100])
        .unwrap();
    let mut frame = Frame::default();
    match server.recv_timeout(&mut frame, Some(Duration::from_secs(1))) {
        Err(utp::Error::Frame(e)) => assert_eq!(e.kind(), "too_large", "{e}"),
        other => panic!("expected too_large, got {other:?}"),
    }
    server
        .recv_timeout(&mut frame, Some(Duration::from_secs(1)))
        .unwrap();
    assert_eq!(frame.payload(), &[2u8; 100]);
}

/// Echoes the request N times: "x 5000" answers 5000 bytes.
struct Big;

impl utp::service::Handler for Big {
    fn handle(&self, request: &[u8], _peer: &utp::PeerInfo) -> Vec<u8> {
        let n: usize = std::str::from_utf8(request)
            .ok()
            .and_then(|r| r.strip_prefix("x "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        vec![b'x'; n]
    }
}

#[test]
fn a_reply_too_large_for_the_clients_ring_is_an_error_frame_not_a_silent_close() {
    let url = format!("shm://{}?ring=4k", unique("bigreply"));
    let mut server = utp::service::Server::new(utp::listen(&url).unwrap(), Big);
    let stop = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());
    let mut ch = utp::connect(&url).unwrap();
    let mut frame = Frame::default();
    ch.send(message_type::REQUEST, flags::CHECKSUM, b"x 5000")
        .unwrap();
    ch.recv_timeout(&mut frame, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(frame.message_type(), message_type::ERROR);
    let text = String::from_utf8_lossy(frame.payload()).into_owned();
    assert!(
        text.contains("reply of 5000 bytes is too large for this link (limit 3992)"),
        "{text}"
    );
    // The link goes on.
    ch.send(message_type::REQUEST, flags::CHECKSUM, b"x 10")
        .unwrap();
    ch.recv_timeout(&mut frame, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(frame.payload(), [b'x'; 10]);
    stop.trigger();
    drop(ch);
    thread.join().unwrap().unwrap();
}

#[test]
fn listen_removes_sockets_that_killed_servers_left_behind() {
    let dir = utp::runtime_dir::private_dir().unwrap();
    let stale = dir.join(format!("shm.{}", unique("stale-sock")));
    // A socket file whose server is gone (as after a SIGKILL).
    util::stale_socket(&stale);
    assert!(stale.exists());
    // Only sockets older than a second count as stale (a fresh one may be
    // between bind and listen).
    let _young = utp::listen(&format!("shm://{}", unique("first"))).unwrap();
    assert!(stale.exists(), "a fresh socket was removed");
    std::thread::sleep(Duration::from_millis(1100));
    let live = unique("live-sock");
    let _other = utp::listen(&format!("shm://{live}")).unwrap();
    let _again = utp::listen(&format!("shm://{}", unique("third"))).unwrap();
    assert!(!stale.exists(), "stale socket left in {dir:?}");
    // A live listener's socket is not touched by another listen.
    assert!(dir.join(format!("shm.{live}")).exists());
}
