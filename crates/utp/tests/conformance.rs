//! The conformance suite: one set of cases, run against every transport.
//!
//! Each transport is one line in [`TRANSPORTS`]: how to make a fresh URL and
//! what its limits are. Every case runs against an echo [`Server`] on that
//! URL (for `pipe:`, the server is this test binary, re-run as a child with
//! `--child-echo`). Transports run in parallel, cases in order within one.
//!
//! This binary has its own small harness (`harness = false` in Cargo.toml),
//! so that the `pipe:` child can serve on a clean stdout.
//! `cargo test --test conformance -- tcp` runs only transports whose name
//! contains `tcp`.

mod util;

use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use utp::frame::{Frame, flags, message_type};
use utp::service::{Server, Shutdown};
use utp::{Channel, Error, GoneReason, Options, PeerInfo};

/// What the suite needs to know about one transport.
struct Transport {
    name: &'static str,
    /// A fresh URL to listen on (or, for `pipe:`, to connect to).
    url: fn() -> String,
    /// Whether the test can listen in-process (not `pipe:`).
    listens: bool,
    /// Largest payload the transport carries with default options.
    max_payload: fn() -> usize,
    /// Whether sending more than `max_payload` is refused by the sender itself.
    sender_enforces_limit: bool,
    /// Whether a channel's own `max_payload` option also limits what it
    /// sends (false where the queue size set at connect limits the sender).
    own_limit: bool,
    /// Whether `recv_timeout(Some(Duration::MAX))` is safe. False only for the
    /// shared-memory transports, whose wait loop (src/shm/wait.rs, rewritten on
    /// the shm-v2 branch) still adds the timeout to `Instant::now()`.
    huge_timeout: bool,
    /// Whether a refused oversized send names the option that raises the
    /// limit (false for shm: its error text belongs to the shm-v2 branch).
    limit_names_option: bool,
    /// Whether replies name their request (flags::REPLY). False for shm: its
    /// channel cannot set a frame's sequence (src/shm belongs to shm-v2), and
    /// a link has exactly one client anyway.
    correlates: bool,
    /// Frames sent before reading replies in the ordering case.
    window: usize,
    /// Whether several clients may be connected at once.
    concurrent: bool,
    /// Plays hostile clients against the server at this (listening) URL.
    garbage: Option<fn(&str)>,
    /// How many clients the sequential-clients case runs.
    clients: usize,
}

const MIB: usize = 1 << 20;

/// A reliable, connection-like transport carrying 1 MiB frames: most of them.
const STREAM: Transport = Transport {
    name: "",
    url: || unreachable!("every transport sets its URL"),
    listens: true,
    max_payload: || MIB,
    sender_enforces_limit: true,
    own_limit: true,
    huge_timeout: true,
    limit_names_option: true,
    correlates: true,
    window: 100,
    concurrent: true,
    garbage: None,
    clients: 20,
};

/// A shared-memory link (layout v2): a 1 MiB ring each way holds a frame of
/// up to 1 MiB − 104 (an 8-byte stamp, the 32-byte header, one free line).
const SHM_MAX_PAYLOAD: usize = MIB - 104;

/// Every transport under test, one line each.
#[rustfmt::skip]
const TRANSPORTS: &[Transport] = &[
    Transport { name: "inproc", url: || format!("inproc://{}", util::unique("inproc")), ..STREAM },
    Transport { name: "unix", url: || format!("unix://{}.sock", util::tmp_path("unix")), garbage: Some(garbage_unix), ..STREAM },
    Transport { name: "unix-abstract", url: || format!("unix://@{}", util::unique("abstract")), garbage: Some(garbage_unix_abstract), ..STREAM },
    Transport { name: "tcp", url: || "tcp://127.0.0.1:0".into(), garbage: Some(garbage_tcp), ..STREAM },
    Transport { name: "udp", url: || "udp://127.0.0.1:0".into(), max_payload: || utp::transport::udp::MAX_PAYLOAD_V4, sender_enforces_limit: true, window: 50, garbage: Some(garbage_udp), ..STREAM },
    Transport { name: "pipe", url: pipe_url, listens: false, concurrent: false, clients: 5, ..STREAM },
    Transport { name: "fifo", url: || format!("fifo://{}", util::tmp_path("fifo")), concurrent: false, garbage: Some(garbage_fifo), clients: 10, ..STREAM },
    Transport { name: "shm", url: || format!("shm://{}", util::unique("shm")), max_payload: || SHM_MAX_PAYLOAD, sender_enforces_limit: true, correlates: false, own_limit: false, ..STREAM },
    Transport { name: "sysv", url: || format!("sysv://0x{:x}", util::unique_key()), max_payload: || SHM_MAX_PAYLOAD, sender_enforces_limit: true, correlates: false, own_limit: false, ..STREAM },
    Transport { name: "file", url: || format!("file://{}.region", util::tmp_path("file")), max_payload: || SHM_MAX_PAYLOAD, sender_enforces_limit: true, correlates: false, own_limit: false, ..STREAM },
    // zenoh: both ends in this process share one zenoh session (no network).
    #[cfg(feature = "zenoh")]
    Transport { name: "zenoh", url: || format!("zenoh://{}?scout=off", util::unique("zenoh")), ..STREAM },
    Transport { name: "mq", url: || format!("mq://{}", util::unique("mq")), max_payload: || utp::transport::mq::max_payload(&Options::default()), sender_enforces_limit: true, window: 4, garbage: Some(garbage_mq), ..STREAM },
];

