//! When a link demotes what it sends (`crate::demote`): a small record
//! sent right after a receive, nothing else; what a handshake turns on;
//! how its wake-up bytes are drained; what a batch stamps and counts.

use super::{ShmLink, Side, WaitMode};
use crate::channel::Channel;
use crate::frame::{Frame, message_type};
use crate::shm::layout::{self, Control};
use crate::shm::region::{Location, Region};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Two ends of one link over a POSIX region of 64 KiB rings, its name
/// removed at once.
fn pair() -> (ShmLink, ShmLink) {
    pair_with(64 * 1024)
}

/// [`pair`] with rings of `cap` bytes.
fn pair_with(cap: usize) -> (ShmLink, ShmLink) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "/utp.{}.{}.demote",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let len = layout::region_len(cap).unwrap();
    let server_region = Region::create(Location::Posix(name.clone()), len).unwrap();
    // SAFETY: the region maps `len` page-aligned bytes and outlives the
    // control view (a temporary dropped at the end of the statement).
    unsafe { Control::new(std::ptr::NonNull::new(server_region.as_ptr()).unwrap()) }.init(
        len,
        cap,
        1,
        [0, 0],
    );
    let client_region = Region::open(Location::Posix(name), len).unwrap();
    server_region.remove();
    let server = ShmLink::over_region(server_region, Side::Server, WaitMode::Spin, cap).unwrap();
    let client = ShmLink::over_region(client_region, Side::Client, WaitMode::Spin, cap).unwrap();
    (server, client)
}

fn send(link: &mut ShmLink, len: usize) {
    link.send(message_type::DATA, 0, &vec![7u8; len]).unwrap();
}

fn recv(link: &mut ShmLink, frame: &mut Frame) {
    link.recv(frame).unwrap();
}

#[test]
fn an_answer_is_demoted_and_a_stream_is_not() {
    let (mut server, mut client) = pair();
    let mut frame = Frame::default();
    // The client opens: nothing received yet, so nothing demoted.
    send(&mut client, 64);
    assert_eq!(client.demoted, 0);
    // The server answers what it received.
    recv(&mut server, &mut frame);
    send(&mut server, 64);
    assert_eq!(server.demoted, 1);
    // The client answers the answer, at the largest size demoted.
    recv(&mut client, &mut frame);
    send(&mut client, 4096);
    assert_eq!(client.demoted, 1);
    // The server streams: only the first send follows a receive.
    recv(&mut server, &mut frame);
    for _ in 0..5 {
        send(&mut server, 64);
    }
    assert_eq!(server.demoted, 2);
    for _ in 0..5 {
        recv(&mut client, &mut frame);
    }
    send(&mut client, 8);
    assert_eq!(client.demoted, 2);
    // A receive through the zero-copy view counts as a receive too.
    send(&mut server, 8);
    drop(client.recv_view(None).unwrap());
    send(&mut client, 8);
    assert_eq!(client.demoted, 3);
}

/// A stream's records ask for the lines of later ones (`claim::ahead`);
/// an answer does not, so a round trip's lines change hands only as the
/// peer reads them.
#[test]
fn a_stream_asks_ahead_and_an_answer_does_not() {
    let (mut server, mut client) = pair();
    let mut frame = Frame::default();
    for _ in 0..3 {
        send(&mut client, 64);
    }
    assert_eq!(client.asked_ahead, 3);
    recv(&mut server, &mut frame);
    send(&mut server, 64);
    assert_eq!(server.asked_ahead, 0, "an answer");
    send(&mut server, 64);
    assert_eq!(server.asked_ahead, 1, "the stream goes on");
    recv(&mut client, &mut frame);
    send(&mut client, 4096);
    assert_eq!(client.asked_ahead, 3, "an answer of any size");
}

