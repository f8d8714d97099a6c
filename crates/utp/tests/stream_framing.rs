//! The stream engine under hostile timing: frames split at every byte,
//! timeouts in the middle of a frame, and large payloads.

use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;
use utp::Channel;
use utp::frame::{self, Frame, Header, flags, message_type};
use utp::transport::stream::{Framing, StreamChannel, StreamIo};

fn channel_and_raw_peer(framing: Framing) -> (StreamChannel, UnixStream) {
    let (a, b) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let channel = StreamChannel::new(
        StreamIo::Socket {
            fd: a,
            passes_fds: true,
        },
        framing,
        1 << 20,
        "socketpair".into(),
        Default::default(),
    );
    (channel, UnixStream::from(b))
}

/// A channel over two pipe ends, as `pipe:` and `fifo://` make them.
fn pipe_pair_channel(read: std::os::fd::OwnedFd, write: std::os::fd::OwnedFd) -> StreamChannel {
    StreamChannel::new(
        StreamIo::Pair {
            read,
            write: Some(write),
        },
        Framing::Utp,
        1 << 20,
        "pipe pair".into(),
        Default::default(),
    )
}

/// Frames numbered from 1 whose payloads have `sizes` and `pattern` bytes.
fn wire_of(sizes: &[usize]) -> Vec<u8> {
    let mut wire = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        wire.extend(frame::encode_to_vec(
            &Header::new(message_type::DATA, flags::CHECKSUM, i as u64 + 1, 0),
            &pattern(i, size),
        ));
    }
    wire
}

