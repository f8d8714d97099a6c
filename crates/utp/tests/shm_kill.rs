//! Dead peers: SIGKILL of a server while its clients are blocked in send
//! and receive, SIGKILL of a client while the server waits on it (in a
//! receive, or in a batch of sends).

mod shm_util;

use shm_util::{Proc, dev_shm_entries, unique};
use std::time::{Duration, Instant};
use utp::frame::{Frame, message_type};

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    shm_util::child_entry(|role, url, _| {
        role == "flood" && {
            flood(url);
            true
        }
    });
}

/// Bytes of each frame `flood` sends: 64 pieces of `ring::PIECE`, the
/// largest payload a link takes by default.
const FLOOD_FRAME: usize = 1 << 20;

/// Frame `i` of `flood` into `payload`: its number, then a fixed pattern
/// (so the sender spends its time sending, not making frames).
fn flood_payload(i: u64, payload: &mut Vec<u8>) {
    if payload.len() != FLOOD_FRAME {
        *payload = (0..FLOOD_FRAME).map(|j| (j * 13) as u8).collect();
    }
    payload[..8].copy_from_slice(&i.to_le_bytes());
}

/// Child: connects to `url` and sends frame after frame of
/// [`FLOOD_FRAME`] bytes (each written in pieces) until it is killed.
fn flood(url: &str) {
    let mut ch = utp::connect(url).unwrap();
    shm_util::say("READY");
    let mut payload = Vec::new();
    for i in 0.. {
        flood_payload(i, &mut payload);
        ch.send(message_type::DATA, utp::frame::flags::CHECKSUM, &payload)
            .unwrap();
    }
}

/// A sender killed while it writes large frames, piece after piece: the
/// receiver gets every frame it published whole and intact (checksums
/// verified), never a part of one, then `PeerGone`, not a hang. Where the
/// kill lands is up to the scheduler; in about a third of the rounds
/// (measured with a print in the consumer) the receiver is copying the
/// pieces of a frame that will never be finished, so four senders in turn,
/// killed after two to five frames received.
#[test]
fn a_sender_killed_amid_frames_in_pieces_leaves_whole_frames_then_peer_gone() {
    let name = unique("kill-pieces");
    let url = format!("shm://{name}?ring=4M");
    let mut listener = utp::listen(&url).unwrap();
    let (mut frame, mut expected) = (Frame::default(), Vec::new());
    for kill_at in 2..6u64 {
        let mut child = Proc::spawn("flood", &url, "");
        let mut ch = listener.accept().unwrap();
        child.expect("READY");
        let mut killed = None;
        for n in 0u64.. {
            if n == kill_at {
                // The ring holds three frames; the sender is writing more.
                child.kill();
                killed = Some(Instant::now());
            }
            match ch.recv_timeout(&mut frame, Some(Duration::from_secs(10))) {
                Ok(()) => {
                    flood_payload(n, &mut expected);
                    assert!(frame.payload() == expected.as_slice(), "frame {n}");
                }
                Err(utp::Error::PeerGone { .. }) => {
                    assert!(n >= kill_at, "gone after {n} frames");
                    break;
                }
                Err(e) => panic!("frame {n}: {e}"),
            }
        }
        let took = killed.unwrap().elapsed();
        assert!(took < Duration::from_secs(2), "noticed after {took:?}");
    }
    drop(listener);
    assert!(dev_shm_entries(&name).is_empty());
}

#[test]
fn sigkill_server_wakes_blocked_clients_and_a_new_server_serves() {
    let name = unique("kill-srv");
    let url = format!("shm://{name}?ring=64k");
    let mut server = Proc::spawn("server", &url, "");
    server.expect("READY");
    let roles = ["block-recv", "block-recv", "block-send", "block-send"];
    let mut clients: Vec<Proc> = roles.iter().map(|r| Proc::spawn(r, &url, "")).collect();
    for c in &mut clients {
        c.expect("BLOCKED");
    }
    std::thread::sleep(Duration::from_millis(100)); // let them fall asleep on the futex
    let killed = Instant::now();
    server.kill();
    shm_util::remove_socket(&url);
    let mut worst = Duration::ZERO;
    for (c, role) in clients.iter_mut().zip(roles) {
        let line = c.expect("ERR");
        let took = killed.elapsed();
        worst = worst.max(took);
        assert!(
            line.contains("peer gone") && line.contains("died") && line.contains("[reason=Died]"),
            "{role}: {line}"
        );
        eprintln!("{role} client noticed the SIGKILL after {took:?}: {line}");
        c.wait_ok();
    }
    eprintln!("worst SIGKILL detection latency: {worst:?}");
    assert!(worst < Duration::from_millis(300), "took {worst:?}");
    assert!(
        dev_shm_entries(&name).is_empty(),
        "{:?}",
        dev_shm_entries(&name)
    );

    let mut server = Proc::spawn("server", &url, "");
    server.expect("READY");
    let mut client = Proc::spawn("calls", &url, "50");
    client.expect("DONE");
    client.wait_ok();
    server.kill();
    shm_util::remove_socket(&url);
}

