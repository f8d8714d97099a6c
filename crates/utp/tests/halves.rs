//! Split channels on every transport: one thread sends while another
//! receives on the two halves of one channel, against a peer that is
//! another process (this binary re-run as a child) wherever the transport
//! connects processes. The peer splits its accepted channel too: one of its
//! threads receives, another echoes.
//!
//! Then the halves' close rules (src/halves.rs): dropping the send half ends
//! that direction (the peer reads everything, then `PeerGone`), and the peer
//! can still answer on the transports that half-close; dropping the
//! receive half alone tells the peer nothing.
//!
//! Own harness (`harness = false`): the `pipe:` child serves on its stdout.
//! `cargo test --test halves -- shm` runs only transports whose name contains `shm`.

mod util;

use std::io::{BufRead, BufReader};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use utp::frame::{Frame, flags, message_type};
use utp::{Channel, Error, Listener};

const LONG: Option<Duration> = Some(Duration::from_secs(20));
/// Frames each full-duplex run sends and receives.
const FRAMES: usize = 2000;
/// What the peer sends after its receive half saw the end of our direction.
const BYE: &[u8] = b"BYE";

struct Transport {
    name: &'static str,
    url: fn() -> String,
    /// How the peer runs.
    peer: PeerKind,
    /// Frames in flight at most (UDP drops what overflows a socket buffer).
    window: usize,
    /// Whether the peer may still send after our send half is dropped.
    half_close: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum PeerKind {
    /// This binary re-run as a child that listens at the URL.
    Process,
    /// A thread of this process (inproc:// cannot reach another process).
    Thread,
    /// The child `utp::connect("pipe:...")` spawns.
    Pipe,
}

const BASE: Transport = Transport {
    name: "",
    url: || unreachable!(),
    peer: PeerKind::Process,
    window: FRAMES,
    half_close: true,
};

#[rustfmt::skip]
const TRANSPORTS: &[Transport] = &[
    Transport { name: "inproc", url: || format!("inproc://{}", util::unique("inproc")), peer: PeerKind::Thread, ..BASE },
    Transport { name: "unix", url: || format!("unix://{}.sock", util::tmp_path("unix")), ..BASE },
    Transport { name: "unix-abstract", url: || format!("unix://@{}", util::unique("abstract")), ..BASE },
    Transport { name: "tcp", url: || "tcp://127.0.0.1:0".into(), ..BASE },
    Transport { name: "udp", url: || "udp://127.0.0.1:0".into(), window: 32, ..BASE },
    Transport { name: "pipe", url: pipe_url, peer: PeerKind::Pipe, ..BASE },
    Transport { name: "fifo", url: || format!("fifo://{}", util::tmp_path("fifo")), ..BASE },
    Transport { name: "mq", url: || format!("mq://{}", util::unique("mq")), ..BASE },
    Transport { name: "shm", url: || format!("shm://{}", util::unique("shm")), half_close: false, ..BASE },
    Transport { name: "sysv", url: || format!("sysv://0x{:x}", util::unique_key()), half_close: false, ..BASE },
    Transport { name: "file", url: || format!("file://{}.region", util::tmp_path("file")), half_close: false, ..BASE },
    #[cfg(feature = "zenoh")]
    Transport { name: "zenoh", url: || format!("zenoh://{}?scout=off", util::unique("zenoh")), peer: PeerKind::Thread, half_close: false, ..BASE },
];

type Case = fn(&Transport);
/// A case's name, whether it passed, and how long it took.
type Outcome = (String, bool, Duration);

const CASES: &[(&str, Case)] = &[
    ("full_duplex_two_threads", full_duplex),
    ("dropping_the_receive_half", dropping_the_receive_half),
    (
        "a_killed_peer_wakes_a_blocked_receive_half",
        a_killed_peer_wakes_a_blocked_receive_half,
    ),
    (
        "the_receive_half_has_the_channels_readiness",
        the_receive_half_has_the_channels_readiness,
    ),
    #[cfg(feature = "serde")]
    ("typed_halves", typed_halves),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--child-split-echo") {
        child_split_echo(&args[at + 1]);
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&'static Transport> = TRANSPORTS
        .iter()
        .filter(|t| filters.is_empty() || filters.iter().any(|f| t.name.contains(f.as_str())))
        .collect();
    std::panic::set_hook(Box::new(|info| eprintln!("    panic: {info}")));
    let runs: Vec<(&str, JoinHandle<Vec<Outcome>>)> = selected
        .into_iter()
        .map(|t| {
            let run = std::thread::spawn(move || {
                CASES
                    .iter()
                    .map(|(case, run)| {
                        let started = Instant::now();
                        let ok = catch_unwind(AssertUnwindSafe(|| run(t))).is_ok();
                        (case.to_string(), ok, started.elapsed())
                    })
                    .collect()
            });
            (t.name, run)
        })
        .collect();
    let mut failed = Vec::new();
    let mut passed = 0;
    for (name, run) in runs {
        for (case, ok, took) in run.join().expect("runner thread") {
            println!(
                "{name:>14} {case:<28} {} ({took:.2?})",
                if ok { "ok" } else { "FAILED" }
            );
            if ok {
                passed += 1;
            } else {
                failed.push(format!("{name}::{case}"));
            }
        }
    }
    // Children remove what they created before they exit; allow a moment.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !util::leftovers().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut left = util::leftovers();
    // Rendezvous sockets of shm:// and file:// links live in the per-user directory.
    let uid = rustix::process::getuid().as_raw();
    for dir in [format!("/tmp/utp-{uid}"), format!("/tmp/utp-{uid}.shared")] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(&util::prefix()) {
                left.push(format!("{dir}/{name}"));
            }
        }
    }
    if !left.is_empty() {
        failed.push(format!("objects left behind: {left:?}"));
    }
    println!("\nhalves: {passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        for f in &failed {
            println!("  FAILED {f}");
        }
        std::process::exit(1);
    }
}

