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
const FRAMES: u64 = if cfg!(miri) { 100 } else { 20_000 };
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

#[test]
fn a_producer_and_a_consumer_thread_exchange_every_frame_intact() {
    let block = Block::new();
    let producer = Producer::new(block.indices(), block.data()).unwrap();
    let mut consumer = Consumer::new(block.indices(), block.data(), CAPACITY).unwrap();
    std::thread::scope(|s| {
        s.spawn(move || produce_every_frame(producer));
        let mut patience = Patience::new();
        for n in 1..=FRAMES {
            let record = loop {
                // Odd frames are waited for as a blocked receive waits:
                // `ready` (which skips padding) until true, then one
                // `peek`, which must then find the record.
                if n % 2 == 1 {
                    if consumer.ready().unwrap() {
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
    // Frames of 0 to 408 payload bytes; this consumer takes at most 300.
    const LIMIT: usize = 300;
    let block = Block::new();
    let producer = Producer::new(block.indices(), block.data()).unwrap();
    let mut consumer = Consumer::new(block.indices(), block.data(), LIMIT).unwrap();
    std::thread::scope(|s| {
        s.spawn(move || produce_every_frame(producer));
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
/// room as it goes. A consumer that stops giving space back fails the
/// test after [`STALL`] instead of hanging it.
fn produce_every_frame(mut producer: Producer<MappedBytes>) {
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
        write_frame(&mut producer, offset, rec, n, &body);
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
