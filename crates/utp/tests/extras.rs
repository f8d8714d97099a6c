//! What only some transports do: Unix-socket credentials, uid filtering,
//! descriptor passing across processes, stale-socket handling and file
//! modes; pipe capacity and child reaping; the FIFO one-client rule.

mod util;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;
use utp::frame::{Frame, flags, message_type};
use utp::transport::stream::{Framing, StreamChannel, StreamIo};
use utp::transport::unix::{UnixAddr, UnixListener};
use utp::{Channel, Endpoint, Error, Options};

const LONG: Option<Duration> = Some(Duration::from_secs(10));
const CHILD_ENV: &str = "UTP_TEST_FD_CHILD_URL";

/// Runs in a child process (this test binary, re-run): connects, receives a
/// descriptor with a frame, reads the file behind it and sends the text back.
#[test]
fn fd_passing_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return; // only meaningful when started by `fd_passes_between_processes`
    };
    let endpoint: Endpoint = url.parse().unwrap();
    let mut channel = utp::transport::unix::connect(&endpoint, &Options::default()).unwrap();
    let mut frame = Frame::default();
    channel.recv_timeout(&mut frame, LONG).unwrap();
    assert_eq!(frame.payload(), b"here is a file");
    let fds = channel.take_fds();
    assert_eq!(fds.len(), 1, "one descriptor arrived");
    let mut file = std::fs::File::from(fds.into_iter().next().unwrap());
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    channel
        .send_timeout(message_type::DATA, flags::CHECKSUM, text.as_bytes(), LONG)
        .unwrap();
}

#[test]
fn fd_passes_between_processes() {
    let path = format!("{}.sock", util::tmp_path("fdpass"));
    let url = format!("unix://{path}");
    let mut listener =
        UnixListener::bind(UnixAddr::Path(path.clone().into()), &Options::default()).unwrap();

    // A file only this process can name: written, opened, then unlinked.
    let file_path = util::tmp_path("fdpass-file");
    let secret = format!("secret from pid {}", std::process::id());
    std::fs::write(&file_path, &secret).unwrap();
    let file = std::fs::File::open(&file_path).unwrap();
    std::fs::remove_file(&file_path).unwrap();

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fd_passing_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &url)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (fd, peer) = listener.accept_socket(LONG).unwrap();
    assert_eq!(peer.pid, Some(child.id()), "SO_PEERCRED names the child");
    let mut channel = StreamChannel::new(
        StreamIo::Socket {
            fd,
            passes_fds: true,
        },
        Framing::Utp,
        1 << 20,
        url.clone(),
        peer,
    );
    channel
        .send_with_fds(
            message_type::DATA,
            flags::CHECKSUM,
            b"here is a file",
            &[file.as_fd()],
            LONG,
        )
        .unwrap();
    let mut frame = Frame::default();
    channel.recv_timeout(&mut frame, LONG).unwrap();
    assert_eq!(
        frame.payload(),
        secret.as_bytes(),
        "the child read the file through the passed descriptor"
    );
    assert!(child.wait().unwrap().success(), "child test passed");
}

#[test]
fn fds_are_refused_where_they_cannot_travel() {
    let mut listener = utp::listen("tcp://127.0.0.1:0").unwrap();
    let endpoint: Endpoint = listener.endpoint().parse().unwrap();
    let mut client = utp::transport::tcp::connect(&endpoint, &Options::default()).unwrap();
    let _server = listener.accept_timeout(LONG).unwrap();
    let file = std::fs::File::open("/dev/null").unwrap();
    let err = client
        .send_with_fds(message_type::DATA, 0, b"x", &[file.as_fd()], LONG)
        .unwrap_err();
    assert!(err.to_string().contains("only unix:// sockets"), "{err}");
}

#[test]
fn peer_credentials_and_allowed_uids() {
    let uid = rustix::process::getuid().as_raw();
    let path = format!("{}.sock", util::tmp_path("creds"));

    let mut allowed = utp::listen(&format!("unix://{path}?allow_uid={uid}")).unwrap();
    let _client = utp::connect(&format!("unix://{path}")).unwrap();
    let server = allowed.accept_timeout(LONG).unwrap();
    let peer = server.peer();
    assert_eq!(peer.uid, Some(uid));
    assert_eq!(peer.pid, Some(std::process::id()));
    assert!(peer.gid.is_some());
    // Refusals of other users are tested with real other uids in
    // crates/utp-cli/tests/identity.rs.
}

