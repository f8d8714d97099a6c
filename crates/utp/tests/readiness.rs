//! Readiness and non-blocking calls on every transport (`Channel::readiness`,
//! `try_recv`, `try_send`, `Listener::readiness`, `try_accept`), with the
//! peer in another process (inproc: another thread).
//!
//! Per transport: `try_accept` with nobody waiting is `None`; poll(2) on the
//! listener's descriptor wakes when a client connects and `try_accept`
//! returns it; `try_recv` on an empty channel is `Ok(false)` at once; after
//! the peer sends, poll(2) on the channel's descriptor wakes and `try_recv`
//! returns the frame; frames already there are returned without waiting;
//! a peer that is SIGKILLed makes the descriptor readable and `try_recv`
//! fail with `PeerGone`. Separately, `try_send` on a full channel returns
//! `Ok(false)` and what was sent arrives whole.
//!
//! Deadlines are generous (the machine is shared): they bound a hang, they
//! do not measure latency. "At once" is asserted as under 500 ms.

mod child;

use child::{Proc, unique};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};
use utp::frame::{Frame, flags, message_type};
use utp::{Channel, Error};

const WAKE_DEADLINE: Duration = Duration::from_secs(10);
const AT_ONCE: Duration = Duration::from_millis(500);

/// The client's script, the same in a child process and in a thread.
fn client_script(url: &str, say: &dyn Fn(&str)) -> utp::Result<()> {
    let mut ch = utp::connect(url)?;
    let mut frame = Frame::default();
    // Sends first (datagram and FIFO servers learn of a client by its first bytes).
    ch.send(message_type::DATA, flags::CHECKSUM, b"hello")?;
    say("READY");
    ch.recv_timeout(&mut frame, Some(WAKE_DEADLINE))?;
    assert_eq!(frame.payload(), b"go");
    ch.send(message_type::DATA, flags::CHECKSUM, b"ping1")?;
    ch.send(message_type::DATA, flags::CHECKSUM, b"ping2")?;
    say("DONE sent");
    ch.recv_timeout(&mut frame, Some(WAKE_DEADLINE))?;
    assert_eq!(frame.payload(), b"again");
    std::thread::sleep(Duration::from_millis(200));
    ch.send(message_type::DATA, flags::CHECKSUM, b"late")?;
    say("DONE late");
    // Stays until killed (or, in a thread, until the channel is dropped).
    ch.recv_timeout(&mut frame, Some(Duration::from_secs(60)))?;
    Ok(())
}

#[test]
fn child_entry() {
    let Some((role, url, _)) = child::role() else {
        return;
    };
    if role == "client" {
        if let Err(e) = client_script(&url, &|line| child::say(line)) {
            child::say(&format!("FAIL {e}"));
        }
    }
    if role == "hostile" {
        hostile_shm_client(&url);
    }
}

/// Child: an shm client that writes garbage into every word of the
/// wake-up protocol (both rings' `data_event`, its `sleeps` word) and
/// floods the link's socket with bytes, for a second, then stays.
fn hostile_shm_client(url: &str) {
    use std::os::fd::BorrowedFd;
    let link = utp::shm::connect(&url.parse().unwrap(), &utp::Options::default()).unwrap();
    let base = link.region().as_ptr();
    // The link's socket: the only Unix socket this process holds.
    let sockets: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &i32| {
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        })
        .collect();
    child::say("READY");
    let words = [512 + 132, 768 + 132, 128 + 8];
    let mut x = 0x9E37_79B9u32 ^ std::process::id();
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        for off in words {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // SAFETY: `off` is inside the link's control block (4096 mapped
            // bytes at `base`, 4-aligned); the region outlives `link`, which
            // lives to the end of this function. A volatile store: the
            // server reads these words concurrently, by design.
            unsafe { std::ptr::write_volatile(base.add(off).cast::<u32>(), x) };
        }
        for &fd in &sockets {
            // SAFETY: `fd` is open in this process for the whole loop.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let _ = rustix::net::send(
                fd,
                &[0xEE; 512],
                rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
            );
        }
    }
    child::say("DONE");
    std::thread::sleep(Duration::from_secs(30));
    drop(link);
}

