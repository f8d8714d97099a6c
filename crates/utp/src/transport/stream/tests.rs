//! A stream channel's looks that must not wait (on a socket or pipe, each
//! is the read or write itself, with no `poll` before it), and its writes
//! to a pipe whose reader is gone (an error, never SIGPIPE).

use super::sigpipe::SHIELDED;
use super::{Framing, StreamChannel, StreamIo};
use crate::Error;
use crate::channel::{Channel, PeerInfo};
use crate::frame::{Frame, HEADER_LEN, flags, message_type};
use crate::transport::wait::POLLS;
use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// A stream channel over `io` (UTP framing, 1 MiB frames).
fn channel(io: StreamIo) -> StreamChannel {
    StreamChannel::new(
        io,
        Framing::Utp,
        1 << 20,
        "test stream".to_string(),
        PeerInfo::default(),
    )
}

/// Two stream channels over a connected Unix socket pair.
fn socket_pair() -> (StreamChannel, StreamChannel) {
    let (a, b) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair");
    let socket = |fd| {
        channel(StreamIo::Socket {
            fd,
            passes_fds: true,
        })
    };
    (socket(a), socket(b))
}

fn polls() -> u64 {
    POLLS.with(|n| n.get())
}

#[test]
fn try_recv_and_try_send_on_a_socket_make_no_poll() {
    let (mut sender, mut receiver) = socket_pair();
    let mut frame = Frame::default();
    let before = polls();
    for _ in 0..20 {
        assert!(!receiver.try_recv(&mut frame).unwrap(), "nothing sent yet");
    }
    for i in 0..20u8 {
        assert!(
            sender
                .try_send(message_type::DATA, flags::CHECKSUM, &[i; 64])
                .unwrap()
        );
    }
    for i in 0..20u8 {
        assert!(receiver.try_recv(&mut frame).unwrap(), "frame {i}");
        assert_eq!(frame.payload(), &[i; 64]);
    }
    assert!(!receiver.try_recv(&mut frame).unwrap(), "all taken");
    assert_eq!(
        polls() - before,
        0,
        "a look that must not wait is the read or write alone"
    );
}

