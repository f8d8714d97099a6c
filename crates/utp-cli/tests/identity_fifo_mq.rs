//! Peer identity on fifo:// and mq:// with a real other user (uid 65534
//! through setpriv): a client refuses FIFOs and queues another user created,
//! a server refuses to start on FIFOs another user planted and refuses
//! clients whose queues another user owns, symlinks are never followed.
//! Needs root; elsewhere each test prints why it is skipped.

mod util;

use std::path::Path;
use util::other_user::{OTHER, OtherServer, as_root, run_as_other, text, utp_as_other};
use util::{RemoveOnDrop, run, unique};

fn skip() -> bool {
    if as_root() {
        return false;
    }
    eprintln!("skipped: acting as another user needs root");
    true
}

/// A path in /tmp for FIFOs; its `.req` and `.resp` are removed on drop.
fn fifo_base(tag: &str) -> (String, [RemoveOnDrop; 2]) {
    let base = format!("/tmp/{}", unique(tag));
    let cleanup = [
        RemoveOnDrop(format!("{base}.req").into()),
        RemoveOnDrop(format!("{base}.resp").into()),
    ];
    (base, cleanup)
}

#[test]
fn a_fifo_client_refuses_fifos_of_another_user() {
    if skip() {
        return;
    }
    let (base, _cleanup) = fifo_base("fifo-foreign");
    let url = format!("fifo://{base}");
    let server = OtherServer::start("calc", &url);

    let out = run(&["call", &url, "ADD", "10", "20", "--timeout", "2s"]);
    assert!(!out.status.success(), "a foreign FIFO server was trusted");
    assert!(out.stdout.is_empty(), "an answer was printed: {out:?}");
    let err = text(&out);
    assert!(
        err.contains(&format!("is served by uid {OTHER}, not by you (uid 0)")),
        "{err}"
    );
    assert!(err.contains(&format!("the FIFO {base}.req")), "{err}");

    let out = run(&[
        "call",
        &format!("{url}?allow_uid={OTHER}"),
        "ADD",
        "10",
        "20",
        "--timeout",
        "5s",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "30");
    drop(server);
    assert!(!Path::new(&format!("{base}.req")).exists());
}

#[test]
fn a_fifo_server_refuses_fifos_another_user_planted() {
    if skip() {
        return;
    }
    let (base, _cleanup) = fifo_base("fifo-planted");
    let planted = format!("{base}.req");
    let out = run_as_other("mkfifo", &["-m", "0666", &planted]);
    assert!(out.status.success(), "{}", text(&out));

    let out = run(&["serve", "calc", "--on", &format!("fifo://{base}")]);
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains(&format!(
            "is a FIFO owned by uid {OTHER}, not by this server"
        )),
        "{err}"
    );
    // Refused, not replaced: the planted FIFO is still the other user's.
    let meta = std::fs::symlink_metadata(&planted).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), OTHER);
}

#[test]
fn symlinked_fifo_paths_are_refused_by_client_and_server() {
    if skip() {
        return;
    }
    // Root serves at A; another user points B.req/B.resp at A's FIFOs,
    // hoping a root client of B follows them into A's session.
    let (a, _a_cleanup) = fifo_base("fifo-real");
    let (b, _b_cleanup) = fifo_base("fifo-link");
    let _server = util::Server::start("calc", &format!("fifo://{a}"));
    for suffix in ["req", "resp"] {
        let out = run_as_other(
            "ln",
            &["-s", &format!("{a}.{suffix}"), &format!("{b}.{suffix}")],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = run(&["call", &format!("fifo://{b}"), "ADD", "1", "2"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("is a symbolic link"), "{}", text(&out));

    let out = run(&["serve", "calc", "--on", &format!("fifo://{b}")]);
    assert!(!out.status.success());
    assert!(text(&out).contains("is a symbolic link"), "{}", text(&out));
    // Neither the links nor the real FIFOs were removed.
    assert!(std::fs::symlink_metadata(format!("{b}.req")).is_ok());
    assert!(std::fs::symlink_metadata(format!("{a}.req")).is_ok());
    // The real server still serves its own user.
    let out = run(&["call", &format!("fifo://{a}"), "ADD", "2", "3"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5", "{out:?}");
}

#[test]
fn allow_uid_on_a_fifo_server_is_an_error_saying_why() {
    let (base, _cleanup) = fifo_base("fifo-allow");
    let out = run(&[
        "serve",
        "calc",
        "--on",
        &format!("fifo://{base}?allow_uid={OTHER}"),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("a FIFO does not tell its server who opened it"),
        "{}",
        text(&out)
    );
    assert!(!Path::new(&format!("{base}.req")).exists());
}

#[test]
fn an_mq_client_refuses_a_server_of_another_user() {
    if skip() {
        return;
    }
    let url = format!("mq://{}", unique("mq-foreign"));
    let _server = OtherServer::start("calc", &url);
    let out = run(&["call", &url, "ADD", "10", "20", "--timeout", "2s"]);
    assert!(!out.status.success(), "a foreign mq server was trusted");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = text(&out);
    assert!(
        err.contains(&format!("is served by uid {OTHER}, not by you (uid 0)")),
        "{err}"
    );
    assert!(err.contains("its accept queue /utp."), "{err}");
    assert!(err.contains(&format!("?allow_uid={OTHER}")), "{err}");
}

#[test]
fn an_mq_server_admits_only_the_users_it_trusts() {
    if skip() {
        return;
    }
    // By default the accept queue is 0600: another user cannot even ask.
    let name = unique("mq-default");
    let url = format!("mq://{name}");
    let server = util::Server::start("calc", &url);
    let out = utp_as_other(&["call", &url, "ADD", "1", "2", "--timeout", "2s"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "another user was served");
    assert!(text(&out).contains("permission denied"), "{}", text(&out));
    drop(server);

    // A server that widens its policy lets others send a hello, and then
    // checks who owns each client's queues: 65534 is not among 65533.
    let url = format!("mq://{}?allow_uid=65533", unique("mq-widened"));
    let server = util::Server::start("calc", &url);
    let plain = url.split('?').next().unwrap();
    let out = utp_as_other(&["call", plain, "ADD", "1", "2", "--timeout", "3s"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an untrusted user was served");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        text(&out).contains(&format!("refused a client of uid {OTHER}")),
        "{}",
        text(&out)
    );
    // The owner is still served.
    let out = run(&["call", plain, "ADD", "2", "3", "--timeout", "3s"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5", "{out:?}");
    drop(server);

    // Naming the user admits it.
    let url = format!("mq://{}?allow_uid={OTHER}", unique("mq-allowed"));
    let _server = util::Server::start("calc", &url);
    let plain = url.split('?').next().unwrap();
    let out = utp_as_other(&["call", plain, "MUL", "6", "7", "--timeout", "3s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}
