//! Two hosts: two network namespaces joined by a veth pair (10.x addresses
//! that never leave this machine). A calculator served in one is called from
//! the other, directly and through a local bridge; then the client's host is
//! cut off (`ip link set down`) mid-run: clear errors within the deadlines,
//! and recovery once the link is back. Needs root and `ip netns`; skipped
//! with a message otherwise. The namespaces are always deleted.

#![cfg(feature = "zenoh")]

mod util;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use util::{RemoveOnDrop, socket_path, unique};

/// Two namespaces and the veth pair between them; deleted on drop.
struct Hosts {
    server_ns: String,
    client_ns: String,
    client_if: String,
    server_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Hosts {
    fn create() -> Result<Hosts, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("not root".into());
        }
        let pid = std::process::id();
        let hosts = Hosts {
            server_ns: format!("utpz-srv-{pid}"),
            client_ns: format!("utpz-cli-{pid}"),
            client_if: format!("uzc{}", pid % 1_000_000),
            server_ip: format!("10.213.{}.1", pid % 250),
        };
        let server_if = format!("uzs{}", pid % 1_000_000);
        let client_ip = format!("10.213.{}.2", pid % 250);
        ip(&["netns", "add", &hosts.server_ns])?;
        ip(&["netns", "add", &hosts.client_ns])?;
        ip(&[
            "link",
            "add",
            &server_if,
            "type",
            "veth",
            "peer",
            "name",
            &hosts.client_if,
        ])?;
        ip(&["link", "set", &server_if, "netns", &hosts.server_ns])?;
        ip(&["link", "set", &hosts.client_if, "netns", &hosts.client_ns])?;
        for (ns, dev, addr) in [
            (&hosts.server_ns, &server_if, &hosts.server_ip),
            (&hosts.client_ns, &hosts.client_if, &client_ip),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    fn set_client_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.client_ns, "link", "set", &self.client_if, state]).unwrap();
    }

    /// `utp ARGS` inside namespace `ns`.
    fn utp(ns: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_utp")])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        command
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and so the pair.
        let _ = ip(&["netns", "del", &self.server_ns]);
        let _ = ip(&["netns", "del", &self.client_ns]);
    }
}

/// A child process, killed on drop (before the namespaces go).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn until_prints(limit: Duration, want: &str, mut command: impl FnMut() -> Output) -> Duration {
    let started = Instant::now();
    loop {
        let out = command();
        if out.status.success() && stdout(&out) == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "no {want:?} within {limit:?}: {:?} {}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_hosts_one_cut_off_mid_run_errs_within_the_deadline_and_recovers() {
    let hosts = match Hosts::create() {
        Ok(hosts) => hosts,
        Err(why) => {
            eprintln!("SKIPPED: two network namespaces are not available here: {why}");
            return;
        }
    };
    let key = unique("netns-calc");
    // A short lease, so the cut is noticed within about 1.5 s.
    let opts = format!("tcp/{}:7447&lease_ms=1500", hosts.server_ip);
    let served = format!("zenoh://{key}?listen={opts}");
    let remote = format!("zenoh://{key}?connect={opts}");
    let sock = socket_path("netns-local");
    let _sock = RemoveOnDrop(sock.clone());
    let local = format!("unix://{}", sock.display());

    let _server = Proc(
        Hosts::utp(&hosts.server_ns, &["serve", "calc", "--on", &served])
            .spawn()
            .unwrap(),
    );
    let call = |url: &str, timeout: &str| {
        Hosts::utp(
            &hosts.client_ns,
            &["call", url, "ADD", "10", "20", "--timeout", timeout],
        )
        .output()
        .unwrap()
    };
    let took = until_prints(Duration::from_secs(30), "30", || call(&remote, "3s"));
    eprintln!("first call across the namespaces answered after {took:?}");

    // A bridge on the client host: local programs (here this test, whose
    // path-named Unix socket is reachable from any namespace) use it.
    let _bridge = Proc(
        Hosts::utp(&hosts.client_ns, &["bridge", &remote, &local])
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut client = loop {
        if let Ok(mut client) = utp::service::Client::connect(&local) {
            if client.call(b"ADD 1 1").is_ok_and(|r| r == b"OK 2") {
                break client;
            }
        }
        assert!(Instant::now() < deadline, "local bridge never answered");
        std::thread::sleep(Duration::from_millis(100));
    };
    client.set_timeout(Some(Duration::from_secs(3)));

    hosts.set_client_link(false);
    let cut = Instant::now();
    let err = client.call(b"ADD 2 2").unwrap_err();
    let took = cut.elapsed();
    eprintln!("call during the cut (3 s deadline): {err} after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let started = Instant::now();
    let out = call(&remote, "2s");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("utp call during the cut (2 s deadline): {stderr} after {took:?}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    hosts.set_client_link(true);
    let back = Instant::now();
    until_prints(Duration::from_secs(30), "30", || call(&remote, "3s"));
    eprintln!(
        "direct calls recovered {:?} after the link came back",
        back.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // The bridge closed the client it could not serve; a new one is served.
        let attempt = utp::service::Client::connect(&local)
            .and_then(|mut c| c.call(b"ADD 3 4").map(|r| r.to_vec()));
        match attempt {
            Ok(reply) if reply == b"OK 7" => break,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "bridge did not recover: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    eprintln!(
        "calls through the bridge recovered {:?} after the link came back",
        back.elapsed()
    );
}
