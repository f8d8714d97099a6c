//! The C ABI for event loops: descriptors (`utp_channel_fd`,
//! `utp_listener_fd`), receives and accepts with a timeout of 0, and sends
//! that never wait (`utp_try_send`, `utp_try_flush`). The C program that
//! serves clients of every mechanism from one `poll()` with them is
//! `examples/c/test_event_loop.c` (run by `examples/c/run-tests`).

use std::ffi::CString;
use std::io::Write;
use std::os::fd::BorrowedFd;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use utp_ffi::*;

mod support;
use support::{Connecting, last_error};

const DATA: u8 = 0x01;

fn unique(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "ffi-loop-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether `fd` is readable within `limit`.
fn readable_within(fd: i32, limit: Duration) -> bool {
    // SAFETY: the descriptor is owned by a live channel or listener for the call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let limit = rustix::time::Timespec::try_from(limit).unwrap();
    rustix::event::poll(&mut fds, Some(&limit)).unwrap() > 0
}

/// The descriptor and wait of `channel`.
fn channel_fd(channel: *mut UtpChannel) -> (i32, i32) {
    let (mut fd, mut wait) = (-2, -2);
    // SAFETY: a live channel handle and valid out-pointers.
    let status = unsafe { utp_channel_fd(channel, &mut fd, &mut wait) };
    assert_eq!(status, UtpStatus::UtpOk, "{}", last_error());
    (fd, wait)
}

/// One receive with a timeout of 0: the payload, or the status.
fn try_recv(
    channel: *mut UtpChannel,
    buf: &mut [u8],
) -> Result<(UtpFrameInfo, Vec<u8>), UtpStatus> {
    let mut info = UtpFrameInfo::default();
    // SAFETY: a live channel handle, a valid info struct and buffer.
    let status = unsafe { utp_recv(channel, &mut info, buf.as_mut_ptr(), buf.len(), 0) };
    match status {
        UtpStatus::UtpOk => Ok((info, buf[..info.payload_length as usize].to_vec())),
        other => Err(other),
    }
}

/// The next frame, received as an event loop does: receives with a
/// timeout of 0 until one comes, waiting on the descriptor after each miss.
fn recv_in_loop(channel: *mut UtpChannel, buf: &mut [u8]) -> (UtpFrameInfo, Vec<u8>) {
    let (fd, _) = channel_fd(channel);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match try_recv(channel, buf) {
            Ok(frame) => return frame,
            Err(UtpStatus::UtpErrTimeout) => {
                assert!(Instant::now() < deadline, "no frame within 5 s");
                readable_within(fd, Duration::from_secs(5));
            }
            Err(other) => panic!("{other:?}: {}", last_error()),
        }
    }
}

/// A listener, a client connected to it and the server's end, closed when
/// dropped (also when a test fails: the endpoint's files go with it).
struct Pair {
    listener: *mut UtpListener,
    client: *mut UtpChannel,
    server: *mut UtpChannel,
}

impl Drop for Pair {
    fn drop(&mut self) {
        // SAFETY: handles from `pair`, used by this thread; a handle closed
        // already is refused by the registry.
        unsafe {
            utp_channel_close(self.client);
            utp_channel_close(self.server);
            utp_listener_close(self.listener);
        }
    }
}