#[test]
fn frames_dribbled_one_byte_at_a_time_arrive_whole_despite_timeouts() {
    let (mut channel, mut peer) = channel_and_raw_peer(Framing::Utp);
    let mut wire = Vec::new();
    for i in 0..3u64 {
        let payload = format!("payload number {i}");
        wire.extend(frame::encode_to_vec(
            &Header::new(message_type::DATA, flags::CHECKSUM, i + 1, 0),
            payload.as_bytes(),
        ));
    }
    let writer = std::thread::spawn(move || {
        for byte in wire {
            peer.write_all(&[byte]).unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
        peer
    });
    let mut frame = Frame::default();
    let mut timeouts = 0;
    for i in 0..3u64 {
        loop {
            match channel.recv_timeout(&mut frame, Some(Duration::from_millis(2))) {
                Ok(()) => break,
                Err(e) if e.is_timeout() => timeouts += 1,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(frame.header.sequence, i + 1);
        assert_eq!(frame.payload(), format!("payload number {i}").as_bytes());
    }
    assert!(
        timeouts > 0,
        "the test should have timed out mid-frame at least once"
    );
    drop(writer.join().unwrap());
}

#[test]
fn a_one_mib_payload_round_trips_and_one_byte_more_is_refused() {
    let (mut channel, peer) = channel_and_raw_peer(Framing::Utp);
    let mut other = StreamChannel::new(
        StreamIo::Socket {
            fd: peer.into(),
            passes_fds: true,
        },
        Framing::Utp,
        // The sender accepts 2 MiB, so it sends what the receiver refuses.
        2 << 20,
        "peer".into(),
        Default::default(),
    );
    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let sender = std::thread::spawn(move || {
        other
            .send(message_type::DATA, flags::CHECKSUM, &big)
            .unwrap();
        // Over its own limit, the sender refuses at once and names the option.
        let refused = other
            .send(message_type::DATA, 0, &vec![0u8; (2 << 20) + 1])
            .unwrap_err();
        assert!(refused.to_string().contains("max_payload"), "{refused}");
        // The receiver stops reading after this header, so the send may fail.
        let _ = other.send(message_type::DATA, 0, &vec![0u8; (1 << 20) + 1]);
    });
    let mut frame = Frame::default();
    channel.recv(&mut frame).unwrap();
    assert_eq!(frame.payload().len(), 1 << 20);
    assert!(
        frame
            .payload()
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8)
    );
    let error = channel.recv(&mut frame).unwrap_err();
    assert!(error.to_string().contains("exceeds the limit"), "{error}");
    // The stream is out of step now: later calls say so instead of misreading.
    let again = channel.recv(&mut frame).unwrap_err();
    assert!(again.to_string().contains("out of step"), "{again}");
    drop(channel);
    sender.join().unwrap();
}

#[test]
fn a_corrupted_payload_is_a_checksum_error() {
    let (mut channel, mut peer) = channel_and_raw_peer(Framing::Utp);
    let mut wire = frame::encode_to_vec(&Header::new(1, flags::CHECKSUM, 1, 0), b"important");
    wire[35] ^= 0x20;
    peer.write_all(&wire).unwrap();
    let error = channel.recv(&mut Frame::default()).unwrap_err();
    assert!(error.to_string().contains("checksum mismatch"), "{error}");
}

#[test]
fn the_peer_closing_mid_frame_is_peer_gone_with_progress() {
    let (mut channel, mut peer) = channel_and_raw_peer(Framing::Utp);
    let wire = frame::encode_to_vec(&Header::new(1, flags::CHECKSUM, 1, 0), &[7u8; 100]);
    peer.write_all(&wire[..60]).unwrap();
    drop(peer);
    let error = channel.recv(&mut Frame::default()).unwrap_err();
    assert!(error.is_peer_gone(), "{error}");
    assert!(error.to_string().contains("middle of a frame"), "{error}");
}

#[test]
fn detection_picks_the_tutorial_framing_and_replies_in_kind() {
    let (mut channel, mut peer) = channel_and_raw_peer(Framing::Detect);
    peer.write_all(&9u32.to_le_bytes()).unwrap();
    peer.write_all(b"ADD 10 20").unwrap();
    let mut frame = Frame::default();
    channel.recv(&mut frame).unwrap();
    assert_eq!(frame.message_type(), message_type::REQUEST);
    assert_eq!(frame.payload(), b"ADD 10 20");
    channel
        .send(message_type::RESPONSE, flags::CHECKSUM, b"OK 30")
        .unwrap();
    channel
        .send(message_type::ERROR, flags::CHECKSUM, b"nope")
        .unwrap();
    let mut reply = [0u8; 4 + 5 + 4 + 8];
    std::io::Read::read_exact(&mut peer, &mut reply).unwrap();
    assert_eq!(&reply[..9], b"\x05\x00\x00\x00OK 30");
    assert_eq!(&reply[9..], b"\x08\x00\x00\x00ERR nope");
}

#[test]
fn file_descriptors_travel_with_a_frame() {
    let (a, b) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let wrap = |fd| {
        StreamChannel::new(
            StreamIo::Socket {
                fd,
                passes_fds: true,
            },
            Framing::Utp,
            1 << 20,
            "pair".into(),
            Default::default(),
        )
    };
    let (mut sender, mut receiver) = (wrap(a), wrap(b));
    let (read_end, write_end) = rustix::pipe::pipe().unwrap();
    sender
        .send_with_fds(
            message_type::DATA,
            flags::CHECKSUM,
            b"here is a pipe",
            &[std::os::fd::AsFd::as_fd(&write_end)],
            None,
        )
        .unwrap();
    drop(write_end);
    let mut frame = Frame::default();
    receiver.recv(&mut frame).unwrap();
    assert_eq!(frame.payload(), b"here is a pipe");
    let fds = receiver.take_fds();
    assert_eq!(fds.len(), 1);
    let mut passed = std::fs::File::from(fds.into_iter().next().unwrap());
    passed.write_all(b"through the passed fd").unwrap();
    drop(passed);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(read_end), &mut text).unwrap();
    assert_eq!(text, "through the passed fd");
}

/// Frames up to 512 bytes go out as one copied buffer, larger ones as a
/// vectored write, and on a pipe a frame of more than 64 KiB of payload in
/// pieces: every size around either boundary must reach the peer as
/// exactly the frame's bytes, over a socket (send) and a pipe pair (write).
#[test]
fn frames_on_both_sides_of_the_one_write_boundary_arrive_intact() {
    let sizes = [
        0usize,
        1,
        64,
        479,
        480,
        481,
        1000,
        65_535,
        65_536,
        65_537,
        70_000,
        1 << 20,
    ];
    let (mut channel, mut peer) = channel_and_raw_peer(Framing::Utp);
    let (pipe_read, pipe_write) = std::io::pipe().unwrap();
    let (unused_read, _unused_write) = std::io::pipe().unwrap();
    let mut pair = pipe_pair_channel(unused_read.into(), pipe_write.into());
    let reader = std::thread::spawn(move || {
        let mut pipe_read = pipe_read;
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut pipe_read, &mut got).unwrap();
        got
    });
    let socket_reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        for &size in &sizes {
            let mut wire = vec![0u8; frame::HEADER_LEN + size];
            std::io::Read::read_exact(&mut peer, &mut wire).unwrap();
            got.push(wire);
        }
        got
    });
    for &size in &sizes {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
        channel
            .send(message_type::DATA, flags::CHECKSUM, &payload)
            .unwrap();
        pair.send(message_type::DATA, flags::CHECKSUM, &payload)
            .unwrap();
    }
    drop(pair);
    let from_pipe = reader.join().unwrap();
    let from_socket = socket_reader.join().unwrap();
    let mut at = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let payload: Vec<u8> = (0..size).map(|j| (j * 7 + size) as u8).collect();
        for wire in [
            &from_socket[i][..],
            &from_pipe[at..at + frame::HEADER_LEN + size],
        ] {
            // `decode` checks the header and the checksum over header and payload.
            let (header, body) = frame::decode(wire, 1 << 20).unwrap();
            assert_eq!(header.payload_length as usize, size);
            assert_eq!(header.sequence, i as u64 + 1);
            assert_eq!(body, &payload[..], "payload of {size} bytes");
        }
        at += frame::HEADER_LEN + size;
    }
    assert_eq!(at, from_pipe.len(), "nothing more on the pipe");
}

