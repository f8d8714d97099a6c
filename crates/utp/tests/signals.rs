//! A host whose threads are interrupted by signals: a C or Swift program
//! with a timer, a profiler's SIGPROF, a runtime that signals its threads.
//! Each interrupted system call returns `EINTR` (a handler installed
//! without `SA_RESTART`; a socket with a receive timeout returns it even
//! with `SA_RESTART`). utp must go on: no error, no lost frame, and a
//! deadline still ends the wait on time, however often the wait is cut.
//!
//! Every test thread that talks is "pestered": another thread sends it a
//! signal every 500 µs while it works.

mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use utp::frame::{Frame, flags, message_type};
use utp::{Channel, Error};

/// The signal the pester threads send (nothing in utp uses it).
const SIGNAL: libc::c_int = libc::SIGUSR2;
/// How often a pestered thread is interrupted.
const EVERY: Duration = Duration::from_micros(500);

extern "C" fn ignore(_: libc::c_int) {}

/// Installs a handler that does nothing, without `SA_RESTART`, so that
/// every blocking call the signal lands in fails with `EINTR`.
fn install_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid value to fill; the handler
        // is an async-signal-safe function that does nothing; sigemptyset
        // initialises the mask it is given.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = 0;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(libc::sigaction(SIGNAL, &action, std::ptr::null_mut()), 0);
        }
    });
}

/// Sends [`SIGNAL`] to the thread that made it every [`EVERY`] until dropped
/// (which that thread must do before it ends).
struct Pester {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Pester {
    fn this_thread() -> Pester {
        install_handler();
        // SAFETY: pthread_self has no preconditions.
        let target = unsafe { libc::pthread_self() };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut sent = 0;
            while !flag.load(Ordering::Acquire) {
                // SAFETY: the target thread lives until it drops this
                // Pester, which stops and joins this thread first.
                assert_eq!(unsafe { libc::pthread_kill(target, SIGNAL) }, 0);
                sent += 1;
                std::thread::sleep(EVERY);
            }
            sent
        });
        Pester {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Pester {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let sent = thread.join().expect("the pester thread");
            if !std::thread::panicking() {
                assert!(sent > 0, "no signal was sent");
            }
        }
    }
}

/// The URLs of every transport a test can listen on in-process, their
/// names tagged with `test` (see [`left_by`]).
fn urls(test: &str) -> Vec<(&'static str, String)> {
    let tag = |kind: &str| format!("{test}-{kind}");
    vec![
        (
            "unix",
            format!("unix://{}.sock", util::tmp_path(&tag("unix"))),
        ),
        ("tcp", "tcp://127.0.0.1:0".into()),
        ("udp", "udp://127.0.0.1:0".into()),
        ("fifo", format!("fifo://{}", util::tmp_path(&tag("fifo")))),
        ("mq", format!("mq://{}", util::unique(&tag("mq")))),
        ("shm", format!("shm://{}", util::unique(&tag("shm")))),
        ("sysv", format!("sysv://0x{:x}", util::unique_key())),
        (
            "file",
            format!("file://{}.region", util::tmp_path(&tag("file"))),
        ),
        (
            "inproc",
            format!("inproc://{}", util::unique(&tag("inproc"))),
        ),
    ]
}

/// What the test tagged `test` left in /tmp, /dev/shm and /dev/mqueue (the
/// tests of this file run at once: each looks only at its own names).
fn left_by(test: &str) -> Vec<String> {
    util::leftovers()
        .into_iter()
        .filter(|name| name.contains(&format!("-{test}-")))
        .collect()
}