/// Whether `fd` turns readable (or hangs up) within `within`.
fn wait_readable(fd: BorrowedFd<'_>, within: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = rustix::time::Timespec::try_from(left).unwrap();
        let mut fds = [PollFd::new(&fd, PollFlags::IN | PollFlags::RDHUP)];
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

/// The next frame through readiness: poll, then `try_recv`, repeated
/// (a wake-up may be spurious) until one arrives or the deadline passes.
fn next_frame(ch: &mut Box<dyn Channel>, frame: &mut Frame) -> utp::Result<()> {
    let deadline = Instant::now() + WAKE_DEADLINE;
    loop {
        if ch.try_recv(frame)? {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no frame within {WAKE_DEADLINE:?}");
        let fd = ch.readiness().expect("readiness").fd;
        assert!(
            wait_readable(fd, left),
            "the readiness descriptor never turned readable"
        );
    }
}

/// The peer: a child process or, for inproc, a thread reporting lines.
enum Peer {
    Process(Proc),
    Thread(crossbeam_channel::Receiver<String>),
}

impl Peer {
    fn expect(&mut self, tag: &str) {
        match self {
            Peer::Process(p) => {
                p.expect(tag);
            }
            Peer::Thread(rx) => {
                let line = rx.recv_timeout(WAKE_DEADLINE).expect("thread peer");
                assert!(line.starts_with(tag), "expected {tag}, got {line:?}");
            }
        }
    }
}

fn run(url: &str, kill_is_visible: bool) {
    let mut listener = utp::listen(url).unwrap();
    let lfd_missing = listener.readiness().is_none();
    assert!(!lfd_missing, "{url}: the listener has no readiness");
    let t = Instant::now();
    assert!(listener.try_accept().unwrap().is_none());
    assert!(t.elapsed() < AT_ONCE, "{url}: try_accept waited");

    let in_thread = url.starts_with("inproc:");
    let mut peer = if in_thread {
        let (tx, rx) = crossbeam_channel::unbounded();
        let url = url.to_string();
        std::thread::spawn(move || {
            let say = |line: &str| {
                let _ = tx.send(line.to_string());
            };
            let _ = client_script(&url, &say);
        });
        Peer::Thread(rx)
    } else {
        Peer::Process(Proc::spawn("client", url, ""))
    };

    // The listener's descriptor wakes, try_accept returns the client.
    let deadline = Instant::now() + WAKE_DEADLINE;
    let mut server = loop {
        if let Some(ch) = listener.try_accept().unwrap() {
            break ch;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{url}: no client within {WAKE_DEADLINE:?}");
        assert!(
            wait_readable(listener.readiness().unwrap(), left),
            "{url}: the listener's descriptor never turned readable"
        );
    };
    // (An mq client's connect returns once it is accepted: READY comes now.)
    peer.expect("READY");
    assert!(server.readiness().is_some(), "{url}: no channel readiness");
    let mut frame = Frame::default();
    next_frame(&mut server, &mut frame).unwrap();
    assert_eq!(frame.payload(), b"hello", "{url}");

    // Empty: Ok(false) at once.
    let t = Instant::now();
    assert!(!server.try_recv(&mut frame).unwrap(), "{url}");
    assert!(t.elapsed() < AT_ONCE, "{url}: try_recv waited");

    // Frames already there are returned without waiting on anything.
    server
        .send(message_type::DATA, flags::CHECKSUM, b"go")
        .unwrap();
    peer.expect("DONE");
    let deadline = Instant::now() + WAKE_DEADLINE;
    let mut got = Vec::new();
    while got.len() < 2 && Instant::now() < deadline {
        if server.try_recv(&mut frame).unwrap() {
            got.push(frame.payload().to_vec());
        } else {
            // Sent, but maybe still on its way (UDP, a kernel queue).
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert_eq!(got, [b"ping1".to_vec(), b"ping2".to_vec()], "{url}");

    // Empty again; the peer sends 200 ms later; the descriptor wakes.
    assert!(!server.try_recv(&mut frame).unwrap(), "{url}");
    server
        .send(message_type::DATA, flags::CHECKSUM, b"again")
        .unwrap();
    next_frame(&mut server, &mut frame).unwrap();
    assert_eq!(frame.payload(), b"late", "{url}");
    peer.expect("DONE");

    // The peer dies: the descriptor wakes and try_recv says PeerGone.
    if kill_is_visible {
        assert!(!server.try_recv(&mut frame).unwrap(), "{url}");
        match &mut peer {
            Peer::Process(p) => p.kill(),
            Peer::Thread(_) => unreachable!("inproc peers are dropped, not killed"),
        }
        match next_frame(&mut server, &mut frame) {
            Err(Error::PeerGone { .. }) => {}
            other => panic!("{url}: after the peer died: {other:?}"),
        }
    }
    drop(server);

    // With its client gone, the listener's descriptor rests: a loop that
    // finds nobody to accept is not woken again at once. (A FIFO reader
    // that saw its writers go reports hang-up until the next one opens,
    // which kept a `fifo://` listener readable: the loop spun.) Three looks,
    // so a tick that fires between the accept and the poll is not taken
    // for that.
    let rests = (0..3).any(|_| {
        assert!(listener.try_accept().unwrap().is_none(), "{url}");
        !wait_readable(listener.readiness().unwrap(), Duration::ZERO)
    });
    assert!(
        rests,
        "{url}: the listener stays readable with nobody to accept"
    );
    drop(listener);
}

fn tmp(tag: &str) -> String {
    format!("/tmp/utp-ready-{}", unique(tag))
}

#[test]
fn shm() {
    run(&format!("shm://{}", unique("shm")), true);
}

#[test]
fn shm_spin() {
    // A spinning link turns event-driven on its first miss (module docs of
    // shm/link/events.rs): the client spins, the server waits in poll(2).
    run(&format!("shm://{}?wait=spin", unique("spin")), true);
}

#[test]
fn sysv() {
    let key = 0x5600_0000 | ((std::process::id() & 0xffff) << 8) | 1;
    run(&format!("sysv://0x{key:x}"), true);
}

#[test]
fn file() {
    run(&format!("file://{}", tmp("file")), true);
}

#[test]
fn unix() {
    run(&format!("unix://{}.sock", tmp("unix")), true);
}

#[test]
fn tcp() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    run(&format!("tcp://127.0.0.1:{port}"), true);
}

#[test]
fn udp() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // UDP has no connection: a client that dies says nothing.
    run(&format!("udp://127.0.0.1:{port}"), false);
}

#[test]
fn fifo() {
    run(&format!("fifo://{}", tmp("fifo")), true);
}

#[test]
fn mq() {
    run(&format!("mq://{}", unique("mq")), true);
}

#[test]
fn inproc() {
    run(&format!("inproc://{}", unique("inproc")), false);
}

#[test]
fn inproc_peer_drop_wakes() {
    let url = format!("inproc://{}", unique("drop"));
    let mut listener = utp::listen(&url).unwrap();
    let client = utp::connect(&url).unwrap();
    let mut server = listener.try_accept().unwrap().expect("queued client");
    let mut frame = Frame::default();
    assert!(!server.try_recv(&mut frame).unwrap());
    drop(client);
    match next_frame(&mut server, &mut frame) {
        Err(Error::PeerGone { .. }) => {}
        other => panic!("after the peer dropped: {other:?}"),
    }
}

/// A UDP client's goodbye makes its server conversation's descriptor
/// readable even if the server only ever received blocking (its doorbell
/// never armed), and `try_recv` then reports the client gone.
#[test]
fn udp_goodbye_wakes_a_conversation_that_never_polled() {
    let mut listener = utp::listen("udp://127.0.0.1:0").unwrap();
    let mut client = utp::connect(&listener.endpoint()).unwrap();
    client
        .send(message_type::DATA, flags::CHECKSUM, b"hi")
        .unwrap();
    let mut server = listener.accept().unwrap();
    let mut frame = Frame::default();
    server.recv(&mut frame).unwrap();
    assert_eq!(frame.payload(), b"hi");
    drop(client);
    let fd = server.readiness().expect("readiness").fd;
    assert!(
        wait_readable(fd, WAKE_DEADLINE),
        "the goodbye never made the descriptor readable"
    );
    match server.try_recv(&mut frame) {
        Err(Error::PeerGone { .. }) => {}
        other => panic!("after the client's goodbye: {other:?}"),
    }
}

/// `try_send` until the channel is full: `Ok(false)`, nothing partial; the
/// receiver then gets exactly the frames that were accepted, intact.
fn fill(url: &str) {
    let mut listener = utp::listen(url).unwrap();
    // In a thread: an mq client's connect waits to be accepted.
    let connecting = std::thread::spawn({
        let url = url.to_string();
        move || {
            let mut client = utp::connect(&url).unwrap();
            client
                .send(message_type::DATA, flags::CHECKSUM, b"first")
                .unwrap();
            client
        }
    });
    let mut server = listener
        .accept_timeout(Some(WAKE_DEADLINE))
        .expect("accept");
    let mut client = connecting.join().unwrap();
    let mut frame = Frame::default();
    server
        .recv_timeout(&mut frame, Some(WAKE_DEADLINE))
        .unwrap();
    let payload = vec![0xA5u8; 3000];
    let mut accepted = 0u64;
    let t = Instant::now();
    loop {
        let mut p = payload.clone();
        p[..8].copy_from_slice(&accepted.to_le_bytes());
        if !client
            .try_send(message_type::DATA, flags::CHECKSUM, &p)
            .unwrap()
        {
            break;
        }
        accepted += 1;
        assert!(accepted < 1_000_000, "{url}: never full");
    }
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "{url}: try_send waited"
    );
    assert!(accepted > 0, "{url}: nothing fitted");
    // Once full, it stays full while nobody reads.
    assert!(
        !client
            .try_send(message_type::DATA, flags::CHECKSUM, &payload)
            .unwrap()
    );
    let mut scratch = Frame::default();
    for n in 0..accepted {
        // A stream keeps the end of the last accepted frame until the next
        // call on the channel: the client's try_recv pushes it.
        let deadline = Instant::now() + WAKE_DEADLINE;
        while !server.try_recv(&mut frame).unwrap() {
            assert!(Instant::now() < deadline, "{url}: frame {n} never came");
            assert!(!client.try_recv(&mut scratch).unwrap());
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(frame.payload().len(), payload.len(), "{url}: frame {n}");
        assert_eq!(frame.payload()[..8], n.to_le_bytes(), "{url}: frame {n}");
        assert!(frame.payload()[8..].iter().all(|&b| b == 0xA5));
    }
    assert!(
        !server.try_recv(&mut frame).unwrap(),
        "{url}: a partial frame arrived"
    );
}

#[test]
fn try_send_on_full_channels() {
    fill(&format!("shm://{}?ring=64k", unique("fill")));
    fill(&format!("unix://{}.sock", tmp("fill")));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    fill(&format!("tcp://127.0.0.1:{port}"));
    fill(&format!("inproc://{}", unique("fill")));
    fill(&format!("mq://{}", unique("fill")));
}

/// A same-user shm client that scribbles over the wake-up words and floods
/// its socket affects at most its own link: every call on it returns
/// promptly, and an honest client of the same listener, served from the
/// same event loop, gets all its answers.
#[test]
fn a_hostile_shm_client_does_not_stall_the_event_loop() {
    let url = format!("shm://{}", unique("hostile"));
    let mut listener = utp::listen(&url).unwrap();
    let mut hostile_peer = Proc::spawn("hostile", &url, "");
    let mut hostile = listener.accept_timeout(Some(WAKE_DEADLINE)).unwrap();
    hostile_peer.expect("READY");
    let honest = std::thread::spawn({
        let url = url.clone();
        move || -> utp::Result<()> {
            let mut ch = utp::connect(&url)?;
            let mut frame = Frame::default();
            for i in 0..200u32 {
                ch.send(message_type::REQUEST, flags::CHECKSUM, &i.to_le_bytes())?;
                ch.recv_timeout(&mut frame, Some(WAKE_DEADLINE))?;
                assert_eq!(frame.payload(), i.to_le_bytes());
                // Spread over the hostile client's second of scribbling.
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        }
    });
    let mut server = listener.accept_timeout(Some(WAKE_DEADLINE)).unwrap();
    let mut frame = Frame::default();
    let mut answered = 0;
    let mut hostile_alive = true;
    let mut slowest = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered < 200 {
        assert!(
            Instant::now() < deadline,
            "the honest client got {answered} answers"
        );
        while server.try_recv(&mut frame).unwrap() {
            server
                .send(message_type::RESPONSE, flags::CHECKSUM, frame.payload())
                .unwrap();
            answered += 1;
        }
        if hostile_alive {
            let t = Instant::now();
            let r = hostile.try_recv(&mut frame);
            let s = hostile.try_send(message_type::DATA, flags::CHECKSUM, b"still here");
            slowest = slowest.max(t.elapsed());
            hostile_alive = r.is_ok() && s.is_ok();
        }
        let server_fd = server.readiness().unwrap().fd;
        let mut fds = vec![rustix::event::PollFd::new(
            &server_fd,
            rustix::event::PollFlags::IN,
        )];
        let hostile_fd = hostile.readiness().map(|r| r.fd);
        if let (true, Some(fd)) = (hostile_alive, hostile_fd.as_ref()) {
            fds.push(rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN));
        }
        let ts = rustix::time::Timespec::try_from(Duration::from_millis(100)).unwrap();
        let _ = rustix::event::poll(&mut fds, Some(&ts));
    }
    honest.join().unwrap().unwrap();
    assert!(
        slowest < Duration::from_millis(500),
        "a call on the hostile link took {slowest:?}"
    );
    hostile_peer.kill();
}

/// Tokens of the members of a listener's epoll set that are ready now.
fn ready_members(set: BorrowedFd<'_>) -> Vec<u64> {
    use rustix::event::epoll;
    let mut events = Vec::with_capacity(8);
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    epoll::wait(
        set,
        rustix::buffer::spare_capacity(&mut events),
        Some(&zero),
    )
    .unwrap();
    events.iter().map(|e| e.data.u64()).collect()
}

/// A FIFO session's own bytes do not keep the listener readable: while a
/// session runs the listener cannot accept, so its set holds the tick alone
/// (before, an event loop spun on it, and each client write cost an epoll
/// callback); once the session is over, the next client's bytes wake it.
#[test]
fn fifo_listener_is_quiet_during_a_session() {
    const REQUEST_FIFO: u64 = 0;
    let url = format!("fifo://{}", tmp("fifo-quiet"));
    let mut listener = utp::listen(&url).unwrap();
    let mut client = utp::connect(&url).unwrap();
    client.send(message_type::DATA, 0, b"first").unwrap();
    let mut session = (0..1000)
        .find_map(|_| {
            let accepted = listener.try_accept().unwrap();
            if accepted.is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
            accepted
        })
        .expect("the client's session within 5 s");
    // Unread bytes in PATH.req, a session running: no event for PATH.req.
    client.send(message_type::DATA, 0, b"second").unwrap();
    assert!(listener.try_accept().unwrap().is_none());
    let set = listener.readiness().unwrap();
    assert!(
        !ready_members(set).contains(&REQUEST_FIFO),
        "the request FIFO is watched during a session"
    );
    let mut frame = Frame::default();
    for expected in [&b"first"[..], b"second"] {
        session
            .recv_timeout(&mut frame, Some(WAKE_DEADLINE))
            .unwrap();
        assert_eq!(frame.payload(), expected);
    }
    drop(session);
    drop(client);
    // The session is over: the next look watches PATH.req again.
    assert!(listener.try_accept().unwrap().is_none());
    let mut next = utp::connect(&url).unwrap();
    next.send(message_type::DATA, 0, b"next").unwrap();
    let deadline = Instant::now() + WAKE_DEADLINE;
    while !ready_members(listener.readiness().unwrap()).contains(&REQUEST_FIFO) {
        assert!(Instant::now() < deadline, "the next client never showed");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut session = listener.try_accept().unwrap().expect("the next session");
    session
        .recv_timeout(&mut frame, Some(WAKE_DEADLINE))
        .unwrap();
    assert_eq!(frame.payload(), b"next");
}