/// A listener at `url` and a client connected to it, accepted, the
/// client's first frame ("hello") received.
fn pair(url: &str) -> Pair {
    let url = CString::new(url).unwrap();
    let mut pair = Pair {
        listener: ptr::null_mut(),
        client: ptr::null_mut(),
        server: ptr::null_mut(),
    };
    // SAFETY: valid strings and out-pointers; each handle is used by one
    // thread at a time (the client's moves here once connected).
    unsafe {
        let listened = utp_listen(url.as_ptr(), &mut pair.listener);
        assert_eq!(listened, UtpStatus::UtpOk, "{}", last_error());
        let mut listener_fd = -2;
        let status = utp_listener_fd(pair.listener, &mut listener_fd);
        assert_eq!(status, UtpStatus::UtpOk);
        assert!(listener_fd >= 0);
        // Nobody yet: an accept with a timeout of 0 says so at once.
        let started = Instant::now();
        let status = utp_accept(pair.listener, 0, &mut pair.server);
        assert_eq!(status, UtpStatus::UtpErrTimeout);
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(last_error().contains("no client"), "{}", last_error());
        let connecting = Connecting::start(&url, Some(b"hello"));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(
                readable_within(listener_fd, Duration::from_secs(5)),
                "{url:?}: the listener's descriptor turns readable for a client"
            );
            match utp_accept(pair.listener, 0, &mut pair.server) {
                UtpStatus::UtpOk => break,
                UtpStatus::UtpErrTimeout if Instant::now() < deadline => {}
                other => panic!("{url:?}: {other:?}: {}", last_error()),
            }
        }
        pair.client = connecting.channel();
    }
    let mut buf = [0u8; 8];
    assert_eq!(recv_in_loop(pair.server, &mut buf).1, b"hello");
    pair
}

/// Fills the channel with `utp_try_send` (or `utp_try_send_batch`, 16
/// frames a call) until `UTP_ERR_FULL`, drains the
/// peer with receives of timeout 0 (flushing what a stream kept), and
/// checks every frame arrived once, whole, in order.
fn fill_then_drain(url: &str, batched: bool) {
    let pair = pair(url);
    let (client, server) = (pair.client, pair.server);
    let (server_fd, wait) = channel_fd(server);
    assert!(server_fd >= 0, "{url}");
    assert_eq!(wait, -1, "{url}: no frame under way");
    let mut buf = vec![0u8; 2048];
    assert_eq!(
        try_recv(server, &mut buf).unwrap_err(),
        UtpStatus::UtpErrTimeout
    );

    let payload = |i: u32| {
        let mut bytes = vec![(i % 251) as u8; 1000];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        bytes
    };
    let mut sent = 0u32;
    loop {
        let status = if batched {
            let batch: Vec<Vec<u8>> = (sent..sent + 16).map(payload).collect();
            let entries: Vec<UtpBytes> = batch
                .iter()
                .map(|bytes| UtpBytes {
                    data: bytes.as_ptr(),
                    len: bytes.len(),
                })
                .collect();
            let mut taken = usize::MAX;
            // SAFETY: a live channel handle, 16 valid entries and a valid out-pointer.
            let status = unsafe {
                utp_try_send_batch(client, DATA, 1, entries.as_ptr(), entries.len(), &mut taken)
            };
            assert!(taken <= 16, "{url}: {taken}");
            assert!(
                (status == UtpStatus::UtpOk) == (taken == 16),
                "{url}: {status:?} after {taken} of 16"
            );
            sent += taken as u32;
            status
        } else {
            let bytes = payload(sent);
            // SAFETY: a live channel handle and a valid payload.
            let status = unsafe { utp_try_send(client, DATA, 1, bytes.as_ptr(), bytes.len()) };
            sent += u32::from(status == UtpStatus::UtpOk);
            status
        };
        if status == UtpStatus::UtpErrFull {
            assert!(last_error().contains("no room"), "{}", last_error());
            break;
        }
        assert_eq!(status, UtpStatus::UtpOk, "{url}: {}", last_error());
        assert!(sent < 1_000_000, "{url}: never full");
    }
    assert!(sent > 0, "{url}");

    let mut received = 0u32;
    let mut next_sequence = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while received < sent {
        match try_recv(server, &mut buf) {
            Ok((info, bytes)) => {
                assert_eq!(bytes, payload(received), "{url}: frame {received}");
                // Numbered one after the other (a FIFO client starts at a
                // random number).
                if let Some(expected) = next_sequence {
                    assert_eq!(info.sequence, expected, "{url}: frame {received}");
                }
                next_sequence = Some(info.sequence.wrapping_add(1));
                received += 1;
            }
            Err(UtpStatus::UtpErrTimeout) => {
                // What a stream kept of its last frame goes out now that the
                // peer has read.
                // SAFETY: a live channel handle.
                let flushed = unsafe { utp_try_flush(client) };
                assert!(
                    matches!(flushed, UtpStatus::UtpOk | UtpStatus::UtpErrFull),
                    "{url}"
                );
                readable_within(server_fd, Duration::from_millis(50));
            }
            Err(other) => panic!("{url}: {other:?}: {}", last_error()),
        }
        assert!(
            Instant::now() < deadline,
            "{url}: {received} of {sent} frames"
        );
    }
    // SAFETY: a live channel handle.
    assert_eq!(unsafe { utp_try_flush(client) }, UtpStatus::UtpOk, "{url}");
    assert_eq!(
        try_recv(server, &mut buf).unwrap_err(),
        UtpStatus::UtpErrTimeout,
        "{url}"
    );
}

