//! The shm link v2 against a hostile local user and a hostile same-user
//! peer (docs/shm-layout.md section 9), with real processes. Tests acting
//! as another user run the test binary as uid 65534 through `setpriv` and
//! print "skipped" when not run as root.

mod shm_util;

use shm_util::{Proc, say, unique};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use utp::Channel;
use utp::frame::{Frame, flags, message_type};

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    shm_util::child_entry(|role, url, arg| {
        match role {
            // Tries to connect; reports the outcome.
            "connect" => match utp::connect(url) {
                Ok(mut ch) => {
                    let mut frame = Frame::default();
                    ch.send(message_type::REQUEST, flags::CHECKSUM, b"ADD 1 2")
                        .unwrap();
                    ch.recv_timeout(&mut frame, Some(Duration::from_secs(5)))
                        .unwrap();
                    say(&format!(
                        "DONE {}",
                        String::from_utf8_lossy(frame.payload())
                    ));
                }
                Err(e) => say(&format!("ERR {e}")),
            },
            // Tries to listen; reports the outcome, then serves until killed.
            "listen" => match utp::listen(url) {
                Ok(_l) => {
                    say("DONE listening");
                    std::thread::sleep(Duration::from_secs(3600));
                }
                Err(e) => say(&format!("ERR {e}")),
            },
            // Listens and connects to itself (e.g. in a tiny tmpfs).
            "self-link" => {
                let mut listener = utp::listen(url).unwrap();
                let accepting = std::thread::spawn(move || {
                    let r = listener.accept_timeout(Some(Duration::from_secs(3)));
                    (r.map(|_| ()), listener)
                });
                match utp::connect(url) {
                    Ok(_) => say("DONE linked"),
                    Err(e) => say(&format!("ERR {e}")),
                }
                let _ = accepting.join();
            }
            // Opens `arg` connections to the socket at `url` (a path) and says nothing.
            "silent" => {
                raise_fd_limit();
                let n: usize = arg.parse().unwrap();
                let held: Vec<UnixStream> = (0..n)
                    .filter_map(|_| UnixStream::connect(url).ok())
                    .collect();
                say(&format!("READY {}", held.len()));
                std::thread::sleep(Duration::from_secs(3600));
            }
            _ => return false,
        }
        true
    });
}

fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        eprintln!("skipped: acting as another user needs root");
        false
    }
}

fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

