//! `utp serve/call/bridge` over zenoh:// with real processes: loopback with
//! explicit endpoints, a bridged shm:// calculator reached by `utp call`, the
//! C client and the Python client, each piece killed and restarted; and two
//! network namespaces as two hosts, one cut off mid-run (root only).

#![cfg(feature = "zenoh")]

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use util::{RemoveOnDrop, run, socket_path, unique, utp};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, stopped on drop: SIGTERM, so that it removes what it
/// made (a publisher's rendezvous socket), then SIGKILL after 5 s.
struct Proc(Child);

impl Proc {
    fn spawn(command: &mut Command) -> Proc {
        Proc(command.stdin(Stdio::null()).spawn().expect("spawn"))
    }
    /// Dies at once, leaving whatever it made (a crash).
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        util::stop(&mut self.0, Duration::from_secs(5));
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `command` until it prints `want` (at most `limit`); the last output on failure.
fn until_prints(limit: Duration, want: &str, mut command: impl FnMut() -> Output) -> Duration {
    let started = Instant::now();
    loop {
        let out = command();
        if out.status.success() && stdout(&out) == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "no {want:?} within {limit:?}: stdout {:?} stderr {:?}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn call(url: &str, a: &str, b: &str, timeout: &str) -> Output {
    run(&["call", url, "ADD", a, b, "--timeout", timeout])
}

#[test]
fn serve_and_call_across_processes() {
    let key = unique("zcli");
    let port = free_port();
    let _server = Proc::spawn(utp().args([
        "serve",
        "calc",
        "--on",
        &format!("zenoh://{key}?listen=tcp/127.0.0.1:{port}"),
    ]));
    let url = format!("zenoh://{key}?connect=tcp/127.0.0.1:{port}");
    until_prints(Duration::from_secs(20), "30", || {
        call(&url, "10", "20", "3s")
    });
    let out = run(&["call", &url, "DIV", "1", "0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn a_call_with_no_server_fails_clearly_within_its_timeout() {
    let key = unique("zcli-none");
    let started = Instant::now();
    let out = call(
        &format!("zenoh://{key}?listen=tcp/127.0.0.1:{}", free_port()),
        "1",
        "1",
        "1s",
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no server at zenoh://"), "{stderr}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
}

/// The C client, built from examples/c against the FFI library of this
/// target directory; `None` (with a message) when it is not built or no gcc.
fn c_client(work: &Path) -> Option<PathBuf> {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_utp")).parent().unwrap();
    let lib = bin_dir.join("libutp_ffi.a");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !lib.exists() {
        eprintln!(
            "C client skipped: {} not built (cargo build -p utp-ffi)",
            lib.display()
        );
        return None;
    }
    let exe = work.join("calc_client");
    let built = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("crates/utp-ffi/include"))
        .arg("-o")
        .arg(&exe)
        .arg(root.join("examples/c/calc_client.c"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm"])
        .status();
    match built {
        Ok(status) if status.success() => Some(exe),
        other => {
            eprintln!("C client skipped: gcc failed: {other:?}");
            None
        }
    }
}

fn python_call(url: &str, a: &str, b: &str) -> Output {
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bindings/python");
    Command::new("python3")
        .args(["-m", "utp", "call", url, "ADD", a, b, "--timeout", "5"])
        .env("PYTHONPATH", package)
        .stdin(Stdio::null())
        .output()
        .expect("run python3")
}

#[test]
fn a_bridged_shm_calculator_is_called_through_zenoh_by_rust_c_and_python() {
    let shm = format!("shm://{}", unique("zshm"));
    let key = format!("{}/calc", unique("site"));
    let port = free_port();
    let exposed = format!("zenoh://{key}?listen=tcp/127.0.0.1:{port}");
    let remote = format!("zenoh://{key}?connect=tcp/127.0.0.1:{port}");
    let sock = socket_path("zlocal");
    let _sock_cleanup = RemoveOnDrop(sock.clone());
    let local = format!("unix://{}", sock.display());
    let work = PathBuf::from(format!("/tmp/{}", unique("utp-zwork")));
    std::fs::create_dir_all(&work).unwrap();
    let _work_cleanup = RemoveDir(work.clone());

    let serve = || Proc::spawn(utp().args(["serve", "calc", "--on", &shm]));
    let expose = || Proc::spawn(utp().args(["bridge", &shm, &exposed]));
    let mut server = serve();
    let mut network_bridge = expose();
    let _local_bridge = Proc::spawn(utp().args(["bridge", &remote, &local]));

    let limit = Duration::from_secs(30);
    let took = until_prints(limit, "30", || call(&remote, "10", "20", "3s"));
    eprintln!("utp call through zenoh answered after {took:?}");
    until_prints(limit, "3", || call(&local, "1", "2", "3s"));
    if let Some(c) = c_client(&work) {
        until_prints(limit, "30", || {
            Command::new(&c)
                .args([&local, "ADD", "10", "20"])
                .output()
                .unwrap()
        });
        eprintln!("C client answered through unix -> zenoh -> shm");
    }
    until_prints(limit, "5", || python_call(&local, "2", "3"));
    assert_eq!(tutorial_call(&sock, "ADD 10 20"), "OK 30");
    // Many clients at once through both bridges.
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let local = local.clone();
            std::thread::spawn(move || {
                let mut client = utp::service::Client::connect(&local).unwrap();
                for j in 0..10 {
                    let reply = client.call(format!("ADD {i} {j}").as_bytes()).unwrap();
                    assert_eq!(reply, format!("OK {}", i + j).as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    // The shm server dies: a clear error within the call's deadline, then recovery.
    server.kill();
    let started = Instant::now();
    let out = call(&remote, "1", "1", "3s");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    eprintln!("shm server killed: {stderr}");
    let _server = serve();
    until_prints(limit, "7", || call(&remote, "3", "4", "3s"));
    until_prints(limit, "7", || call(&local, "3", "4", "3s"));

    // The network-side bridge dies: the local endpoint says so, then recovers.
    network_bridge.kill();
    let started = Instant::now();
    let out = call(&local, "1", "1", "3s");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    eprintln!(
        "network bridge killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _network_bridge = expose();
    let took = until_prints(limit, "9", || call(&local, "4", "5", "3s"));
    eprintln!("local endpoint recovered {took:?} after the network bridge restarted");
    until_prints(limit, "9", || python_call(&local, "4", "5"));
}

/// The original tutorial's client: `[u32 LE length][text]` each way.
fn tutorial_call(sock: &Path, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(sock).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(&(request.len() as u32).to_le_bytes())
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let len = u32::from_le_bytes(len) as usize;
    assert!(len < 4096, "reply length {len}");
    let mut reply = vec![0u8; len];
    stream.read_exact(&mut reply).unwrap();
    String::from_utf8(reply).unwrap()
}

/// Removes a directory tree when dropped.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `utp pub` process publishing `prefix-N` lines at `shm`, one every
/// 10 ms, fed by a thread until the process is killed.
fn feed(shm: &str, prefix: &str) -> Proc {
    use std::io::Write;
    let mut child = utp()
        .args(["pub", shm])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn utp pub");
    let mut stdin = child.stdin.take().unwrap();
    let prefix = prefix.to_string();
    std::thread::spawn(move || {
        for i in 0.. {
            if writeln!(stdin, "{prefix}-{i}").is_err() {
                return; // killed
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    Proc(child)
}

/// The messages a `utp sub --json` printed, as (text, lost_before).
fn received(out: &Output) -> Vec<(String, u64)> {
    stdout(out)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            (
                v["text"].as_str().unwrap_or_default().to_string(),
                v["lost_before"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_shared_memory_feed_is_bridged_onto_zenoh_and_survives_its_publisher_restarting() {
    let shm = format!("shm://{}", unique("zfeed"));
    let key = format!("{}/ticks", unique("site"));
    let port = free_port();
    let exposed = format!("zenoh://{key}?listen=tcp/127.0.0.1:{port}");
    let remote = format!("zenoh://{key}?connect=tcp/127.0.0.1:{port}");
    let _bridge = Proc::spawn(utp().args(["bridge", "--pubsub", &shm, &exposed]));
    std::thread::sleep(Duration::from_millis(300));
    let sub = |count: &str| {
        utp()
            .args([
                "sub",
                &remote,
                "--json",
                "--count",
                count,
                "--timeout",
                "30s",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // First feed: 30 consecutive messages reach the remote subscriber, none lost.
    let subscriber = sub("30");
    let mut first = feed(&shm, "a");
    let out = subscriber.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let got = received(&out);
    assert_eq!(got.len(), 30, "{got:?}");
    let start: u64 = got[0].0.strip_prefix("a-").unwrap().parse().unwrap();
    for (i, (text, lost)) in got.iter().enumerate() {
        assert_eq!(text, &format!("a-{}", start + i as u64), "{got:?}");
        assert_eq!(*lost, 0, "{got:?}");
    }

    // The shm publisher dies and another starts: the bridge subscribes
    // again and a subscriber on the network sees the new feed. (The dead
    // one's socket is replaced by the new publisher's, which SIGTERM at the
    // end removes.)
    first.kill();
    let subscriber = sub("10");
    let _second = feed(&shm, "b");
    let out = subscriber.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let got = received(&out);
    assert!(got.iter().any(|(t, _)| t.starts_with("b-")), "{got:?}");
}

#[test]
fn a_second_zenoh_publisher_on_a_key_is_refused_and_garbage_urls_fail_clearly() {
    use utp::pubsub::{Publisher, Subscriber};
    let key = unique("zpub");
    let port = free_port();
    let first = Publisher::create(&format!("zenoh://{key}?listen=tcp/127.0.0.1:{port}")).unwrap();
    let second = Publisher::create(&format!("zenoh://{key}?connect=tcp/127.0.0.1:{port}"));
    assert!(
        matches!(second, Err(utp::Error::InUse { .. })),
        "{second:?}"
    );
    drop(first);
    let typo = Subscriber::connect(&format!("zenoh://{key}?conect=tcp/127.0.0.1:{port}"));
    assert!(matches!(typo, Err(utp::Error::BadUrl { .. })), "{typo:?}");
}
