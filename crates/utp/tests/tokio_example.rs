//! examples/tokio_calc.rs as a user runs it: a server process and a client
//! process (100 concurrent async clients), then the one-program demo. The
//! example is built with `cargo build --example` (nested cargo, as
//! tests/examples.rs does: the outer one has finished building when tests
//! run, so the build lock is free).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn example() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let built = Command::new(env!("CARGO"))
        .args(["build", "-q", "--manifest-path"])
        .arg(&manifest)
        // With serde too: the features this test is built with in
        // scripts/test, so the nested build reuses the outer one's utp.
        .args(["--features", "serde,tokio", "--example", "tokio_calc"])
        .status()
        .expect("run cargo");
    assert!(built.success(), "cargo build --example tokio_calc failed");
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("tokio_calc")
}

#[test]
fn tokio_calc_serves_a_client_process_and_runs_alone() {
    let bin = example();
    let path = std::env::temp_dir().join(format!("utp-tokio-example-{}.sock", std::process::id()));
    let url = format!("unix://{}", path.display());
    let mut server = Command::new(&bin)
        .args(["serve", &url])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("serving unix://"), "{first:?}");

    let calls = Command::new(&bin)
        .args(["call", &url, "100"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&calls.stdout);
    assert!(
        calls.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&calls.stderr)
    );
    assert!(text.starts_with("OK 1000 calls from 100 clients"), "{text}");

    // SIGTERM: the server stops and removes its socket.
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&server),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(server.wait().unwrap().success());
    let mut last = String::new();
    out.read_line(&mut last).unwrap();
    assert_eq!(last.trim(), "stopped");
    assert!(!path.exists(), "the socket file is removed");

    let alone = Command::new(&bin).output().unwrap();
    let text = String::from_utf8_lossy(&alone.stdout);
    assert!(
        alone.status.success() && text.starts_with("OK 1000 calls"),
        "{text}"
    );
}