#[test]
fn a_large_answer_is_not_demoted() {
    let (mut server, mut client) = pair();
    let mut frame = Frame::default();
    send(&mut client, 8);
    recv(&mut server, &mut frame);
    // One byte over the largest payload demoted (its record is 4160 bytes).
    send(&mut server, 4121);
    assert_eq!(server.demoted, 0);
    recv(&mut client, &mut frame);
    assert_eq!(frame.payload().len(), 4121);
    assert!(frame.payload().iter().all(|&b| b == 7));
}

#[test]
fn the_limit_is_the_record_of_a_4_kib_payload() {
    use crate::demote::RECORD_UP_TO;
    use crate::shm::ring::record_len;
    assert_eq!(record_len(4096), Some(RECORD_UP_TO));
    // The same record holds a few more bytes (the padding of a 4 KiB one).
    assert_eq!(record_len(4120), Some(RECORD_UP_TO));
    assert!(record_len(4121).unwrap() > RECORD_UP_TO);
    // The raw mailbox baseline demotes by payload length: the same bound.
    assert_eq!(crate::__bench::SHM_DEMOTE_PAYLOAD_UP_TO, 4120);
}

/// Server and client ends of a link made by a real handshake over
/// `shm://utp-NAME-PID`.
fn handshake_pair(name: &str) -> (ShmLink, ShmLink) {
    let url = format!("shm://utp-{name}-{}", std::process::id());
    let mut listener = crate::listen(&url).unwrap();
    let connecting = std::thread::spawn({
        let url = url.clone();
        move || crate::connect(&url).unwrap()
    });
    let server = listener.accept().unwrap();
    let client = connecting.join().unwrap();
    let link = |channel: Box<dyn Channel>| channel.downcast::<ShmLink>().expect("an shm link");
    (link(server), link(client))
}

/// Both ends of a link made by a handshake agree to records in pieces;
/// a link over a pre-arranged region does only when told to.
#[test]
fn a_handshake_agrees_to_pieces_on_both_ends() {
    let (server, client) = handshake_pair("pieces-agree");
    for (end, link) in [("server", server), ("client", client)] {
        assert!(link.tx.pieces() && link.rx.pieces(), "{end}");
    }
    let (mut server, client) = pair();
    assert!(!server.tx.pieces() && !server.rx.pieces() && !client.tx.pieces());
    server.agree_to(crate::shm::rendezvous::FEATURE_PIECES);
    assert!(server.tx.pieces() && server.rx.pieces());
}

/// The ring-0 stamp word at the start of the data area, as stored.
fn first_stamp_word(link: &ShmLink) -> u64 {
    // SAFETY: the region maps DATA_OFFSET + 2 * capacity bytes; the word is
    // 8-aligned and read with one atomic load while the region lives.
    let word =
        unsafe { crate::shm::sync::atomic_u64_at(link.region().as_ptr().add(layout::DATA_OFFSET)) };
    // SAFETY: as above.
    unsafe { word.as_ref() }.load(std::sync::atomic::Ordering::Acquire)
}

/// A handshake gives each ring a key of its own that both of its ends
/// use, and a consumer with keyed stamps leaves what it read in place: the
/// first record's stamp is still there, keyed, after it was given back. A
/// link over a pre-arranged region keeps the zeroing.
#[test]
fn a_handshake_agrees_to_keyed_stamps_and_nothing_is_zeroed() {
    let (mut server, mut client) = handshake_pair("keyed-agree");
    let ring0 = server
        .tx
        .stamp_key()
        .expect("the server writes keyed stamps");
    let ring1 = server.rx.stamp_key().expect("and reads them");
    assert_ne!(ring0, ring1);
    assert_eq!(client.rx.stamp_key(), Some(ring0));
    assert_eq!(client.tx.stamp_key(), Some(ring1));
    let mut frame = Frame::default();
    send(&mut server, 8);
    recv(&mut client, &mut frame);
    client.flush_received();
    assert_eq!(client.rx.pending(), 0, "given back");
    // A 64-byte record ending at position 64.
    assert_eq!(first_stamp_word(&client), 64 ^ ring0);

    let (mut server, mut client) = pair();
    assert_eq!((server.tx.stamp_key(), client.rx.stamp_key()), (None, None));
    send(&mut server, 8);
    recv(&mut client, &mut frame);
    client.flush_received();
    assert_eq!(first_stamp_word(&client), 0, "zeroed when given back");
}