fn calls(url: &str, n: u64) {
    let mut ch = utp::connect(url).unwrap();
    let mut frame = Frame::default();
    for i in 0..n {
        ch.send(
            message_type::REQUEST,
            flags::CHECKSUM,
            format!("ADD {i} 1").as_bytes(),
        )
        .unwrap();
        ch.recv_timeout(&mut frame, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(frame.payload(), format!("OK {}", i + 1).as_bytes());
    }
}

/// Serves the calculator on `listener` in a thread; dropping the guard
/// stops it and closes the listener (removing its socket).
struct Serving(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Option<std::thread::JoinHandle<()>>,
);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

fn serve_in_thread(mut listener: Box<dyn utp::Listener>) -> Serving {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thread = std::thread::spawn({
        let stop = stop.clone();
        move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut ch) = listener.accept_timeout(Some(Duration::from_millis(20))) else {
                    continue;
                };
                std::thread::spawn(move || {
                    let mut frame = Frame::default();
                    while ch.recv(&mut frame).is_ok() {
                        let reply = utp::service::calc::evaluate(frame.payload());
                        if ch
                            .send(message_type::RESPONSE, 0, reply.as_bytes())
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        }
    });
    Serving(stop, Some(thread))
}

#[test]
fn a_foreign_client_gets_an_error_and_no_region_and_no_slot() {
    if !is_root() {
        return;
    }
    // A server that admits uid 4242 (so it binds in /tmp/utp-0.shared where
    // others can reach it), but not uid 65534.
    let name = unique("foreign-cli");
    let url = format!("shm://{name}?allow_uid=4242");
    let mut listener = utp::listen(&url).unwrap();
    let mut intruder = Proc::spawn_as_nobody("connect", &format!("shm://{name}"), "", &[]);
    let said = intruder.expect("ERR");
    assert!(
        said.contains("refused a client of uid 65534") && said.contains("allow_uid=65534"),
        "{said}"
    );
    intruder.wait_ok();
    let Err(err) = listener.accept_timeout(Some(Duration::from_millis(200))) else {
        panic!("a refused client got a link");
    };
    assert!(err.is_timeout(), "{err}");
    assert!(
        utp::shm::inspect::memfd_links(Some(&name)).is_empty(),
        "a region was created for a refused client"
    );
    // The owner is still served.
    let server = serve_in_thread(listener);
    calls(&url, 10);
    drop(server);

    // A default listener (private directory): the stranger cannot even reach it.
    let name = unique("private");
    let listener = utp::listen(&format!("shm://{name}")).unwrap();
    let mut intruder = Proc::spawn_as_nobody("connect", &format!("shm://{name}"), "", &[]);
    let said = intruder.expect("ERR");
    assert!(said.contains("no server at"), "{said}");
    drop(listener);
}

#[test]
fn a_foreign_server_is_not_found_refused_in_our_path_and_trusted_only_when_allowed() {
    if !is_root() {
        return;
    }
    let name = unique("foreign-srv");
    let mut server = Proc::spawn_as_nobody("server", &format!("shm://{name}"), "", &[]);
    server.expect("READY");
    // 1. Under the name a root client uses, the stranger's server is simply
    //    not there: it could only bind in its own directory.
    let err = utp::connect(&format!("shm://{name}")).unwrap_err();
    assert!(matches!(err, utp::Error::NotFound { .. }), "{err}");
    // 2. Its socket moved into our own directory (only root could do that):
    //    the client asks the kernel who serves it and refuses.
    let theirs = PathBuf::from(format!("/tmp/utp-65534/shm.{name}"));
    let moved = format!("{name}-moved");
    let ours = utp::runtime_dir::private_dir()
        .unwrap()
        .join(format!("shm.{moved}"));
    std::os::unix::fs::symlink(&theirs, &ours).unwrap();
    let err = utp::connect(&format!("shm://{moved}")).unwrap_err();
    std::fs::remove_file(&ours).unwrap();
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "shm://{moved} is served by uid 65534, not by you (uid 0)"
        )) && text.contains("pass ?allow_uid=65534 to trust it"),
        "{text}"
    );
    assert!(utp::shm::inspect::memfd_links(Some(&name)).is_empty());
    // 3. Trusted explicitly, it is used (a root client may enter its directory).
    calls(&format!("shm://{name}?allow_uid=65534"), 5);
    server.kill();
    let _ = std::fs::remove_file(&theirs);
}

