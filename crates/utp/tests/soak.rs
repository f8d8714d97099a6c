//! Soak: many clients × many calls against a calculator server in another
//! process, on every transport, mixed with clients that are SIGKILLed
//! mid-call and clients that misbehave; then
//!
//! - 0 wrong answers (every reply is checked against the calculator);
//! - the server's RSS and descriptor count flat: at the end (clients gone)
//!   within a small margin of what they were once warmed up;
//! - the server shuts down on SIGTERM and leaves nothing in /tmp, /dev/shm
//!   or /dev/mqueue.
//!
//! Ignored by a plain `cargo test`; run it with `scripts/soak [SECONDS]`
//! (`cargo test -p utp --test soak -- --ignored --nocapture`).
//! Bounded: `UTP_SOAK_SECS` (default 10) is the whole run, shared evenly by
//! the transports (`scripts/soak` runs it for 60 s; CI runs
//! a short one). `UTP_SOAK_ONLY=tcp,shm` runs only the transports whose name
//! contains one of those words.
//!
//! Clients per transport: 64, except where the transport itself bounds them:
//! `mq://` (each client's two queues count against the user's
//! RLIMIT_MSGQUEUE, about 12 clients at the default 800 KiB) and `fifo://`
//! (one session at a time by design: clients queue on a lock).

mod child;
mod util;

use child::{Proc, say};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use utp::Options;
use utp::frame::{Frame, flags, message_type};
use utp::service::{Client, Server, calc};

struct Transport {
    name: &'static str,
    url: fn() -> String,
    clients: usize,
    /// Raw garbage can be written to it (a byte stream).
    stream: bool,
}

#[rustfmt::skip]
const TRANSPORTS: &[Transport] = &[
    Transport { name: "unix", url: || format!("unix://{}.sock", util::tmp_path("soak-unix")), clients: 64, stream: true },
    Transport { name: "unix-abstract", url: || format!("unix://@{}", util::unique("soak-abs")), clients: 64, stream: true },
    Transport { name: "tcp", url: || "tcp://127.0.0.1:0".into(), clients: 64, stream: true },
    Transport { name: "udp", url: || "udp://127.0.0.1:0".into(), clients: 64, stream: false },
    Transport { name: "fifo", url: || format!("fifo://{}", util::tmp_path("soak-fifo")), clients: 8, stream: false },
    Transport { name: "shm", url: || format!("shm://{}", util::unique("soak-shm")), clients: 64, stream: false },
    Transport { name: "sysv", url: || format!("sysv://0x{:x}", util::unique_key()), clients: 64, stream: false },
    Transport { name: "file", url: || format!("file://{}.region", util::tmp_path("soak-file")), clients: 64, stream: false },
    Transport { name: "mq", url: || format!("mq://{}", util::unique("soak-mq")), clients: 8, stream: false },
];