/// The frame clock starts when part of a frame has arrived and the rest must
/// be waited for (not when a whole frame is found in the buffer): a frame
/// whose header came with a whole frame before it, and whose payload never
/// comes, still fails at the frame deadline on an untimed receive.
#[test]
fn a_frame_cut_after_a_whole_one_fails_at_the_frame_deadline() {
    let (channel, mut peer) = channel_and_raw_peer(Framing::Utp);
    let options = utp::Options::default().with_frame_timeout(Duration::from_millis(300));
    let mut channel = channel.with_deadlines(&options);
    let whole = frame::encode_to_vec(&Header::new(1, flags::CHECKSUM, 1, 0), b"first");
    let cut = frame::encode_to_vec(&Header::new(1, flags::CHECKSUM, 2, 0), &[9u8; 100]);
    let mut wire = whole.clone();
    wire.extend_from_slice(&cut[..frame::HEADER_LEN + 10]);
    peer.write_all(&wire).unwrap();
    let mut frame = Frame::default();
    channel.recv(&mut frame).unwrap();
    assert_eq!(frame.payload(), b"first");
    let started = std::time::Instant::now();
    let error = channel.recv(&mut frame).unwrap_err();
    let took = started.elapsed();
    assert!(!error.is_timeout() && !error.is_peer_gone(), "{error}");
    assert!(error.to_string().contains("frame deadline"), "{error}");
    // 300 ms: not before it; the upper bound is generous for a loaded machine.
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    drop(peer);
}

fn pattern(frame_number: usize, size: usize) -> Vec<u8> {
    (0..size).map(|j| (j * 31 + frame_number) as u8).collect()
}