type Case = fn(&Transport);
/// A case's name, whether it passed, and how long it took.
type Outcome = (String, bool, Duration);

const CASES: &[(&str, Case)] = &[
    ("round_trip", round_trip),
    ("ordering_1000_frames", ordering),
    ("batches", batches),
    ("lent_receives", lent_receives),
    ("large_payloads", large_payloads),
    ("the_limit", the_limit),
    ("timeouts", timeouts),
    ("zero_and_huge_timeouts", zero_and_huge_timeouts),
    ("peer_disconnect", peer_disconnect),
    ("garbage_input", garbage_input),
    ("sequential_clients", sequential_clients),
];

const LONG: Option<Duration> = Some(Duration::from_secs(10));

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--child-echo") {
        child_echo();
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&'static Transport> = TRANSPORTS
        .iter()
        .filter(|t| filters.is_empty() || filters.iter().any(|f| t.name.contains(f.as_str())))
        .collect();
    std::panic::set_hook(Box::new(|info| eprintln!("    panic: {info}")));
    let started = Instant::now();
    let runs: Vec<(&str, JoinHandle<Vec<Outcome>>)> = selected
        .into_iter()
        .map(|t| (t.name, std::thread::spawn(move || run_transport(t))))
        .collect();
    let mut failed = Vec::new();
    let mut passed = 0;
    for (name, run) in runs {
        for (case, ok, took) in run.join().expect("runner thread") {
            println!(
                "{name:>14} {case:<22} {} ({took:.2?})",
                if ok { "ok" } else { "FAILED" }
            );
            if ok {
                passed += 1;
            } else {
                failed.push(format!("{name}::{case}"));
            }
        }
    }
    let left = util::leftovers();
    if !left.is_empty() {
        failed.push(format!("objects left behind: {left:?}"));
    }
    println!(
        "\nconformance: {passed} passed, {} failed in {:.2?}",
        failed.len(),
        started.elapsed()
    );
    if !failed.is_empty() {
        for f in &failed {
            println!("  FAILED {f}");
        }
        std::process::exit(1);
    }
}

fn run_transport(t: &'static Transport) -> Vec<Outcome> {
    CASES
        .iter()
        .map(|(case, run)| {
            if std::env::var_os("UTP_CONFORMANCE_VERBOSE").is_some() {
                eprintln!("{:>14} {case} ...", t.name);
            }
            let started = Instant::now();
            let ok = catch_unwind(AssertUnwindSafe(|| run(t))).is_ok();
            (case.to_string(), ok, started.elapsed())
        })
        .collect()
}

/// `pipe:` runs this binary again as the echo server.
fn pipe_url() -> String {
    let exe = std::env::current_exe().expect("current exe");
    format!("pipe:{} --child-echo", exe.display())
}