#[test]
fn try_send_and_try_send_batch_fill_a_channel_and_lose_nothing() {
    let dir = std::env::temp_dir();
    for batched in [false, true] {
        fill_then_drain(
            &format!("unix://{}/{}.sock", dir.display(), unique("unix")),
            batched,
        );
        fill_then_drain(&format!("shm://{}?ring=65536", unique("shm")), batched);
        fill_then_drain(
            &format!("fifo://{}/{}", dir.display(), unique("fifo")),
            batched,
        );
        fill_then_drain(&format!("mq://{}", unique("mq")), batched);
    }
}

/// The descriptor of an shm link turns readable for a frame sent after the
/// receive that found nothing, and stays quiet once it is taken.
#[test]
fn an_shm_descriptor_wakes_for_each_frame_and_then_rests() {
    let pair = pair(&format!("shm://{}", unique("wake")));
    let (client, server) = (pair.client, pair.server);
    let (fd, _) = channel_fd(server);
    let mut buf = [0u8; 64];
    for round in 0..3u8 {
        assert_eq!(
            try_recv(server, &mut buf).unwrap_err(),
            UtpStatus::UtpErrTimeout
        );
        assert!(
            !readable_within(fd, Duration::from_millis(20)),
            "round {round}: nothing sent yet"
        );
        // SAFETY: a live channel handle and a valid payload.
        let status = unsafe { utp_send(client, DATA, 1, [round].as_ptr(), 1, 1000) };
        assert_eq!(status, UtpStatus::UtpOk);
        assert!(
            readable_within(fd, Duration::from_secs(5)),
            "round {round}: woken"
        );
        let (_, bytes) = try_recv(server, &mut buf).unwrap();
        assert_eq!(bytes, [round]);
    }
}

/// A frame that started arriving gives the loop a deadline; past it the
/// receive fails and the link is over. A frame kept for a larger buffer
/// makes the wait 0.
#[test]
fn the_wait_is_the_deadline_of_a_frame_under_way() {
    let path = std::env::temp_dir().join(format!("{}.sock", unique("deadline")));
    let raw = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let url = CString::new(format!("unix://{}?frame_timeout_ms=300", path.display())).unwrap();
    let mut channel = ptr::null_mut();
    // SAFETY: a valid string and out-pointer.
    let connected = unsafe { utp_connect(url.as_ptr(), &mut channel) };
    let _ = std::fs::remove_file(&path);
    assert_eq!(connected, UtpStatus::UtpOk, "{}", last_error());
    let (mut peer, _) = raw.accept().unwrap();

    // A whole frame first, too large for the buffer: kept, and the wait is 0.
    let mut frame = vec![0u8; 32];
    let mut sender = utp::frame::Stamper::default();
    let mut head = [0u8; 32];
    sender.stamp(DATA, 1, b"0123456789", &mut head);
    frame.copy_from_slice(&head);
    frame.extend_from_slice(b"0123456789");
    peer.write_all(&frame).unwrap();
    let (fd, wait) = channel_fd(channel);
    assert_eq!(wait, -1);
    assert!(readable_within(fd, Duration::from_secs(5)));
    let mut small = [0u8; 4];
    assert_eq!(
        try_recv(channel, &mut small).unwrap_err(),
        UtpStatus::UtpErrBufferTooSmall
    );
    assert_eq!(channel_fd(channel), (fd, 0), "a kept frame: do not wait");
    let mut buf = [0u8; 64];
    assert_eq!(try_recv(channel, &mut buf).unwrap().1, b"0123456789");
    assert_eq!(channel_fd(channel), (fd, -1));

    // Half a header: a deadline of at most 300 ms.
    sender.stamp(DATA, 1, b"late", &mut head);
    peer.write_all(&head[..10]).unwrap();
    assert!(readable_within(fd, Duration::from_secs(5)));
    assert_eq!(
        try_recv(channel, &mut buf).unwrap_err(),
        UtpStatus::UtpErrTimeout
    );
    let (_, wait) = channel_fd(channel);
    assert!((1..=300).contains(&wait), "wait {wait} ms");
    // The loop waits that long, then the receive fails.
    assert!(!readable_within(fd, Duration::from_millis(wait as u64)));
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(channel_fd(channel).1, 0, "the deadline has passed");
    let failed = try_recv(channel, &mut buf).unwrap_err();
    assert_eq!(failed, UtpStatus::UtpErrProtocol);
    assert!(
        last_error().contains("frame deadline of 300ms"),
        "{}",
        last_error()
    );
    // SAFETY: a live handle, closed once.
    unsafe { utp_channel_close(channel) };
}

