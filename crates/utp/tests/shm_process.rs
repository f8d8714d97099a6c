//! Shared-memory links between real processes. The test binary re-executes
//! itself (`child_entry` with `UTP_SHM_ROLE` set) to play servers, clients
//! and a hostile scribbler.
//!
//! Also run under AddressSanitizer (clean on 2026-11-25):
//! `RUSTFLAGS="-Zsanitizer=address" cargo +nightly test -p utp --test shm_process
//! --target x86_64-unknown-linux-gnu --target-dir target/asan`

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use utp::Channel;
use utp::frame::{Frame, flags, message_type};

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "p{}-{tag}-{}",
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

/// A child process that is killed when dropped.
struct Proc {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(role: &str, url: &str, arg: &str) -> Proc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_entry",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env("UTP_SHM_ROLE", role)
            .env("UTP_SHM_URL", url)
            .env("UTP_SHM_ARG", arg)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Proc { child, out }
    }

    /// The next line the child printed that starts with one of our tags.
    fn line(&mut self) -> String {
        loop {
            let mut s = String::new();
            if self.out.read_line(&mut s).unwrap() == 0 {
                return "EOF".into();
            }
            let s = s.trim().to_string();
            if ["READY", "BLOCKED", "ERR", "DONE", "FAIL"]
                .iter()
                .any(|t| s.starts_with(t))
            {
                return s;
            }
        }
    }

    fn expect(&mut self, tag: &str) -> String {
        let line = self.line();
        assert!(line.starts_with(tag), "expected {tag}, child said {line:?}");
        line
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_ok(&mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var("UTP_SHM_ROLE") else {
        return;
    };
    let url = std::env::var("UTP_SHM_URL").unwrap();
    let arg = std::env::var("UTP_SHM_ARG").unwrap_or_default();
    match role.as_str() {
        "server" => serve(&url),
        "calls" => {
            let n: u64 = arg.parse().unwrap();
            let mut ch = utp::connect(&url).unwrap();
            let mut frame = Frame::default();
            for i in 0..n {
                let req = format!("ADD {i} {}", i * 3);
                ch.send(message_type::REQUEST, flags::CHECKSUM, req.as_bytes())
                    .unwrap();
                ch.recv_timeout(&mut frame, Some(Duration::from_secs(10)))
                    .unwrap();
                let want = format!("OK {}", i * 4);
                if frame.payload() != want.as_bytes() {
                    say(&format!(
                        "FAIL call {i}: {:?}",
                        String::from_utf8_lossy(frame.payload())
                    ));
                    std::process::exit(1);
                }
            }
            say("DONE");
        }
        "block-recv" | "block-send" => {
            let mut ch = utp::connect(&url).unwrap();
            let mut frame = Frame::default();
            let err = if role == "block-recv" {
                ch.send(message_type::REQUEST, 0, b"HOLD").unwrap();
                say("BLOCKED");
                ch.recv(&mut frame).unwrap_err()
            } else {
                ch.send(message_type::REQUEST, 0, b"STALL").unwrap();
                let big = vec![1u8; 60_000];
                // Fill the ring; the first send that cannot complete blocks.
                loop {
                    match ch.send_timeout(
                        message_type::DATA,
                        0,
                        &big,
                        Some(Duration::from_millis(50)),
                    ) {
                        Ok(()) => continue,
                        Err(e) if e.is_timeout() => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                say("BLOCKED");
                ch.send(message_type::DATA, 0, &big).unwrap_err()
            };
            say(&format!("ERR {err}"));
        }
        "scribble" => scribble(&url, arg.parse().unwrap()),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// The calculator, except `HOLD` (never answered) and `STALL` (stop reading).
fn serve(url: &str) {
    let mut listener = utp::listen(url).unwrap();
    say("READY");
    loop {
        let mut ch = listener.accept().unwrap();
        std::thread::spawn(move || {
            let mut frame = Frame::default();
            while ch.recv(&mut frame).is_ok() {
                match frame.payload() {
                    b"HOLD" => {}
                    b"STALL" => std::thread::sleep(Duration::from_secs(3600)),
                    request => {
                        let reply = utp::service::calc::evaluate(request);
                        if ch
                            .send(message_type::RESPONSE, flags::CHECKSUM, reply.as_bytes())
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
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
    let mut worst = Duration::ZERO;
    for (c, role) in clients.iter_mut().zip(roles) {
        let line = c.expect("ERR");
        let took = killed.elapsed();
        worst = worst.max(took);
        assert!(
            line.contains("peer gone") && line.contains("died"),
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
}

#[test]
fn sigkill_client_frees_its_link_and_others_are_served() {
    let name = unique("kill-cli");
    let url = format!("shm://{name}");
    let mut listener = utp::listen(&url).unwrap();
    let mut victim = Proc::spawn("block-recv", &url, "");
    let mut link = listener
        .accept_timeout(Some(Duration::from_secs(5)))
        .unwrap();
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

/// Child: maps the region named by `url` (a POSIX name) and writes garbage
/// over it `rounds` times.
fn scribble(name: &str, rounds: u32) {
    use utp::shm::layout;
    use utp::shm::region::{Location, Region};
    let cap = 4096;
    let len = layout::region_len(cap).unwrap();
    let region = Region::open(Location::Posix(name.into()), len).unwrap();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ std::process::id() as u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    say("READY");
    for round in 0..rounds {
        let r = next();
        let (offset, bytes): (usize, Vec<u8>) = match r % 4 {
            // random bytes anywhere
            0 => {
                let n = 1 + (next() % 64) as usize;
                (
                    (next() as usize) % (len - n),
                    (0..n).map(|_| next() as u8).collect(),
                )
            }
            // a plausible or wild index value over head/tail of either ring
            1 => {
                let word = [256, 320, 512, 576][(next() % 4) as usize];
                let v = if next() % 2 == 0 {
                    next() % (3 * cap as u64)
                } else {
                    next()
                };
                (word, v.to_le_bytes().to_vec())
            }
            // a valid-looking UTP header with a random length in a data area
            2 => {
                let mut h = vec![0x42, 0x50, 0x54, 0x55, 1, 1, 0, 0];
                h.extend_from_slice(&((next() % 9000) as u32).to_le_bytes());
                h.extend_from_slice(&[0u8; 20]);
                let at = layout::DATA_OFFSET + ((next() as usize % (2 * cap - 32)) & !7);
                (at, h)
            }
            // a padding marker with a random length
            _ => {
                let mut m = 0x4441_5055u32.to_le_bytes().to_vec();
                m.extend_from_slice(&((next() % 5000) as u32).to_le_bytes());
                let at = layout::DATA_OFFSET + ((next() as usize % (2 * cap - 8)) & !7);
                (at, m)
            }
        };
        assert!(offset + bytes.len() <= region.len());
        // SAFETY: offset + len is inside the mapping (asserted); this
        // process deliberately races with the reader: that is the test.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), region.as_ptr().add(offset), bytes.len())
        };
        if round % 16 == 0 {
            // Spread the 10,000 writes over the reader's activity.
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    say("DONE");
}

#[test]
fn scribbler_process_cannot_crash_or_hang_the_reader() {
    use utp::shm::layout::{self, Control};
    use utp::shm::region::{Location, Region};
    use utp::shm::{ShmLink, Side, WaitMode};
    let name = format!("/utp.{}.scribble", unique("s"));
    let cap = 4096;
    let len = layout::region_len(cap).unwrap();
    let region = Region::create(Location::Posix(name.clone()), len).unwrap();
    // SAFETY: the region maps `len` page-aligned bytes and outlives `control`
    // (a temporary dropped at the end of this statement).
    unsafe { Control::new(std::ptr::NonNull::new(region.as_ptr()).unwrap()) }.init(len, cap, 1);
    let mut link = ShmLink::over_region(region, Side::Server, WaitMode::Adaptive, 1 << 20).unwrap();
    let mut child = Proc::spawn("scribble", &name, "10000");
    child.expect("READY");
    let (mut ok, mut errors, mut calls) = (0u64, 0u64, 0u64);
    let mut frame = Frame::default();
    let start = Instant::now();
    let mut kinds = std::collections::BTreeMap::new();
    loop {
        let t = Instant::now();
        let got = link.recv_timeout(&mut frame, Some(Duration::from_micros(200)));
        let sent = link.try_send(message_type::DATA, flags::CHECKSUM, b"still alive");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a call hung for {:?}",
            t.elapsed()
        );
        calls += 1;
        for r in [got, sent] {
            match r {
                Ok(()) => ok += 1,
                Err(e) => {
                    errors += 1;
                    let k = e.to_string().chars().take(40).collect::<String>();
                    *kinds.entry(k).or_insert(0u32) += 1;
                }
            }
        }
        if let Ok(Some(_)) = child.child.try_wait() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "scribbler did not finish"
        );
    }
    eprintln!("{calls} rounds, {ok} ok, {errors} errors; kinds: {kinds:#?}");
    assert!(calls > 10);
    drop(link); // removes the region
    assert!(!std::path::Path::new(&format!("/dev/shm{name}")).exists());
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