/// Gaps this test found that are not fixed yet: (transport, check, why).
/// They are reported, not failed; remove an entry once it passes. Empty since
/// the server fixes of issue 13 (fifo cross-talk, mq queues of dead clients).
const KNOWN_GAPS: &[(&str, &str, &str)] = &[];

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Some((role, url, _)) = child::role() else {
        return;
    };
    match role.as_str() {
        "server" => {
            let listener = utp::listen(&url).unwrap();
            let endpoint = listener.endpoint();
            let mut server = Server::new(listener, calc::handler());
            server.shutdown_handle().on_signals().unwrap();
            say(&format!("READY {endpoint}"));
            server.run().unwrap();
            say("DONE");
        }
        "caller" => {
            // Calls until killed.
            let mut client = Client::connect(&url).unwrap();
            say("BLOCKED calling");
            for i in 0u64.. {
                let _ = client.call(format!("ADD {i} 1").as_bytes());
            }
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// A small deterministic generator (xorshift64*), one per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A request that exercises every operation, overflow and division by zero.
    fn request(&mut self) -> String {
        let op = ["ADD", "SUB", "MUL", "DIV"][(self.next() % 4) as usize];
        let a = self.next() as i64 >> (self.next() % 63);
        let b = self.next() as i64 >> (self.next() % 63);
        format!("{op} {a} {b}")
    }
}

/// (RSS in KiB, open descriptors) of process `pid`.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

/// An honest client's connection: 10 s to connect, 10 s per call.
fn connect_client(url: &str) -> utp::Result<Client> {
    let options = Options::default().with_connect_timeout(Duration::from_secs(10));
    let mut client = Client::connect_with(url, &options)?;
    client.set_timeout(Some(Duration::from_secs(10)));
    Ok(client)
}

/// One honest call on a connection of its own, closed again.
fn first_call(url: &str) {
    let mut client = connect_client(url).expect("first client connects");
    assert_eq!(client.call(b"ADD 1 2").expect("first call"), b"OK 3");
    client.close().expect("first client closes");
}

/// `usage(pid)` once its descriptor count has not changed for 200 ms
/// (or after 3 s).
fn settled(pid: u32) -> (u64, usize) {
    let started = Instant::now();
    let mut last = usage(pid);
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_millis(200) && started.elapsed() < Duration::from_secs(3)
    {
        std::thread::sleep(Duration::from_millis(20));
        let now = usage(pid);
        if now.1 != last.1 {
            since = Instant::now();
        }
        last = now;
    }
    last
}

/// Where each thread of process `pid` waits: the system call it is in
/// (number and arguments) and the innermost kernel frames (root only),
/// for a failure message.
fn waits(pid: u32) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return String::new();
    };
    let read = |path: std::path::PathBuf| std::fs::read_to_string(path).unwrap_or_default();
    tasks
        .flatten()
        .map(|task| {
            let syscall = read(task.path().join("syscall"));
            let stack = read(task.path().join("stack"));
            let frames: Vec<&str> = stack
                .lines()
                .take(3)
                .filter_map(|l| l.split_whitespace().nth(1))
                .collect();
            format!(
                "thread {}: syscall {} in {}",
                task.file_name().to_string_lossy(),
                syscall.trim(),
                frames.join(" < ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the open descriptors of process `pid` are (for a failure message).
fn descriptors(pid: u32) -> String {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return String::new();
    };
    let mut fds: Vec<(u32, String)> = dir
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.display().to_string()))
        })
        .collect();
    fds.sort();
    fds.iter()
        .map(|(fd, target)| format!("{fd}={target}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Default)]
struct Counts {
    calls: AtomicU64,
    wrong: AtomicU64,
    errors: AtomicU64,
    killed: AtomicU64,
    misbehaved: AtomicU64,
}

/// One honest client of the server `server` (a pid): calls until `stop`,
/// reconnecting every 100 calls; a failure prints where the server waits.
fn honest(url: &str, server: u32, seed: u64, stop: &AtomicBool, counts: &Counts) {
    let mut rng = Rng(seed | 1);
    while !stop.load(Ordering::Relaxed) {
        let mut client = match connect_client(url) {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "soak: connect {url}: {e}; the server waits: {}",
                    waits(server)
                );
                counts.errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        for _ in 0..100 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let request = rng.request();
            match client.call(request.as_bytes()) {
                Ok(reply) => {
                    counts.calls.fetch_add(1, Ordering::Relaxed);
                    let want = calc::evaluate(request.as_bytes());
                    if reply != want.as_bytes() {
                        counts.wrong.fetch_add(1, Ordering::Relaxed);
                        eprintln!(
                            "soak: WRONG ANSWER on {url}: {request:?} -> {:?}, expected {want:?}",
                            String::from_utf8_lossy(reply)
                        );
                    }
                }
                Err(e) => {
                    eprintln!(
                        "soak: call on {url}: {e}; the server waits: {}",
                        waits(server)
                    );
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        let _ = client.close();
    }
}

/// Misbehaves in turn: a client process SIGKILLed mid-call, a client that
/// connects and leaves, one that sends and never reads, one that sends
/// nonsense, raw garbage on byte streams.
fn misbehave(t: &Transport, url: &str, stop: &AtomicBool, counts: &Counts) {
    let mut rng = Rng(0x5eed);
    let mut frame = Frame::default();
    for round in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match round % 5 {
            0 => {
                let mut caller = Proc::spawn("caller", url, "");
                caller.expect("BLOCKED");
                std::thread::sleep(Duration::from_millis(rng.next() % 30));
                caller.kill();
                counts.killed.fetch_add(1, Ordering::Relaxed);
            }
            1 => drop(utp::connect(url)),
            2 => {
                if let Ok(mut ch) = utp::connect(url) {
                    let _ = ch.send(message_type::REQUEST, flags::CHECKSUM, b"ADD 1 2");
                }
            }
            3 => {
                if let Ok(mut ch) = utp::connect(url) {
                    let _ = ch.send(message_type::REQUEST, 0, b"\x1b[2J POW 1 2 3");
                    let _ = ch.recv_timeout(&mut frame, Some(Duration::from_secs(2)));
                    let _ = ch.send(message_type::DATA, 0, &[0xff; 300]);
                }
            }
            _ if t.stream => {
                for bytes in util::stream_garbage() {
                    let sent = if let Some(addr) = url.strip_prefix("tcp://") {
                        std::net::TcpStream::connect(addr).and_then(|mut s| s.write_all(&bytes))
                    } else if let Some(path) = url.strip_prefix("unix://") {
                        if let Some(name) = path.strip_prefix('@') {
                            use std::os::linux::net::SocketAddrExt;
                            std::os::unix::net::SocketAddr::from_abstract_name(name)
                                .and_then(|a| std::os::unix::net::UnixStream::connect_addr(&a))
                                .and_then(|mut s| s.write_all(&bytes))
                        } else {
                            std::os::unix::net::UnixStream::connect(path)
                                .and_then(|mut s| s.write_all(&bytes))
                        }
                    } else {
                        Ok(())
                    };
                    let _ = sent;
                }
            }
            _ => {}
        }
        counts.misbehaved.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn soak(t: &Transport, run_for: Duration) -> Vec<String> {
    let mut failures = Vec::new();
    let url = (t.url)();
    let mut server = Proc::spawn("server", &url, "");
    let endpoint = server.expect_fields("READY")[0].clone();
    let pid = server.pid();
    // The baseline: the server once it has served a first client and let
    // it go (its event loop's descriptors exist by then), counted when the
    // count has stopped changing.
    first_call(&endpoint);
    let idle = settled(pid);
    let idle_fds = descriptors(pid);
    let counts = Counts::default();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut warm = (0, 0);
    let mut peak = (0, 0);
    std::thread::scope(|s| {
        for i in 0..t.clients {
            let (endpoint, stop, counts) = (&endpoint, &stop, &counts);
            s.spawn(move || honest(endpoint, pid, 0x9e37_79b9 * (i as u64 + 1), stop, counts));
        }
        s.spawn(|| misbehave(t, &endpoint, &stop, &counts));
        // Warm-up: a quarter of the run; then sample until the end.
        std::thread::sleep(run_for / 4);
        warm = usage(pid);
        while started.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(100));
            let now = usage(pid);
            peak = (peak.0.max(now.0), peak.1.max(now.1));
        }
        stop.store(true, Ordering::Relaxed);
    });
    // Descriptors: back to the baseline once every client has left. UDP
    // has no connection to lose: the conversation of a client that vanished
    // without a GOODBYE (killed, or misbehaving) keeps its eventfd until the
    // server's idle expiry (udp::IDLE_EXPIRY, longer than this run), bounded
    // by the number of such clients.
    let vanished = if t.name == "udp" {
        (counts.killed.load(Ordering::Relaxed) + counts.misbehaved.load(Ordering::Relaxed)) as usize
    } else {
        0
    };
    // Let the server notice the last clients leave (bounded).
    let settle = Instant::now();
    let mut end = usage(pid);
    while end.1 > idle.1 + vanished && settle.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
        end = usage(pid);
    }
    let calls = counts.calls.load(Ordering::Relaxed);
    let wrong = counts.wrong.load(Ordering::Relaxed);
    println!(
        "{:>14}: {calls} calls ({:.0}/s) by {} clients, {wrong} wrong, {} errors, {} killed, {} misbehaving; \
         server RSS {} -> {} (peak {}) -> {} KiB, fds {} -> {} (peak {}) -> {}",
        t.name,
        calls as f64 / run_for.as_secs_f64(),
        t.clients,
        counts.errors.load(Ordering::Relaxed),
        counts.killed.load(Ordering::Relaxed),
        counts.misbehaved.load(Ordering::Relaxed),
        idle.0,
        warm.0,
        peak.0,
        end.0,
        idle.1,
        warm.1,
        peak.1,
        end.1,
    );
    // The message is only built for a failed check (the descriptor one
    // reads every server thread's kernel stack).
    let mut check = |key: &str, ok: bool, what: &dyn Fn() -> String| {
        if ok {
            return;
        }
        let what = what();
        if KNOWN_GAPS.iter().any(|(n, k, _)| *n == t.name && *k == key) {
            println!("{:>14}: KNOWN GAP (see KNOWN_GAPS): {what}", t.name);
        } else {
            failures.push(format!("{}: {what}", t.name));
        }
    };
    check("wrong", wrong == 0, &|| format!("{wrong} wrong answers"));
    check("calls", calls > 0, &|| "no call succeeded".into());
    check("fds", end.1 <= idle.1 + vanished, &|| {
        format!(
            "fds {} idle, {} at the end ({vanished} clients vanished); idle: {idle_fds}; \
             end: {}; the server waits: {}",
            idle.1,
            end.1,
            descriptors(pid),
            waits(pid)
        )
    });
    // Memory: the end within 16 MiB (allocator caches, thread stacks) or 50% of warm.
    let margin = (warm.0 / 2).max(16 * 1024);
    check("rss", end.0 <= warm.0 + margin, &|| {
        format!("RSS {} KiB warm, {} KiB at the end", warm.0, end.0)
    });
    // SIGTERM: an orderly shutdown that removes the endpoint.
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let stopping = Instant::now();
    let line = server.line();
    check("shutdown", line.starts_with("DONE"), &|| {
        format!("server after SIGTERM: {line}")
    });
    check(
        "shutdown",
        stopping.elapsed() < Duration::from_secs(5),
        &|| format!("shutdown took {:?}", stopping.elapsed()),
    );
    server.kill();
    let left: Vec<String> = util::leftovers()
        .into_iter()
        .filter(|e| e.contains("soak"))
        .collect();
    check("left", left.is_empty(), &|| {
        format!("left behind: {left:?}")
    });
    failures
}

#[test]
#[ignore = "a long run: scripts/soak (CI runs `scripts/soak 20`)"]
fn soak_every_transport() {
    let secs: f64 = std::env::var("UTP_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let filters: Vec<String> = std::env::var("UTP_SOAK_ONLY")
        .unwrap_or_default()
        .split(',')
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect();
    let selected: Vec<&Transport> = TRANSPORTS
        .iter()
        .filter(|t| filters.is_empty() || filters.iter().any(|f| t.name.contains(f.as_str())))
        .collect();
    let each = Duration::from_secs_f64(secs / selected.len().max(1) as f64);
    let mut failures = Vec::new();
    for t in selected {
        failures.extend(soak(t, each));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