/// The frames and bytes side `side` has sent, as `utp inspect` reads them
/// from the counters line.
fn counts(link: &ShmLink, side: Side) -> (u64, u64) {
    use crate::shm::layout::SideField;
    let c = &link.control;
    let load = |field| {
        c.side_u64(side as usize, field)
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    (load(SideField::Messages), load(SideField::Bytes))
}

/// The write position the server's ring (ring 0) shows in its `tail` word.
fn server_ring_tail(link: &ShmLink) -> u64 {
    link.control.ring_indices(0).snapshot().1
}

/// A side's counts, and its ring's write position, reach shared memory
/// with a heartbeat, before a wait and at close (not with every frame).
#[test]
fn the_counts_inspect_reads_catch_up_at_a_heartbeat_a_wait_and_the_close() {
    let (mut server, client) = pair();
    let mut frame = Frame::default();
    // An 8-byte payload makes a 64-byte record.
    for _ in 0..3 {
        send(&mut server, 8);
    }
    assert_eq!(server_ring_tail(&client), 0, "not with every frame");
    server.heartbeat();
    assert_eq!(counts(&client, Side::Server), (3, 3 * 64));
    assert_eq!(server_ring_tail(&client), 3 * 64);
    send(&mut server, 8);
    let nothing = server.recv_timeout(&mut frame, Some(std::time::Duration::from_millis(1)));
    assert!(
        matches!(nothing, Err(crate::Error::Timeout { .. })),
        "{nothing:?}"
    );
    assert_eq!(counts(&client, Side::Server), (4, 4 * 64));
    assert_eq!(server_ring_tail(&client), 4 * 64);
    send(&mut server, 8);
    server.close().unwrap();
    assert_eq!(counts(&client, Side::Server), (5, 5 * 64));
    assert_eq!(server_ring_tail(&client), 5 * 64);
}

/// Of a split link, the send half keeps the counts; the receive half,
/// which sends nothing, never writes its stale copy over them.
#[test]
fn the_receive_half_of_a_split_link_leaves_the_counts_alone() {
    let (server, client) = pair();
    let (mut sending, mut receiving) = Box::new(server).split().unwrap();
    let mut frame = Frame::default();
    sending.send(message_type::DATA, 0, &[7u8; 8]).unwrap();
    // More than a wait slice later (on the coarse clock, a few ticks), the
    // next send carries a heartbeat, which stores the counts.
    std::thread::sleep(std::time::Duration::from_millis(40));
    sending.send(message_type::DATA, 0, &[7u8; 8]).unwrap();
    assert_eq!(counts(&client, Side::Server), (2, 2 * 64));
    // The receive half waits (a wait stores the counts of a whole link).
    let nothing = receiving.recv_timeout(&mut frame, Some(std::time::Duration::from_millis(1)));
    assert!(
        matches!(nothing, Err(crate::Error::Timeout { .. })),
        "{nothing:?}"
    );
    assert_eq!(counts(&client, Side::Server), (2, 2 * 64));
    receiving.close().unwrap();
    sending.close().unwrap();
    assert_eq!(counts(&client, Side::Server), (2, 2 * 64));
}

/// The bytes a side shows are the lengths of its records, taken from its
/// ring's position less the padding published at the wrap.
#[test]
fn the_bytes_shown_leave_out_the_padding_at_the_wrap() {
    use crate::shm::ring::record_len;
    let (mut server, mut client) = pair();
    let mut frame = Frame::default();
    // 5000-byte payloads (5056-byte records) do not divide the 64 KiB
    // ring: sending 40 of them, each read at once, wraps it three times,
    // each time behind padding.
    let rec = record_len(5000).unwrap() as u64;
    for _ in 0..40 {
        send(&mut server, 5000);
        recv(&mut client, &mut frame);
    }
    server.flush_counts();
    assert!(
        server.tx.record_bytes() < server_ring_tail(&client),
        "the ring wrapped behind padding"
    );
    assert_eq!(counts(&client, Side::Server), (40, 40 * rec));
}

/// A receive that finds nothing and drains the wake-up bytes already sent
/// (to ask for the next one) reads the link's socket once: a read that
/// came back short emptied it.
#[test]
fn a_drain_that_empties_the_socket_reads_once() {
    use super::events::DRAINING_READS;
    let reads = || DRAINING_READS.with(|n| n.get());
    let (mut server, mut client) = handshake_pair("drain-once");
    assert!(
        server.readiness().is_some(),
        "the handshake agreed to wake-ups"
    );
    let mut frame = Frame::default();
    assert!(!server.try_recv(&mut frame).unwrap(), "armed");
    // The client publishes to an armed reader: a wake-up byte follows.
    send(&mut client, 64);
    assert!(server.try_recv(&mut frame).unwrap());
    let before = reads();
    assert!(!server.try_recv(&mut frame).unwrap(), "armed again");
    assert_eq!(reads() - before, 1, "the byte, and no read after it");
    let before = reads();
    assert!(!server.try_recv(&mut frame).unwrap());
    assert_eq!(reads() - before, 1, "an empty socket: one read");
}

/// A batch's frames arrive whole and in order, numbered one after the
/// other like single sends, all stamped by one clock read.
#[test]
fn a_batch_is_numbered_like_sends_and_stamped_once() {
    let (mut server, mut client) = pair();
    let payloads: Vec<Vec<u8>> = [0, 1, 64, 1000, 4000]
        .iter()
        .map(|&len| (0..len).map(|i| (i % 251) as u8).collect())
        .collect();
    let batch: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let before = crate::frame::coarse_micros();
    client
        .send_batch(message_type::DATA, crate::frame::flags::CHECKSUM, &batch)
        .unwrap();
    assert_eq!(client.batch_clock_reads, 1);
    let mut frame = Frame::default();
    let mut stamps = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        // The receive verifies each frame's checksum.
        recv(&mut server, &mut frame);
        assert_eq!(frame.payload(), payload.as_slice(), "frame {i}");
        assert_eq!(frame.header.sequence, i as u64 + 1);
        assert!(frame.header.has_checksum());
        stamps.push(frame.header.timestamp_us);
    }
    assert!(stamps.iter().all(|&t| t == stamps[0]), "{stamps:?}");
    // The coarse clock is read after `before`: the same tick or a later one.
    assert!(stamps[0] >= before && stamps[0] - before < 1_000_000);
    // A send after the batch goes on with the numbering.
    send(&mut client, 8);
    recv(&mut server, &mut frame);
    assert_eq!(frame.header.sequence, 6);
    // An empty batch sends nothing and reads no clock.
    client.send_batch(message_type::DATA, 0, &[]).unwrap();
    assert_eq!(client.batch_clock_reads, 1);
    assert!(!server.try_recv(&mut frame).unwrap());
}