/// Listens at `url`, then runs `server` on the one accepted channel in a
/// thread of its own, pestered, while this thread connects and runs
/// `client`, pestered too.
fn with_pair(
    name: &str,
    url: &str,
    server: impl FnOnce(Box<dyn Channel>) + Send + 'static,
    client: impl FnOnce(&mut dyn Channel),
) {
    let mut listener = utp::listen(url).unwrap_or_else(|e| panic!("{name}: listen: {e}"));
    let endpoint = listener.endpoint();
    let serving = std::thread::spawn(move || {
        let _pester = Pester::this_thread();
        let channel = listener
            .accept_timeout(Some(Duration::from_secs(10)))
            .expect("accept");
        server(channel);
        drop(listener);
    });
    // A failed assertion here still lets the server thread end (the
    // client's channel and senders are dropped as it unwinds) and drop the
    // listener, which removes its socket file or FIFOs, before this test
    // fails: a panic that ended the process first left them behind.
    let talked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _pester = Pester::this_thread();
        let mut channel =
            utp::connect(&endpoint).unwrap_or_else(|e| panic!("{name}: connect: {e}"));
        client(&mut *channel);
    }));
    let served = serving.join();
    if let Err(panic) = talked {
        std::panic::resume_unwind(panic);
    }
    served.unwrap_or_else(|_| panic!("{name}: the server thread panicked"));
}

#[test]
fn a_deadline_ends_the_wait_on_time_however_often_signals_cut_it() {
    let wait = Duration::from_millis(100);
    for (name, url) in urls("sig-deadline") {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        with_pair(
            name,
            &url,
            move |mut silent| {
                // Takes the client's first frame (a UDP server accepts a
                // client by its first datagram), then keeps the channel
                // open and says nothing until the client is done.
                let mut frame = Frame::default();
                silent
                    .recv_timeout(&mut frame, Some(Duration::from_secs(10)))
                    .expect("the client's first frame");
                let _ = done_rx.recv_timeout(Duration::from_secs(10));
            },
            move |channel| {
                let mut frame = Frame::default();
                channel
                    .send(message_type::REQUEST, flags::CHECKSUM, b"hello")
                    .unwrap_or_else(|e| panic!("{name}: send: {e}"));
                let started = Instant::now();
                let got = channel.recv_timeout(&mut frame, Some(wait));
                let took = started.elapsed();
                assert!(
                    matches!(got, Err(Error::Timeout { .. })),
                    "{name}: a silent peer under signals gave {got:?}"
                );
                assert!(
                    took >= wait && took < wait * 5,
                    "{name}: a {wait:?} deadline ended after {took:?}"
                );
                done_tx.send(()).unwrap();
            },
        );
    }
    assert_eq!(left_by("sig-deadline"), Vec::<String>::new());
}

#[test]
fn frames_flow_on_while_signals_cut_both_ends() {
    // At least this long for each transport, so that hundreds of signals land.
    const FOR: Duration = Duration::from_millis(200);
    for (name, url) in urls("sig-flow") {
        with_pair(
            name,
            &url,
            |mut channel| {
                let mut frame = Frame::default();
                loop {
                    match channel.recv_timeout(&mut frame, Some(Duration::from_secs(10))) {
                        Ok(()) => {}
                        Err(Error::PeerGone { .. }) => return,
                        Err(e) => panic!("the server's receive: {e}"),
                    }
                    let answer = frame.payload().to_vec();
                    channel
                        .send(message_type::RESPONSE, flags::CHECKSUM, &answer)
                        .expect("the server's send");
                }
            },
            |channel| {
                let mut frame = Frame::default();
                let started = Instant::now();
                for round in 0u64.. {
                    if round >= 300 && started.elapsed() > FOR {
                        break;
                    }
                    // Sizes across a pipe's atomic write and a ring's line.
                    let payload = vec![round as u8; 1 + (round as usize * 97) % 6000];
                    channel
                        .send(message_type::REQUEST, flags::CHECKSUM, &payload)
                        .unwrap_or_else(|e| panic!("{name}: send {round}: {e}"));
                    channel
                        .recv_timeout(&mut frame, Some(Duration::from_secs(10)))
                        .unwrap_or_else(|e| panic!("{name}: receive {round}: {e}"));
                    assert_eq!(frame.payload(), &payload[..], "{name}: round {round}");
                }
            },
        );
    }
    assert_eq!(left_by("sig-flow"), Vec::<String>::new());
}

