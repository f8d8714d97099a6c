//! Notifications of seqlock cells to real processes (this test binary
//! re-executed as `child_entry` with `UTP_CHILD_ROLE` set): a reader process
//! sleeping in `wait_next` on the futex, an event-loop process holding an
//! eventfd received over a Unix socket, and a `SIGUSR1` subscriber.

mod seqlock_util;

use seqlock_util::{Checked, Proc, Remove, say, unique};
use std::time::Duration;
use utp::seqlock::{SeqReader, SeqWriter, inspect, place::Place, subscribe_eventfd};

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Some((role, url, arg)) = seqlock_util::role() else {
        return;
    };
    let wait = Some(Duration::from_secs(10));
    match role.as_str() {
        "futex-waiter" => {
            let r = SeqReader::<Checked>::open(&url).unwrap();
            let (_, seq) = r.read_seq().unwrap();
            say(&format!("READY {seq}"));
            let (v, seq) = r.wait_next(seq, wait).unwrap();
            say(&format!("DONE {} {seq}", v.intact()));
        }
        "eventfd-sub" => {
            let r = SeqReader::<Checked>::open(&url).unwrap();
            let sub = subscribe_eventfd(&arg, Duration::from_secs(5)).unwrap();
            say("READY");
            let n = sub.wait(Duration::from_secs(10));
            let (v, seq) = r.read_seq().unwrap();
            say(&format!("DONE {n} {} {seq}", v.intact()));
        }
        "signal-sub" => {
            let r = SeqReader::<Checked>::open(&url).unwrap();
            let sub = r.subscribe_signal().unwrap();
            say("READY");
            let got = sub.wait(Duration::from_secs(10));
            let (v, seq) = r.read_seq().unwrap();
            say(&format!("DONE {got} {} {seq}", v.intact()));
        }
        other => panic!("unknown role {other}"),
    }
}

fn notify_setup(tag: &str) -> (String, SeqWriter<Checked>, Remove) {
    let url = format!("shm://{}", unique(tag));
    let mut w = SeqWriter::<Checked>::open(&url).unwrap();
    w.publish(&Checked::new(1));
    (url.clone(), w, Remove(url))
}

#[test]
fn futex_wait_next_wakes_a_reader_process() {
    let (url, mut w, _guard) = notify_setup("futex");
    let mut p = Proc::spawn("futex-waiter", &url, "");
    assert_eq!(p.expect_fields("READY"), ["2"]);
    std::thread::sleep(Duration::from_millis(50)); // let it go to sleep
    w.publish(&Checked::new(2));
    assert_eq!(p.expect_fields("DONE"), ["true", "4"]);
    w.remove().unwrap();
}

#[test]
fn eventfd_over_unix_socket() {
    let (url, mut w, _guard) = notify_setup("eventfd");
    let socket = format!("unix://@utp-test.{}", unique("efd"));
    w.serve_eventfds(&socket).unwrap();
    let mut p = Proc::spawn("eventfd-sub", &url, &socket);
    p.expect_fields("READY");
    w.publish(&Checked::new(2));
    let done = p.expect_fields("DONE");
    assert!(done[0].parse::<u64>().unwrap() >= 1, "{done:?}");
    assert_eq!(done[1..], ["true", "4"]);
    w.remove().unwrap();
}

#[test]
fn sigusr1_notice() {
    let (url, mut w, _guard) = notify_setup("signal");
    let mut p = Proc::spawn("signal-sub", &url, "");
    p.expect_fields("READY");
    assert_eq!(
        inspect::cell_state(&url).unwrap().signal_subscribers,
        [p.pid()]
    );
    w.publish(&Checked::new(2));
    assert_eq!(p.expect_fields("DONE"), ["true", "true", "4"]);
    let _ = p.child.wait();
    // The subscription ended with the process; the slot is freed.
    assert!(
        inspect::cell_state(&url)
            .unwrap()
            .signal_subscribers
            .is_empty()
    );
    w.remove().unwrap();
    assert!(
        Place::parse(&url)
            .unwrap()
            .existing_len()
            .unwrap()
            .is_none()
    );
}
