//! Peer identity with real other users: a server refuses clients of another
//! uid, a client refuses a server of another uid, and `allow_uid` widens both.
//! Acting as another user needs root (CI runs as root); elsewhere each test
//! prints why it is skipped.

mod util;

use util::other_user::{OTHER, OtherServer, as_root, utp_as_other};
use util::{run, unique};

#[test]
fn a_client_refuses_a_server_of_another_user() {
    if !as_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let url = format!("unix://@{}", unique("id-srv"));
    let server = OtherServer::start("calc", &url);

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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("refused a client of uid {OTHER}")),
        "the client was not told why: {stderr}"
    );

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

#[test]
fn a_socket_file_is_0600_unless_the_server_admits_other_users() {
    if !as_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let path = util::socket_path("id-file");
    let url = format!("unix://{}", path.display());
    let server = util::Server::start("calc", &url);
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    let out = utp_as_other(&["call", &url, "ADD", "1", "2", "--timeout", "2s"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "another user reached a 0600 socket");
    drop(server);

    // Admitting uid 65534 opens the file to others; the check at accept decides.
    let _server = util::Server::start("calc", &format!("{url}?allow_uid={OTHER}"));
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o666);
    let out = utp_as_other(&["call", &url, "MUL", "6", "7", "--timeout", "2s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}
