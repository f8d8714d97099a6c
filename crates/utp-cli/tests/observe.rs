//! `utp stat`, `utp ls` and `utp doctor` through the real binary.

mod util;

use util::{Server, run, socket_path, unique};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn counter(v: &serde_json::Value, name: &str) -> u64 {
    v["counters"][name].as_u64().unwrap()
}

#[test]
fn stat_counts_a_servers_frames_and_peers_from_another_process() {
    if !utp::stats::enabled() {
        eprintln!("counters are off here (UTP_STATS=off or an unsafe directory): nothing to check");
        return;
    }
    let path = socket_path("stat");
    let url = format!("unix://{}", path.display());
    let server = Server::start("calc", &url);
    for _ in 0..3 {
        assert!(run(&["call", &url, "ADD", "1", "2"]).status.success());
    }
    // A client that stays: its own block, and one live client of the server.
    let mut client = utp::service::Client::connect(&url).unwrap();
    assert_eq!(client.call(b"ADD 2 2").unwrap(), b"OK 4");

    // A channel that just closed moves its counts to the listener's: read
    // until they have settled (at once, in practice; a bound under load).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let rows = loop {
        let out = run(&["stat", &url, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
        let settled = rows.iter().any(|r| {
            r["role"] == "listener" && counter(r, "frames_sent") == 4 && r["clients"] == 1
        });
        if settled || std::time::Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let server_row = rows
        .iter()
        .find(|r| r["role"] == "listener")
        .expect("the server's row");
    assert_eq!(server_row["pid"], server.child.id());
    // wait_ready's probe + 3 calls + this client.
    assert_eq!(counter(server_row, "peers_accepted"), 5);
    assert_eq!(server_row["clients"], 1);
    // Each call: a REQUEST in, a RESPONSE out (GOODBYEs come in too).
    assert!(counter(server_row, "frames_received") >= 4);
    assert_eq!(counter(server_row, "frames_sent"), 4);
    assert_eq!(counter(server_row, "bytes_sent"), 3 * (32 + 4) + (32 + 4));
    let mine = rows
        .iter()
        .find(|r| r["role"] == "client" && r["pid"] == std::process::id())
        .expect("this test's client row");
    assert_eq!(counter(mine, "frames_sent"), 1);
    assert_eq!(counter(mine, "frames_received"), 1);

    let out = run(&["stat", &url]);
    let text = stdout(&out);
    assert!(text.starts_with("PID "), "{text}");
    assert!(text.contains(&url), "{text}");

    let out = run(&["stat", &url, "--watch", "50ms", "--count", "2"]);
    let text = stdout(&out);
    assert_eq!(text.matches("FRAMES/S").count(), 2, "{text}");
    drop(client);
    drop(server);
    let out = run(&["stat", &url]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no live counters once the server is gone"
    );
}

#[test]
fn ls_lists_servers_of_every_transport_with_header_owner_pid_and_clients() {
    let path = socket_path("ls");
    let urls = [
        format!("unix://{}", path.display()),
        format!("unix://@{}", unique("ls")),
        format!("shm://{}", unique("ls")),
        format!("fifo:///tmp/{}", unique("ls")),
    ];
    let servers: Vec<Server> = urls.iter().map(|u| Server::start("calc", u)).collect();
    let mut client = utp::service::Client::connect(&urls[0]).unwrap();
    assert_eq!(client.call(b"ADD 2 2").unwrap(), b"OK 4");

    let out = run(&["ls"]);
    let text = stdout(&out);
    let header = text.lines().next().unwrap();
    for column in ["TRANSPORT", "URL", "OWNER", "PID", "CLIENTS"] {
        assert!(header.contains(column), "{header}");
    }
    for (url, server) in urls.iter().zip(&servers) {
        let row = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(url.as_str()))
            .unwrap_or_else(|| panic!("{url} not listed:\n{text}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        if rustix::process::getuid().is_root() {
            assert_eq!(cols[2], "root", "owner: {row}");
        }
        assert_eq!(cols[3], server.child.id().to_string(), "{row}");
    }
    let out = run(&["ls", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let first = rows.iter().find(|r| r["url"] == urls[0].as_str()).unwrap();
    assert_eq!(first["clients"], 1);
    assert_eq!(first["pid"], servers[0].child.id());
    assert_eq!(
        first["uid"],
        rustix::process::getuid().as_raw(),
        "owner is this user"
    );
}

#[test]
fn doctor_reports_checks_and_its_exit_code_says_whether_there_are_problems() {
    let out = run(&["doctor", "--json", "--no-probe"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let names: Vec<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for name in [
        "/dev/shm",
        "systemd RemoveIPC",
        "mq msgsize_max",
        "RLIMIT_MSGQUEUE",
        "open files (ulimit -n)",
        "locked memory (ulimit -l)",
        "huge pages",
        "container",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let problems = checks.iter().filter(|c| c["status"] == "problem").count();
    assert_eq!(v["problems"], problems);
    for c in checks.iter().filter(|c| c["status"] == "problem") {
        assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "{c}");
    }
    assert_eq!(out.status.code(), Some(if problems == 0 { 0 } else { 1 }));

    // A low open-files limit is a problem with its fix.
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "ulimit -n 256 && exec {} doctor --no-probe",
                env!("CARGO_BIN_EXE_utp")
            ),
        ])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("PROBLEM open files (ulimit -n): 256"),
        "{text}"
    );
    assert!(text.contains("fix: ulimit -n "), "{text}");
}

#[test]
fn ls_finds_servers_without_counters_through_proc() {
    // With UTP_STATS=off nothing is in a counters region: the rows come
    // from /proc (sockets and ports held by a process named utp).
    let path = socket_path("lsproc");
    let mut urls = Vec::new();
    let mut children = Vec::new();
    // TCP on port 0: the server announces its port in its ready file.
    for url in [
        "tcp://127.0.0.1:0".to_string(),
        format!("unix://{}", path.display()),
    ] {
        let announced = util::spawn_announced(
            util::utp()
                .env("UTP_STATS", "off")
                .args(["serve", "calc", "--on", &url])
                .stdin(std::process::Stdio::null()),
        );
        let child = util::Killed(announced.child);
        assert!(run(&["wait", &announced.url]).status.success());
        children.push(child);
        urls.push(announced.url);
    }
    let out = run(&["ls", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    for (url, child) in urls.iter().zip(&children) {
        let row = rows
            .iter()
            .find(|r| r["url"] == url.as_str())
            .unwrap_or_else(|| panic!("{url} not listed: {rows:?}"));
        assert_eq!(row["pid"], child.0.id(), "{row}");
        assert_eq!(row["clients"], 0, "{row}");
    }
}