/// One clock read stamps at most 64 frames, or the frames that hold the
/// first 64 KiB of payload (the last of them may end past it).
#[test]
fn a_long_batch_reads_the_clock_again() {
    let (mut server, mut client) = pair_with(1 << 20);
    let small = [7u8; 8];
    client
        .send_batch(message_type::DATA, 0, &[&small[..]; 200])
        .unwrap();
    // Frames 1, 65, 129 and 193 read the clock.
    assert_eq!(client.batch_clock_reads, 4);
    let large = vec![7u8; 20 * 1024];
    client
        .send_batch(message_type::DATA, 0, &[&large[..]; 5])
        .unwrap();
    // The fifth starts past 64 KiB (four frames hold 80 KiB).
    assert_eq!(client.batch_clock_reads, 4 + 2);
    let mut frame = Frame::default();
    for i in 0..205u64 {
        recv(&mut server, &mut frame);
        assert_eq!(frame.header.sequence, i + 1);
    }
}

/// A batch larger than the ring waits for room as `send` does, and reads
/// the clock again after each wait: a frame says when it was written, not
/// when its batch began.
#[test]
fn a_batch_larger_than_the_ring_waits_for_room_and_stamps_again() {
    // Three of these frames fill a 4 KiB ring; sixty are under both
    // bounds of one clock read (64 frames, 64 KiB). The reader takes one
    // a millisecond, so the writer, far faster, waits for room before
    // nearly every frame after the first three, whatever the machine's load.
    let (mut server, mut client) = pair_with(4096);
    let reader = std::thread::spawn(move || {
        let mut frame = Frame::default();
        for i in 0..60u64 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            recv(&mut server, &mut frame);
            assert_eq!(frame.header.sequence, i + 1);
            assert_eq!(frame.payload(), &[i as u8; 1000][..]);
        }
    });
    let payloads: Vec<[u8; 1000]> = (0..60u8).map(|i| [i; 1000]).collect();
    let batch: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
    client.send_batch(message_type::DATA, 0, &batch).unwrap();
    reader.join().unwrap();
    assert!(
        client.batch_clock_reads >= 20,
        "{} clock reads for a batch that waited for room before most of its 60 frames",
        client.batch_clock_reads
    );
}