fn pipe_url() -> String {
    let exe = std::env::current_exe().expect("current exe");
    format!("pipe:{} --child-split-echo pipe:", exe.display())
}

/// The peer: listens at `url` (printing the bound URL on stdout, except
/// for `pipe:`, whose stdout is the channel), serves one client with a
/// split channel, and exits 0 when the client's direction ended cleanly.
fn child_split_echo(url: &str) -> ! {
    let code = match split_echo_server(url, |bound| {
        if !url.starts_with("pipe:") {
            println!("{bound}");
        }
    }) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("split echo peer: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn split_echo_server(url: &str, ready: impl FnOnce(&str)) -> utp::Result<()> {
    let mut listener: Box<dyn Listener> = utp::listen(url)?;
    ready(&listener.endpoint());
    let channel = listener.accept_timeout(LONG)?;
    split_echo(channel)
}

/// Echoes every frame with its type and flags: one thread receives, this
/// one sends. When our receive half reports `PeerGone`, the send half says
/// `BYE` (which may fail where the transport does not half-close) and is
/// dropped.
fn split_echo(channel: Box<dyn Channel>) -> utp::Result<()> {
    let (mut tx, mut rx) = channel.split()?;
    let (queue, frames) = std::sync::mpsc::sync_channel::<(u8, u16, Vec<u8>)>(64);
    let receiver = std::thread::spawn(move || -> utp::Result<()> {
        let mut frame = Frame::default();
        loop {
            match rx.recv_timeout(&mut frame, LONG) {
                Ok(()) => {
                    let h = frame.header;
                    if queue
                        .send((h.message_type, h.flags, frame.take_payload()))
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                Err(Error::PeerGone { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    for (message_type, flags, payload) in frames {
        tx.send_timeout(message_type, flags, &payload, LONG)?;
    }
    let _ = tx.send_timeout(
        message_type::DATA,
        flags::CHECKSUM,
        BYE,
        Some(Duration::from_secs(2)),
    );
    drop(tx);
    receiver.join().expect("receiver thread")
}

/// The peer of one run, waited for (and checked) on `finish`.
enum Peer {
    Process(Child),
    Thread(JoinHandle<utp::Result<()>>),
    None,
}

/// Starts the peer; returns the URL to connect to.
fn start_peer(t: &Transport) -> (String, Peer) {
    let url = (t.url)();
    match t.peer {
        PeerKind::Pipe => (url, Peer::None),
        PeerKind::Thread => {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                split_echo_server(&url, |bound| ready_tx.send(bound.to_string()).unwrap())
            });
            let bound = ready_rx.recv().expect("the peer thread listens");
            (bound, Peer::Thread(thread))
        }
        PeerKind::Process => {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["--child-split-echo", &url])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn the peer");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .expect("the peer's URL");
            assert!(
                !line.trim().is_empty(),
                "the peer failed to listen on {url}"
            );
            (line.trim().to_string(), Peer::Process(child))
        }
    }
}

impl Peer {
    /// Waits for the peer to end; it must have served cleanly.
    fn finish(self) {
        match self {
            Peer::Process(mut child) => {
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    if let Some(status) = child.try_wait().unwrap() {
                        assert!(status.success(), "the peer process failed: {status}");
                        return;
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!("the peer process did not end");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Peer::Thread(thread) => thread.join().unwrap().expect("the peer thread"),
            Peer::None => {}
        }
    }
}

/// Frame `i`'s payload: its number, then 0..200 bytes that depend on it.
fn payload(i: usize) -> Vec<u8> {
    let mut p = (i as u32).to_le_bytes().to_vec();
    p.extend((0..(i * 7) % 200).map(|k| (k * 13 + i) as u8));
    p
}

/// One thread sends FRAMES frames on the send half while this one
/// receives their echoes on the receive half, in order. Then the send
/// half is dropped: the peer sees the end of our direction, answers `BYE`
/// where the transport half-closes, and goes; we see `PeerGone`.
fn full_duplex(t: &Transport) {
    let (url, peer) = start_peer(t);
    let channel = utp::connect(&url).unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let (mut tx, mut rx) = channel.split().expect("split");
    let received = Arc::new(AtomicUsize::new(0));
    let seen = received.clone();
    let window = t.window;
    let sender = std::thread::spawn(move || {
        for i in 0..FRAMES {
            while i - seen.load(Ordering::Acquire) >= window {
                std::thread::sleep(Duration::from_micros(200));
            }
            tx.send_timeout(message_type::DATA, flags::CHECKSUM, &payload(i), LONG)
                .unwrap_or_else(|e| panic!("send {i}: {e}"));
        }
        tx
    });
    let mut frame = Frame::default();
    for i in 0..FRAMES {
        // Every other echo is lent by the half (`recv_ref`).
        let (message, kind) = if i % 2 == 1 {
            let lent = rx
                .recv_ref(&mut frame, LONG)
                .unwrap_or_else(|e| panic!("echo {i}: {e}"));
            (lent.payload.to_vec(), lent.message_type())
        } else {
            rx.recv_timeout(&mut frame, LONG)
                .unwrap_or_else(|e| panic!("echo {i}: {e}"));
            (frame.payload().to_vec(), frame.message_type())
        };
        assert_eq!(message, payload(i), "echo {i} in order");
        assert_eq!(kind, message_type::DATA);
        received.store(i + 1, Ordering::Release);
    }
    let mut tx = sender.join().expect("sender thread");
    // End our direction (closing is what dropping does; the half object
    // still lives, so nothing else can be what ends it); the receive half
    // goes on.
    tx.close().expect("close the send half");
    assert!(matches!(
        tx.send_timeout(message_type::DATA, flags::CHECKSUM, b"late", LONG),
        Err(Error::Closed)
    ));
    match rx.recv_timeout(&mut frame, LONG) {
        Ok(()) => {
            assert!(
                t.half_close,
                "{}: the peer could not answer after our send half went",
                t.name
            );
            assert_eq!(frame.payload(), BYE);
            match rx.recv_timeout(&mut frame, LONG) {
                Err(Error::PeerGone { .. }) => {}
                other => panic!("after BYE: expected PeerGone, got {other:?}"),
            }
        }
        Err(Error::PeerGone { .. }) => {
            assert!(
                !t.half_close,
                "{}: expected the peer's BYE before PeerGone",
                t.name
            )
        }
        Err(e) => panic!("after our send half went: {e}"),
    }
    drop(rx);
    drop(tx);
    peer.finish();
}

/// Dropping the receive half alone: the send half still sends, the peer
/// still receives, and it is not told anything until the send half goes.
fn dropping_the_receive_half(t: &Transport) {
    if t.peer == PeerKind::Pipe {
        // The peer is a child process we cannot watch from here; the pipe's
        // shared-child guard keeps its stdout open (see pipe.rs) and
        // full_duplex covers the rest.
        return;
    }
    let url = (t.url)();
    let mut listener = utp::listen(&url).unwrap();
    let url = listener.endpoint();
    // Connecting finishes in accept (shm, fifo, mq), and a UDP server
    // accepts on the first datagram: the client connects and sends in a
    // thread while this one accepts.
    let client = std::thread::spawn(move || {
        let client = utp::connect(&url).unwrap();
        let (mut tx, rx) = client.split().unwrap();
        drop(rx);
        tx.send_timeout(message_type::DATA, flags::CHECKSUM, &payload(0), LONG)
            .unwrap();
        tx
    });
    let mut server = listener.accept_timeout(LONG).unwrap();
    let mut tx = client.join().expect("client thread");
    let mut frame = Frame::default();
    for i in 0..3 {
        if i > 0 {
            tx.send_timeout(message_type::DATA, flags::CHECKSUM, &payload(i), LONG)
                .unwrap();
        }
        server.recv_timeout(&mut frame, LONG).unwrap();
        assert_eq!(frame.payload(), payload(i));
        // The peer's sends still succeed: nobody told it anything.
        server
            .send_timeout(message_type::DATA, flags::CHECKSUM, b"unread", LONG)
            .unwrap_or_else(|e| {
                panic!(
                    "{}: the peer's send after our receive half went: {e}",
                    t.name
                )
            });
    }
    assert!(
        matches!(server.try_recv(&mut frame), Ok(false)),
        "{}: nothing more arrived and the peer was not told we are gone",
        t.name
    );
    drop(tx);
    match server.recv_timeout(&mut frame, LONG) {
        Err(Error::PeerGone { .. }) => {}
        other => panic!(
            "{}: after both halves went: expected PeerGone, got {other:?}",
            t.name
        ),
    }
    drop(server);
    drop(listener);
}

/// A typed channel split in two: one thread sends values while another
/// receives their echoes, decoded, in order.
#[cfg(feature = "serde")]
fn typed_halves(t: &Transport) {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Order {
        id: u64,
        symbol: String,
        legs: Vec<(i32, f64)>,
    }
    fn order(id: u64) -> Order {
        Order {
            id,
            symbol: format!("SYM{id}"),
            legs: vec![(id as i32, 2.5); (id % 5) as usize],
        }
    }
    const VALUES: u64 = 300;
    let (url, peer) = start_peer(t);
    let channel = utp::connect(&url).unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let (mut tx, mut rx) = utp::typed::TypedChannel::<Order>::new(channel)
        .split()
        .expect("split");
    let received = Arc::new(AtomicUsize::new(0));
    let seen = received.clone();
    let window = t.window as u64;
    let sender = std::thread::spawn(move || {
        for id in 0..VALUES {
            while id - seen.load(Ordering::Acquire) as u64 >= window {
                std::thread::sleep(Duration::from_micros(200));
            }
            tx.send_timeout(&order(id), LONG)
                .unwrap_or_else(|e| panic!("send {id}: {e}"));
        }
        tx
    });
    for id in 0..VALUES {
        let back = rx
            .recv_timeout(LONG)
            .unwrap_or_else(|e| panic!("value {id}: {e}"));
        assert_eq!(back, order(id));
        received.store(id as usize + 1, Ordering::Release);
    }
    drop(sender.join().expect("sender thread"));
    drop(rx);
    peer.finish();
}

/// The peer process is SIGKILLed while one thread waits, with no deadline,
/// in the receive half: that thread wakes with `PeerGone` (after the send
/// half's next frame, for UDP, which only learns of a dead port from the
/// ICMP error a send provokes). The send half meanwhile gets `Ok` (the
/// transport buffered the frame) or `PeerGone`, never anything else.
fn a_killed_peer_wakes_a_blocked_receive_half(t: &Transport) {
    if t.peer != PeerKind::Process {
        return; // no process to kill: a thread (inproc, zenoh) or the pipe's own child
    }
    let (url, peer) = start_peer(t);
    let Peer::Process(mut child) = peer else {
        unreachable!()
    };
    let channel = utp::connect(&url).unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let (mut tx, mut rx) = channel.split().expect("split");
    let mut frame = Frame::default();
    tx.send_timeout(message_type::DATA, flags::CHECKSUM, b"up?", LONG)
        .unwrap();
    rx.recv_timeout(&mut frame, LONG).expect("the peer answers");
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let mut frame = Frame::default();
        (rx.recv(&mut frame), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();
    for _ in 0..3 {
        match tx.send_timeout(
            message_type::DATA,
            flags::CHECKSUM,
            b"anyone?",
            Some(Duration::from_secs(1)),
        ) {
            Ok(()) | Err(Error::PeerGone { .. }) | Err(Error::Timeout { .. }) => {}
            Err(e) => panic!("{}: a send to a killed peer: {e}", t.name),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (result, took) = waiter.join().expect("the receiving thread");
    match result {
        Err(Error::PeerGone { .. }) => {}
        other => panic!("{}: the blocked receive half got {other:?}", t.name),
    }
    assert!(
        took < Duration::from_secs(15),
        "{}: woke only after {took:?}",
        t.name
    );
    drop(tx);
    // The killed server could not remove its endpoint (socket file, FIFOs,
    // queue, rendezvous socket): listening again replaces the stale one,
    // and dropping the listener removes it.
    if !url.starts_with("tcp:") && !url.starts_with("udp:") {
        let again = utp::listen(&url).unwrap_or_else(|e| panic!("{url} after the kill: {e}"));
        drop(again);
    }
}

/// Waits up to `timeout` for `half`'s readiness descriptor to turn readable.
fn readable(half: &utp::RecvHalf, timeout: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let readiness = half.readiness().expect("a readiness descriptor");
    let mut fds = [PollFd::new(&readiness.fd, PollFlags::IN)];
    let wait = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    poll(&mut fds, Some(&wait)).unwrap_or(0) > 0
}

/// Where the channel has a readiness descriptor, its receive half has it
/// too, with the same contract: after `try_recv` found nothing, the
/// descriptor turns readable when a frame arrives, and `try_recv` then
/// returns it — while the send half is used from another thread.
fn the_receive_half_has_the_channels_readiness(t: &Transport) {
    if t.peer == PeerKind::Pipe {
        return; // the peer is a child we do not drive from here
    }
    let url = (t.url)();
    let mut listener = utp::listen(&url).unwrap();
    let url = listener.endpoint();
    let client = std::thread::spawn(move || {
        let client = utp::connect(&url).unwrap();
        let (mut tx, rx) = client.split().unwrap();
        tx.send_timeout(message_type::DATA, flags::CHECKSUM, b"hello", LONG)
            .unwrap();
        (tx, rx)
    });
    let mut server = listener.accept_timeout(LONG).unwrap();
    let (mut tx, mut rx) = client.join().expect("client thread");
    let mut frame = Frame::default();
    server.recv_timeout(&mut frame, LONG).unwrap();
    if rx.readiness().is_none() {
        // This transport has no descriptor (yet): nothing to check. Stream
        // sockets always have one.
        assert!(
            !t.name.starts_with("unix") && t.name != "tcp",
            "{}: a stream socket's receive half has a descriptor",
            t.name
        );
        return;
    }
    assert!(
        !rx.try_recv(&mut frame).unwrap(),
        "{}: nothing sent yet",
        t.name
    );
    let sender = std::thread::spawn(move || {
        tx.send_timeout(message_type::DATA, flags::CHECKSUM, b"more", LONG)
            .unwrap();
        tx
    });
    server
        .send_timeout(message_type::DATA, flags::CHECKSUM, b"ready?", LONG)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            readable(&rx, Duration::from_secs(10)),
            "{}: the descriptor did not turn readable",
            t.name
        );
        if rx.try_recv(&mut frame).unwrap() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: readable, but no frame",
            t.name
        );
    }
    assert_eq!(frame.payload(), b"ready?");
    server.recv_timeout(&mut frame, LONG).unwrap();
    assert_eq!(frame.payload(), b"more");
    drop(sender.join().expect("sender thread"));
    drop(rx);
    drop(server);
    drop(listener);
}