#[test]
fn socket_files_are_private() {
    let path = format!("{}.sock", util::tmp_path("mode"));
    let listener = utp::listen(&format!("unix://{path}")).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    drop(listener);
    assert!(!std::path::Path::new(&path).exists(), "removed on drop");
}

/// A server that has bound its socket but not yet called `listen` refuses
/// connections, like a dead one: a second server starting on the same path
/// must give it time to listen instead of removing its file.
#[test]
fn a_socket_about_to_listen_is_not_taken_for_stale() {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};
    let path = format!("{}.sock", util::tmp_path("starting"));
    let url = format!("unix://{path}");
    let starting = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&starting, &SocketAddrUnix::new(path.as_str()).unwrap()).unwrap();
    let id = std::fs::metadata(&path)
        .map(|m| (m.dev(), m.ino()))
        .unwrap();
    let listening = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(10));
            rustix::net::listen(&starting, 8).unwrap();
        });
        utp::listen(&url)
    });
    match listening {
        Err(Error::InUse { hint, .. }) => assert!(hint.unwrap_or_default().contains("live")),
        other => panic!("expected InUse, got {other:?}"),
    }
    let after = std::fs::metadata(&path)
        .map(|m| (m.dev(), m.ino()))
        .unwrap();
    assert_eq!(after, id, "the starting server's socket file was replaced");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn stale_socket_is_replaced_live_one_is_not_stolen() {
    let path = format!("{}.sock", util::tmp_path("stale"));
    let url = format!("unix://{path}");

    // A crashed server: the socket file stays, nobody listens.
    util::stale_socket(&path);
    assert!(std::path::Path::new(&path).exists());
    let listener = utp::listen(&url).expect("a stale socket is replaced");
    drop(listener);

    // A live server (not utp): refused, and still reachable afterwards.
    let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
    match utp::listen(&url) {
        Err(Error::InUse { hint, .. }) => assert!(hint.unwrap_or_default().contains("live")),
        other => panic!("expected InUse, got {other:?}"),
    }
    // utp's liveness probe is the first connection in the backlog.
    let (probe, _) = live.accept().unwrap();
    drop(probe);
    let mut conn = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let (mut accepted, _) = live.accept().unwrap();
    conn.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    accepted.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping", "the live server was left alone");
    drop(live);
    std::fs::remove_file(&path).unwrap();

    // Something that is not a socket: never removed.
    std::fs::write(&path, "precious").unwrap();
    assert!(matches!(utp::listen(&url), Err(Error::InUse { .. })));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn pipe_capacity_is_readable_and_settable_and_the_child_is_reaped() {
    let endpoint: Endpoint = "pipe:/bin/cat?pipe_size=256k".parse().unwrap();
    let mut channel = utp::transport::pipe::connect(&endpoint, &Options::default()).unwrap();
    let (to_child, from_child) = channel.pipe_size().unwrap();
    assert!(
        to_child >= 256 * 1024 && from_child >= 256 * 1024,
        "{to_child} {from_child}"
    );
    assert_eq!(channel.set_pipe_size(64 * 1024).unwrap(), (65_536, 65_536));
    assert_eq!(channel.pipe_size().unwrap(), (65_536, 65_536));

    // cat echoes the frame byte for byte.
    channel
        .send_timeout(message_type::TEXT, flags::CHECKSUM, b"meow", LONG)
        .unwrap();
    let mut frame = Frame::default();
    channel.recv_timeout(&mut frame, LONG).unwrap();
    assert_eq!(frame.payload(), b"meow");

    let pid = channel.child_id().unwrap();
    drop(channel);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the child was reaped, not left a zombie"
    );
}

#[test]
fn pipe_reports_a_command_that_cannot_start() {
    let err = utp::connect("pipe:/nonexistent/utp-server").unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/utp-server"), "{err}");
}