/// A frame that fails ends the batch: the frames before it are sent and
/// shown in the counts, the ones after it are not sent.
#[test]
fn a_failing_frame_ends_the_batch_after_the_frames_before_it() {
    let (mut server, mut client) = pair();
    let too_large = vec![0u8; client.max_frame_payload() + 1];
    let result = client.send_batch(message_type::DATA, 0, &[b"first", &too_large, b"third"]);
    assert!(
        matches!(result, Err(crate::Error::TooLarge { .. })),
        "{result:?}"
    );
    let mut frame = Frame::default();
    recv(&mut server, &mut frame);
    assert_eq!(frame.payload(), b"first");
    assert!(
        !server.try_recv(&mut frame).unwrap(),
        "nothing after the failure"
    );
    client.flush_counts();
    assert_eq!(counts(&client, Side::Client), (1, 64));
    // The link goes on.
    send(&mut client, 8);
    recv(&mut server, &mut frame);
    assert_eq!(frame.header.sequence, 2);
}

/// A batch to a peer that closed fails as `send` does, before it
/// publishes anything.
#[test]
fn a_batch_to_a_closed_peer_sends_nothing() {
    let (mut server, mut client) = pair();
    Channel::close(&mut server).unwrap();
    let result = client.send_batch(message_type::DATA, 0, &[b"one", b"two"]);
    assert!(
        matches!(result, Err(crate::Error::PeerGone { .. })),
        "{result:?}"
    );
    assert_eq!(client.sent, 0, "no frame numbered, none published");
}

/// `try_send_batch` takes the frames the ring has room for and returns how
/// many, then 0 until the reader frees room; the next call goes on.
#[test]
fn try_send_batch_takes_what_the_ring_holds() {
    // Three records of 1000-byte payloads fill a 4 KiB ring.
    let (mut server, mut client) = pair_with(4096);
    let payload = [3u8; 1000];
    let batch = [&payload[..]; 5];
    assert_eq!(
        client
            .try_send_batch(message_type::DATA, 0, &batch)
            .unwrap(),
        3
    );
    assert_eq!(
        client
            .try_send_batch(message_type::DATA, 0, &batch[3..])
            .unwrap(),
        0
    );
    let mut frame = Frame::default();
    for sequence in 1..=3 {
        recv(&mut server, &mut frame);
        assert_eq!(frame.header.sequence, sequence);
    }
    server.flush_received();
    assert_eq!(
        client
            .try_send_batch(message_type::DATA, 0, &batch[3..])
            .unwrap(),
        2
    );
    for sequence in 4..=5 {
        recv(&mut server, &mut frame);
        assert_eq!(frame.header.sequence, sequence);
    }
}