#[test]
fn the_calls_check_their_arguments() {
    let pair = pair(&format!("inproc://{}", unique("args")));
    let (listener, client, server) = (pair.listener, pair.client, pair.server);
    let mut fd = 0;
    // SAFETY: NULL out-pointers are refused before anything is written.
    unsafe {
        assert_eq!(
            utp_channel_fd(client, ptr::null_mut(), &mut fd),
            UtpStatus::UtpErrInvalidArgument
        );
        assert_eq!(
            utp_channel_fd(client, &mut fd, ptr::null_mut()),
            UtpStatus::UtpOk
        );
        assert!(fd >= 0);
        assert_eq!(
            utp_listener_fd(listener, ptr::null_mut()),
            UtpStatus::UtpErrInvalidArgument
        );
        assert_eq!(
            utp_try_send(client, DATA, 1, ptr::null(), 3),
            UtpStatus::UtpErrInvalidArgument
        );
        assert_eq!(
            utp_try_send(client, DATA, 1, ptr::null(), 0),
            UtpStatus::UtpOk
        );
        assert_eq!(utp_try_flush(client), UtpStatus::UtpOk);
        let entries = [UtpBytes {
            data: ptr::null(),
            len: 3,
        }];
        let mut sent = 99;
        let refused = utp_try_send_batch(client, DATA, 1, entries.as_ptr(), 1, &mut sent);
        assert_eq!((refused, sent), (UtpStatus::UtpErrInvalidArgument, 0));
        let refused = utp_try_send_batch(client, DATA, 1, ptr::null(), 2, &mut sent);
        assert_eq!((refused, sent), (UtpStatus::UtpErrInvalidArgument, 0));
        let no_count = utp_try_send_batch(client, DATA, 1, entries.as_ptr(), 0, ptr::null_mut());
        assert_eq!(no_count, UtpStatus::UtpErrInvalidArgument);
        let empty = utp_try_send_batch(client, DATA, 1, ptr::null(), 0, &mut sent);
        assert_eq!((empty, sent), (UtpStatus::UtpOk, 0));
    }
    let mut buf = [0u8; 8];
    assert_eq!(try_recv(server, &mut buf).unwrap().1, b"");
    drop(pair);
    // Closed handles: an error, not undefined behaviour.
    // SAFETY: the registry refuses handles that were closed.
    unsafe {
        assert_eq!(
            utp_channel_fd(client, &mut fd, ptr::null_mut()),
            UtpStatus::UtpErrClosed
        );
        assert_eq!(
            utp_try_send(client, DATA, 1, ptr::null(), 0),
            UtpStatus::UtpErrClosed
        );
        assert_eq!(utp_try_flush(client), UtpStatus::UtpErrClosed);
        assert_eq!(utp_listener_fd(listener, &mut fd), UtpStatus::UtpErrClosed);
    }
}
