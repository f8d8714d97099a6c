//! Peer identity with real other users: a server refuses clients of another
//! uid, a client refuses a server of another uid, and `allow_uid` widens both.
//! Acting as another user needs root (CI runs as root); elsewhere each test
//! prints why it is skipped.

mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::{run, unique};

/// The uid and gid the tests impersonate: `nobody`.
const OTHER: u32 = 65534;

fn as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `utp ARGS` run as uid/gid 65534 through setpriv.
fn utp_as_other(args: &[&str]) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            &format!("--reuid={OTHER}"),
            &format!("--regid={OTHER}"),
            "--clear-groups",
            env!("CARGO_BIN_EXE_utp"),
        ])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// Waits until a `utp call` to `url` gives `expect` on stdout or stderr.
fn wait_until_serving(server: &mut std::process::Child, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            server.try_wait().unwrap().is_none(),
            "server for {url} exited early"
        );
        let out = run(&["call", url, "ADD", "1", "1", "--timeout", "1s"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Either served (own uid) or refused by identity: both prove it listens.
        if out.status.success() || text.contains("uid") {
            return;
        }
        assert!(Instant::now() < deadline, "no server at {url}: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_client_refuses_a_server_of_another_user() {
    if !as_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let url = format!("unix://@{}", unique("id-srv"));
    let mut server = utp_as_other(&["serve", "calc", "--on", &url])
        .stdout(Stdio::null())
        .spawn()
        .expect("setpriv utp serve");
    wait_until_serving(&mut server, &url);
    let server = Kill(server);

    let out = run(&["call", &url, "ADD", "10", "20", "--timeout", "2s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a foreign server was trusted: {out:?}"
    );
    assert!(out.stdout.is_empty(), "an answer was printed: {out:?}");
    assert!(
        stderr.contains(&format!("is served by uid {OTHER}, not by you (uid 0)")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("?allow_uid={OTHER}")), "{stderr}");

    // Trusting it explicitly works.
    let out = run(&[
        "call",
        &format!("{url}?allow_uid={OTHER}"),
        "ADD",
        "10",
        "20",
        "--timeout",
        "2s",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "30");
    drop(server);
}

#[test]
fn a_server_refuses_a_client_of_another_user_and_keeps_serving() {
    if !as_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let url = format!("unix://@{}", unique("id-cli"));
    let mut server = util::Server::start("calc", &url);

    let out = utp_as_other(&["call", &url, "ADD", "1", "2", "--timeout", "2s"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "another user was served: {out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");

    // The owner is still served.
    let out = run(&["call", &url, "ADD", "2", "3", "--timeout", "2s"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    assert!(server.child.try_wait().unwrap().is_none());
}

#[test]
fn allow_uid_admits_the_named_user() {
    if !as_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let url = format!("unix://@{}", unique("id-allow"));
    let _server = util::Server::start("calc", &format!("{url}?allow_uid={OTHER}"));
    let out = utp_as_other(&["call", &url, "MUL", "6", "7", "--timeout", "2s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

#[test]
fn misspelt_and_unenforceable_options_are_errors() {
    let out = run(&[
        "call",
        "unix:///tmp/nothing-here.sock?allow_uids=65534",
        "ADD",
        "1",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unknown option \"allow_uids\""), "{stderr}");
    let out = run(&["call", "tcp://127.0.0.1:9?allow_uid=0", "ADD", "1", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot tell who the peer is"), "{stderr}");
}
