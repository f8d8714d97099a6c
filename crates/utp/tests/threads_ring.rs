//! Two-thread model of the shared-memory ring, run natively and under Miri.
//!
//! The ring's real code (`Producer`, `Consumer`, `Indices::from_raw`,
//! `MappedBytes`) runs over one heap allocation laid out like a ring in a
//! region: the 256-byte index header, then the data area. A producer thread
//! and a consumer thread exchange frames of many sizes, so records wrap
//! behind padding markers and the producer waits for space. Miri checks
//! every raw-pointer copy and atomic for data races and undefined
//! behaviour: a record read before its `[TAIL]` Release, or overwritten
//! before its `[HEAD]` Release, is a data race it reports.
//!
//! ```text
//! cargo test -p utp --test threads_ring                 # natively
//! cargo +nightly miri test -p utp --test threads_ring   # under Miri
//! ```

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;
use std::time::{Duration, Instant};
use utp::frame::{HEADER_LEN, Header, flags, message_type};
use utp::shm::bytes::MappedBytes;
use utp::shm::ring::{Consumer, Indices, PAYLOAD_OFFSET, Producer, STAMP_LEN, record_len};

/// Frames per run: Miri runs a few hundred times slower than native code.
/// 40 frames of 0 to 416 payload bytes wrap the 512-byte ring about twenty
/// times and include frames over the copying test's limit; each test takes
/// 10 to 15 s under Miri (30 s at 100 frames, which found nothing more).
const FRAMES: u64 = if cfg!(miri) { 40 } else { 20_000 };
const CAPACITY: usize = 512;
const INDEX_LEN: usize = 256;

/// How long either side may wait without progress before the test fails:
/// the other side stopped giving space back or publishing, or panicked
/// (whose scope the waiting side would otherwise never leave). Counted
/// from the last frame, not from the start: under Miri on a loaded host a
/// whole run takes minutes.
const STALL: Duration = Duration::from_secs(20);

/// A wait that fails the test after [`STALL`] without progress.
struct Patience {
    until: Instant,
}

impl Patience {
    fn new() -> Patience {
        Patience {
            until: Instant::now() + STALL,
        }
    }

    /// A frame went through: the next wait has the whole [`STALL`] again.
    fn progress(&mut self) {
        self.until = Instant::now() + STALL;
    }

    /// Yields, or panics with `what` once the patience is spent.
    fn wait(&self, what: impl FnOnce() -> String) {
        assert!(Instant::now() < self.until, "stalled: {}", what());
        std::thread::yield_now();
    }
}

/// A region-like heap block: index header + data area, 64-byte aligned.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    capacity: usize,
}

impl Block {
    fn new() -> Block {
        Block::with_capacity(CAPACITY)
    }

    fn with_capacity(capacity: usize) -> Block {
        let layout = Layout::from_size_align(INDEX_LEN + capacity, 64).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("allocation");
        Block {
            ptr,
            layout,
            capacity,
        }
    }

    fn indices(&self) -> Indices {
        // SAFETY: 256 zeroed, 64-aligned bytes at the start of the block,
        // which outlives every `Indices` (the threads are joined before drop).
        unsafe { Indices::from_raw(self.ptr.as_ptr()) }
    }

