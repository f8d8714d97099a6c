//! The `utp` binary over every transport, server and client in separate
//! processes: `utp serve calc --on URL` and `utp call URL MUL 6 7` → 42; the
//! tutorial's length-prefixed client; clean exit and cleanup on SIGTERM.

mod util;

use std::io::{Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use util::unique;

const UTP: &str = env!("CARGO_BIN_EXE_utp");

/// A port nothing listens on just now, for the "no server" test only (a
/// server is started on port 0 and announces its port: see `Served`).
fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

fn call(url: &str, args: &[&str]) -> Output {
    Command::new(UTP)
        .arg("call")
        .arg(url)
        .args(args)
        .args(["--timeout", "3s"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run utp call")
}

/// A `utp serve calc` process, killed (SIGTERM) and reaped on drop.
struct Served {
    child: Option<Child>,
    /// The address the server announced (its real port when asked for 0).
    url: String,
    _ready_file: util::RemoveOnDrop,
}

impl Served {
    /// Serves on `url` (port 0 for TCP and UDP: a port picked by binding and
    /// dropping a socket can be taken before the server binds it) and waits
    /// until the announced address answers a call.
    fn start(url: &str) -> Served {
        let announced = util::spawn_announced(
            Command::new(UTP)
                .args(["serve", "calc", "--on", url])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        );
        let served = Served {
            child: Some(announced.child),
            url: announced.url,
            _ready_file: announced.ready_file,
        };
        let url = served.url.as_str();
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let out = call(url, &["ADD", "1", "1"]);
            if out.status.success() && out.stdout == b"2\n" {
                return served;
            }
            assert!(
                Instant::now() < until,
                "server at {url} never answered: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and returns the exit code.
    fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                panic!("utp serve --on {} ignored SIGTERM", self.url);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // SIGTERM, so the server removes its endpoint (SIGKILL would not).
        if !std::thread::panicking() {
            self.terminate();
        } else if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn mul_6_7(url: &str) {
    let out = call(url, &["MUL", "6", "7"]);
    assert!(out.status.success(), "{url}: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "42\n", "{url}");
    let out = call(url, &["DIV", "1", "0"]);
    assert_eq!(out.status.code(), Some(1), "{url}: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Division by zero"),
        "{url}"
    );
}

fn leftovers(tag: &str) -> Vec<String> {
    let mut found = Vec::new();
    for dir in ["/tmp", "/dev/shm", "/dev/mqueue"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.contains(tag) {
                    found.push(format!("{dir}/{name}"));
                }
            }
        }
    }
    found
}

/// Serves on `url`, calls it, terminates the server and checks it cleaned up.
fn serve_call_terminate(url: &str, tag: &str) {
    let mut server = Served::start(url);
    let url = server.url.clone();
    let url = url.as_str();
    mul_6_7(url);
    assert_eq!(
        server.terminate(),
        Some(0),
        "{url}: exit code after SIGTERM"
    );
    assert_eq!(leftovers(tag), Vec::<String>::new(), "{url}: left behind");
}

#[test]
fn unix_socket() {
    let tag = unique("unix");
    serve_call_terminate(&format!("unix:///tmp/{tag}.sock"), &tag);
}

#[test]
fn tcp() {
    serve_call_terminate("tcp://127.0.0.1:0", "no-files");
}

#[test]
fn udp() {
    serve_call_terminate("udp://127.0.0.1:0", "no-files");
}

#[test]
fn fifo() {
    let tag = unique("fifo");
    serve_call_terminate(&format!("fifo:///tmp/{tag}"), &tag);
}

#[test]
fn mq() {
    let tag = unique("mq");
    let url = format!("mq://{tag}");
    serve_call_terminate(&url, &tag);
    // /dev/mqueue is not always mounted: ask the kernel directly.
    let out = call(&url, &["MUL", "6", "7"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "the accept queue must be gone after SIGTERM: {out:?}"
    );
}

#[test]
fn pipe_spawns_utp_itself() {
    mul_6_7("pipe:");
    let out = call("pipe:", &["ADD", "2", "3"]);
    assert_eq!(out.stdout, b"5\n", "{out:?}");
    // Any command, given explicitly.
    let out = call(
        &format!("pipe:{UTP} serve calc --on pipe:"),
        &["SUB", "2", "3"],
    );
    assert_eq!(out.stdout, b"-1\n", "{out:?}");
}

#[test]
fn pipe_server_exits_cleanly_at_end_of_input() {
    let out = Command::new(UTP)
        .args(["serve", "calc", "--on", "pipe:"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.is_empty(),
        "nothing may be written but frames: {out:?}"
    );
}

/// The original tutorial's client: `[u32 LE length][text]` each way.
fn tutorial_call<S: Read + Write>(conn: &mut S, request: &str) -> String {
    conn.write_all(&(request.len() as u32).to_le_bytes())
        .unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    conn.flush().unwrap();
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).unwrap();
    let mut reply = vec![0u8; u32::from_le_bytes(len) as usize];
    conn.read_exact(&mut reply).unwrap();
    String::from_utf8(reply).unwrap()
}

#[test]
fn tutorial_client_over_tcp() {
    let server = Served::start("tcp://127.0.0.1:0");
    let address = server.url.strip_prefix("tcp://").unwrap();
    let mut conn = std::net::TcpStream::connect(address).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(tutorial_call(&mut conn, "ADD 10 20"), "OK 30");
    assert_eq!(tutorial_call(&mut conn, "DIV 7 2"), "OK 3");
    assert_eq!(tutorial_call(&mut conn, "DIV 1 0"), "ERR Division by zero");
    drop(conn);
    // utp's own client can speak the tutorial's framing too.
    mul_6_7(&format!("{}?framing=length", server.url));
}

#[test]
fn tutorial_client_over_unix() {
    let path = format!("/tmp/{}.sock", unique("tut"));
    let _server = Served::start(&format!("unix://{path}"));
    let mut conn = std::os::unix::net::UnixStream::connect(&path).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(tutorial_call(&mut conn, "ADD 10 20"), "OK 30");
}

/// Opens the FIFO pair in the tutorial's order: request for writing first.
struct TutorialFifo {
    req: std::fs::File,
    resp: std::fs::File,
}

impl Read for TutorialFifo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.resp.read(buf)
    }
}

impl Write for TutorialFifo {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.req.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn tutorial_client_over_fifo() {
    let base = format!("/tmp/{}", unique("tutfifo"));
    let mut server = Served::start(&format!("fifo://{base}"));
    for _ in 0..2 {
        let req = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("{base}.req"))
            .unwrap();
        let resp = std::fs::File::open(format!("{base}.resp")).unwrap();
        let mut conn = TutorialFifo { req, resp };
        assert_eq!(tutorial_call(&mut conn, "ADD 10 20"), "OK 30");
        assert_eq!(tutorial_call(&mut conn, "MUL 6 7"), "OK 42");
        drop(conn);
        // A utp client gets its turn after the tutorial client leaves.
        mul_6_7(&format!("fifo://{base}"));
        mul_6_7(&format!("fifo://{base}?framing=length"));
    }
    assert_eq!(server.terminate(), Some(0));
    assert!(!std::path::Path::new(&format!("{base}.req")).exists());
}

#[test]
fn no_server_fails_fast_with_a_clear_error() {
    for url in [
        format!("fifo:///tmp/{}", unique("none")),
        format!("mq://{}", unique("none")),
        format!("tcp://127.0.0.1:{}", free_port(false)),
        format!("udp://127.0.0.1:{}", free_port(true)),
    ] {
        let started = Instant::now();
        let out = call(&url, &["MUL", "6", "7"]);
        assert_eq!(out.status.code(), Some(2), "{url}: {out:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{url}: took {:?}",
            started.elapsed()
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("utp: error:"), "{url}: {stderr}");
    }
}

#[test]
fn a_crashed_server_is_replaced_by_the_next_one() {
    for (url, tag) in [
        {
            let tag = unique("crash-unix");
            (format!("unix:///tmp/{tag}.sock"), tag)
        },
        {
            let tag = unique("crash-fifo");
            (format!("fifo:///tmp/{tag}"), tag)
        },
        {
            let tag = unique("crash-mq");
            (format!("mq://{tag}"), tag)
        },
    ] {
        let mut crashed = Served::start(&url);
        let mut child = crashed.child.take().unwrap();
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
        let out = call(&url, &["MUL", "6", "7"]);
        assert_eq!(out.status.code(), Some(2), "{url}: {out:?}");
        let mut next = Served::start(&url);
        mul_6_7(&url);
        assert_eq!(next.terminate(), Some(0));
        assert_eq!(leftovers(&tag), Vec::<String>::new(), "{url}: left behind");
    }
}