fn child_echo() -> ! {
    let listener = utp::listen("pipe:").expect("listen on pipe:");
    let mut server = Server::new(listener, echo);
    let code = match server.run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("child echo server: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn echo(request: &[u8], _: &PeerInfo) -> Vec<u8> {
    request.to_vec()
}

/// An echo server on a fresh URL, stopped and cleaned up on drop.
struct Fixture {
    url: String,
    stop: Option<Shutdown>,
    thread: Option<JoinHandle<utp::Result<()>>>,
}

impl Fixture {
    fn start(t: &Transport) -> Fixture {
        let url = (t.url)();
        if !t.listens {
            return Fixture {
                url,
                stop: None,
                thread: None,
            };
        }
        let listener = utp::listen(&url).unwrap_or_else(|e| panic!("listen on {url}: {e}"));
        let url = listener.endpoint();
        let mut server = Server::new(listener, echo);
        let stop = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run());
        Fixture {
            url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn connect(&self) -> Box<dyn Channel> {
        self.connect_with(&Options::default())
    }

    fn connect_with(&self, options: &Options) -> Box<dyn Channel> {
        utp::connect_with(&self.url, options)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            stop.trigger();
        }
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.expect("server thread").expect("server run");
                self.assert_endpoint_removed();
            }
        }
    }
}

impl Fixture {
    /// After the server stops, nothing answers at its URL: the socket file,
    /// FIFOs or queue are gone. (UDP has no connection to refuse.)
    fn assert_endpoint_removed(&self) {
        if self.url.starts_with("udp:") {
            return;
        }
        let quick = Options::default().with_connect_timeout(Duration::from_millis(200));
        // A child spawned by another test at this moment holds copies of our
        // descriptors until its exec closes them, so allow a short grace.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            match utp::connect_with(&self.url, &quick) {
                Err(Error::NotFound { .. }) => return,
                Ok(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(_) => panic!("{} still answers 2 s after shutdown", self.url),
                Err(other) => panic!("{} after shutdown: {other}", self.url),
            }
        }
    }
}

/// Sends a request and returns the echoed payload, checking it is a RESPONSE.
fn call(channel: &mut dyn Channel, payload: &[u8]) -> Vec<u8> {
    channel
        .send_timeout(message_type::REQUEST, flags::CHECKSUM, payload, LONG)
        .expect("send request");
    let mut frame = Frame::default();
    channel
        .recv_timeout(&mut frame, LONG)
        .expect("receive response");
    assert_eq!(frame.message_type(), message_type::RESPONSE, "reply type");
    frame.take_payload()
}