#[test]
fn misspelt_options_symlinked_and_foreign_directories_and_squatted_paths_are_refused() {
    let err = utp::listen("shm://x?allow_uids=65534")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown option \"allow_uids\"")
            && err.contains("valid options: wait, ring, allow_uid, allow_gid"),
        "{err}"
    );
    let err = utp::connect("file:///tmp/x?rign=4k")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown option \"rign\""), "{err}");

    // $XDG_RUNTIME_DIR/utp is a symlink: refused, not followed.
    let base = std::env::temp_dir().join(unique("xdg"));
    let elsewhere = base.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, base.join("utp")).unwrap();
    let xdg = base.display().to_string();
    let mut child = Proc::spawn_env("listen", "shm://sym", "", &[("XDG_RUNTIME_DIR", &xdg)]);
    let said = child.expect("ERR");
    assert!(said.contains("utp: it is a symlink"), "{said}");
    std::fs::remove_file(base.join("utp")).unwrap();

    // Something that is not a socket sits at the socket path: left alone.
    std::fs::create_dir(base.join("utp")).unwrap();
    std::fs::set_permissions(base.join("utp"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(base.join("utp/shm.squat"), b"not a socket").unwrap();
    let mut child = Proc::spawn_env("listen", "shm://squat", "", &[("XDG_RUNTIME_DIR", &xdg)]);
    let said = child.expect("ERR");
    assert!(said.contains("exists and is not a socket"), "{said}");
    assert_eq!(
        std::fs::read(base.join("utp/shm.squat")).unwrap(),
        b"not a socket"
    );

    // A directory with a group/other-writable mode is refused.
    std::fs::set_permissions(base.join("utp"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut child = Proc::spawn_env("listen", "shm://loose", "", &[("XDG_RUNTIME_DIR", &xdg)]);
    let said = child.expect("ERR");
    assert!(said.contains("its mode is 777"), "{said}");
    std::fs::remove_dir_all(&base).unwrap();

    // Pre-created by another user: a uid-65534 process finds its
    // directory owned by root and refuses it.
    if is_root() {
        let base = std::env::temp_dir().join(unique("xdg-nobody"));
        std::fs::create_dir(&base).unwrap();
        std::os::unix::fs::chown(&base, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir(base.join("utp")).unwrap(); // root's
        std::fs::set_permissions(base.join("utp"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let xdg = base.display().to_string();
        let mut child =
            Proc::spawn_as_nobody("listen", "shm://pre", "", &[("XDG_RUNTIME_DIR", &xdg)]);
        let said = child.expect("ERR");
        assert!(said.contains("it is owned by uid 0"), "{said}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}

fn threads_and_fds(pid: u32) -> (usize, usize, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (field("Threads:") as usize, fds, field("VmRSS:"))
}

#[test]
fn a_thousand_silent_handshakes_cost_bounded_threads_and_memory() {
    let name = unique("silent");
    let url = format!("shm://{name}");
    let mut server = Proc::spawn("server", &url, "");
    server.expect("READY");
    let (threads0, fds0, rss0) = threads_and_fds(server.pid());
    let socket = utp::runtime_dir::private_dir()
        .unwrap()
        .join(format!("shm.{name}"));
    let mut silent = Proc::spawn("silent", &socket.display().to_string(), "1000");
    let opened: usize = silent.expect_fields("READY")[0].parse().unwrap();
    assert!(opened >= 900, "only {opened} connections opened");
    std::thread::sleep(Duration::from_millis(300));
    let (threads, fds, rss) = threads_and_fds(server.pid());
    eprintln!(
        "server with {opened} silent connections: {threads} threads (was {threads0}), \
         {fds} fds (was {fds0}), RSS {rss} KiB (was {rss0})"
    );
    assert_eq!(threads, threads0, "a thread per handshake?");
    assert!(
        fds <= fds0 + utp::shm::MAX_PENDING + 8,
        "{fds} descriptors: pending handshakes are not bounded"
    );
    assert!(rss < rss0 + 16 * 1024, "RSS grew from {rss0} to {rss} KiB");
    assert!(
        utp::shm::inspect::memfd_links(Some(&name)).is_empty(),
        "regions were made for silent clients"
    );
    // An honest client is served at once, while they all still hold on.
    let start = Instant::now();
    calls(&url, 20);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "honest client took {:?}",
        start.elapsed()
    );
    silent.kill();
    server.kill();
    shm_util::remove_socket(&url);
}

/// A client that truncates its file region under the server: the server's
/// link ends with an error, the server process lives, and its other
/// clients go on. A memfd region cannot be truncated at all (sealed).
#[test]
fn truncating_a_region_ends_only_that_link() {
    let dir = std::env::temp_dir().join(unique("trunc"));
    std::fs::create_dir(&dir).unwrap();
    let url = format!("file://{}?ring=64k", dir.join("calc").display());
    let mut server = Proc::spawn("server", &url, "");
    server.expect("READY");

    let mut victim = utp::shm::connect(&url.parse().unwrap(), &utp::Options::default()).unwrap();
    let utp::shm::region::Location::File(path) = victim.region().location().clone() else {
        panic!("not a file region")
    };
    let mut other = utp::connect(&url).unwrap();
    let mut frame = Frame::default();
    other.send(message_type::REQUEST, 0, b"ADD 1 1").unwrap();
    other
        .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
        .unwrap();
    // The attack: cut the region to nothing under both mappings, then make
    // the server touch it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    // Our own write into the truncated mapping faults too: the guard
    // repairs it, so this send may still "succeed" into dead memory; from
    // then on the link reports what happened.
    let _ = victim.send(message_type::REQUEST, 0, b"ADD 2 2");
    let err = victim
        .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
        .unwrap_err();
    assert!(
        err.is_peer_gone() && err.to_string().contains("truncated under us"),
        "{err}"
    );
    assert!(victim.region().poisoned());
    // The server process survived and serves its other client.
    std::thread::sleep(Duration::from_millis(100));
    assert!(server.child.try_wait().unwrap().is_none(), "server died");
    for i in 0..50 {
        other
            .send(message_type::REQUEST, 0, format!("ADD {i} 1").as_bytes())
            .unwrap();
        other
            .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(frame.payload(), format!("OK {}", i + 1).as_bytes());
    }
    // And a new client too.
    calls(&url, 5);
    drop(victim);
    drop(other);
    server.kill();
    shm_util::remove_socket(&url);
    let _ = std::fs::remove_dir_all(&dir);

    // memfd: the seals refuse the truncation outright.
    let name = unique("sealed");
    let listener = utp::listen(&format!("shm://{name}")).unwrap();
    let handle = serve_in_thread(listener);
    let link = utp::shm::connect(
        &format!("shm://{name}").parse().unwrap(),
        &utp::Options::default(),
    )
    .unwrap();
    let fd = link.region().memfd().expect("a memfd region");
    let err = rustix::fs::ftruncate(fd, 0).unwrap_err();
    assert_eq!(err, rustix::io::Errno::PERM, "{err}");
    let err = rustix::fs::ftruncate(fd, 1 << 30).unwrap_err();
    assert_eq!(err, rustix::io::Errno::PERM, "{err}");
    drop(link);
    drop(handle);
}

/// A SIGBUS outside utp's mappings keeps its default action (the guard
/// chains), while one inside a registered mapping is repaired.
#[test]
fn sigbus_outside_utp_mappings_still_kills() {
    if std::env::var_os("UTP_SIGBUS_CHILD").is_some() {
        // Install the guard (a file link registers it), then fault on a
        // mapping utp does not know.
        let dir = std::env::temp_dir().join(unique("bus-child"));
        std::fs::create_dir(&dir).unwrap();
        let url = format!("file://{}?ring=4k", dir.join("l").display());
        let _l = utp::listen(&url).unwrap();
        let _c = utp::connect(&url).unwrap();
        let path = dir.join("plain");
        std::fs::write(&path, vec![1u8; 8192]).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        // SAFETY: a fresh shared mapping of the whole 8 KiB file.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                8192,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                &file,
                0,
            )
        }
        .unwrap();
        file.set_len(0).unwrap();
        drop(_c);
        drop(_l);
        let _ = std::fs::remove_dir_all(&dir);
        // SAFETY: in bounds of the mapping; past EOF now, so it faults: the test.
        let v = unsafe { std::ptr::read_volatile(p.cast::<u8>().add(4096)) };
        println!("read {v} without a fault?");
        std::process::exit(0);
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigbus_outside_utp_mappings_still_kills",
            "--nocapture",
        ])
        .env("UTP_SIGBUS_CHILD", "1")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_full_file_system_is_an_error_up_front() {
    if !is_root() {
        return;
    }
    // A 1 MiB tmpfs in a private mount namespace; a link needs 4 KiB + 2 MiB.
    let dir = std::env::temp_dir().join(unique("tiny"));
    std::fs::create_dir(&dir).unwrap();
    let d = dir.display().to_string();
    let script = format!("mount -t tmpfs -o size=1m tmpfs {d} && exec \"$0\" \"$@\"");
    let url = format!("file://{d}/link?ring=1M");
    let mut child = Proc::spawn_wrapped(
        &["unshare", "-m", "sh", "-c", &script],
        "self-link",
        &url,
        "",
    );
    let said = child.line();
    child.wait_ok();
    shm_util::remove_socket(&url);
    // The tmpfs lived in the child's namespace only: nothing here.
    assert!(Path::new(&d).read_dir().unwrap().next().is_none());
    let _ = std::fs::remove_dir_all(&dir);
    if said == "EOF" {
        eprintln!("skipped: cannot mount a tmpfs in a private mount namespace here");
        return;
    }
    assert!(
        said.starts_with("ERR")
            && said.contains("no space in the file system")
            && said.contains("MiB free"),
        "{said}"
    );
    eprintln!("{said}");
}
