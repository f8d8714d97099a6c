//! `?notify=eventfd`: a pollable descriptor for event loops.

use rustix::event::{PollFd, PollFlags, poll};
use std::time::{Duration, Instant};
use utp::pubsub::{Publisher, Subscriber};

fn readable(fd: std::os::fd::BorrowedFd<'_>, ms: i64) -> bool {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let t = rustix::time::Timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    poll(&mut fds, Some(&t)).unwrap() == 1
}

#[test]
fn eventfd_fires_when_armed_and_at_the_end() {
    let url = format!(
        "shm://notify-{}?wait=spin&notify=eventfd",
        std::process::id()
    );
    let mut publisher = Publisher::create(&url).unwrap();
    let mut sub = Subscriber::connect(&url).unwrap();
    let mut buf = Vec::new();

    // Nothing published: armed, and the descriptor stays quiet.
    assert!(!sub.arm().unwrap());
    assert!(!readable(sub.notify_fd().unwrap(), 30));

    let waiter = std::thread::spawn(move || {
        let start = Instant::now();
        let fired = readable(sub.notify_fd().unwrap(), 10_000);
        (sub, fired, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    publisher.send(b"one").unwrap();
    let (mut sub, fired, took) = waiter.join().unwrap();
    assert!(fired && took < Duration::from_secs(5), "{took:?}");
    let got = sub.recv(&mut buf, Some(Duration::ZERO)).unwrap();
    assert_eq!((got.sequence, &buf[..]), (0, &b"one"[..]));

    // A message already there: arm says so instead of arming.
    publisher.send(b"two").unwrap();
    assert!(sub.arm().unwrap());
    sub.recv(&mut buf, Some(Duration::ZERO)).unwrap();

    // Not armed: publishing does not signal (no system call for it).
    publisher.send(b"three").unwrap();
    assert!(!readable(sub.notify_fd().unwrap(), 30));
    sub.recv(&mut buf, Some(Duration::ZERO)).unwrap();

    // The publisher's end fires it too, and receiving then fails.
    assert!(!sub.arm().unwrap());
    drop(publisher);
    assert!(readable(sub.notify_fd().unwrap(), 5_000));
    assert!(
        sub.recv(&mut buf, Some(Duration::from_secs(5)))
            .unwrap_err()
            .is_peer_gone()
    );
}

#[test]
fn arm_without_notify_is_an_error() {
    let url = format!("shm://notify-none-{}", std::process::id());
    let _publisher = Publisher::create(&url).unwrap();
    let mut sub = Subscriber::connect(&url).unwrap();
    assert!(sub.notify_fd().is_none());
    assert!(sub.arm().is_err());
}
