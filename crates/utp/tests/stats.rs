//! Counters (utp::stats): exact counts through the counting wrappers, and
//! the region's life as a file: private, read from another process, gone
//! at exit, swept after a crash, refused in an unsafe directory; a shm
//! link's waits, wake-ups and ring fill; batches, whole or cut short.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;
use utp::frame::{Frame, flags, message_type};
use utp::stats::{Counter, Kind};

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "st{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn block<'a>(
    stats: &'a utp::stats::ProcessStats,
    label: &str,
    kind: Kind,
) -> Option<&'a utp::stats::BlockSnapshot> {
    stats
        .blocks
        .iter()
        .find(|b| b.label == label && b.kind == kind)
}

/// The child's part: listen on the URL in `UTP_STATS_CHILD`, print the
/// region's path, wait for a line on stdin, exit normally.
#[test]
fn child_entry() {
    let Ok(url) = std::env::var("UTP_STATS_CHILD") else {
        return;
    };
    let listener = utp::listen(&url).unwrap();
    let path = utp::stats::directory().join(format!("{}.stats", std::process::id()));
    println!("READY {} {}", utp::stats::enabled(), path.display());
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    drop(listener);
}

struct ChildProc {
    child: std::process::Child,
    enabled: bool,
    region: std::path::PathBuf,
}

