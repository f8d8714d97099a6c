//! CLI conventions, each through the real binary: completions, man page,
//! --version, -v/-q, --json, inproc refusal, --ready-file and `utp wait`,
//! "in use" naming the holder.

mod util;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};
use util::{RemoveOnDrop, Server, run, socket_path, unique, utp};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn completions_for_every_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        for sub in ["serve", "call", "send", "stat", "doctor"] {
            assert!(text.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bash_completion_loads_in_bash() {
    let script = stdout(&run(&["completions", "bash"]));
    let out = std::process::Command::new("bash")
        .args(["-c", &format!("{script}\ncomplete -p utp")])
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("utp"), "{}", stdout(&out));
}

#[test]
fn man_page_is_roff_with_every_subcommand() {
    let out = run(&["man"]);
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie \\n(.g") || page.contains(".TH utp"),
        "{page}"
    );
    assert!(page.contains(".TH utp"), "{page}");
    for sub in ["serve", "call", "ls", "stat", "doctor", "completions"] {
        assert!(page.contains(sub), "man page lacks {sub}");
    }
    assert!(page.contains("RUST_LOG"), "the man page documents RUST_LOG");
}

#[test]
fn version_names_features_and_format_versions() {
    let out = run(&["--version"]);
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("utp {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("features: "), "{text}");
    assert!(
        text.contains(&format!(
            "frame version {}, shm layout version {}, seqlock cell version {}, stats layout version {}",
            utp::frame::VERSION,
            utp::shm::layout::LAYOUT_VERSION,
            utp::seqlock::layout::CELL_VERSION,
            utp::stats::VERSION
        )),
        "{text}"
    );
    // -V stays the short form.
    assert_eq!(
        stdout(&run(&["-V"])),
        format!("utp {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Runs `utp serve` with `flags` for a moment and returns its log.
fn serve_log(flags: &[&str]) -> String {
    let path = socket_path("verbosity");
    let url = format!("unix://{}", path.display());
    let mut child = utp()
        .env_remove("RUST_LOG")
        .args(flags)
        .args(["serve", "echo", "--on", &url])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(run(&["wait", &url]).status.success());
    let call = run(&["send", &url, "hi"]);
    assert_eq!(stdout(&call), "hi\n");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(child.wait().unwrap().success());
    log
}

#[test]
fn verbose_and_quiet_set_the_log_level() {
    let normal = serve_log(&[]);
    assert!(normal.contains("serving on"), "{normal}");
    assert!(!normal.contains("connected"), "{normal}");
    let verbose = serve_log(&["-v"]);
    assert!(
        verbose.contains("DEBUG") && verbose.contains("connected"),
        "{verbose}"
    );
    let quiet = serve_log(&["-q"]);
    assert_eq!(quiet, "", "-q leaves only errors");
    let out = run(&["-v", "-q", "ls"]);
    assert_eq!(out.status.code(), Some(2), "-v and -q conflict");
}

#[test]
fn call_json_reports_results_and_errors() {
    let path = socket_path("calljson");
    let url = format!("unix://{}", path.display());
    let _server = Server::start("calc", &url);
    let out = run(&["call", &url, "ADD", "10", "20", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v, serde_json::json!({"ok": true, "result": 30}));
    let out = run(&["call", &url, "DIV", "1", "0", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"ok": false, "error": "Division by zero"})
    );
}

#[test]
fn inspect_json_describes_a_shm_endpoint() {
    let url = format!("shm://{}", unique("inspjson"));
    let _server = Server::start("calc", &url);
    let mut client = utp::service::Client::connect(&url).unwrap();
    assert_eq!(client.call(b"ADD 1 1").unwrap(), b"OK 2");
    let out = run(&["inspect", &url, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["url"], url.as_str());
    assert_eq!(v["listening"], true);
    let link = &v["links"][0];
    assert_eq!(link["client"]["pid"], std::process::id());
    assert_eq!(link["client"]["frames_sent"], 1);
    assert!(link["ring_client_to_server"]["capacity"].as_u64().unwrap() > 0);
}

#[test]
fn serve_refuses_inproc_with_the_reason() {
    let out = run(&["serve", "calc", "--on", "inproc://nobody-can-reach"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "utp: error: inproc://nobody-can-reach: inproc:// endpoints exist only inside one \
         process, so no other process could reach this server; use unix://, shm:// or another \
         transport\n"
    );
}

#[test]
fn ready_file_then_wait_then_call_never_races() {
    // What the README's tour does, pasted at once: start, wait, call.
    for _ in 0..5 {
        let path = socket_path("ready");
        let url = format!("unix://{}", path.display());
        let ready = RemoveOnDrop(std::path::PathBuf::from(format!(
            "{}.ready",
            path.display()
        )));
        // Stopped even if an assertion fails before the end.
        let mut server = util::Killed(
            utp()
                .args(["serve", "calc", "--on", &url, "--ready-file"])
                .arg(&ready.0)
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let waited = run(&["wait", &url, "--timeout", "20s"]);
        assert!(waited.status.success(), "{}", stderr(&waited));
        let out = run(&["call", &url, "ADD", "10", "20"]);
        assert_eq!(stdout(&out), "30\n");
        assert_eq!(
            std::fs::read_to_string(&ready.0).unwrap(),
            format!("{url}\n")
        );
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&server.0),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        assert!(server.0.wait().unwrap().success());
        assert!(!ready.0.exists(), "the ready file is removed on exit");
        assert!(!path.exists(), "the socket is removed on exit");
    }
}

#[test]
fn wait_gives_up_with_exit_1() {
    let path = socket_path("nobody");
    let start = Instant::now();
    let out = run(&[
        "wait",
        &format!("unix://{}", path.display()),
        "--timeout",
        "300ms",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(stderr(&out).contains("no server at"), "{}", stderr(&out));
}

#[test]
fn in_use_names_the_holder_pid() {
    let path = socket_path("inuse");
    let url = format!("unix://{}", path.display());
    let server = Server::start("calc", &url);
    let out = run(&["serve", "calc", "--on", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "utp: error: {url} is already in use by a running server (a live server accepts \
             connections there: pid {} (utp))\n",
            server.child.id()
        )
    );

    let tcp = Server::start_announced("calc", "tcp://127.0.0.1:0");
    let out = run(&["serve", "calc", "--on", &tcp.url]);
    assert_eq!(
        stderr(&out),
        format!(
            "utp: error: {} is already in use by a running server (another process listens on \
             that port: pid {} (utp))\n",
            tcp.url,
            tcp.child.id()
        )
    );
}

#[test]
fn in_use_names_the_holder_pid_for_shm_fifo_and_mq() {
    for (url, hint) in [
        (
            format!("shm://{}", unique("inuse")),
            // The listener's socket in the per-user directory (utp::runtime_dir).
            format!(
                "{}/shm.NAME is served by a live process",
                utp::runtime_dir::private_dir().unwrap().display()
            ),
        ),
        (
            format!("fifo:///tmp/{}", unique("inuse")),
            "a live server reads /tmp/NAME.req".to_string(),
        ),
        (
            format!("mq://{}", unique("inuse")),
            "a live server holds /utp.NAME".to_string(),
        ),
    ] {
        let name = url.rsplit('/').next().unwrap();
        let server = Server::start("calc", &url);
        let out = run(&["serve", "calc", "--on", &url]);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            stderr(&out),
            format!(
                "utp: error: {url} is already in use by a running server ({}: pid {} (utp))\n",
                hint.replace("NAME", name),
                server.child.id()
            )
        );
    }
}
