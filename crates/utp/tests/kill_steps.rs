//! SIGKILL at every step: a peer process is killed at each step of connect,
//! handshake, send, receive and accept, on every transport that has two
//! processes, and the survivor (this process) must
//!
//! 1. get a clear error (not a hang, not a timeout) within [`BOUND`] of the
//!    kill, where it can know (see the exceptions below);
//! 2. serve a new client (or, when the server was killed, start a new server
//!    at the same URL and serve a client);
//! 3. leave nothing behind in /tmp, /dev/shm or /dev/mqueue.
//!
//! The killed peer is this test binary re-executed (`tests/child`): it runs
//! its role up to the step, prints `BLOCKED <step>` and stays there (blocked or
//! asleep) until the parent SIGKILLs it. Steps:
//!
//! | step        | killed peer | it is killed ...                                   |
//! |-------------|-------------|----------------------------------------------------|
//! | `connect`   | client      | right after `connect` returned                      |
//! | `handshake` | client      | shm family: after `LINK_HELLO`, before `LINK_READY` |
//! | `send`      | client      | blocked in `send` with the server not reading      |
//! | `receive`   | client      | blocked in `recv`, its request read, no reply yet  |
//! | `unread`    | client      | not reading, the server blocked in an untimed `send` |
//! | `accept`    | server      | blocked in `accept`, no client yet                 |
//! | `serving`   | server      | blocked in `recv` on an accepted client            |
//! | `replying`  | server      | the request read, before the reply                 |
//! | `stalled`   | server      | not reading, its client blocked in an untimed `send` |
//!
//! Exceptions, by design: `udp://` is connectionless, so a peer's death is
//! invisible; its survivor gets its deadline (`Timeout`) or, where the kernel
//! reports it, `ECONNREFUSED`. `inproc://` has no second process and `pipe:`
//! ties the peer's life to the pipe (covered by the conformance suite).
//!
//! Gaps this test found that are not fixed yet are listed in [`KNOWN_GAPS`].
//!
//! [`BOUND`] is 100 ms as the issue asks, times `UTP_KILL_SLACK` (default 4)
//! because this machine is shared and loaded; the measured times are printed
//! (`--nocapture`).

mod child;
mod util;

use child::{Proc, say};
use std::time::{Duration, Instant};
use utp::ProtocolReason;
use utp::frame::{Frame, flags, message_type};
use utp::{Error, Options};

/// The bound for noticing a dead peer.
const BOUND: Duration = Duration::from_millis(100);
/// Long enough to mean "hung" on any machine.
const LONG: Option<Duration> = Some(Duration::from_secs(5));