#[test]
fn fifo_second_client_waits_then_gets_in() {
    let url = format!("fifo://{}", util::tmp_path("fifo2"));
    let listener = utp::listen(&url).unwrap();
    let mut server = utp::service::Server::new(listener, |r: &[u8], _: &utp::PeerInfo| r.to_vec());
    let stop = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());

    let mut first = utp::service::Client::connect(&url).unwrap();
    assert_eq!(first.call(b"one").unwrap(), b"one");
    let impatient = Options::default().with_connect_timeout(Duration::from_millis(200));
    match utp::connect_with(&url, &impatient) {
        Err(e @ Error::Timeout { .. }) => {
            assert!(e.to_string().contains("one client at a time"), "{e}")
        }
        other => panic!("expected a Timeout while the pair is taken, got {other:?}"),
    }
    // The second client waits and gets in when the first leaves.
    let waiting = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut second = utp::service::Client::connect(&url).unwrap();
            second.call(b"two").unwrap().to_vec()
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    first.close().unwrap();
    assert_eq!(waiting.join().unwrap(), b"two");
    stop.trigger();
    thread.join().unwrap().unwrap();
    let base = url.strip_prefix("fifo://").unwrap();
    assert!(
        !std::path::Path::new(&format!("{base}.req")).exists(),
        "removed on shutdown"
    );
}

/// A session the server ends while its client keeps sending and never
/// reads: the client's untimed sends fail once the pipe is full (no wait
/// for ever), the listener takes none of its later bytes for a new session
/// (each would start mid-frame), and the next client, once the first has
/// gone, is served whole.
#[test]
fn a_fifo_session_the_server_ends_under_a_sending_client_ends_for_that_client_alone() {
    let url = format!("fifo://{}", util::tmp_path("fifoend"));
    let mut listener = utp::listen(&url).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let sender = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut client = utp::connect(&url).unwrap();
            let block = [7u8; 1024];
            let mut sent = 0u64;
            let error = loop {
                match client.send(message_type::DATA, 0, &block) {
                    Ok(()) => sent += 1,
                    Err(error) => break error,
                }
            };
            drop(client);
            done_tx.send((sent, error)).unwrap();
        }
    });
    let mut session = listener.accept_timeout(LONG).unwrap();
    let mut frame = Frame::default();
    session.recv_timeout(&mut frame, LONG).unwrap();
    assert_eq!(frame.payload(), &[7u8; 1024]);
    drop(session);
    // While the old client writes, no session starts from its bytes.
    let quiet = listener.accept_timeout(Some(Duration::from_millis(300)));
    assert!(matches!(quiet, Err(Error::Timeout { .. })), "{quiet:?}");
    let (sent, error) = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the old client's send fails rather than waiting for ever");
    sender.join().unwrap();
    assert!(matches!(error, Error::PeerGone { .. }), "{error}");
    assert!(
        error.to_string().contains("ended the conversation"),
        "{error}"
    );
    // At most a pipe's worth (1 MiB) went into the void after the end.
    assert!(sent < 2_000, "{sent} frames sent");

    let caller = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut client = utp::service::Client::connect(&url).unwrap();
            client.call(b"after").unwrap().to_vec()
        }
    });
    let mut session = listener.accept_timeout(LONG).unwrap();
    session.recv_timeout(&mut frame, LONG).unwrap();
    assert_eq!(frame.payload(), b"after", "a whole first frame");
    let sequence = frame.header.sequence;
    session
        .reply_timeout(message_type::RESPONSE, 0, b"served", sequence, LONG)
        .unwrap();
    assert_eq!(caller.join().unwrap(), b"served");
}

/// The server takes an exclusive lock on `PATH.resp` for a session. Another
/// process of the same user holding a lock there must not hold the
/// listener: `accept` keeps its deadline, and the session starts once the
/// lock is let go.
#[test]
fn a_fifo_listener_keeps_its_deadline_while_another_process_holds_the_session_lock() {
    use rustix::fs::{FlockOperation, OFlags, flock};
    let base = util::tmp_path("fifolock");
    let url = format!("fifo://{base}");
    let mut listener = utp::listen(&url).unwrap();
    let holder = rustix::fs::open(
        format!("{base}.resp").as_str(),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    flock(&holder, FlockOperation::LockShared).unwrap();
    let client = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut client = utp::service::Client::connect(&url).unwrap();
            client.call(b"ping").unwrap().to_vec()
        }
    });
    let started = std::time::Instant::now();
    let waited = listener.accept_timeout(Some(Duration::from_millis(500)));
    let took = started.elapsed();
    assert!(matches!(waited, Err(Error::Timeout { .. })), "{waited:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    drop(holder);
    let mut session = listener
        .accept_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut frame = Frame::with_capacity(64);
    let ten = Some(Duration::from_secs(10));
    session.recv_timeout(&mut frame, ten).unwrap();
    assert_eq!(frame.payload(), b"ping");
    let sequence = frame.header.sequence;
    session
        .reply_timeout(message_type::RESPONSE, 0, b"pong", sequence, ten)
        .unwrap();
    assert_eq!(client.join().unwrap(), b"pong");
}