    fn data(&self) -> MappedBytes {
        // SAFETY: `capacity` bytes after the index header, alive as above.
        unsafe { MappedBytes::new(self.ptr.as_ptr().add(INDEX_LEN), self.capacity) }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Payload of frame `n`: its length cycles so records are 64 to 448 bytes.
fn payload(n: u64) -> Vec<u8> {
    let len = (n as usize * 37) % (CAPACITY - 64 - PAYLOAD_OFFSET + 1);
    (0..len).map(|i| (n as usize + i) as u8).collect()
}

/// A ring key for the tests with keyed stamps (any value works).
const KEY: u64 = 0xa5c3_0f69_96f0_3c5a;

/// Both ends of a ring over `block`, the consumer taking payloads up to
/// `limit`, with stamps keyed by `key` if given.
fn ends(
    block: &Block,
    limit: usize,
    key: Option<u64>,
) -> (Producer<MappedBytes>, Consumer<MappedBytes>) {
    let mut producer = Producer::new(block.indices(), block.data()).unwrap();
    let mut consumer = Consumer::new(block.indices(), block.data(), limit).unwrap();
    producer.set_stamp_key(key);
    consumer.set_stamp_key(key);
    (producer, consumer)
}

#[test]
fn a_producer_and_a_consumer_thread_exchange_every_frame_intact() {
    exchange_every_frame(None);
}

#[test]
fn with_keyed_stamps_a_producer_and_a_consumer_thread_exchange_every_frame_intact() {
    exchange_every_frame(Some(KEY));
}

fn exchange_every_frame(key: Option<u64>) {
    let block = Block::new();
    let (producer, mut consumer) = ends(&block, CAPACITY, key);
    std::thread::scope(|s| {
        s.spawn(move || produce_every_frame(producer, None));
        let mut patience = Patience::new();
        for n in 1..=FRAMES {
            let record = loop {
                // Odd frames are waited for as a blocked receive waits:
                // `ready` (which skips padding) until true, then one
                // `peek`, which must then find the record.
                if n % 2 == 1 {
                    if consumer.ready(false).unwrap() {
                        break consumer.peek().unwrap().expect("a record after ready()");
                    }
                } else if let Some(record) = consumer.peek().unwrap() {
                    break record;
                }
                patience.wait(|| format!("no frame {n} from the producer"));
            };
            patience.progress();
            assert_eq!(record.header.sequence, n);
            let len = record.header.payload_length as usize;
            let mut body = Vec::new();
            // SAFETY: the record lies inside the data area (checked by
            // peek) and is not released until after this copy.
            unsafe { consumer.bytes().view(record.offset + PAYLOAD_OFFSET, len) }
                .extend_vec(&mut body);
            assert_eq!(body, payload(n), "frame {n}");
            // Every header field, the checksum included, arrived intact.
            let mut head = [0u8; HEADER_LEN];
            let expected =
                Header::new(message_type::DATA, flags::CHECKSUM, n, 0).encode_for(&body, &mut head);
            assert_eq!(record.header, expected, "header of frame {n}");
            consumer.release(record.len);
            // v2 gives space back lazily: hand it to the producer now.
            consumer.flush();
        }
        assert!(!consumer.has_data().unwrap());
    });
}

#[test]
fn the_copying_receive_takes_every_frame_intact_and_skips_those_over_its_limit() {
    copy_every_frame(None);
}

#[test]
fn with_keyed_stamps_the_copying_receive_takes_every_frame_intact() {
    copy_every_frame(Some(KEY));
}

fn copy_every_frame(key: Option<u64>) {
    // Frames of 0 to 408 payload bytes; this consumer takes at most 300.
    const LIMIT: usize = 300;
    let block = Block::new();
    let (producer, mut consumer) = ends(&block, LIMIT, key);
    std::thread::scope(|s| {
        s.spawn(move || produce_every_frame(producer, None));
        let mut header = Header::default();
        // Stale bytes from a longer frame must not survive into a shorter one.
        let mut body = vec![0xee; 1000];
        let mut skipped = 0;
        let mut patience = Patience::new();
        for n in 1..=FRAMES {
            let want = payload(n);
            let taken = loop {
                match consumer.take_copy(&mut header, &mut body) {
                    Ok(false) => patience.wait(|| format!("no frame {n} from the producer")),
                    other => break other,
                }
            };
            patience.progress();
            if want.len() > LIMIT {
                let err = taken.expect_err("a frame over the limit");
                assert!(
                    matches!(err, utp::Error::Frame(utp::frame::DecodeError::TooLarge { length, limit: LIMIT }) if length as usize == want.len()),
                    "frame {n}: {err}"
                );
                skipped += 1;
                continue;
            }
            assert!(taken.unwrap());
            assert_eq!(body, want, "frame {n}");
            let mut head = [0u8; HEADER_LEN];
            let expected =
                Header::new(message_type::DATA, flags::CHECKSUM, n, 0).encode_for(&want, &mut head);
            assert_eq!(header, expected, "header of frame {n}");
        }
        assert!(skipped > 0, "some frames were over the limit");
        assert!(!consumer.take_copy(&mut header, &mut body).unwrap());
    });
}

/// Publishes frames 1 to `FRAMES` (payloads from `payload`), waiting for
/// room as it goes; each whole, or in pieces of `piece` bytes. A consumer
/// that stops giving space back fails the test after [`STALL`] instead of
/// hanging it.
fn produce_every_frame(mut producer: Producer<MappedBytes>, piece: Option<usize>) {
    let mut patience = Patience::new();
    for n in 1..=FRAMES {
        let body = payload(n);
        let rec = record_len(body.len()).unwrap();
        let offset = loop {
            match producer.try_reserve(rec).unwrap() {
                Some(offset) => break offset,
                None => patience
                    .wait(|| format!("no room for frame {n}: the consumer stopped releasing")),
            }
        };
        patience.progress();
        match piece {
            None => write_frame(&mut producer, offset, rec, n, &body),
            Some(piece) => write_in_pieces(&mut producer, offset, rec, n, &body, piece),
        }
    }
}

/// Fills the record of `rec` bytes reserved at `offset` with frame `n`
/// (checksummed) and publishes it.
fn write_frame(
    producer: &mut Producer<MappedBytes>,
    offset: usize,
    rec: usize,
    n: u64,
    body: &[u8],
) {
    let mut head = [0u8; HEADER_LEN];
    let header = Header::new(message_type::DATA, flags::CHECKSUM, n, 0).encode_for(body, &mut head);
    producer.write(offset + PAYLOAD_OFFSET, body);
    producer.bytes().write_header(offset + STAMP_LEN, &header);
    producer.commit(rec);
}

/// Publishes frame `n` with `len` payload bytes, which must fit now.
fn publish(producer: &mut Producer<MappedBytes>, n: u64, len: usize) {
    let rec = record_len(len).unwrap();
    let offset = producer.try_reserve(rec).unwrap().expect("room");
    write_frame(producer, offset, rec, n, &vec![n as u8; len]);
}

/// Reads the next frame, which must be frame `n`, and releases it.
fn consume(consumer: &mut Consumer<MappedBytes>, n: u64) {
    let record = consumer.peek().unwrap().expect("a record");
    assert_eq!(record.header.sequence, n);
    consumer.release(record.len);
}

#[test]
fn a_consumer_gives_space_back_in_batches_and_whenever_it_finds_nothing() {
    // A 4 KiB ring: a batch is 512 bytes, eight one-line records.
    let block = Block::with_capacity(4096);
    let mut producer = Producer::new(block.indices(), block.data()).unwrap();
    let mut consumer = Consumer::new(block.indices(), block.data(), 4096).unwrap();
    let shared_head = |c: &Consumer<MappedBytes>| c.indices().snapshot().0;
    let line = record_len(8).unwrap() as u64;
    assert_eq!(line, 64);
    for n in 1..=3 {
        publish(&mut producer, n, 8);
    }
    // Reading on while frames wait: nothing is given back yet.
    consume(&mut consumer, 1);
    consume(&mut consumer, 2);
    consume(&mut consumer, 3);
    assert_eq!(shared_head(&consumer), 0);
    // Finding the ring empty gives back all three.
    assert!(consumer.peek().unwrap().is_none());
    assert_eq!(shared_head(&consumer), 3 * line);
    // A long run: given back in one batch once 512 bytes are consumed.
    for n in 4..=13 {
        publish(&mut producer, n, 8);
    }
    for n in 4..=11 {
        consume(&mut consumer, n);
    }
    assert_eq!(shared_head(&consumer), 3 * line);
    consume(&mut consumer, 12);
    assert_eq!(shared_head(&consumer), 11 * line);
    consume(&mut consumer, 13);
    assert!(consumer.peek().unwrap().is_none());
    assert_eq!(shared_head(&consumer), 13 * line);
}

/// Writes frame `n` into the record reserved at `offset` in pieces of
/// `piece` bytes (from the record's start, a multiple of 64), publishing
/// a progress stamp after each, then the whole record: as utp's link does
/// with frames over `ring::PIECE` when its peer agreed to pieces.
fn write_in_pieces(
    producer: &mut Producer<MappedBytes>,
    offset: usize,
    rec: usize,
    n: u64,
    body: &[u8],
    piece: usize,
) {
    let mut head = [0u8; HEADER_LEN];
    let header = Header::new(message_type::DATA, flags::CHECKSUM, n, 0).encode_for(body, &mut head);
    producer.bytes().write_header(offset + STAMP_LEN, &header);
    let filled = PAYLOAD_OFFSET + body.len();
    let mut written = PAYLOAD_OFFSET;
    while written < filled {
        let end = ((written / piece + 1) * piece).min(filled);
        producer.write(
            offset + written,
            &body[written - PAYLOAD_OFFSET..end - PAYLOAD_OFFSET],
        );
        written = end;
        // Progress in whole lines, short of the record's end (the last
        // piece ends at `filled`, which rounds up to `rec`).
        if written < rec && written % 64 == 0 {
            producer.publish_progress(written);
        }
    }
    producer.commit(rec);
}

/// Frames published in pieces of one line (the smallest), taken by a
/// copying consumer on another thread: every byte arrives, whether the
/// consumer found a record whole or chased its pieces (under Miri, a piece
/// read before its progress stamp is a data race).
#[test]
fn frames_published_in_pieces_arrive_intact() {
    pieces_arrive_intact(None);
}

#[test]
fn with_keyed_stamps_frames_published_in_pieces_arrive_intact() {
    pieces_arrive_intact(Some(KEY));
}

fn pieces_arrive_intact(key: Option<u64>) {
    let block = Block::new();
    let (mut producer, mut consumer) = ends(&block, CAPACITY, key);
    producer.set_pieces(true);
    consumer.set_pieces(true);
    std::thread::scope(|s| {
        s.spawn(move || produce_every_frame(producer, Some(64)));
        let mut header = Header::default();
        let mut body = Vec::new();
        let mut patience = Patience::new();
        for n in 1..=FRAMES {
            // Odd frames are polled as a blocked receive polls (`ready`,
            // which copies pieces too), even ones by `take_copy` alone.
            loop {
                if n % 2 == 1 && !consumer.ready(true).unwrap() {
                    patience.wait(|| format!("no frame {n}"));
                    continue;
                }
                if consumer.take_copy(&mut header, &mut body).unwrap() {
                    break;
                }
                patience.wait(|| format!("no frame {n}"));
            }
            patience.progress();
            assert_eq!(header.sequence, n);
            assert_eq!(body, payload(n), "frame {n}");
        }
    });
}

/// One frame of 1000 bytes (a 1088-byte record) in a 4 KiB ring, its
/// first 256 bytes published by a progress stamp, both ends agreeing to
/// pieces.
fn first_piece(block: &Block) -> (Producer<MappedBytes>, Consumer<MappedBytes>, usize, Vec<u8>) {
    let mut producer = Producer::new(block.indices(), block.data()).unwrap();
    let mut consumer = Consumer::new(block.indices(), block.data(), 4096).unwrap();
    producer.set_pieces(true);
    consumer.set_pieces(true);
    let body: Vec<u8> = (0..1000).map(|i| (i % 251) as u8 + 1).collect();
    let offset = producer
        .try_reserve(record_len(1000).unwrap())
        .unwrap()
        .unwrap();
    let mut head = [0u8; HEADER_LEN];
    let header = Header::new(message_type::DATA, 0, 1, 0).encode_for(&body, &mut head);
    producer.bytes().write_header(offset + STAMP_LEN, &header);
    producer.write(offset + PAYLOAD_OFFSET, &body[..256 - PAYLOAD_OFFSET]);
    producer.publish_progress(256);
    (producer, consumer, offset, body)
}

#[test]
fn a_copying_consumer_takes_each_piece_when_its_progress_stamp_says() {
    let block = Block::with_capacity(4096);
    let (mut producer, mut consumer, offset, body) = first_piece(&block);
    let (mut header, mut taken) = (Header::default(), Vec::new());
    // Not a whole record yet, for any receive.
    assert!(!consumer.take_copy(&mut header, &mut taken).unwrap());
    assert!(!consumer.has_data().unwrap());
    assert!(!consumer.ready(true).unwrap());
    // The consumer has copied the first piece: a producer writing over it
    // now changes nothing the consumer delivers.
    producer.write(offset + PAYLOAD_OFFSET, &[0xee; 256 - PAYLOAD_OFFSET]);
    producer.write(offset + 256, &body[256 - PAYLOAD_OFFSET..600]);
    producer.publish_progress(640);
    // The blocked receive's poll copies the second piece.
    assert!(!consumer.ready(true).unwrap());
    producer.write(offset + 256, &[0xdd; 600 - 256 + PAYLOAD_OFFSET]);
    producer.write(offset + 640, &body[600..]);
    producer.commit(record_len(1000).unwrap());
    assert!(consumer.has_data().unwrap());
    assert!(consumer.take_copy(&mut header, &mut taken).unwrap());
    assert_eq!(header.payload_length, 1000);
    assert_eq!(
        taken, body,
        "the pieces as they were when their stamps said so"
    );
    assert!(!consumer.take_copy(&mut header, &mut taken).unwrap());
}

#[test]
fn a_zero_copy_receiver_waits_for_the_whole_record() {
    let block = Block::with_capacity(4096);
    let (mut producer, mut consumer, offset, body) = first_piece(&block);
    let (mut header, mut taken) = (Header::default(), Vec::new());
    // A copying receive starts on the first piece, then the receiver
    // turns to the zero-copy one, which sees nothing until it is whole.
    assert!(!consumer.take_copy(&mut header, &mut taken).unwrap());
    assert!(consumer.peek().unwrap().is_none());
    producer.write(offset + 256, &body[256 - PAYLOAD_OFFSET..]);
    producer.commit(record_len(1000).unwrap());
    let record = consumer.peek().unwrap().expect("the whole record");
    let mut lent = Vec::new();
    // SAFETY: the record lies inside the data area (checked by peek) and
    // is not released until after this copy.
    unsafe { consumer.bytes().view(record.offset + PAYLOAD_OFFSET, 1000) }.extend_vec(&mut lent);
    assert_eq!(lent, body);
    consumer.release(record.len);
    // The next record in pieces, taken by copying: the pieces copied of
    // the first one are not taken for its.
    let next: Vec<u8> = vec![0x5a; 700];
    let rec = record_len(700).unwrap();
    let offset = producer.try_reserve(rec).unwrap().unwrap();
    write_in_pieces(&mut producer, offset, rec, 2, &next, 128);
    assert!(consumer.take_copy(&mut header, &mut taken).unwrap());
    assert_eq!((header.sequence, &taken), (2, &next));
}

/// A record in pieces from a producer that breaks the rules: each is
/// `Corrupt`, never a read out of place.
#[test]
fn progress_stamps_that_break_the_rules_are_corrupt() {
    use utp::shm::ring::{RingBytes, STAMP_MORE};
    let corrupt = |consumer: &mut Consumer<MappedBytes>, case: &str| {
        let (mut header, mut taken) = (Header::default(), Vec::new());
        match consumer.take_copy(&mut header, &mut taken) {
            Err(utp::Error::Protocol {
                reason: utp::ProtocolReason::Corrupt,
                detail,
            }) => detail,
            other => panic!("{case}: {other:?}"),
        }
    };
    // (case, the stamp to store at the record (position 0), what the error says)
    let stamps: [(&str, u64, &str); 5] = [
        ("no bytes written", STAMP_MORE, "says 0 bytes"),
        (
            "the whole record",
            1088 | STAMP_MORE,
            "of a 1088-byte record",
        ),
        (
            "past the data area",
            4096 | STAMP_MORE,
            "to the end of the data area",
        ),
        ("padding and pieces", 256 | STAMP_MORE | 1, "reserved bits"),
        (
            "another reserved bit",
            256 | STAMP_MORE | 4,
            "reserved bits",
        ),
    ];
    for (case, stamp, says) in stamps {
        let block = Block::with_capacity(4096);
        let (producer, mut consumer, offset, _) = first_piece(&block);
        producer.bytes().store_stamp(offset, stamp, true);
        let detail = corrupt(&mut consumer, case);
        assert!(detail.contains(says), "{case}: {detail}");
    }
    // A progress stamp that moves back.
    let block = Block::with_capacity(4096);
    let (producer, mut consumer, _, _) = first_piece(&block);
    producer.publish_progress(512);
    assert!(!consumer.ready(false).unwrap());
    let (mut header, mut taken) = (Header::default(), Vec::new());
    assert!(!consumer.take_copy(&mut header, &mut taken).unwrap());
    producer.publish_progress(256);
    for look in ["moved back", "and looked at again"] {
        let detail = corrupt(&mut consumer, look);
        assert!(detail.contains("went from 512 to 256"), "{look}: {detail}");
    }
    // A header whose length changes between the first piece and the whole.
    let block = Block::with_capacity(4096);
    let (mut producer, mut consumer, offset, body) = first_piece(&block);
    assert!(!consumer.take_copy(&mut header, &mut taken).unwrap());
    let mut head = [0u8; HEADER_LEN];
    let shorter = Header::new(message_type::DATA, 0, 1, 0).encode_for(&body[..990], &mut head);
    producer.bytes().write_header(offset + STAMP_LEN, &shorter);
    producer.commit(record_len(1000).unwrap());
    for look in ["length changed", "and looked at again"] {
        let detail = corrupt(&mut consumer, look);
        assert!(
            detail.contains("1000 payload bytes in its first piece"),
            "{look}: {detail}"
        );
    }
    // An end that did not agree to pieces reads the bit as reserved.
    let block = Block::with_capacity(4096);
    let (_producer, mut consumer, _, _) = first_piece(&block);
    consumer.set_pieces(false);
    let detail = corrupt(&mut consumer, "not agreed");
    assert!(detail.contains("reserved bits"), "{detail}");
}

/// With keyed stamps nothing is zeroed, so the consumer polls over bytes
/// of earlier laps: an old stamp, and payload made to look like the stamp
/// of the next record (what a sender of payload could write if stamps
/// were not keyed). Neither is taken for a stamp; the records published
/// after them are found.
#[test]
fn with_keyed_stamps_stale_bytes_of_an_earlier_lap_are_never_a_stamp() {
    use utp::shm::ring::{MIN_CAPACITY, RingBytes};
    const CAP: u64 = MIN_CAPACITY as u64;
    let block = Block::with_capacity(MIN_CAPACITY);
    let (mut producer, mut consumer) = ends(&block, MIN_CAPACITY, Some(KEY));
    // Lap 1: one record over all but the last two lines, its payload
    // holding at every line start `l` the plain stamp of a one-line record
    // at position CAP + l, the next lap's.
    let first = record_len(MIN_CAPACITY - 128 - PAYLOAD_OFFSET).unwrap();
    let mut body = vec![0u8; first - PAYLOAD_OFFSET];
    for line in (64..first).step_by(64) {
        let at = line - PAYLOAD_OFFSET;
        body[at..at + 8].copy_from_slice(&(CAP + line as u64 + 64).to_le_bytes());
    }
    let offset = producer.try_reserve(first).unwrap().unwrap();
    write_frame(&mut producer, offset, first, 1, &body);
    let record = consumer.peek().unwrap().expect("frame 1");
    assert_eq!(record.len, first);
    consumer.release(record.len);
    // Fill the lap to its end (the slack line moves along).
    publish(&mut producer, 2, 8);
    consume(&mut consumer, 2);
    publish(&mut producer, 3, 8);
    consume(&mut consumer, 3);
    assert!(consumer.peek().unwrap().is_none());
    assert_eq!(consumer.indices().snapshot().0, CAP, "a whole lap read");
    // Lap 2, offset 0: frame 1's own stamp, from the lap before.
    assert_eq!(consumer.bytes().load_stamp(0), first as u64 ^ KEY);
    assert!(consumer.peek().unwrap().is_none(), "an old stamp");
    publish(&mut producer, 4, 8);
    consume(&mut consumer, 4);
    // Offset 64: frame 1's payload, the plain stamp of a record here.
    assert_eq!(consumer.bytes().load_stamp(64), CAP + 128, "not zeroed");
    assert!(consumer.peek().unwrap().is_none(), "payload bytes");
    assert!(!consumer.has_data().unwrap());
    publish(&mut producer, 5, 8);
    consume(&mut consumer, 5);
}

/// A word that decodes to a stamp whose record has no valid header is,
/// with keyed stamps, stale bytes (a one-in-2^48 coincidence): every look
/// finds nothing, until the producer publishes the real record there.
/// Without keys it is a corrupt ring.
#[test]
fn with_keyed_stamps_a_stamp_over_no_valid_header_is_waited_past() {
    use utp::shm::ring::RingBytes;
    for key in [Some(KEY), None] {
        let block = Block::with_capacity(4096);
        let (mut producer, mut consumer) = ends(&block, 4096, key);
        // A keyed stamp of a one-line record at position 0, over zeros.
        producer.bytes().store_stamp(0, 64 ^ key.unwrap_or(0), true);
        let (mut header, mut body) = (Header::default(), Vec::new());
        match key {
            Some(_) => {
                assert!(consumer.peek().unwrap().is_none());
                assert!(!consumer.ready(true).unwrap());
                assert!(!consumer.take_copy(&mut header, &mut body).unwrap());
                publish(&mut producer, 1, 8);
                assert!(consumer.ready(true).unwrap());
                consume(&mut consumer, 1);
            }
            None => {
                let err = consumer.peek().expect_err("corrupt without keys");
                assert!(err.to_string().contains("magic"), "{err}");
            }
        }
    }
}