fn slack() -> u32 {
    std::env::var("UTP_KILL_SLACK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Some((role, url, _)) = child::role() else {
        return;
    };
    let mut frame = Frame::default();
    let big = Options::default().with_max_payload(8 << 20);
    match role.as_str() {
        "connect" => {
            let _ch = utp::connect(&url).unwrap();
            say("BLOCKED connect");
            std::thread::sleep(Duration::from_secs(60));
        }
        "handshake" => {
            let endpoint = utp::Endpoint::parse(&url).unwrap();
            // The listener's socket in our per-user directory (layout v2).
            let file = utp::shm::rendezvous::socket_file(&endpoint.address).unwrap();
            let path = utp::runtime_dir::private_dir().unwrap().join(file);
            let stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
            let hello = utp::shm::rendezvous::Hello {
                capacity: 0,
                features: 0,
            }
            .encode();
            utp::shm::rendezvous::send_frame(&stream, message_type::LINK_HELLO, &hello, None)
                .unwrap();
            utp::shm::rendezvous::recv_frame(&stream, message_type::LINK_ATTACH).unwrap();
            say("BLOCKED handshake");
            std::thread::sleep(Duration::from_secs(60));
        }
        "send" => {
            let mut ch = utp::connect_with(&url, &big).unwrap();
            let size = if url.starts_with("mq:") {
                4000
            } else {
                48 * 1024
            };
            let payload = vec![7u8; size];
            ch.send(message_type::DATA, flags::CHECKSUM, &payload)
                .unwrap();
            say("BLOCKED send");
            loop {
                ch.send(message_type::DATA, flags::CHECKSUM, &payload)
                    .unwrap();
            }
        }
        "unread" => {
            let mut ch = utp::connect_with(&url, &big).unwrap();
            ch.send(message_type::REQUEST, flags::CHECKSUM, b"ADD 1 2")
                .unwrap();
            say("BLOCKED unread");
            std::thread::sleep(Duration::from_secs(60));
        }
        "receive" => {
            let mut ch = utp::connect(&url).unwrap();
            ch.send(message_type::REQUEST, flags::CHECKSUM, b"ADD 1 2")
                .unwrap();
            say("BLOCKED receive");
            let _ = ch.recv(&mut frame);
            std::thread::sleep(Duration::from_secs(60));
        }
        "accept" | "serving" | "replying" | "stalled" => {
            let mut listener = utp::listen_with(&url, &big).unwrap();
            say(&format!("READY {}", listener.endpoint()));
            if role == "accept" {
                say("BLOCKED accept");
            }
            let mut ch = listener.accept().unwrap();
            if role == "serving" {
                say("BLOCKED serving");
            }
            ch.recv(&mut frame).unwrap();
            say(&format!("BLOCKED {role}"));
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// One transport: a fresh URL, and what it can promise.
struct Transport {
    name: &'static str,
    url: fn() -> String,
    /// shm://, sysv://, file://: the rendezvous handshake can be cut.
    shm: bool,
    /// Connectionless: a peer's death cannot be noticed.
    connectionless: bool,
    /// The server's accept returns only when the client's first bytes arrive.
    silent_connect: bool,
}

#[rustfmt::skip]
const TRANSPORTS: &[Transport] = &[
    Transport { name: "unix", url: || format!("unix://{}.sock", util::tmp_path("kill-unix")), shm: false, connectionless: false, silent_connect: false },
    Transport { name: "unix-abstract", url: || format!("unix://@{}", util::unique("kill-abs")), shm: false, connectionless: false, silent_connect: false },
    Transport { name: "tcp", url: || "tcp://127.0.0.1:0".into(), shm: false, connectionless: false, silent_connect: false },
    Transport { name: "udp", url: || "udp://127.0.0.1:0".into(), shm: false, connectionless: true, silent_connect: true },
    Transport { name: "fifo", url: || format!("fifo://{}", util::tmp_path("kill-fifo")), shm: false, connectionless: false, silent_connect: true },
    Transport { name: "shm", url: || format!("shm://{}", util::unique("kill-shm")), shm: true, connectionless: false, silent_connect: false },
    Transport { name: "sysv", url: || format!("sysv://0x{:x}", util::unique_key()), shm: true, connectionless: false, silent_connect: false },
    Transport { name: "file", url: || format!("file://{}.region", util::tmp_path("kill-file")), shm: true, connectionless: false, silent_connect: false },
    Transport { name: "mq", url: || format!("mq://{}", util::unique("kill-mq")), shm: false, connectionless: false, silent_connect: false },
];

/// Gaps found by this test and not fixed on this branch: (transport, step,
/// why). Their timeouts are reported, not failed; remove an entry when fixed.
const KNOWN_GAPS: &[(&str, &str, &str)] = &[];

/// Everything that went wrong for one transport (empty: all steps passed).
#[derive(Default)]
struct Report {
    transport: &'static str,
    failures: Vec<String>,
}

impl Report {
    fn check(&mut self, step: &str, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let failure = format!("{} {step}: {}", self.transport, what());
            eprintln!("{failure}");
            self.failures.push(failure);
        }
    }

    /// Checks a survivor's result after the kill: an error, not a timeout
    /// (unless connectionless), within the bound.
    fn noticed(&mut self, t: &Transport, step: &str, result: utp::Result<()>, took: Duration) {
        let bound = BOUND * slack();
        eprintln!(
            "{:>14} {step:<10} survivor saw {result:?} after {took:.1?}",
            t.name
        );
        match result {
            Ok(()) => self.check(step, false, || "the survivor's call succeeded".into()),
            Err(Error::Timeout { .. }) if t.connectionless => {}
            Err(Error::Timeout { .. })
                if KNOWN_GAPS
                    .iter()
                    .any(|(n, s, _)| *n == t.name && *s == step) =>
            {
                eprintln!(
                    "{:>14} {step:<10} KNOWN GAP (see KNOWN_GAPS): only the deadline",
                    t.name
                );
            }
            Err(e @ Error::Timeout { .. }) => {
                self.check(step, false, || format!("no error, only the deadline: {e}"))
            }
            Err(_) => self.check(step, took <= bound, || {
                format!("the error took {took:?} (bound {bound:?})")
            }),
        }
    }

    fn clean(&mut self, step: &str, url: &str) {
        let left = leftovers_of(url);
        self.check(step, left.is_empty(), || format!("left behind: {left:?}"));
    }
}

/// IPC objects named after `url` that still exist.
fn leftovers_of(url: &str) -> Vec<String> {
    let Some(name) = url.split(['/', '@']).rfind(|s| s.contains(&util::prefix())) else {
        return Vec::new();
    };
    let stem = name.split(['.', '?']).next().unwrap_or(name).to_string();
    // Give the survivor's cleanup a moment (it may run on a server thread).
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let left: Vec<String> = util::leftovers()
            .into_iter()
            .filter(|entry| entry.contains(&stem))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills `child` after `after`, from another thread; returns when it did.
fn kill_later(child: &mut Proc, after: Duration) -> std::thread::JoinHandle<Instant> {
    let pid = child.pid() as i32;
    std::thread::spawn(move || {
        std::thread::sleep(after);
        // SAFETY: plain syscall; the pid is our child, reaped only by its `Proc`.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill {pid}");
        Instant::now()
    })
}

/// Sends without a deadline through `ch` to a peer (`child`) that reads
/// nothing more (once it has said `blocked`, where given), until the sends
/// stop going through (the buffers between are full and the send is
/// blocked), then kills the peer: returns how long after the kill the send
/// ended, and how.
fn killed_under_a_blocked_sender(
    child: &mut Proc,
    mut ch: Box<dyn utp::Channel>,
    blocked: Option<&str>,
) -> (Duration, utp::Result<()>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, mpsc};
    let sent = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    let sender = std::thread::spawn({
        let sent = sent.clone();
        move || {
            // Small enough for every queue's messages (mq's are 4 000 bytes
            // at most by default), and several to a pipe.
            let payload = [7u8; 3000];
            let result = loop {
                if let Err(e) = ch.send(message_type::DATA, flags::CHECKSUM, &payload) {
                    break Err(e);
                }
                sent.fetch_add(1, Ordering::Relaxed);
            };
            done_tx.send((result, Instant::now())).unwrap();
        }
    });
    if let Some(line) = blocked {
        child.expect(line);
    }
    // Blocked: nothing went through for a while (a sleeping receiver may
    // still be counted in, so "a while" is generous).
    let mut last = u64::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = sent.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    let killed = kill_later(child, Duration::ZERO).join().unwrap();
    let (result, ended) = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the blocked send ends once the server is killed, not never");
    sender.join().unwrap();
    (ended.saturating_duration_since(killed), result)
}

/// A new client gets an answer from `listener` (served on this thread).
fn serves_a_new_client(listener: &mut dyn utp::Listener) -> Result<(), String> {
    let url = listener.endpoint();
    let client = std::thread::spawn(move || -> utp::Result<Vec<u8>> {
        let mut ch = utp::connect(&url)?;
        ch.send(message_type::REQUEST, flags::CHECKSUM, b"ping")?;
        let mut frame = Frame::default();
        ch.recv_timeout(&mut frame, LONG)?;
        Ok(frame.payload().to_vec())
    });
    // The server's channel stays open until the client has its reply: this
    // test is about surviving a kill, not about close racing the last frame.
    let served = (|| -> utp::Result<Box<dyn utp::Channel>> {
        let mut ch = listener.accept_timeout(LONG)?;
        let mut frame = Frame::default();
        ch.recv_timeout(&mut frame, LONG)?;
        if frame.payload() != b"ping" {
            return Err(Error::protocol(
                ProtocolReason::Unexpected,
                format!("server got {:?}", frame.payload()),
            ));
        }
        ch.send_timeout(message_type::RESPONSE, flags::CHECKSUM, b"pong", LONG)?;
        Ok(ch)
    })();
    let reply = client.join().expect("client thread");
    let served = served.map(drop);
    match (served, reply) {
        (Ok(()), Ok(reply)) if reply == b"pong" => Ok(()),
        (served, reply) => Err(format!("server: {served:?}, client: {reply:?}")),
    }
}

/// What a background accept hands back: the listener, its result, when it ended.
type Accepted = (
    Box<dyn utp::Listener>,
    utp::Result<Box<dyn utp::Channel>>,
    Instant,
);

/// Accepts on another thread (connecting may need the server's side of
/// a handshake), handing the listener back with the result.
fn accept_in_background(
    mut listener: Box<dyn utp::Listener>,
    timeout: Duration,
) -> std::thread::JoinHandle<Accepted> {
    std::thread::spawn(move || {
        let result = listener.accept_timeout(Some(timeout));
        (listener, result, Instant::now())
    })
}

/// The client is killed at `step`; this process is the server.
fn client_killed(t: &Transport, step: &str, report: &mut Report) {
    eprintln!("{:>14} {step:<10} (client killed) ...", t.name);
    let options = Options::default().with_max_payload(8 << 20);
    let listener = utp::listen_with(&(t.url)(), &options).expect("listen");
    let url = listener.endpoint();
    let mut child = Proc::spawn(step, &url, "");
    let mut frame = Frame::default();
    let wait = if t.silent_connect && step == "connect" || t.connectionless || step == "handshake" {
        Duration::from_secs(1)
    } else {
        LONG.unwrap()
    };
    let accepting = accept_in_background(listener, wait);
    child.expect(&format!("BLOCKED {step}"));
    if step == "handshake" {
        // The handshake runs inside accept, which now waits for LINK_READY.
        child.kill();
    }
    let killed_at = Instant::now();
    let (mut listener, accepted, accept_ended) = accepting.join().expect("accept thread");
    match (step, accepted) {
        ("handshake", result) => {
            let took = accept_ended.saturating_duration_since(killed_at);
            eprintln!(
                "{:>14} {step:<10} accept saw {result:?} {took:.1?} after the kill",
                t.name
            );
            report.check(step, result.is_err(), || {
                "accept returned a link to a dead client".into()
            });
            // The region made for the dead client is gone (before any new client).
            report.clean(step, &url);
        }
        // A client that never sent has not connected (udp, fifo).
        ("connect", Err(Error::Timeout { .. })) if t.silent_connect => {}
        (_, Err(e)) => report.check(step, false, || format!("accept failed: {e}")),
        ("connect", Ok(mut ch)) => {
            let killer = kill_later(&mut child, Duration::from_millis(30));
            let result = ch.recv_timeout(&mut frame, Some(wait));
            let took = killer.join().unwrap().elapsed();
            report.noticed(t, step, result, took);
        }
        ("send", Ok(mut ch)) => {
            std::thread::sleep(Duration::from_millis(100)); // let it block mid-send
            child.kill();
            let killed = Instant::now();
            // Drain what was sent before the kill; then the error, timed
            // from the kill or the last frame drained, whichever is later.
            let mut drained = killed;
            let result = loop {
                match ch.recv_timeout(&mut frame, Some(wait)) {
                    Ok(()) if killed.elapsed() < Duration::from_secs(5) => drained = Instant::now(),
                    other => break other,
                }
            };
            report.noticed(t, step, result, drained.elapsed());
        }
        ("unread", Ok(mut ch)) => {
            let got = ch.recv_timeout(&mut frame, Some(wait));
            report.check(step, got.is_ok(), || {
                format!("request not received: {got:?}")
            });
            let (took, result) = killed_under_a_blocked_sender(&mut child, ch, None);
            report.noticed(t, step, result, took);
        }
        ("receive", Ok(mut ch)) => {
            let got = ch.recv_timeout(&mut frame, Some(wait));
            report.check(step, got.is_ok(), || {
                format!("request not received: {got:?}")
            });
            std::thread::sleep(Duration::from_millis(30)); // let it block in recv
            child.kill();
            let started = Instant::now();
            let sent = ch.send_timeout(message_type::RESPONSE, 0, b"OK 3", Some(wait));
            let send_took = started.elapsed();
            report.check(step, send_took <= BOUND * slack(), || {
                format!("a reply to a dead client took {send_took:?} ({sent:?})")
            });
            let started = Instant::now();
            let result = ch.recv_timeout(&mut frame, Some(wait));
            report.noticed(t, step, result, started.elapsed());
        }
        (other, _) => unreachable!("{other}"),
    }
    child.kill();
    if let Err(e) = serves_a_new_client(listener.as_mut()) {
        report.check(step, false, || format!("no new client served: {e}"));
    }
    drop(listener);
    report.clean(step, &url);
}

/// The server (a child) is killed at `step`; this process is the client.
fn server_killed(t: &Transport, step: &str, report: &mut Report) {
    eprintln!("{:>14} {step:<10} (server killed) ...", t.name);
    let url = (t.url)();
    let mut child = Proc::spawn(step, &url, "");
    let fields = child.expect_fields("READY");
    let endpoint = fields[0].clone();
    let quick = Options::default().with_connect_timeout(Duration::from_secs(2));
    let mut frame = Frame::default();
    match step {
        "accept" => {
            child.expect("BLOCKED accept");
            child.kill();
            let started = Instant::now();
            let result = utp::connect_with(&endpoint, &quick).and_then(|mut ch| {
                ch.send_timeout(message_type::REQUEST, 0, b"ADD 1 2", LONG)?;
                ch.recv_timeout(&mut frame, Some(Duration::from_secs(1)))
            });
            report.noticed(t, step, result, started.elapsed());
        }
        "serving" | "replying" => match utp::connect_with(&endpoint, &quick) {
            Ok(mut ch) => {
                if step == "replying" || t.silent_connect {
                    let sent = ch.send_timeout(message_type::REQUEST, 0, b"ADD 1 2", LONG);
                    report.check(step, sent.is_ok(), || format!("send: {sent:?}"));
                }
                child.expect(&format!("BLOCKED {step}"));
                let killer = kill_later(&mut child, Duration::from_millis(30));
                let wait = if t.connectionless {
                    Some(Duration::from_secs(1))
                } else {
                    LONG
                };
                let result = ch.recv_timeout(&mut frame, wait);
                let took = killer.join().unwrap().elapsed();
                report.noticed(t, step, result, took);
            }
            Err(e) => report.check(step, false, || format!("connect failed: {e}")),
        },
        "stalled" => match utp::connect_with(&endpoint, &quick.clone().with_max_payload(8 << 20)) {
            Ok(ch) => {
                let (took, result) =
                    killed_under_a_blocked_sender(&mut child, ch, Some("BLOCKED stalled"));
                report.noticed(t, step, result, took);
            }
            Err(e) => report.check(step, false, || format!("connect failed: {e}")),
        },
        other => unreachable!("{other}"),
    }
    child.kill();
    // A new server at the same URL reclaims what the dead one left and serves.
    match utp::listen(&url) {
        Ok(mut listener) => {
            if let Err(e) = serves_a_new_client(listener.as_mut()) {
                report.check(step, false, || {
                    format!("the new server served no client: {e}")
                });
            }
        }
        Err(e) => report.check(step, false, || format!("no new server at {url}: {e}")),
    }
    report.clean(step, &url);
}

fn run(name: &str) {
    let t = TRANSPORTS.iter().find(|t| t.name == name).unwrap();
    let mut report = Report {
        transport: t.name,
        ..Report::default()
    };
    for step in ["connect", "handshake", "send", "receive", "unread"] {
        if step == "handshake" && !t.shm {
            continue; // elsewhere the handshake is inside connect
        }
        if step == "unread" && t.connectionless {
            continue; // a datagram send never waits for its reader
        }
        client_killed(t, step, &mut report);
    }
    for step in ["accept", "serving", "replying", "stalled"] {
        if step == "stalled" && t.connectionless {
            continue; // a datagram send never waits for its reader
        }
        server_killed(t, step, &mut report);
    }
    assert!(report.failures.is_empty(), "{}", report.failures.join("\n"));
}

#[test]
fn unix() {
    run("unix");
}
#[test]
fn unix_abstract() {
    run("unix-abstract");
}
#[test]
fn tcp() {
    run("tcp");
}
#[test]
fn udp() {
    run("udp");
}
#[test]
fn fifo() {
    run("fifo");
}
#[test]
fn shm() {
    run("shm");
}
#[test]
fn sysv() {
    run("sysv");
}
#[test]
fn file() {
    run("file");
}
#[test]
fn mq() {
    run("mq");
}