fn spawn_child(url: &str, xdg: Option<&std::path::Path>) -> ChildProc {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("UTP_STATS_CHILD", url)
        .env_remove("UTP_STATS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    match xdg {
        Some(dir) => command.env("XDG_RUNTIME_DIR", dir),
        None => command.env_remove("XDG_RUNTIME_DIR"),
    };
    // In the struct at once: its Drop reaps the child on every path.
    let mut proc = ChildProc {
        child: command.spawn().unwrap(),
        enabled: false,
        region: Default::default(),
    };
    let mut out = BufReader::new(proc.child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
        if let Some(rest) = line.trim().strip_prefix("READY ") {
            let (enabled, path) = rest.split_once(' ').unwrap();
            proc.enabled = enabled == "true";
            proc.region = path.into();
            // Keep reading, so the child's last lines never meet a closed pipe.
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return proc;
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether counters are on in this environment (a test that needs them
/// says so and checks nothing when they are off).
fn counting() -> bool {
    let on = utp::stats::enabled();
    if !on {
        eprintln!("counters are off in this environment; nothing to check");
    }
    on
}

#[test]
fn frames_bytes_timeouts_and_peers_are_counted_exactly() {
    if !counting() {
        return;
    }
    let url = format!("inproc://{}", unique("count"));
    let mut listener = utp::listen(&url).unwrap();
    let mut client = utp::connect(&url).unwrap();
    let mut server = listener.accept().unwrap();
    let mut frame = Frame::default();
    // Owned, lent and lent-without-waiting receives all count.
    for (i, payload) in [&b"ADD 1 2"[..], b"", b"0123456789"]
        .into_iter()
        .enumerate()
    {
        client
            .send(message_type::REQUEST, flags::CHECKSUM, payload)
            .unwrap();
        let received = match i {
            0 => server.recv(&mut frame).map(|()| frame.payload().to_vec()),
            1 => server
                .recv_ref(&mut frame, None)
                .map(|f| f.payload.to_vec()),
            _ => server
                .try_recv_ref(&mut frame)
                .map(|f| f.unwrap().payload.to_vec()),
        };
        assert_eq!(received.unwrap(), payload);
    }
    let timeout = server.recv_ref(&mut frame, Some(Duration::from_millis(10)));
    assert!(timeout.unwrap_err().is_timeout());

    let mine = utp::stats::read_process(std::process::id()).unwrap();
    let c = block(&mine, &url, Kind::Client).expect("the client's block");
    assert_eq!(c.get(Counter::FramesSent), 3);
    assert_eq!(c.get(Counter::BytesSent), 3 * 32 + 7 + 10);
    let a = block(&mine, &url, Kind::Accepted).expect("the accepted channel's block");
    assert_eq!(a.get(Counter::FramesReceived), 3);
    assert_eq!(a.get(Counter::BytesReceived), 3 * 32 + 17);
    assert_eq!(a.get(Counter::RecvTimeouts), 1);
    let l = block(&mine, &url, Kind::Listener).expect("the listener's block");
    assert_eq!(a.parent, Some(l.index));
    assert_eq!(l.get(Counter::PeersAccepted), 1);
    assert_eq!(
        l.get(Counter::FramesReceived),
        0,
        "live channels are not folded in yet"
    );

    // The client leaves: the server sees it, and its counts join the listener's.
    drop(client);
    assert!(server.recv(&mut frame).unwrap_err().is_peer_gone());
    drop(server);
    let mine = utp::stats::read_process(std::process::id()).unwrap();
    assert!(
        block(&mine, &url, Kind::Accepted).is_none(),
        "a closed channel frees its block"
    );
    assert!(block(&mine, &url, Kind::Client).is_none());
    let l = block(&mine, &url, Kind::Listener).unwrap();
    assert_eq!(l.get(Counter::FramesReceived), 3);
    assert_eq!(l.get(Counter::BytesReceived), 3 * 32 + 17);
    assert_eq!(l.get(Counter::ErrorsPeerGone), 1);
    drop(listener);
    let mine = utp::stats::read_process(std::process::id()).unwrap();
    assert!(block(&mine, &url, Kind::Listener).is_none());
}

/// The halves of a split channel count into the channel's one block, each
/// its own direction, and the block is freed (and folded into the
/// listener's) only when both halves are gone.
#[test]
fn split_halves_count_into_one_block_freed_with_the_last_half() {
    if !counting() {
        return;
    }
    let url = format!("inproc://{}", unique("count-split"));
    let mut listener = utp::listen(&url).unwrap();
    let client = utp::connect(&url).unwrap();
    let server = listener.accept().unwrap();
    let (mut client_tx, mut client_rx) = client.split().unwrap();
    let (mut server_tx, mut server_rx) = server.split().unwrap();
    let mut frame = Frame::default();
    let sender = std::thread::spawn(move || {
        for _ in 0..100 {
            client_tx.send_bytes(b"0123456789").unwrap();
        }
        client_tx
    });
    for _ in 0..100 {
        server_rx.recv(&mut frame).unwrap();
        server_tx.send_bytes(b"abc").unwrap();
        client_rx.recv(&mut frame).unwrap();
    }
    let client_tx = sender.join().unwrap();
    let mine = utp::stats::read_process(std::process::id()).unwrap();
    let c = block(&mine, &url, Kind::Client).expect("the client's block");
    assert_eq!(c.get(Counter::FramesSent), 100);
    assert_eq!(c.get(Counter::BytesSent), 100 * (32 + 10));
    assert_eq!(c.get(Counter::FramesReceived), 100);
    assert_eq!(c.get(Counter::BytesReceived), 100 * (32 + 3));
    let a = block(&mine, &url, Kind::Accepted).expect("the accepted channel's block");
    assert_eq!(a.get(Counter::FramesReceived), 100);
    assert_eq!(a.get(Counter::FramesSent), 100);

    drop(client_tx);
    drop(server_tx);
    let mine = utp::stats::read_process(std::process::id()).unwrap();
    assert!(
        block(&mine, &url, Kind::Accepted).is_some(),
        "one half still lives: the block too"
    );
    assert!(server_rx.recv(&mut frame).unwrap_err().is_peer_gone());
    drop(server_rx);
    drop(client_rx);
    let mine = utp::stats::read_process(std::process::id()).unwrap();
    assert!(block(&mine, &url, Kind::Accepted).is_none());
    assert!(block(&mine, &url, Kind::Client).is_none());
    let l = block(&mine, &url, Kind::Listener).unwrap();
    assert_eq!(l.get(Counter::FramesReceived), 100);
    assert_eq!(l.get(Counter::FramesSent), 100);
    assert_eq!(l.get(Counter::ErrorsPeerGone), 1);
    drop(listener);
}

#[test]
fn another_process_reads_a_private_region_that_is_removed_at_exit() {
    let url = format!("unix://@{}", unique("region"));
    let mut child = spawn_child(&url, None);
    if !child.enabled {
        eprintln!("counters are off in this environment; nothing to check");
        return;
    }
    let meta = std::fs::symlink_metadata(&child.region).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "the region is private");
    assert_eq!(meta.uid(), rustix::process::getuid().as_raw());
    let dir = std::fs::symlink_metadata(child.region.parent().unwrap()).unwrap();
    assert_eq!(dir.mode() & 0o777, 0o700, "in a private directory");

    let theirs = utp::stats::read_process(child.child.id()).expect("the child's counters");
    assert!(block(&theirs, &url, Kind::Listener).is_some(), "{theirs:?}");

    child
        .child
        .stdin
        .take()
        .unwrap()
        .write_all(b"exit\n")
        .unwrap();
    assert!(child.child.wait().unwrap().success());
    assert!(!child.region.exists(), "removed at a normal exit");
}

#[test]
fn a_crashed_process_region_is_ignored_then_swept() {
    let url = format!("unix://@{}", unique("crash"));
    let mut child = spawn_child(&url, None);
    if !child.enabled {
        return;
    }
    let pid = child.child.id();
    child.child.kill().unwrap();
    child.child.wait().unwrap();
    assert!(child.region.exists(), "SIGKILL leaves the file");
    assert!(
        utp::stats::read_process(pid).is_none(),
        "a dead owner's counters are not shown"
    );
    // The next process that creates its region sweeps the dead one's.
    let mut next = spawn_child(&format!("unix://@{}", unique("sweep")), None);
    assert!(!child.region.exists(), "swept by the next utp process");
    next.child
        .stdin
        .take()
        .unwrap()
        .write_all(b"exit\n")
        .unwrap();
    next.child.wait().unwrap();
}

#[test]
fn an_unsafe_directory_turns_counting_off() {
    // XDG_RUNTIME_DIR/utp is a symlink (someone else's directory, say): no counters.
    let base = std::path::PathBuf::from(format!("/tmp/{}", unique("xdg")));
    std::fs::create_dir(&base).unwrap();
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
    let elsewhere = base.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, base.join("utp")).unwrap();
    let mut child = spawn_child(&format!("unix://@{}", unique("unsafe")), Some(&base));
    let enabled = child.enabled;
    child
        .child
        .stdin
        .take()
        .unwrap()
        .write_all(b"exit\n")
        .unwrap();
    child.child.wait().unwrap();
    let planted = std::fs::read_dir(&elsewhere).unwrap().count();
    std::fs::remove_dir_all(&base).unwrap();
    assert!(
        !enabled,
        "counting stays off when the directory is a symlink"
    );
    assert_eq!(planted, 0, "nothing was written through the symlink");
}

#[test]
fn a_shm_link_counts_its_waits_wakeups_and_ring_fill() {
    if !counting() {
        return;
    }
    let address = format!("shm://{}", unique("shmcount"));
    let url = format!("{address}?wait=block&ring=64k");
    let mut listener = utp::listen(&url).unwrap();
    // Clients are labelled by their address; accepted channels by the
    // listener's endpoint.
    let served = listener.endpoint();
    let mut client = utp::connect(&url).unwrap();
    let mut server = listener.accept().unwrap();
    let mut frame = Frame::default();

    // Three frames the server has not read: the client's ring holds them.
    for _ in 0..3 {
        client.send(message_type::DATA, 0, &[7u8; 100]).unwrap();
    }
    // The link counts its own sends, exactly and once (not again by the
    // counting wrapper), with every frame.
    let mine = utp::stats::read_process(std::process::id()).unwrap();
    let c = block(&mine, &address, Kind::Client).expect("the client's block");
    assert_eq!(c.get(Counter::FramesSent), 3);
    assert_eq!(c.get(Counter::BytesSent), 3 * (32 + 100));
    assert_eq!(
        c.get(Counter::RingUsed),
        0,
        "the fill is a sample, taken before a wait, not with every frame"
    );
    // A wait (for a frame that does not come) takes the sample.
    let idle = client.recv_timeout(&mut frame, Some(Duration::from_millis(5)));
    assert!(idle.unwrap_err().is_timeout());
    let mine = utp::stats::read_process(std::process::id()).unwrap();
    let c = block(&mine, &address, Kind::Client).unwrap();
    // The usable capacity: the 64 KiB ring less what the protocol keeps free.
    let capacity = c.get(Counter::RingCapacity);
    assert!(
        (60 * 1024..=64 * 1024).contains(&capacity),
        "capacity {capacity}"
    );
    let used = c.get(Counter::RingUsed);
    assert!(
        (3 * 132..=3 * 256).contains(&used),
        "three 100-byte frames fill {used} bytes"
    );
    for _ in 0..3 {
        server.recv(&mut frame).unwrap();
    }

    // The server sleeps in a receive; the client's next frame wakes it.
    let receiver = std::thread::spawn(move || {
        let mut frame = Frame::default();
        server.recv(&mut frame).unwrap();
        server
    });
    std::thread::sleep(Duration::from_millis(300));
    client.send(message_type::DATA, 0, b"wake up").unwrap();
    let server = receiver.join().unwrap();
    let mine = utp::stats::read_process(std::process::id()).unwrap();
    let a = block(&mine, &served, Kind::Accepted).expect("the accepted link's block");
    assert!(a.get(Counter::Waits) >= 1, "the server slept at least once");
    let c = block(&mine, &address, Kind::Client).unwrap();
    assert!(c.get(Counter::Wakeups) >= 1, "the client woke it");
    assert_eq!(c.get(Counter::FramesSent), 4);

    // The send half of a split link goes on counting, once.
    let (mut tx, _rx) = client.split().unwrap();
    for _ in 0..5 {
        tx.send(message_type::DATA, 0, b"0123456789").unwrap();
    }
    let mine = utp::stats::read_process(std::process::id()).unwrap();
    let c = block(&mine, &address, Kind::Client).unwrap();
    assert_eq!(c.get(Counter::FramesSent), 4 + 5);
    assert_eq!(
        c.get(Counter::BytesSent),
        3 * (32 + 100) + (32 + 7) + 5 * (32 + 10)
    );
    drop((tx, _rx, server, listener));
}

/// A shm receiver that polls with `try_recv` and never takes its readiness
/// descriptor is sent no wake-up byte (each a system call on the sender);
/// once it has taken the descriptor, every `try_recv` that finds nothing
/// asks for one, and the sender sends it with its next frame.
#[test]
fn a_polling_shm_receiver_asks_for_wake_ups_only_once_it_took_its_descriptor() {
    if !counting() {
        return;
    }
    let address = format!("shm://{}", unique("shmpoll"));
    // Spinning: the sender's only wake-ups are bytes on the socket.
    let url = format!("{address}?wait=spin&ring=64k");
    let mut listener = utp::listen(&url).unwrap();
    let mut client = utp::connect(&url).unwrap();
    let mut server = listener.accept().unwrap();
    let mut frame = Frame::default();
    let wake_ups = || {
        let mine = utp::stats::read_process(std::process::id()).unwrap();
        block(&mine, &address, Kind::Client)
            .expect("the client's block")
            .get(Counter::Wakeups)
    };
    // Each frame after a try_recv that found nothing: the moment a
    // receiver that waits on its descriptor would ask for a wake-up.
    let mut polled = |server: &mut Box<dyn utp::Channel>, payload: &[u8]| {
        assert!(!server.try_recv(&mut frame).unwrap(), "nothing sent yet");
        client.send(message_type::DATA, 0, payload).unwrap();
        while !server.try_recv(&mut frame).unwrap() {
            std::hint::spin_loop();
        }
        assert_eq!(frame.payload(), payload);
    };
    for _ in 0..20 {
        polled(&mut server, b"polled");
    }
    assert_eq!(wake_ups(), 0, "a receiver that never waits was woken");
    assert!(server.readiness().is_some());
    for _ in 0..20 {
        polled(&mut server, b"awaited");
    }
    assert_eq!(
        wake_ups(),
        20,
        "one wake-up byte per frame sent to a receiver that took its descriptor"
    );
    drop((server, listener));
}

/// A batch counts as its frames, whether the link counts its own sends
/// (shm, and the send half of a split shm link) or the counting wrapper
/// does (inproc, and unix, whose batch is written in one go); a batch cut
/// short by a frame too large counts the frames sent before it, and
/// nothing after.
#[test]
fn a_batch_counts_the_frames_it_sent() {
    if !counting() {
        return;
    }
    for scheme in ["shm", "inproc", "unix"] {
        let address = match scheme {
            "unix" => format!(
                "unix://{}/{}.sock",
                std::env::temp_dir().display(),
                unique("batch")
            ),
            _ => format!("{scheme}://{}", unique("batch")),
        };
        let url = if scheme == "shm" {
            format!("{address}?ring=64k")
        } else {
            address.clone()
        };
        let mut listener = utp::listen(&url).unwrap();
        // A channel's own limit (inproc), or the 64 KiB ring's (shm).
        let options = utp::Options::default().with_max_payload(4096);
        let mut client = utp::connect_with(&url, &options).unwrap();
        let mut server = listener.accept().unwrap();
        let sent = |expected_frames: u64, expected_bytes: u64| {
            let mine = utp::stats::read_process(std::process::id()).unwrap();
            let c = block(&mine, &address, Kind::Client).expect("the client's block");
            assert_eq!(c.get(Counter::FramesSent), expected_frames, "{scheme}");
            assert_eq!(c.get(Counter::BytesSent), expected_bytes, "{scheme}");
        };
        client
            .send_batch(message_type::DATA, 0, &[b"one", b"two", b"three"])
            .unwrap();
        sent(3, 3 * 32 + 11);
        let too_large = vec![0u8; 100_000];
        let cut = client.send_batch(message_type::DATA, 0, &[b"four", &too_large, b"six"]);
        assert!(
            matches!(cut, Err(utp::Error::TooLarge { .. })),
            "{scheme}: {cut:?}"
        );
        sent(4, 4 * 32 + 15);
        let mut frame = Frame::default();
        for expected in [&b"one"[..], b"two", b"three", b"four"] {
            server.recv(&mut frame).unwrap();
            assert_eq!(frame.payload(), expected, "{scheme}");
        }
        let (mut tx, _rx) = client.split().unwrap();
        tx.send_batch(message_type::DATA, 0, &[b"seven", b"eight"])
            .unwrap();
        sent(6, 6 * 32 + 25);
        for expected in [&b"seven"[..], b"eight"] {
            server.recv(&mut frame).unwrap();
            assert_eq!(frame.payload(), expected, "{scheme}");
        }
        drop((tx, _rx, server, listener));
    }
}