/// After a large frame the reader takes the next header and the start of
/// its payload in one read, the payload straight into the vector the
/// caller's frame handed back (sockets), or reads no further than the end
/// of a frame the size of the last (pipes; frames larger than its buffer
/// pass through it in pieces). Whatever follows a large frame (a larger or
/// smaller one, an empty one, tiny ones packed behind its header, one just
/// at the threshold) must arrive exactly, over a socket and over a pipe;
/// the receiver lags, so each read finds several frames waiting. The same
/// holds for frames lent (`recv_ref`), and for lent and owned receives
/// taking turns.
#[test]
fn frames_after_large_ones_arrive_exactly_whatever_their_sizes() {
    let sizes = [
        40_000usize,
        300_000,
        30_000,
        20_000,
        0,
        100,
        17_000,
        50_000,
        5,
        1,
        2,
        16_384,
        70_000,
        3,
        20_000,
        16_383,
        60_000,
    ];
    let wire = wire_of(&sizes);
    for (over_pipe, lend) in [false, true].into_iter().flat_map(|pipe| {
        [
            (pipe, Lend::Never),
            (pipe, Lend::Always),
            (pipe, Lend::Alternately),
        ]
    }) {
        let (mut channel, writer): (StreamChannel, Box<dyn Write + Send>) = if over_pipe {
            let (read, write) = std::io::pipe().unwrap();
            let (_, unused_write) = std::io::pipe().unwrap();
            let channel = pipe_pair_channel(read.into(), unused_write.into());
            (channel, Box::new(write))
        } else {
            let (channel, peer) = channel_and_raw_peer(Framing::Utp);
            (channel, Box::new(peer))
        };
        let bytes = wire.clone();
        let writer = std::thread::spawn(move || {
            let mut writer = writer;
            writer.write_all(&bytes).unwrap();
            writer
        });
        // One frame reused throughout, as a receive loop would.
        let mut frame = Frame::default();
        for (i, &size) in sizes.iter().enumerate() {
            std::thread::sleep(Duration::from_millis(2));
            let ten = Some(Duration::from_secs(10));
            let (sequence, same) = if lend.at(i) {
                let lent = channel.recv_ref(&mut frame, ten).unwrap();
                (lent.header.sequence, lent.payload == pattern(i, size))
            } else {
                channel.recv_timeout(&mut frame, ten).unwrap();
                (frame.header.sequence, frame.payload() == pattern(i, size))
            };
            let case = format!("frame {i} ({size} bytes), pipe: {over_pipe}, {lend:?}");
            assert_eq!(sequence, i as u64 + 1, "{case}");
            assert!(same, "{case} differs");
        }
        drop(writer.join().unwrap());
        let end = channel.recv_ref(&mut frame, Some(Duration::from_secs(10)));
        assert!(end.unwrap_err().is_peer_gone(), "pipe: {over_pipe}");
    }
}

/// Which receives of a test lend their frame (`recv_ref`) rather than copy it.
#[derive(Clone, Copy, Debug)]
enum Lend {
    Never,
    Always,
    Alternately,
}

impl Lend {
    fn at(self, i: usize) -> bool {
        match self {
            Lend::Never => false,
            Lend::Always => true,
            Lend::Alternately => i % 2 == 1,
        }
    }
}

