//! unix:// socket files: private from their first instant, never a symlink
//! followed or removed, and only the listener's own file removed at close.
//! The attacks by another user run as uid 65534 through setpriv (skipped
//! with a message when not root).

mod util;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use util::{leftovers, tmp_path};

/// The uid and gid the attacks act as: `nobody`.
const OTHER: u32 = 65534;

fn as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `args` as uid/gid 65534 and asserts it succeeded.
fn run_as_other(args: &[&str]) {
    let status = Command::new("setpriv")
        .args([
            format!("--reuid={OTHER}"),
            format!("--regid={OTHER}"),
            "--clear-groups".into(),
        ])
        .args(args)
        .status()
        .expect("run setpriv");
    assert!(status.success(), "setpriv {args:?}: {status}");
}

#[test]
fn the_socket_file_never_exists_with_a_wider_mode_than_0600() {
    // The default umask (022) would give 0755 to a socket bound before a
    // chmod. A racing thread lstat()s the path as fast as it can while the
    // main thread binds and closes a listener over and over.
    let path = tmp_path("mode-race.sock");
    let url = format!("unix://{path}");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let path = path.clone();
        let stop = stop.clone();
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut wider = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(meta) = std::fs::symlink_metadata(&path) {
                    seen.fetch_add(1, Ordering::Relaxed);
                    let mode = meta.mode() & 0o7777;
                    if mode != 0o600 && !wider.contains(&mode) {
                        wider.push(mode);
                    }
                }
            }
            wider
        })
    };
    // At least 300 binds, and on until the watcher has looked at a live
    // socket file a few times (on a loaded machine it may not run at first).
    let started = std::time::Instant::now();
    let mut binds = 0;
    while binds < 300
        || (seen.load(Ordering::Relaxed) < 10 && started.elapsed() < Duration::from_secs(20))
    {
        let listener = utp::listen(&url).unwrap();
        if binds % 16 == 0 {
            // Give the watcher a moment with the file in place.
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(listener);
        binds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let wider = watcher.join().unwrap();
    let seen = seen.load(Ordering::Relaxed);
    assert!(
        wider.is_empty(),
        "the socket file was seen with modes {:?}",
        wider.iter().map(|m| format!("{m:o}")).collect::<Vec<_>>()
    );
    assert!(seen > 0, "the watcher never saw the socket file");
    assert!(!Path::new(&path).exists());
}

/// In a child started by the test below (with `UTP_UMASK_PROBE=PATH`):
/// listens at PATH and prints the new file's mode in octal.
#[test]
fn umask_probe_child() {
    let Ok(path) = std::env::var("UTP_UMASK_PROBE") else {
        return;
    };
    let listener = utp::listen(&format!("unix://{path}")).unwrap();
    let mode = std::fs::symlink_metadata(&path).unwrap().mode();
    println!("MODE {mode:o}");
    drop(listener);
}

#[test]
fn the_mode_comes_from_the_socket_even_with_umask_0() {
    // By construction: the file is 0600 right after bind even under the most
    // permissive umask, so no chmod (of a path that could be swapped) is
    // needed. A child process, so this multi-threaded process keeps its umask.
    let path = tmp_path("umask0.sock");
    let out = Command::new("sh")
        .args([
            "-c",
            r#"umask 0 && exec "$0" --exact umask_probe_child --nocapture -q"#,
        ])
        .arg(std::env::current_exe().unwrap())
        .env("UTP_UMASK_PROBE", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("MODE 140600"), "{stdout}");
    assert!(!Path::new(&path).exists());
}

#[test]
fn a_symlink_at_the_socket_path_is_refused_and_left_alone() {
    let target = tmp_path("symlink-target");
    std::fs::write(&target, b"precious").unwrap();
    let link = tmp_path("symlink.sock");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let err = utp::listen(&format!("unix://{link}")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("is a symbolic link"), "{text}");

    // Neither the link nor its target was touched.
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");

    // A dangling symlink (to where a socket might be created) too.
    let dangling = tmp_path("dangling.sock");
    let nowhere = tmp_path("nowhere");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    let err = utp::listen(&format!("unix://{dangling}")).unwrap_err();
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    assert!(
        !Path::new(&nowhere).exists(),
        "a socket was created through the link"
    );

    for path in [&link, &target, &dangling] {
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn another_users_symlink_in_tmp_is_refused() {
    if !as_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    // uid 65534 plants a symlink where root's server will listen, pointing
    // at a root-owned file it hopes utp will chmod, remove or replace.
    let target = tmp_path("root-file");
    std::fs::write(&target, b"root's").unwrap();
    std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let link = tmp_path("planted.sock");
    run_as_other(&["ln", "-s", &target, &link]);
    assert_eq!(std::fs::symlink_metadata(&link).unwrap().uid(), OTHER);

    let err = utp::listen(&format!("unix://{link}")).unwrap_err();
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o644, "the target's mode changed");
    assert_eq!(std::fs::read(&target).unwrap(), b"root's");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    std::fs::remove_file(&link).unwrap();
    std::fs::remove_file(&target).unwrap();
}

#[test]
fn a_stale_socket_is_replaced_but_a_live_one_is_not() {
    let path = tmp_path("stale.sock");
    util::stale_socket(&path);
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket()
    );
    let listener = utp::listen(&format!("unix://{path}")).unwrap();
    let err = utp::listen(&format!("unix://{path}")).unwrap_err();
    assert!(err.to_string().contains("live server"), "{err}");
    drop(listener);
    assert!(!Path::new(&path).exists());
}

#[test]
fn close_removes_only_the_socket_it_bound() {
    let path = tmp_path("replaced.sock");
    let listener = utp::listen(&format!("unix://{path}")).unwrap();
    // Someone (with write access to the directory) puts another file there.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"not ours").unwrap();
    drop(listener);
    assert_eq!(std::fs::read(&path).unwrap(), b"not ours");
    std::fs::remove_file(&path).unwrap();
    let mine: Vec<_> = leftovers()
        .into_iter()
        .filter(|p| p.contains("replaced"))
        .collect();
    assert!(mine.is_empty(), "{mine:?}");
}