#[test]
fn a_try_send_that_finds_no_room_takes_nothing_and_keeps_its_number() {
    let (mut sender, mut receiver) = socket_pair();
    let payload = [7u8; 1024];
    let mut accepted = 0u64;
    while sender
        .try_send(message_type::DATA, flags::CHECKSUM, &payload)
        .unwrap()
    {
        accepted += 1;
        assert!(accepted < 100_000, "the socket never filled");
    }
    // Refused twice more: neither may use up a sequence number.
    for _ in 0..2 {
        assert!(
            !sender
                .try_send(message_type::DATA, flags::CHECKSUM, &payload)
                .unwrap()
        );
    }
    assert_eq!(sender.sent_sequence(), Some(accepted));
    let mut frame = Frame::default();
    for sequence in 1..=accepted {
        // The last frame may have gone in part: its end leaves with the
        // next send (or flush).
        if sequence == accepted {
            assert!(sender.try_flush().unwrap(), "room again after the reads");
        }
        receiver
            .recv_timeout(&mut frame, Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(frame.header.sequence, sequence);
    }
    assert!(
        sender
            .try_send(message_type::DATA, flags::CHECKSUM, b"next")
            .unwrap()
    );
    receiver
        .recv_timeout(&mut frame, Some(std::time::Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        (frame.header.sequence, frame.payload()),
        (accepted + 1, &b"next"[..]),
        "numbers follow on without a gap"
    );
}

/// A channel that writes into a pipe, and that pipe's read end.
fn pipe_writer() -> (StreamChannel, OwnedFd) {
    let (read_end, write_end) = rustix::pipe::pipe().unwrap();
    // Never written to: the channel only sends.
    let (replies, _unused) = rustix::pipe::pipe().unwrap();
    let channel = channel(StreamIo::Pair {
        read: replies,
        write: Some(write_end),
    });
    (channel, read_end)
}

/// A pipe channel whose reader is gone: it writes into a pipe with no read end.
fn readerless_pipe() -> StreamChannel {
    pipe_writer().0
}

fn shielded() -> u64 {
    SHIELDED.with(|n| n.get())
}

/// The child half of the next test: with SIGPIPE at its default (as in a
/// C program), every kind of send to a pipe whose reader is gone reports
/// the peer gone instead of ending the process.
#[test]
fn sigpipe_child() {
    if std::env::var_os("UTP_TEST_SIGPIPE_CHILD").is_none() {
        return;
    }
    // SAFETY: setting a signal's disposition to its default; this process
    // runs this one test alone.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    type Send = fn(&mut StreamChannel) -> crate::Result<()>;
    let sends: [(&str, Send); 3] = [
        ("try_send", |c| {
            c.try_send(message_type::DATA, flags::CHECKSUM, b"anyone?")
                .map(drop)
        }),
        ("send", |c| {
            c.send(message_type::DATA, flags::CHECKSUM, b"anyone?")
        }),
        ("send_timeout", |c| {
            c.send_timeout(
                message_type::DATA,
                flags::CHECKSUM,
                &[7; 100_000],
                Some(std::time::Duration::from_secs(5)),
            )
        }),
    ];
    for (name, send) in sends {
        let before = shielded();
        let sent = send(&mut readerless_pipe());
        assert!(
            matches!(sent, Err(crate::Error::PeerGone { .. })),
            "{name}: {sent:?}"
        );
        assert!(shielded() > before, "{name}: the write was shielded");
    }
}

#[test]
fn a_send_to_a_pipe_whose_reader_is_gone_raises_no_sigpipe() {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "transport::stream::tests::sigpipe_child"])
        .env("UTP_TEST_SIGPIPE_CHILD", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the child ended with {status:?}");
}

#[test]
fn where_sigpipe_is_ignored_a_pipe_is_written_without_a_poll_or_the_shield() {
    // The test harness ignores SIGPIPE, as every Rust program does.
    let mut gone = readerless_pipe();
    let sent = gone.send(message_type::DATA, flags::CHECKSUM, b"anyone?");
    assert!(
        matches!(sent, Err(crate::Error::PeerGone { .. })),
        "{sent:?}"
    );
    let (mut pipes, read_end) = pipe_writer();
    for _ in 0..10 {
        assert!(
            pipes
                .try_send(message_type::DATA, flags::CHECKSUM, b"x")
                .unwrap()
        );
    }
    pipes
        .send(message_type::DATA, flags::CHECKSUM, b"y")
        .unwrap();
    drop(read_end);
    assert_eq!(shielded(), 0, "no signal mask changed");
    assert_eq!(polls(), 0, "a pipe's try_send is the write alone");
}

fn writes() -> u64 {
    super::io::WRITES.with(|n| n.get())
}

fn clock_reads() -> u64 {
    crate::frame::CLOCK_READS.with(|n| n.get())
}

/// Receives `count` frames from `receiver`: their payload lengths and
/// sequence numbers, in order.
fn received(receiver: &mut StreamChannel, count: usize) -> Vec<(usize, u64)> {
    let mut frame = Frame::default();
    (0..count)
        .map(|_| {
            receiver
                .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
                .unwrap();
            (frame.payload().len(), frame.header.sequence)
        })
        .collect()
}

/// A batch goes out in runs of up to 32 frames and 64 KiB, each run one
/// write stamped with one clock read, the frames numbered as sends number
/// them.
#[test]
fn a_batch_is_one_write_per_run() {
    let (mut sender, mut receiver) = socket_pair();
    let small = [5u8; 64];
    let (before, reads) = (writes(), clock_reads());
    sender
        .send_batch(message_type::DATA, flags::CHECKSUM, &[&small[..]; 20])
        .unwrap();
    assert_eq!(writes() - before, 1, "20 frames of 64 B: one write");
    assert_eq!(clock_reads() - reads, 1, "and one clock read");
    let expected: Vec<(usize, u64)> = (1..=20).map(|seq| (64, seq)).collect();
    assert_eq!(received(&mut receiver, 20), expected);

    let (before, reads) = (writes(), clock_reads());
    sender
        .send_batch(message_type::DATA, 0, &[&small[..]; 100])
        .unwrap();
    assert_eq!(writes() - before, 4, "100 frames: runs of 32, 32, 32 and 4");
    assert_eq!(clock_reads() - reads, 4, "one clock read a run");
    let expected: Vec<(usize, u64)> = (21..=120).map(|seq| (64, seq)).collect();
    assert_eq!(received(&mut receiver, 100), expected);

    // Twenty 1 KiB payloads: one run, put together in one buffer, each
    // frame's bytes arriving as they were.
    let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 1024]).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let before = writes();
    sender.send_batch(message_type::DATA, 0, &refs).unwrap();
    assert_eq!(writes() - before, 1, "20 frames of 1 KiB: one write");
    let mut frame = Frame::default();
    for (i, payload) in payloads.iter().enumerate() {
        receiver
            .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(frame.payload(), &payload[..], "frame {i}");
        assert_eq!(frame.header.sequence, 121 + i as u64);
    }

    let large = vec![6u8; 30 * 1024];
    let before = writes();
    sender
        .send_batch(message_type::DATA, 0, &[&large[..]; 3])
        .unwrap();
    assert_eq!(
        writes() - before,
        2,
        "two 30 KiB frames fill a run's 64 KiB"
    );
    let expected: Vec<(usize, u64)> = (141..=143).map(|seq| (30 * 1024, seq)).collect();
    assert_eq!(received(&mut receiver, 3), expected);
}

