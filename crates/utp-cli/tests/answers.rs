//! Answers that can't be crossed, calls that end (issue 13): replies name
//! their request, a call's timeout is a deadline, a reply nobody reads does
//! not pin the server, a stray writer cannot block a FIFO server, and a FIFO
//! server that cannot start says why and leaves nothing behind.

mod util;

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use util::{Server, unique, utp};
use utp::frame::{self, Header, flags, message_type};

/// Runs `utp ARGS...`, killing it if it outlives `limit` (then `None`).
fn run_within(args: &[&str], limit: Duration) -> (Option<Output>, Duration) {
    let started = Instant::now();
    let mut child = utp()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn utp");
    loop {
        if child.try_wait().unwrap().is_some() {
            return (Some(child.wait_with_output().unwrap()), started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return (None, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn request_frame(sequence: u64, text: &[u8]) -> Vec<u8> {
    frame::encode_to_vec(
        &Header::new(message_type::REQUEST, flags::CHECKSUM, sequence, 0),
        text,
    )
}

/// A client that takes no lock (as the original tutorial's does) keeps
/// asking `ADD 1 1` on the FIFO pair while `utp call ADD 10 20` runs beside
/// it: whatever interleaving happens, a call that exits 0 printed 30.
#[test]
fn a_lock_free_fifo_client_beside_utp_call_never_causes_a_wrong_answer() {
    let base = format!("/tmp/{}", unique("crossed"));
    let url = format!("fifo://{base}");
    let server = Server::start("calc", &url);
    let stop = Arc::new(AtomicBool::new(false));
    let rogue = {
        let stop = stop.clone();
        let base = base.clone();
        std::thread::spawn(move || {
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut req) = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(format!("{base}.req"))
                else {
                    break;
                };
                let Ok(mut resp) = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(format!("{base}.resp"))
                else {
                    break;
                };
                for sequence in 1..=5 {
                    let _ = req.write_all(&request_frame(sequence, b"ADD 1 1"));
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(3));
                    let mut scratch = [0u8; 256];
                    let _ = resp.read(&mut scratch);
                }
            }
            sent
        })
    };
    let mut answered = 0;
    for _ in 0..20 {
        let (output, _) = run_within(
            &["call", "--timeout", "1s", &url, "ADD", "10", "20"],
            Duration::from_secs(20),
        );
        let output = output.expect("utp call ends");
        if output.status.success() {
            let printed = String::from_utf8_lossy(&output.stdout);
            assert_eq!(printed.trim(), "30", "exit 0 with a wrong answer");
            answered += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = rogue.join().unwrap();
    println!("utp call answered 30 in {answered} of 20 runs beside {sent} lock-free requests");
    assert!(sent > 0, "the lock-free client ran");
    drop(server);
}

/// A server that sends a HEARTBEAT every 0.5 s and never answers cannot
/// keep `utp call --timeout 2s` waiting past its deadline.
#[test]
fn a_call_timeout_is_a_deadline_even_with_heartbeats() {
    let path = util::socket_path("heartbeats");
    let url = format!("unix://{}", path.display());
    let mut listener = utp::listen(&url).unwrap();
    let chatty = std::thread::spawn(move || {
        let mut channel = listener
            .accept_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if channel
                .send_timeout(message_type::HEARTBEAT, flags::CHECKSUM, b"", None)
                .is_err()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let (output, took) = run_within(
        &["call", "--timeout", "2s", &url, "ADD", "1", "2"],
        Duration::from_secs(15),
    );
    let output = output.expect("utp call must end, not wait forever");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("timed out"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // 2 s deadline; slack for a loaded machine and process start.
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    chatty.join().unwrap();
}

/// A client that sends requests but never reads the replies loses its
/// connection after the reply timeout, and shutdown completes in bounded time.
#[test]
fn a_reply_nobody_reads_does_not_pin_the_server_or_its_shutdown() {
    let path = util::socket_path("unread");
    let url = format!("unix://{}", path.display());
    let listener = utp::listen(&url).unwrap();
    let mut server = utp::service::Server::new(listener, |request: &[u8], _: &utp::PeerInfo| {
        request.to_vec()
    })
    .reply_timeout(Duration::from_millis(500));
    let stop = server.shutdown_handle();
    let stats = server.stats();
    let running = std::thread::spawn(move || server.run());
    let mut deaf = UnixStream::connect(&path).unwrap();
    deaf.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let big = vec![7u8; 512 * 1024];
    // Echoes of 512 KiB fill the socket buffers long before 16 are sent.
    for sequence in 1..=16 {
        if deaf.write_all(&request_frame(sequence, &big)).is_err() {
            break;
        }
    }
    // The honest client is still served meanwhile.
    let mut honest = utp::service::Client::connect(&url).unwrap();
    assert_eq!(honest.call(b"hello").unwrap(), b"hello");
    // Give the reply timeout time to fire, then stop: run() must return.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.client_errors.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the deaf client was never dropped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopping = Instant::now();
    stop.trigger();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !running.is_finished() {
        assert!(
            Instant::now() < deadline,
            "Server::run still running 5 s after shutdown"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    running.join().unwrap().unwrap();
    println!(
        "shutdown took {:?} with a client that never reads",
        stopping.elapsed()
    );
    assert!(!path.exists());
    drop(deaf);
}

/// Two bytes of a length prefix left in PATH.req by a writer that keeps it
/// open: after the frame deadline the server resets the session, says so,
/// and the next client is served.
#[test]
fn a_stray_partial_prefix_cannot_block_a_fifo_server() {
    let base = format!("/tmp/{}", unique("stray"));
    let url = format!("fifo://{base}?frame_timeout_ms=500");
    let server = Server::start("calc", &url);
    let mut stray = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("{base}.req"))
        .unwrap();
    // It opens PATH.resp as the tutorial's client does, so a session starts.
    let stray_reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("{base}.resp"))
        .unwrap();
    stray.write_all(&[9, 0]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (output, took) = run_within(
        &["call", "--timeout", "5s", &url, "ADD", "1", "2"],
        Duration::from_secs(15),
    );
    let output = output.expect("utp call ends");
    assert!(
        output.status.success(),
        "the call after a stray prefix: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "3");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    drop((stray, stray_reader));
    drop(server);
}

/// A FIFO server that cannot replace a stale FIFO (another user's, in a
/// sticky directory) says so and leaves nothing behind.
#[test]
fn a_fifo_server_that_cannot_start_says_why_and_cleans_up() {
    if !rustix::process::geteuid().is_root() {
        println!("skipped: needs root to act as another user");
        return;
    }
    let dir = format!("/tmp/{}", unique("fifo-start"));
    std::fs::create_dir(&dir).unwrap();
    let _cleanup = RemoveDir(dir.clone());
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let base = format!("{dir}/calc");
    // A stale PATH.resp owned by root: nobody cannot remove it (sticky dir).
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        format!("{base}.resp").as_str(),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_utp"))
        .args(["serve", "calc", "--on", &format!("fifo://{base}")])
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        !stderr.contains("at the same moment") && stderr.contains(".resp"),
        "says what really happened: {stderr}"
    );
    assert!(
        !std::path::Path::new(&format!("{base}.req")).exists(),
        "PATH.req left behind"
    );
}

struct RemoveDir(String);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A hostile server's ERR reply and ERROR frame reach the terminal with
/// their escape sequences made visible, never raw.
#[test]
fn peer_text_is_escaped_on_the_terminal() {
    let path = util::socket_path("hostile");
    let url = format!("unix://{}", path.display());
    let mut listener = utp::listen(&url).unwrap();
    let hostile = std::thread::spawn(move || {
        let replies: [(u8, &[u8]); 2] = [
            (message_type::RESPONSE, b"ERR \x1b]0;owned\x07\x1b[2Jboom"),
            (message_type::ERROR, b"refused \x1b[31mred\x1b[0m"),
        ];
        for (kind, text) in replies {
            let mut channel = listener
                .accept_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut frame = utp::frame::Frame::default();
            channel
                .recv_timeout(&mut frame, Some(Duration::from_secs(10)))
                .unwrap();
            channel
                .send_timeout(kind, flags::CHECKSUM, text, Some(Duration::from_secs(5)))
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    for expected in ["boom", "red"] {
        let (output, _) = run_within(&["call", &url, "ADD", "1", "2"], Duration::from_secs(15));
        let output = output.expect("utp call ends");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr:?}");
        assert!(
            !stderr.contains('\x1b') && !stderr.contains('\x07'),
            "raw escapes: {stderr:?}"
        );
        assert!(stderr.contains("\\u{1b}"), "escaped: {stderr:?}");
    }
    hostile.join().unwrap();
}

/// Another user's abstract socket name cannot put escape sequences on the
/// terminal of someone running `utp ls`.
#[test]
fn abstract_socket_names_are_escaped_in_utp_ls() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("utp/{}-\x1b[2J\x1b]0;owned\x07", unique("evil"));
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _evil = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let output = util::run(&["ls"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&unique_prefix(&name)),
        "the socket is listed: {stdout}"
    );
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\x07'),
        "raw escapes: {stdout:?}"
    );
}

/// The part of `name` before its first control character.
fn unique_prefix(name: &str) -> String {
    name.chars().take_while(|c| !c.is_control()).collect()
}