#[test]
fn a_subscriber_joins_and_waits_on_time_while_signals_cut_it() {
    use utp::pubsub::{Publisher, Subscriber};
    let url = format!("shm://{}", util::unique("sig-pub"));
    let _pester = Pester::this_thread();
    let mut publisher = Publisher::create(&url).expect("create the publisher");
    let mut subscriber = Subscriber::connect(&url).expect("join under signals");
    let mut buf = Vec::new();
    let wait = Duration::from_millis(100);
    let started = Instant::now();
    let got = subscriber.recv(&mut buf, Some(wait));
    let took = started.elapsed();
    assert!(
        matches!(got, Err(Error::Timeout { .. })),
        "a silent publisher under signals gave {got:?}"
    );
    assert!(
        took >= wait && took < wait * 5,
        "a {wait:?} deadline ended after {took:?}"
    );
    for n in 0..100u32 {
        publisher.send(&n.to_le_bytes()).unwrap();
        let message = subscriber
            .recv(&mut buf, Some(Duration::from_secs(5)))
            .expect("a message under signals");
        assert_eq!(
            (message.sequence, &buf[..]),
            (u64::from(n), &n.to_le_bytes()[..])
        );
    }
    drop(subscriber);
    drop(publisher);
    assert_eq!(left_by("sig-pub"), Vec::<String>::new());
}

#[test]
fn seqlock_waits_end_on_time_while_signals_cut_them() {
    use utp::seqlock::{SeqReader, SeqWriter, subscribe_eventfd};
    /// Removes the cell even when an assertion fails first.
    struct RemoveCell(String);
    impl Drop for RemoveCell {
        fn drop(&mut self) {
            let _ = utp::seqlock::place::Place::parse(&self.0).map(|place| place.remove());
        }
    }
    let url = format!("shm://{}", util::unique("sig-seq"));
    let _remove = RemoveCell(url.clone());
    let socket = format!("unix://@{}", util::unique("sig-seq-efd"));
    let _pester = Pester::this_thread();
    let mut writer = SeqWriter::<u64>::open(&url).expect("open the cell");
    writer.publish(&1);
    writer.serve_eventfds(&socket).expect("serve eventfds");
    let reader = SeqReader::<u64>::open(&url).expect("open the reader");
    let eventfd = subscribe_eventfd(&socket, Duration::from_secs(5)).expect("subscribe");
    let signal = reader.subscribe_signal().expect("subscribe to SIGUSR1");
    let wait = Duration::from_millis(100);
    let on_time = |what: &str, took: Duration| {
        assert!(
            took >= wait && took < wait * 5,
            "{what}: a {wait:?} wait ended after {took:?}"
        );
    };

    let (_, seq) = reader.read_seq().unwrap();
    let started = Instant::now();
    let got = reader.wait_next(seq, Some(wait));
    assert!(matches!(got, Err(Error::Timeout { .. })), "{got:?}");
    on_time("wait_next", started.elapsed());

    let started = Instant::now();
    assert_eq!(eventfd.wait(wait), 0, "no publish, no notice");
    on_time("the eventfd", started.elapsed());

    let started = Instant::now();
    assert!(!signal.wait(wait), "no publish, no SIGUSR1");
    on_time("the SIGUSR1 subscription", started.elapsed());

    writer.publish(&2);
    assert!(eventfd.wait(Duration::from_secs(5)) >= 1);
    assert!(signal.wait(Duration::from_secs(5)));
    assert_eq!(reader.read_seq().unwrap().0, 2);
    drop((signal, eventfd));
    drop(reader);
    writer.remove().unwrap();
    assert_eq!(
        left_by("sig-seq"),
        Vec::<String>::new(),
        "removed by remove()"
    );
}
