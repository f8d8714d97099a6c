//! mq:// servers notice clients that died (issue 13): a client SIGKILLed
//! after it was accepted, or one whose hello arrives after it died, costs
//! the server nothing for long: its thread ends and its queues are released,
//! so the user's RLIMIT_MSGQUEUE is not exhausted by dead clients.

mod child;

use child::{Proc, role, say, unique};
use std::time::{Duration, Instant};
use utp::service::{Client, Server, calc};

/// The child: connects, says READY, then waits to be killed.
#[test]
fn child_entry() {
    let Some((role, url, _)) = role() else {
        return;
    };
    assert_eq!(role, "connect-and-wait");
    let mut client = Client::connect(&url).expect("child connects");
    client.call(b"ADD 1 1").expect("child calls");
    say("READY");
    std::thread::sleep(Duration::from_secs(600));
}

/// Descriptors of this process open on message queues whose name contains `name`.
fn queues_open(name: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains(name))
        .count()
}

#[test]
fn clients_killed_after_the_accept_are_noticed_and_release_their_queues() {
    let name = unique("mq-dead");
    let url = format!("mq://{name}");
    let listener = utp::listen(&url).unwrap();
    let mut server = Server::new(listener, calc::handler());
    let stop = server.shutdown_handle();
    let running = std::thread::spawn(move || server.run());
    // More dead clients than RLIMIT_MSGQUEUE allows live ones (about 12).
    for i in 0..16 {
        let mut child = Proc::spawn("connect-and-wait", &url, "");
        child.expect("READY");
        child.kill();
        let deadline = Instant::now() + Duration::from_secs(3);
        // Only the accept queue stays open once the server noticed.
        while queues_open(&name) > 1 {
            assert!(
                Instant::now() < deadline,
                "client {i}: the server still holds its queues 3 s after it was killed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut client = Client::connect(&url).expect("a live client still connects");
    assert_eq!(client.call(b"ADD 2 3").unwrap(), b"OK 5");
    drop(client);
    stop.trigger();
    running.join().unwrap().unwrap();
    assert_eq!(queues_open(&name), 0);
}

#[test]
fn a_hello_from_a_client_that_is_gone_is_not_admitted() {
    let name = unique("mq-ghost");
    let url = format!("mq://{name}");
    let listener = utp::listen(&url).unwrap();
    let mut server = Server::new(listener, calc::handler());
    let stop = server.shutdown_handle();
    let stats = server.stats();
    let running = std::thread::spawn(move || server.run());
    // Queues made as a client would, but nobody holds the sending one.
    let id = format!("{}-00000000000000ab", std::process::id());
    let mut made = Vec::new();
    for suffix in ["c2s", "s2c"] {
        let queue = std::ffi::CString::new(format!("/utp.{name}.{id}.{suffix}")).unwrap();
        let mut attr: libc::mq_attr = unsafe_free_attr();
        attr.mq_maxmsg = 4;
        attr.mq_msgsize = 1024;
        // SAFETY: a valid NUL-terminated name and an initialised attribute struct.
        let fd = unsafe {
            libc::mq_open(
                queue.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::mode_t,
                &attr as *const libc::mq_attr,
            )
        };
        assert!(fd >= 0, "mq_open: {}", std::io::Error::last_os_error());
        // SAFETY: fd was just returned by mq_open and is closed once.
        unsafe { libc::close(fd) };
        made.push(queue);
    }
    utp::transport::mq::inject_raw(&name, format!("utp-mq1 {id}").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        stats.connections.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a client that is gone was admitted"
    );
    assert_eq!(queues_open(&name), 1, "only the accept queue is open");
    for queue in &made {
        // SAFETY: a valid NUL-terminated name.
        let gone = unsafe { libc::mq_unlink(queue.as_ptr()) } != 0;
        assert!(gone, "the server removed {queue:?}");
    }
    stop.trigger();
    running.join().unwrap().unwrap();
}

fn unsafe_free_attr() -> libc::mq_attr {
    // SAFETY: mq_attr is plain integers; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}