#[test]
fn fifos_are_private_and_removed() {
    let base = util::tmp_path("fifomode");
    let listener = utp::listen(&format!("fifo://{base}")).unwrap();
    for suffix in [".req", ".resp"] {
        let meta = std::fs::metadata(format!("{base}{suffix}")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{suffix}");
    }
    drop(listener);
    for suffix in [".req", ".resp"] {
        assert!(!std::path::Path::new(&format!("{base}{suffix}")).exists());
    }
}

#[test]
fn fifo_stale_pair_is_replaced() {
    let base = util::tmp_path("fifostale");
    for suffix in [".req", ".resp"] {
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            format!("{base}{suffix}").as_str(),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
    }
    let url = format!("fifo://{base}");
    match utp::connect(&url) {
        Err(Error::NotFound { reason, .. }) => assert!(reason.contains("not running"), "{reason}"),
        other => panic!("expected NotFound for a stale pair, got {other:?}"),
    }
    let listener = utp::listen(&url).expect("stale FIFOs are replaced");
    assert!(
        matches!(utp::listen(&url), Err(Error::InUse { .. })),
        "a live pair is not"
    );
    drop(listener);
    assert!(!std::path::Path::new(&format!("{base}.req")).exists());
}

/// Untimed sends and receives make the pipes blocking (one system call per
/// wait); a later timed call must still keep its deadline, both ways.
#[test]
fn pipe_deadlines_hold_after_untimed_calls_made_the_pipes_blocking() {
    let endpoint: Endpoint = "pipe:/bin/cat".parse().unwrap();
    let mut channel = utp::transport::pipe::connect(&endpoint, &Options::default()).unwrap();
    // No ?pipe_size: room for a 64 KiB frame at once.
    let (to_child, from_child) = channel.pipe_size().unwrap();
    assert!(
        to_child >= utp::transport::pipe::DEFAULT_PIPE_SIZE
            && from_child >= utp::transport::pipe::DEFAULT_PIPE_SIZE,
        "{to_child} {from_child}"
    );
    let mut frame = Frame::default();
    for round in 0..3u8 {
        // Untimed: blocking descriptors.
        channel.send(message_type::DATA, 0, &[round; 100]).unwrap();
        channel.recv(&mut frame).unwrap();
        assert_eq!(frame.payload(), &[round; 100]);
        // Timed, nothing coming: the deadline holds (generous bound: busy machine).
        let started = std::time::Instant::now();
        let err = channel
            .recv_timeout(&mut frame, Some(Duration::from_millis(50)))
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // And the stream is still in step.
        channel
            .send_timeout(message_type::DATA, 0, b"again", LONG)
            .unwrap();
        channel.recv_timeout(&mut frame, LONG).unwrap();
        assert_eq!(frame.payload(), b"again");
    }
}

#[test]
fn a_timed_send_to_a_child_that_never_reads_times_out_after_untimed_sends() {
    let endpoint: Endpoint = "pipe:/bin/sleep 30".parse().unwrap();
    // The frame below is larger than the default limit, which the sender checks.
    let options = Options::default().with_max_payload(8 << 20);
    let mut channel = utp::transport::pipe::connect(&endpoint, &options).unwrap();
    // An untimed send that fits: the write descriptor is now blocking.
    channel.send(message_type::DATA, 0, b"hello").unwrap();
    // A frame larger than the pipe, with a deadline: must not block forever.
    let big = vec![7u8; 4 << 20];
    let started = std::time::Instant::now();
    let err = channel
        .send_timeout(
            message_type::DATA,
            0,
            &big,
            Some(Duration::from_millis(100)),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Closing kills the child after its grace period (it never reads stdin).
    drop(channel);
}
