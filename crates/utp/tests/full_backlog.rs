//! A server that stops accepting (hung, stopped, or a peer that filled its
//! queue on purpose) has a full accept queue, and a blocking Unix `connect`
//! to it waits in the kernel for room, for ever unless told otherwise.
//! Every utp connect to a Unix socket must give up at its deadline, and a
//! listener starting on such a socket must take it for the live server it
//! is, neither waiting for ever nor removing it.

mod util;

use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use utp::{Error, Options};

/// A socket listening at a path that never accepts, with its accept queue
/// filled (the queued connections keep it full). Its file is removed on
/// drop, so a failing test leaves nothing behind.
struct StuckServer {
    _queued: Vec<OwnedFd>,
    _server: OwnedFd,
    _file: RemoveOnDrop,
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl StuckServer {
    fn at(path: &Path) -> StuckServer {
        let addr = SocketAddrUnix::new(path).unwrap();
        let server = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
        rustix::net::bind(&server, &addr).unwrap();
        let file = RemoveOnDrop(path.to_path_buf());
        rustix::net::listen(&server, 0).unwrap();
        let mut queued = Vec::new();
        loop {
            let c = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::NONBLOCK,
                None,
            )
            .unwrap();
            match rustix::net::connect(&c, &addr) {
                Ok(()) => queued.push(c),
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => panic!("filling the accept queue: {e}"),
            }
            assert!(queued.len() < 64, "the accept queue never filled");
        }
        StuckServer {
            _queued: queued,
            _server: server,
            _file: file,
        }
    }
}

fn file_id(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.dev(), meta.ino())
}

/// Runs `f` and checks it took at least `at_least` and well under a hang.
fn timed<T>(at_least: Duration, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = f();
    let took = started.elapsed();
    assert!(
        took >= at_least && took < at_least + Duration::from_secs(3),
        "{took:?}"
    );
    result
}

#[test]
fn unix_connect_gives_up_at_the_connect_timeout_and_listen_leaves_the_server_alone() {
    let path = format!("{}.sock", util::tmp_path("backlog"));
    let url = format!("unix://{path}");
    let _stuck = StuckServer::at(Path::new(&path));
    let id = file_id(Path::new(&path));
    let options = Options::default().with_connect_timeout(Duration::from_millis(300));
    let result = timed(Duration::from_millis(250), || {
        utp::connect_with(&url, &options)
    });
    match result {
        Err(Error::Timeout { waiting_for, .. }) => {
            assert!(waiting_for.contains("accept queue"), "{waiting_for}")
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    // A second server on the same path: the first is alive, not stale.
    match timed(Duration::from_millis(900), || utp::listen(&url)) {
        Err(Error::InUse { hint, .. }) => {
            assert!(hint.unwrap_or_default().contains("accept queue"))
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    assert_eq!(
        file_id(Path::new(&path)),
        id,
        "the live server's file was replaced"
    );
}

#[test]
fn shm_connect_gives_up_at_the_connect_timeout_and_listen_leaves_the_server_alone() {
    let name = util::unique("backlog");
    let url = format!("shm://{name}");
    let socket = utp::runtime_dir::private_dir()
        .unwrap()
        .join(format!("shm.{name}"));
    let _stuck = StuckServer::at(&socket);
    let id = file_id(&socket);
    let options = Options::default().with_connect_timeout(Duration::from_millis(300));
    let result = timed(Duration::from_millis(250), || {
        utp::connect_with(&url, &options)
    });
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    let listening = timed(Duration::from_millis(900), || utp::listen(&url));
    assert!(
        matches!(listening, Err(Error::InUse { .. })),
        "{listening:?}"
    );
    assert_eq!(file_id(&socket), id, "the live server's file was replaced");
}

#[test]
fn a_subscriber_gives_up_on_a_publisher_that_does_not_accept() {
    let name = util::unique("backlog-pub");
    let socket = utp::pubsub::socket_path(&name).unwrap();
    let _stuck = StuckServer::at(&socket);
    let id = file_id(&socket);
    let url = format!("shm://{name}");
    // Its rendezvous requests have 5 s to be answered; so has the connect.
    let subscribing = timed(Duration::from_millis(4900), || {
        utp::pubsub::Subscriber::connect(&url)
    });
    assert!(
        matches!(subscribing, Err(Error::Timeout { .. })),
        "{subscribing:?}"
    );
    let publishing = timed(Duration::from_millis(900), || {
        utp::pubsub::Publisher::create(&url)
    });
    assert!(
        matches!(publishing, Err(Error::InUse { .. })),
        "{publishing:?}"
    );
    assert_eq!(
        file_id(&socket),
        id,
        "the live publisher's file was replaced"
    );
}