/// A lent frame is the stream's own memory: frames whole in the read
/// buffer, and large ones read straight into the reader's vector, never
/// pass through the spare frame, which stays empty; an owned receive after
/// them takes the next frame as ever.
#[test]
fn a_lent_frame_is_never_copied_into_the_spare() {
    let sizes = [64usize, 1000, 0, 40_000, 7, 100_000, 3];
    let (mut channel, mut peer) = channel_and_raw_peer(Framing::Utp);
    let mut wire = wire_of(&sizes);
    wire.extend(frame::encode_to_vec(
        &Header::new(
            message_type::DATA,
            flags::CHECKSUM,
            sizes.len() as u64 + 1,
            0,
        ),
        b"owned",
    ));
    let writer = std::thread::spawn(move || {
        peer.write_all(&wire).unwrap();
        peer
    });
    let mut spare = Frame::default();
    for (i, &size) in sizes.iter().enumerate() {
        let lent = channel
            .recv_ref(&mut spare, Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(lent.header.sequence, i as u64 + 1);
        assert_eq!(lent.header.payload_length as usize, size);
        assert!(lent.payload == pattern(i, size), "frame {i} differs");
        assert_eq!(
            spare.payload_mut().capacity(),
            0,
            "frame {i} went through the spare"
        );
    }
    channel
        .recv_timeout(&mut spare, Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(spare.payload(), b"owned");
    drop(writer.join().unwrap());
}

/// Lent receives cut short by timeouts lose nothing, and a lent frame's
/// checksum is checked before it is lent: a corrupted one is an error, and
/// the stream is refused from then on.
#[test]
fn lent_receives_survive_timeouts_and_refuse_a_bad_checksum() {
    let (mut channel, mut peer) = channel_and_raw_peer(Framing::Utp);
    let mut wire = wire_of(&[30, 2_000, 20_000]);
    let mut bad = frame::encode_to_vec(&Header::new(1, flags::CHECKSUM, 4, 0), b"important");
    bad[35] ^= 0x20;
    wire.extend(bad);
    let writer = std::thread::spawn(move || {
        for piece in wire.chunks(997) {
            peer.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        peer
    });
    let mut spare = Frame::default();
    let mut timeouts = 0;
    for (i, size) in [30usize, 2_000, 20_000].into_iter().enumerate() {
        loop {
            match channel.recv_ref(&mut spare, Some(Duration::from_micros(300))) {
                Ok(lent) => {
                    assert_eq!(lent.header.sequence, i as u64 + 1);
                    assert!(lent.payload == pattern(i, size), "frame {i} differs");
                    break;
                }
                Err(e) if e.is_timeout() => timeouts += 1,
                Err(e) => panic!("frame {i}: {e}"),
            }
        }
    }
    assert!(timeouts > 0, "no receive was cut short by its timeout");
    let error = channel
        .recv_ref(&mut spare, Some(Duration::from_secs(10)))
        .unwrap_err();
    assert!(error.to_string().contains("checksum mismatch"), "{error}");
    let again = channel.try_recv_ref(&mut spare).unwrap_err();
    assert!(again.to_string().contains("out of step"), "{again}");
    drop(writer.join().unwrap());
}

/// A header read together with the start of its payload is checked like
/// any other: garbage after a large frame is an error, never a panic or a
/// frame, and the stream stays refused.
#[test]
fn garbage_after_a_large_frame_is_refused() {
    let (mut channel, mut peer) = channel_and_raw_peer(Framing::Utp);
    let mut wire = frame::encode_to_vec(
        &Header::new(message_type::DATA, flags::CHECKSUM, 1, 0),
        &pattern(0, 40_000),
    );
    wire.extend(frame::encode_to_vec(
        &Header::new(message_type::DATA, flags::CHECKSUM, 2, 0),
        &pattern(1, 30_000),
    ));
    wire.extend_from_slice(&[0xAB; 20_000]);
    let writer = std::thread::spawn(move || {
        peer.write_all(&wire).unwrap();
        peer
    });
    let mut frame = Frame::default();
    for i in 0..2 {
        std::thread::sleep(Duration::from_millis(20));
        channel.recv(&mut frame).unwrap();
        assert!(frame.payload() == pattern(i, frame.payload().len()));
    }
    let error = channel.recv(&mut frame).unwrap_err();
    assert!(!error.is_timeout() && !error.is_peer_gone(), "{error}");
    let again = channel.recv(&mut frame).unwrap_err();
    assert!(again.to_string().contains("out of step"), "{again}");
    drop(writer.join().unwrap());
}

/// Memory follows the bytes, not the header: a header announcing a
/// megabyte, followed by 100 bytes, costs the reader about what arrived.
#[test]
fn a_header_announcing_a_megabyte_costs_only_the_bytes_that_came() {
    let (channel, mut peer) = channel_and_raw_peer(Framing::Utp);
    let mut channel = channel;
    let whole = frame::encode_to_vec(
        &Header::new(message_type::DATA, flags::CHECKSUM, 1, 0),
        &vec![1u8; 1 << 20],
    );
    peer.write_all(&whole[..frame::HEADER_LEN + 100]).unwrap();
    let mut frame = Frame::default();
    let error = channel
        .recv_timeout(&mut frame, Some(Duration::from_millis(50)))
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    let held = channel.buffered_capacity();
    assert!(held < 64 * 1024, "{held} bytes held for 132 received");
    // The rest arrives: the frame is whole.
    let writer = std::thread::spawn(move || {
        peer.write_all(&whole[frame::HEADER_LEN + 100..]).unwrap();
        peer
    });
    channel
        .recv_timeout(&mut frame, Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(frame.payload().len(), 1 << 20);
    drop(writer.join().unwrap());
}

/// A reader that has fallen behind a run of small frames takes what the
/// socket holds in few, large reads: its buffer grows past the old 68 KiB
/// (to what a Unix socket holds by default, about 200 KiB) but never past
/// its cap, and every frame arrives whole and in order.
#[test]
fn a_reader_behind_small_frames_grows_its_buffer_to_its_cap_and_no_further() {
    let (mut channel, mut peer) = channel_and_raw_peer(Framing::Utp);
    const FRAMES: u64 = 2048;
    let payload = |i: u64| vec![(i % 251) as u8; 1024];
    let writer = std::thread::spawn(move || {
        let mut stream = Vec::new();
        for i in 0..FRAMES {
            let header = Header::new(message_type::DATA, 0, i + 1, 0);
            stream.extend(frame::encode_to_vec(&header, &payload(i)));
        }
        peer.write_all(&stream).unwrap();
        peer
    });
    // The writer fills the socket before the first read.
    std::thread::sleep(Duration::from_millis(100));
    let mut frame = Frame::default();
    let mut largest = 0;
    for i in 0..FRAMES {
        channel
            .recv_timeout(&mut frame, Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(frame.header.sequence, i + 1);
        assert!(frame.payload() == payload(i), "frame {i}");
        largest = largest.max(channel.buffered_capacity());
    }
    assert!(largest > 128 * 1024, "the buffer stayed at {largest} bytes");
    // The buffer at its largest (the read room and the 64 bytes it may
    // skip to start on a cache line) and the reader's payload vector
    // (one 1 KiB payload, with room to spare).
    let cap = utp::__bench::STREAM_READ_ROOM + 64 + 2 * 1024;
    assert!(largest <= cap, "{largest} bytes held, over {cap}");
    drop(writer.join().unwrap());
}

/// A pipe's reader and writer share one lock in the kernel, so a reader that
/// empties the pipe in one long copy stalls the writer: over a pipe, utp
/// reads whole frames the size of the last, as many as fit in a page when
/// eight or more do (a batch of small frames in one read), one otherwise.
/// What it has not asked for stays in the pipe, where `FIONREAD` counts it.
#[test]
fn a_pipe_reader_takes_small_frames_a_page_at_a_time_larger_ones_one_at_a_time() {
    let (read, mut write) = std::io::pipe().unwrap();
    let watch: std::os::fd::OwnedFd = read.try_clone().unwrap().into();
    let (_, unused_write) = std::io::pipe().unwrap();
    let mut channel = pipe_pair_channel(read.into(), unused_write.into());
    let in_pipe = || rustix::io::ioctl_fionread(&watch).unwrap() as usize;
    let mut frame = Frame::default();
    // Writes frames of `sizes`, receives the first of them, and returns
    // what is still in the pipe; then receives the rest.
    let mut batch = |sizes: &[usize]| {
        write.write_all(&wire_of(sizes)).unwrap();
        let mut left_after_first = 0;
        for (i, &size) in sizes.iter().enumerate() {
            channel.recv(&mut frame).unwrap();
            assert!(
                frame.payload() == pattern(i, size),
                "frame {i} of {sizes:?}"
            );
            if i == 0 {
                left_after_first = in_pipe();
            }
        }
        assert_eq!(in_pipe(), 0, "{sizes:?}");
        left_after_first
    };
    // One frame of 100 bytes sets the guess; then three of them (132
    // bytes each, 31 fit in a page) come in one read.
    batch(&[100]);
    assert_eq!(batch(&[100, 100, 100]), 0);
    // Frames of 1000 bytes (1032: fewer than eight fit): the first is read
    // as far as the buffer goes and then to its end, the next exactly.
    assert_eq!(batch(&[1000, 1000]), 1032);
    assert_eq!(batch(&[1000, 1000, 1000]), 2 * 1032);
    // Smaller frames after larger ones: the read asks for 1032 bytes and
    // takes both 72-byte frames.
    assert_eq!(batch(&[40, 40]), 0);
}