/// A payload over the limit ends a batch: the frames before it are
/// written (the run they began), the ones after it are not.
#[test]
fn a_batch_stops_at_a_payload_over_the_limit() {
    let (mut sender, mut receiver) = socket_pair();
    let limit = receiver.inbox.max_payload;
    let too_large = vec![0u8; limit + 1];
    let result = sender.send_batch(
        message_type::DATA,
        0,
        &[b"one", b"two", &too_large, b"four"],
    );
    match result {
        Err(Error::TooLarge { len, .. }) => assert_eq!(len, limit + 1),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(received(&mut receiver, 2), [(3, 1), (3, 2)]);
    let mut frame = Frame::default();
    assert!(!receiver.try_recv(&mut frame).unwrap(), "nothing after it");
    // The channel goes on, numbering on from the frames sent.
    sender.send(message_type::DATA, 0, b"five").unwrap();
    assert_eq!(received(&mut receiver, 1), [(4, 3)]);
}

/// Over a pipe too, a run is one write.
#[test]
fn a_batch_to_a_pipe_is_one_write_per_run() {
    let (mut sender, read) = pipe_writer();
    let payload = [1u8; 100];
    let before = writes();
    sender
        .send_batch(message_type::DATA, 0, &[&payload[..]; 10])
        .unwrap();
    assert_eq!(writes() - before, 1);
    let mut buf = vec![0u8; 4096];
    let n = rustix::io::read(&read, &mut buf).unwrap();
    assert_eq!(n, 10 * (HEADER_LEN + 100), "all ten frames in the pipe");
}

/// `try_send_batch` takes what fits, a run the socket takes in part whole
/// (its rest kept), then 0 with nothing numbered; every frame taken
/// arrives whole, in order, once the receiver reads.
#[test]
fn try_send_batch_takes_what_fits_and_never_cuts_a_frame() {
    let (mut sender, mut receiver) = socket_pair();
    let payload = vec![9u8; 8000];
    let batch = [&payload[..]; 16];
    let mut taken = 0u64;
    loop {
        let n = sender
            .try_send_batch(message_type::DATA, 0, &batch)
            .unwrap();
        if n == 0 {
            break;
        }
        taken += n as u64;
        assert!(taken < 10_000, "the socket never filled");
    }
    assert!(taken > 0);
    let mut frame = Frame::default();
    let mut received = 0u64;
    while received < taken {
        let _ = sender.try_flush().unwrap();
        while receiver.try_recv(&mut frame).unwrap() {
            received += 1;
            assert_eq!(frame.header.sequence, received);
            assert_eq!(frame.payload(), &payload[..], "frame {received} whole");
        }
    }
    assert_eq!(received, taken);
    // The call that found no room numbered nothing.
    sender.send(message_type::DATA, 0, b"after").unwrap();
    receiver
        .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(frame.header.sequence, taken + 1);
}