/// A listener at `url`, a client process that connects, sends `HOLD` and
/// blocks in a receive, and the link accepted from it.
fn blocked_client(url: &str) -> (Box<dyn utp::Listener>, Proc, Box<dyn utp::Channel>) {
    let mut listener = utp::listen(url).unwrap();
    let victim = Proc::spawn("block-recv", url, "");
    let link = listener
        .accept_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    (listener, victim, link)
}

#[test]
fn sigkill_client_frees_its_link_and_others_are_served() {
    let name = unique("kill-cli");
    let url = format!("shm://{name}");
    let (mut listener, mut victim, mut link) = blocked_client(&url);
    let victim_pid = victim.child.id();
    let handler = std::thread::spawn(move || {
        let mut frame = Frame::default();
        link.recv(&mut frame).unwrap();
        assert_eq!(frame.payload(), b"HOLD");
        let err = link.recv(&mut frame).unwrap_err();
        (err, Instant::now())
    });
    victim.expect("BLOCKED");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(dev_shm_entries(&name).len(), 1);
    let killed = Instant::now();
    victim.kill();
    let (err, noticed) = handler.join().unwrap();
    let took = noticed - killed;
    eprintln!("server noticed the client's SIGKILL after {took:?}: {err}");
    assert!(err.is_peer_gone(), "{err}");
    assert!(err.to_string().contains(&victim_pid.to_string()), "{err}");
    assert!(took < Duration::from_millis(300), "{took:?}");
    assert!(
        dev_shm_entries(&name).is_empty(),
        "link of the dead client left behind"
    );

    let mut other = Proc::spawn("calls", &url, "100");
    let mut link = listener
        .accept_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut frame = Frame::default();
    for _ in 0..100 {
        link.recv(&mut frame).unwrap();
        let reply = utp::service::calc::evaluate(frame.payload());
        link.send(message_type::RESPONSE, 0, reply.as_bytes())
            .unwrap();
    }
    other.expect("DONE");
    other.wait_ok();
}

/// A server that polls with `try_recv` and never takes the readiness
/// descriptor (so it makes the liveness system calls only once per wait
/// slice, not on every poll) still learns of a client's SIGKILL: within
/// a slice or so, `PeerGone` naming the dead process.
#[test]
fn a_polling_server_learns_of_a_killed_client_without_its_descriptor() {
    let name = unique("kill-poll");
    let (_listener, mut victim, mut link) = blocked_client(&format!("shm://{name}?wait=spin"));
    let victim_pid = victim.child.id();
    let mut frame = Frame::default();
    while !link.try_recv(&mut frame).unwrap() {
        std::hint::spin_loop();
    }
    assert_eq!(frame.payload(), b"HOLD");
    victim.expect("BLOCKED");
    // Polls that find nothing while the client lives: no error.
    let alive_until = Instant::now() + Duration::from_millis(30);
    while Instant::now() < alive_until {
        assert!(!link.try_recv(&mut frame).unwrap(), "nothing was sent");
    }
    let killed = Instant::now();
    victim.kill();
    let err = loop {
        match link.try_recv(&mut frame) {
            Ok(false) => std::hint::spin_loop(),
            Ok(true) => panic!("a frame from a killed client"),
            Err(e) => break e,
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the kill was never noticed"
        );
    };
    let took = killed.elapsed();
    eprintln!("a polling server noticed the client's SIGKILL after {took:?}: {err}");
    assert!(err.is_peer_gone(), "{err}");
    assert!(err.to_string().contains(&victim_pid.to_string()), "{err}");
    assert!(took < Duration::from_millis(300), "{took:?}");
}

/// A batch that waits for room in the ring of a client that does not read
/// ends with `PeerGone` when that client is killed, like a single send:
/// the frames that fitted were sent, the rest were not, nothing hangs.
#[test]
fn a_batch_waiting_on_a_killed_reader_ends_with_peer_gone() {
    let name = unique("kill-batch");
    let url = format!("shm://{name}?ring=64k");
    let mut listener = utp::listen(&url).unwrap();
    // Sends STALL, fills its own ring, then blocks in a send: it never reads.
    let mut victim = Proc::spawn("block-send", &url, "");
    let mut link = listener
        .accept_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    victim.expect("BLOCKED");
    let sender = std::thread::spawn(move || {
        let frame = [9u8; 1024];
        // 200 KiB into a 64 KiB ring nobody reads.
        let err = link
            .send_batch(message_type::DATA, 0, &[&frame[..]; 200])
            .unwrap_err();
        (err, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(!sender.is_finished(), "the batch waits for room");
    let killed = Instant::now();
    victim.kill();
    let (err, noticed) = sender.join().unwrap();
    let took = noticed - killed;
    eprintln!("the batch noticed the reader's SIGKILL after {took:?}: {err}");
    assert!(err.is_peer_gone(), "{err}");
    assert!(took < Duration::from_millis(300), "{took:?}");
    assert!(
        dev_shm_entries(&name).is_empty(),
        "link of the dead client left behind"
    );
}
