//! The real `utp` binary over shared-memory links: serve, call, inspect, ls,
//! and cleanup after SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const UTP: &str = env!("CARGO_BIN_EXE_utp");

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "c{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `utp serve calc --on URL`, stopped with SIGTERM on drop.
struct Server(Child);

impl Server {
    fn start(url: &str) -> Server {
        let mut child = Command::new(UTP)
            .args(["serve", "calc", "--on", url])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The server logs "serving on URL" once it listens.
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("serving on") {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "server exited early");
        }
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Server(child)
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        panic!("server did not stop on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn call(url: &str, op: &str, a: i64, b: i64) -> String {
    let out = Command::new(UTP)
        .args(["call", url, op, &a.to_string(), &b.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn dev_shm_with(name: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(name))
        .collect()
}

#[test]
fn serve_and_call_over_shm_then_sigterm_leaves_nothing() {
    let name = unique("calc");
    let url = format!("shm://{name}");
    let mut server = Server::start(&url);
    assert_eq!(call(&url, "ADD", 10, 20), "30");
    assert_eq!(call(&url, "DIV", -21, 7), "-3");
    server.terminate();
    assert!(dev_shm_with(&name).is_empty(), "{:?}", dev_shm_with(&name));
}

#[test]
fn concurrent_cli_clients_all_get_right_answers() {
    let name = unique("conc");
    let url = format!("shm://{name}?wait=block");
    let mut server = Server::start(&url);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    let (a, b) = (w * 1000 + i, i * 7);
                    assert_eq!(call(&url, "MUL", a, b), (a * b).to_string());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    server.terminate();
    assert!(dev_shm_with(&name).is_empty());
}

#[test]
fn sysv_and_file_endpoints_from_the_cli() {
    let key = format!(
        "sysv://0x{:08x}",
        0x5100_0000u32 | (std::process::id() & 0xffff)
    );
    let mut server = Server::start(&key);
    assert_eq!(call(&key, "SUB", 5, 8), "-3");
    server.terminate();

    let dir = std::env::temp_dir().join(unique("file"));
    std::fs::create_dir(&dir).unwrap();
    let url = format!("file://{}/calc", dir.display());
    let mut server = Server::start(&url);
    assert_eq!(call(&url, "ADD", 1, 1), "2");
    server.terminate();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn inspect_and_ls_show_a_live_link() {
    let name = unique("insp");
    let url = format!("shm://{name}");
    let mut server = Server::start(&url);
    let mut client = utp::connect(&url).unwrap();
    let mut frame = utp::frame::Frame::default();
    for _ in 0..3 {
        client
            .send(utp::frame::message_type::REQUEST, 1, b"ADD 2 2")
            .unwrap();
        client
            .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
            .unwrap();
    }
    // The counts reach the shared counters line with a heartbeat, before a
    // wait and at close, not with every frame: the third reply may arrive
    // while the client still spins, so it waits once more (for nothing)
    // and inspect then shows all three.
    let idle = client.recv_timeout(&mut frame, Some(Duration::from_millis(20)));
    assert!(
        matches!(&idle, Err(e) if e.is_timeout()),
        "nothing more was sent: {idle:?}"
    );
    let out = Command::new(UTP).args(["inspect", &url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("listening"), "{text}");
    assert!(
        text.contains(&format!(
            "client: pid {} (alive), READY, sent 3 frames",
            std::process::id()
        )),
        "{text}"
    );
    assert!(text.contains("server: pid"), "{text}");
    // Both ends are utp's: they agreed to keyed stamps.
    assert!(text.contains("), keyed stamps"), "{text}");

    let out = Command::new(UTP).arg("ls").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The listener's socket in the per-user directory (mode 0600), and the
    // link's memfd, found through the processes holding it.
    let socket = utp::runtime_dir::private_dir()
        .unwrap()
        .join(format!("shm.{name}"));
    assert!(
        text.lines().any(|l| l.starts_with("shm ")
            && l.contains(&format!("shm://{name} "))
            && l.contains(&format!(" {} ", server.0.id()))
            && l.contains(&format!("rendezvous socket {}", socket.display()))),
        "{text}"
    );
    let mode = std::fs::symlink_metadata(&socket).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert!(
        text.lines().any(|l| l.starts_with("shm-link")
            && l.contains(&format!("memfd:utp.{name}."))
            && l.contains(&std::process::id().to_string())),
        "{text}"
    );
    assert!(
        dev_shm_with(&name).is_empty(),
        "v2 links have no name in /dev/shm"
    );
    drop(client);
    server.terminate();
    assert!(dev_shm_with(&name).is_empty());
}