/// The received header carries every field its sender set, whether the
/// transport encodes headers or hands them over some other way (inproc):
/// the length of its payload, a checksum that matches it, and a timestamp
/// of about now.
fn assert_header_whole(frame: &Frame) {
    let header = frame.header;
    assert_eq!(header.payload_length as usize, frame.payload().len());
    let mut bytes = [0u8; utp::frame::HEADER_LEN];
    header.write_fields(&mut bytes);
    assert_eq!(
        header.checksum,
        utp::frame::frame_checksum(&bytes, frame.payload()),
        "the checksum covers this header and payload"
    );
    let now = utp::frame::now_micros();
    assert!(
        now.abs_diff(header.timestamp_us) < 60_000_000,
        "timestamp {} µs, now {now} µs",
        header.timestamp_us
    );
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn round_trip(t: &Transport) {
    let server = Fixture::start(t);
    let mut client = server.connect();
    client
        .send_timeout(message_type::REQUEST, flags::CHECKSUM, b"hello", LONG)
        .unwrap();
    let mut frame = Frame::default();
    client.recv_timeout(&mut frame, LONG).unwrap();
    assert_eq!(frame.message_type(), message_type::RESPONSE);
    assert_eq!(frame.payload(), b"hello");
    assert_eq!(
        frame.header.sequence,
        answered_sequence(&*client, &frame, 1),
        "the server's first frame is number 1, or names the request it answers"
    );
    if t.correlates {
        assert!(
            frame.header.flags & flags::REPLY != 0,
            "the reply names the request it answers"
        );
        assert_eq!(Some(frame.header.sequence), client.sent_sequence());
    }
    assert!(frame.header.has_checksum());
    assert_header_whole(&frame);
    assert_eq!(call(&mut *client, b""), b"", "empty payloads travel too");
}

fn ordering(t: &Transport) {
    let server = Fixture::start(t);
    let mut client = server.connect();
    let mut frame = Frame::default();
    let mut next_reply = 0u32;
    let mut last_sequence = 0;
    let mut first_request = 0;
    for start in (0..1000u32).step_by(t.window) {
        let end = (start + t.window as u32).min(1000);
        for i in start..end {
            client
                .send_timeout(
                    message_type::REQUEST,
                    flags::CHECKSUM,
                    &i.to_le_bytes(),
                    LONG,
                )
                .unwrap_or_else(|e| panic!("send {i}: {e}"));
            if i == 0 {
                first_request = client.sent_sequence().unwrap_or(1);
            }
        }
        for _ in start..end {
            client
                .recv_timeout(&mut frame, LONG)
                .unwrap_or_else(|e| panic!("reply {next_reply}: {e}"));
            assert_eq!(
                frame.payload(),
                next_reply.to_le_bytes(),
                "replies in order"
            );
            assert_eq!(
                frame.header.sequence,
                if frame.header.flags & flags::REPLY != 0 {
                    first_request + u64::from(next_reply)
                } else {
                    last_sequence + 1
                },
                "sequence numbers in order"
            );
            last_sequence = frame.header.sequence;
            next_reply += 1;
        }
    }
    assert_eq!(next_reply, 1000);
}

/// `send_batch` sends its frames in order, as many sends would; one the
/// sender refuses ends the batch, after the frames before it;
/// `try_send_batch` takes what fits and reports a refused frame when it
/// comes first.
fn batches(t: &Transport) {
    let server = Fixture::start(t);
    let mut client = server.connect();
    let max = (t.max_payload)();
    let payloads: Vec<Vec<u8>> = (0..t.window)
        .map(|i| pattern([0, 1, 100, 4000][i % 4].min(max)))
        .collect();
    let batch: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    client
        .send_batch(message_type::REQUEST, flags::CHECKSUM, &batch)
        .expect("send a batch");
    let mut frame = Frame::default();
    for (i, payload) in payloads.iter().enumerate() {
        client
            .recv_timeout(&mut frame, LONG)
            .unwrap_or_else(|e| panic!("reply {i}: {e}"));
        assert!(frame.payload() == payload.as_slice(), "reply {i} in order");
    }
    if t.sender_enforces_limit {
        let too_large = pattern(max + 1);
        match client.send_batch(
            message_type::REQUEST,
            flags::CHECKSUM,
            &[b"before", &too_large, b"after"],
        ) {
            Err(Error::TooLarge { len, .. }) => assert_eq!(len, max + 1),
            other => panic!("a batch with {} bytes in it: {other:?}", max + 1),
        }
        client
            .recv_timeout(&mut frame, LONG)
            .expect("the reply to the frame before");
        assert_eq!(frame.payload(), b"before");
        // The frame after the refused one was not sent: the next reply
        // answers the next call.
        assert_eq!(call(&mut *client, b"next"), b"next");
        // Without waiting: the frames before the refused one are taken and
        // counted; the next call, which starts at it, fails.
        let taken = client
            .try_send_batch(
                message_type::REQUEST,
                flags::CHECKSUM,
                &[b"first", &too_large],
            )
            .expect("try a batch");
        assert_eq!(taken, 1);
        let refused = client.try_send_batch(message_type::REQUEST, flags::CHECKSUM, &[&too_large]);
        assert!(
            matches!(refused, Err(Error::TooLarge { .. })),
            "{refused:?}"
        );
        client
            .recv_timeout(&mut frame, LONG)
            .expect("the reply to the frame taken");
        assert_eq!(frame.payload(), b"first");
    }
    // The same batch without waiting: as many as fit each time, until all
    // are taken; the replies come in order.
    let mut taken = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while taken < batch.len() {
        taken += client
            .try_send_batch(message_type::REQUEST, flags::CHECKSUM, &batch[taken..])
            .expect("try a batch");
        assert!(
            Instant::now() < deadline,
            "{taken} of {} taken in 10 s",
            batch.len()
        );
    }
    let _ = client.try_flush();
    for (i, payload) in payloads.iter().enumerate() {
        client
            .recv_timeout(&mut frame, LONG)
            .unwrap_or_else(|e| panic!("reply {i} to the tried batch: {e}"));
        assert!(frame.payload() == payload.as_slice(), "reply {i} in order");
    }
}

/// `recv_ref` and `try_recv_ref` lend the frames `recv_timeout` would
/// give, whole and in order, mixed with owned receives; nothing there yet
/// is a timeout (`recv_ref`) or `None` (`try_recv_ref`), not an error.
fn lent_receives(t: &Transport) {
    let server = Fixture::start(t);
    let mut client = server.connect();
    let max = (t.max_payload)();
    let mut spare = Frame::default();
    match client.recv_ref(&mut spare, Some(Duration::ZERO)) {
        Err(Error::Timeout { .. }) => {}
        other => panic!("a lent receive with nothing sent: {other:?}"),
    }
    assert!(client.try_recv_ref(&mut spare).unwrap().is_none());
    let payloads: Vec<Vec<u8>> = (0..6)
        .map(|i| pattern([0, 1, 100, 4000, 70_000, 33][i % 6].min(max)))
        .collect();
    for round in 0..2 {
        for payload in &payloads {
            client
                .send_timeout(message_type::REQUEST, flags::CHECKSUM, payload, LONG)
                .expect("send a request");
        }
        for (i, payload) in payloads.iter().enumerate() {
            let received = match (i + round) % 3 {
                0 => client.recv_ref(&mut spare, LONG).map(|f| f.to_frame()),
                1 => {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    loop {
                        if let Some(lent) = client.try_recv_ref(&mut spare).expect("try") {
                            break Ok(lent.to_frame());
                        }
                        assert!(Instant::now() < deadline, "reply {i} in 10 s");
                        std::thread::yield_now();
                    }
                }
                _ => {
                    let mut frame = Frame::default();
                    client.recv_timeout(&mut frame, LONG).map(|()| frame)
                }
            };
            let frame = received.unwrap_or_else(|e| panic!("reply {i} of round {round}: {e}"));
            assert_eq!(frame.message_type(), message_type::RESPONSE);
            assert!(frame.payload() == payload.as_slice(), "reply {i} in order");
            assert_header_whole(&frame);
        }
    }
}

fn large_payloads(t: &Transport) {
    let server = Fixture::start(t);
    let mut client = server.connect();
    let max = (t.max_payload)();
    for len in [0, 1, 4095, 4096, 65_536.min(max), max - 1, max] {
        let payload = pattern(len);
        let echoed = call(&mut *client, &payload);
        assert_eq!(echoed.len(), len, "length of a {len}-byte echo");
        assert!(echoed == payload, "content of a {len}-byte echo");
    }
}

fn the_limit(t: &Transport) {
    let server = Fixture::start(t);
    let max = (t.max_payload)();
    if t.sender_enforces_limit {
        // The sender refuses at once, saying which option raises the limit,
        // and the channel stays usable (nothing was sent).
        let mut client = server.connect();
        let started = Instant::now();
        match client.send_timeout(
            message_type::REQUEST,
            flags::CHECKSUM,
            &pattern(max + 1),
            LONG,
        ) {
            Err(e @ Error::TooLarge { .. }) => {
                let Error::TooLarge { len, limit, .. } = e else {
                    unreachable!()
                };
                assert_eq!((len, limit), (max + 1, max));
                let text = e.to_string();
                assert!(
                    !t.limit_names_option
                        || text.contains("max_payload")
                        || text.contains("?ring=")
                        || text.contains("no option raises it"),
                    "the error names what raises the limit: {text}"
                );
            }
            other => panic!(
                "sending {} bytes: expected TooLarge, got {other:?}",
                max + 1
            ),
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused at once, not after a timeout: {:?}",
            started.elapsed()
        );
        assert_eq!(call(&mut *client, b"still works"), b"still works");
    }
    if t.own_limit {
        // A channel's own max_payload limits what it sends as well.
        let options = Options::default().with_max_payload(1000);
        let mut client = server.connect_with(&options);
        assert_eq!(call(&mut *client, &pattern(1000)), pattern(1000));
        match client.send_timeout(message_type::REQUEST, flags::CHECKSUM, &pattern(2000), LONG) {
            Err(Error::TooLarge { len, limit, .. }) => assert_eq!((len, limit), (2000, 1000)),
            other => panic!("expected TooLarge for 2000 bytes over a 1000 limit, got {other:?}"),
        }
        assert_eq!(call(&mut *client, b"after"), b"after", "still usable");
    }
}

/// The sequence number a reply must carry: the request's when the reply says
/// it names one (flags::REPLY), otherwise the server's own count.
fn answered_sequence(client: &dyn Channel, reply: &Frame, own_count: u64) -> u64 {
    if reply.header.flags & flags::REPLY != 0 {
        client
            .sent_sequence()
            .expect("a channel that sent knows its sequence")
    } else {
        own_count
    }
}

/// `Some(Duration::ZERO)` reads a frame that is already waiting (and times
/// out at once when none is); `Some(Duration::MAX)` waits, never panics.
fn zero_and_huge_timeouts(t: &Transport) {
    let server = Fixture::start(t);
    let mut client = server.connect();
    assert_eq!(call(&mut *client, b"warm up"), b"warm up");
    let mut frame = Frame::default();
    let started = Instant::now();
    match client.recv_timeout(&mut frame, Some(Duration::ZERO)) {
        Err(Error::Timeout { .. }) => {}
        other => panic!("nothing waiting: expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    client
        .send_timeout(message_type::REQUEST, flags::CHECKSUM, b"zero", LONG)
        .unwrap();
    // Give the reply ample time to arrive, then take it without waiting.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        match client.recv_timeout(&mut frame, Some(Duration::ZERO)) {
            Ok(()) => break,
            Err(Error::Timeout { .. }) if Instant::now() < deadline => {}
            other => panic!("a waiting reply with a zero timeout: got {other:?}"),
        }
    }
    assert_eq!(frame.payload(), b"zero");
    if t.huge_timeout {
        client
            .send_timeout(
                message_type::REQUEST,
                flags::CHECKSUM,
                b"huge",
                Some(Duration::MAX),
            )
            .expect("send with Duration::MAX");
        client
            .recv_timeout(&mut frame, Some(Duration::MAX))
            .expect("receive with Duration::MAX");
        assert_eq!(frame.payload(), b"huge");
    }
}

fn timeouts(t: &Transport) {
    let server = Fixture::start(t);
    let mut client = server.connect();
    assert_eq!(call(&mut *client, b"before"), b"before");
    let mut frame = Frame::default();
    let started = Instant::now();
    match client.recv_timeout(&mut frame, Some(Duration::from_millis(50))) {
        Err(e @ Error::Timeout { .. }) => assert!(e.is_timeout()),
        other => panic!("expected Timeout, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(45),
        "returned early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "returned late: {waited:?}");
    assert_eq!(
        call(&mut *client, b"after"),
        b"after",
        "usable after a timeout"
    );
    if t.listens {
        let mut listener = utp::listen(&(t.url)()).unwrap();
        match listener.accept_timeout(Some(Duration::from_millis(50))) {
            Err(Error::Timeout { .. }) => {}
            other => panic!("accept: expected Timeout, got {other:?}"),
        }
    }
}

fn peer_disconnect(t: &Transport) {
    // The server leaves: after GOODBYE the echo server closes the channel.
    let server = Fixture::start(t);
    let mut client = server.connect();
    assert_eq!(call(&mut *client, b"hi"), b"hi");
    client
        .send_timeout(message_type::GOODBYE, flags::CHECKSUM, b"", LONG)
        .unwrap();
    let mut frame = Frame::default();
    match client.recv_timeout(&mut frame, LONG) {
        // An orderly close is `Closed` on every transport, never `Died`.
        Err(Error::PeerGone {
            reason: GoneReason::Closed,
            ..
        }) => {}
        other => panic!("client after the server closed: expected PeerGone(Closed), got {other:?}"),
    }
    drop(client);
    drop(server);
    // The client leaves: the server's end notices.
    if t.listens {
        let mut listener = utp::listen(&(t.url)()).unwrap();
        let url = listener.endpoint();
        // Accept in a thread: some transports (mq) answer connect from accept.
        let accepting = std::thread::spawn(move || {
            let end = listener.accept_timeout(LONG);
            (listener, end)
        });
        let mut client = utp::connect(&url).unwrap();
        client
            .send_timeout(message_type::DATA, flags::CHECKSUM, b"first", LONG)
            .unwrap();
        let (_listener, server_end) = accepting.join().unwrap();
        let mut server_end = server_end.unwrap();
        server_end.recv_timeout(&mut frame, LONG).unwrap();
        assert_eq!(frame.payload(), b"first");
        drop(client);
        match server_end.recv_timeout(&mut frame, LONG) {
            Err(Error::PeerGone {
                reason: GoneReason::Closed,
                ..
            }) => {}
            other => {
                panic!("server after the client left: expected PeerGone(Closed), got {other:?}")
            }
        }
    }
}

fn garbage_input(t: &Transport) {
    let Some(inject) = t.garbage else {
        return;
    };
    let server = Fixture::start(t);
    let mut bystander = t.concurrent.then(|| server.connect());
    if let Some(c) = bystander.as_mut() {
        assert_eq!(call(&mut **c, b"before"), b"before");
    }
    inject(&server.url);
    if let Some(c) = bystander.as_mut() {
        assert_eq!(
            call(&mut **c, b"during"),
            b"during",
            "a connected client keeps working"
        );
    }
    drop(bystander);
    let mut fresh = server.connect();
    assert_eq!(
        call(&mut *fresh, b"after"),
        b"after",
        "new clients are served"
    );
}

fn sequential_clients(t: &Transport) {
    let server = Fixture::start(t);
    for i in 0..t.clients {
        let mut client = utp::service::Client::new(server.connect());
        client.set_timeout(LONG);
        let request = format!("client {i}");
        assert_eq!(client.call(request.as_bytes()).unwrap(), request.as_bytes());
        client.close().unwrap();
    }
}

// ---- hostile clients, one per transport ----

fn unix_path(url: &str) -> &str {
    url.strip_prefix("unix://").expect("unix URL")
}

fn garbage_unix(url: &str) {
    let path = unix_path(url).to_string();
    util::inject_stream(|| std::os::unix::net::UnixStream::connect(&path).expect("raw connect"));
}

fn garbage_unix_abstract(url: &str) {
    use std::os::linux::net::SocketAddrExt;
    let name = unix_path(url)
        .strip_prefix('@')
        .expect("abstract name")
        .to_string();
    util::inject_stream(|| {
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        std::os::unix::net::UnixStream::connect_addr(&addr).expect("raw connect")
    });
}

fn garbage_tcp(url: &str) {
    let addr = url.strip_prefix("tcp://").expect("tcp URL").to_string();
    util::inject_stream(|| std::net::TcpStream::connect(&addr).expect("raw connect"));
}

fn garbage_udp(url: &str) {
    let addr = url.strip_prefix("udp://").expect("udp URL");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let header = utp::frame::Header::new(message_type::REQUEST, flags::CHECKSUM, 1, 0);
    let mut bad_checksum = utp::frame::encode_to_vec(&header, b"MUL 6 7");
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 0xff;
    let datagrams = [
        b"garbage".to_vec(),
        util::header_declaring(u32::MAX),
        util::header_declaring(100), // declares 100 bytes, carries none
        bad_checksum,
        vec![0; 40_000],
    ];
    for d in datagrams {
        socket.send_to(&d, addr).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
}

/// A tutorial-style FIFO client that takes no lock: writes, then vanishes.
struct RawFifo {
    req: std::fs::File,
    resp: std::fs::File,
}

impl Read for RawFifo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.resp.read(buf)
    }
}

impl Write for RawFifo {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.req.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn garbage_fifo(url: &str) {
    let base = url.strip_prefix("fifo://").expect("fifo URL").to_string();
    util::inject_stream(|| {
        let req = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("{base}.req"))
            .unwrap();
        let resp = std::fs::File::open(format!("{base}.resp")).unwrap();
        RawFifo { req, resp }
    });
    // Let the server notice the last one leave before a polite client comes.
    std::thread::sleep(Duration::from_millis(50));
}

fn garbage_mq(url: &str) {
    let name = url.strip_prefix("mq://").expect("mq URL");
    for bytes in [
        &b"garbage"[..],
        b"utp-mq1 ../../etc",
        b"utp-mq1 999999-1",
        b"",
    ] {
        utp::transport::mq::inject_raw(name, bytes).unwrap();
    }
    let endpoint: utp::Endpoint = url.parse().unwrap();
    let mut hostile = utp::transport::mq::connect(&endpoint, &Options::default()).unwrap();
    hostile.send_raw(b"garbage").unwrap();
    hostile.send_raw(&util::header_declaring(u32::MAX)).unwrap();
    // The server closes this client's connection (ERROR, then goodbye).
    let mut frame = Frame::default();
    match hostile.recv_timeout(&mut frame, LONG) {
        Ok(()) => assert_eq!(frame.message_type(), message_type::ERROR),
        Err(e) => assert!(e.is_peer_gone(), "{e}"),
    }
}
