//! Loom model of the ring protocol (layout v2): a producer and a consumer
//! thread exchange frames through a tiny ring (records, padding, the slack
//! line), and loom explores their interleavings and memory orderings. Each
//! record's stamp is a loom atomic and every other data byte its own
//! `loom::cell::UnsafeCell`, so reading a byte the producer wrote without a
//! happens-before edge ([STAMP]), or overwriting a byte the consumer may
//! still read ([HEAD]), fails the model; so does mistaking stale bytes for
//! a stamp (if the consumer stopped zeroing the line-start words it
//! releases, it would read a record that was never published). The same
//! model runs with keyed stamps, where nothing is zeroed and stale words
//! (old stamps, payload bytes) must decode to no readable position. A
//! second model publishes a record in pieces (progress stamps) to a
//! copying consumer: copying a piece before its progress stamp fails it.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p utp --test loom_ring
//! ```
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use utp::frame::{HEADER_LEN, Header, message_type};
use utp::shm::ring::{
    Consumer, Indices, PAYLOAD_OFFSET, Producer, RECORD_ALIGN, RingBytes, STAMP_LEN, record_len,
};

type Ends = (Producer<Cells>, Consumer<Cells>);
use utp::shm::sync::{AtomicU32, AtomicU64, Ordering};

/// Data bytes (the stamp bytes of each line unused) and one stamp per line.
struct Cells(Arc<(Vec<UnsafeCell<u8>>, Vec<AtomicU64>)>);

// SAFETY: every access goes through loom's UnsafeCell, which checks that
// concurrent accesses are ordered; that is exactly what the model tests.
unsafe impl Send for Cells {}
// SAFETY: as above.
unsafe impl Sync for Cells {}

impl RingBytes for Cells {
    fn capacity(&self) -> usize {
        self.0.0.len()
    }
    fn write(&self, offset: usize, src: &[u8]) {
        for (i, &b) in src.iter().enumerate() {
            let at = offset + i;
            if at % RECORD_ALIGN < STAMP_LEN {
                // A payload byte over a later line's stamp word: in the
                // model it lands in that atomic (the producer owns the line,
                // so a relaxed read-modify-write is its own), so a consumer
                // polling there would see it unless the producer zeroed the
                // word before publishing: the slack-line rule under test.
                let word = &self.0.1[at / RECORD_ALIGN];
                let shift = 8 * (at % RECORD_ALIGN);
                let old = word.load(Ordering::Relaxed);
                word.store(
                    (old & !(0xff << shift)) | (u64::from(b) << shift),
                    Ordering::Relaxed,
                );
                continue;
            }
            // SAFETY: loom verifies no concurrent access to this byte.
            self.0.0[at].with_mut(|p| unsafe { *p = b });
        }
    }
    fn read(&self, offset: usize, dst: &mut [u8]) {
        for (i, d) in dst.iter_mut().enumerate() {
            let at = offset + i;
            if at % RECORD_ALIGN < STAMP_LEN {
                let word = self.0.1[at / RECORD_ALIGN].load(Ordering::Relaxed);
                *d = (word >> (8 * (at % RECORD_ALIGN))) as u8;
                continue;
            }
            // SAFETY: loom verifies no concurrent write to this byte.
            *d = self.0.0[at].with(|p| unsafe { *p });
        }
    }
    fn load_stamp(&self, offset: usize) -> u64 {
        self.0.1[offset / RECORD_ALIGN].load(Ordering::Acquire)
    }
    fn store_stamp(&self, offset: usize, value: u64, publish: bool) {
        let order = if publish {
            Ordering::Release
        } else {
            Ordering::Relaxed
        };
        self.0.1[offset / RECORD_ALIGN].store(value, order);
    }
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

/// Payload sizes chosen so records are 64, 128 and 128 bytes in a 256-byte
/// ring: the second's payload covers the stamp word of the line after its
/// first, the third does not fit before the end and wraps behind 64 bytes
/// of padding, and with the slack line the producer must wait for the
/// consumer to free space before it can write it. The payload bytes are
/// nonzero, so a stale one taken for a stamp would fail the model.
const SIZES: [usize; 3] = [5, 60, 70];
const CAPACITY: usize = 256;

/// Both ends of a fresh ring of [`CAPACITY`] bytes in loom's memory.
fn ring() -> Ends {
    let cells = Arc::new((
        (0..CAPACITY)
            .map(|_| UnsafeCell::new(0u8))
            .collect::<Vec<_>>(),
        (0..CAPACITY / RECORD_ALIGN)
            .map(|_| AtomicU64::new(0))
            .collect::<Vec<_>>(),
    ));
    let (tail, head) = (leak(AtomicU64::new(0)), leak(AtomicU64::new(0)));
    let (dw, sw) = (leak(AtomicU32::new(0)), leak(AtomicU32::new(0)));
    let producer = Producer::new(
        Indices::from_static(tail, head, dw, sw),
        Cells(cells.clone()),
    )
    .unwrap();
    let consumer =
        Consumer::new(Indices::from_static(tail, head, dw, sw), Cells(cells), 1024).unwrap();
    (producer, consumer)
}

#[test]
fn spsc_index_protocol() {
    spsc(None);
}

#[test]
fn spsc_index_protocol_with_keyed_stamps() {
    spsc(Some(0x96f0_3c5a_a5c3_0f69));
}

fn spsc(key: Option<u64>) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let (mut producer, mut consumer) = ring();
        producer.set_stamp_key(key);
        consumer.set_stamp_key(key);

        let writer = loom::thread::spawn(move || {
            for (i, &n) in SIZES.iter().enumerate() {
                let rec = record_len(n).unwrap();
                let offset = loop {
                    match producer.try_reserve(rec).unwrap() {
                        Some(off) => break off,
                        None => loom::thread::yield_now(),
                    }
                };
                let payload = vec![i as u8 + 1; n];
                let mut head = [0u8; HEADER_LEN];
                Header::new(message_type::DATA, 0, i as u64 + 1, 0).encode_for(&payload, &mut head);
                producer.write(offset + PAYLOAD_OFFSET, &payload);
                producer.write(offset + STAMP_LEN, &head);
                producer.commit(rec);
            }
        });

        for (i, &n) in SIZES.iter().enumerate() {
            let record = loop {
                match consumer.peek().unwrap() {
                    Some(r) => break r,
                    None => loom::thread::yield_now(),
                }
            };
            assert_eq!(record.header.sequence, i as u64 + 1);
            assert_eq!(record.header.payload_length as usize, n);
            let mut payload = vec![0u8; n];
            consumer
                .bytes()
                .read(record.offset + PAYLOAD_OFFSET, &mut payload);
            assert!(
                payload.iter().all(|&b| b == i as u8 + 1),
                "frame {i}: {payload:?}"
            );
            consumer.release(record.len);
        }
        consumer.flush();
        assert!(!consumer.has_data().unwrap());
        writer.join().unwrap();
    });
}

/// A 150-byte payload: a 192-byte record, published in three pieces of a
/// line each (two progress stamps, then the whole), taken by a copying
/// consumer that may find it at any stage.
#[test]
fn record_in_pieces() {
    const LEN: usize = 150;
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let (mut producer, mut consumer) = ring();
        producer.set_pieces(true);
        consumer.set_pieces(true);
        let body: Vec<u8> = (0..LEN).map(|i| i as u8 + 1).collect();
        let expected = body.clone();
        let writer = loom::thread::spawn(move || {
            let rec = record_len(LEN).unwrap();
            let offset = producer.try_reserve(rec).unwrap().unwrap();
            let mut head = [0u8; HEADER_LEN];
            Header::new(message_type::DATA, 0, 1, 0).encode_for(&body, &mut head);
            producer.write(offset + STAMP_LEN, &head);
            let mut at = PAYLOAD_OFFSET;
            for end in [RECORD_ALIGN, 2 * RECORD_ALIGN] {
                producer.write(
                    offset + at,
                    &body[at - PAYLOAD_OFFSET..end - PAYLOAD_OFFSET],
                );
                producer.publish_progress(end);
                at = end;
            }
            producer.write(offset + at, &body[at - PAYLOAD_OFFSET..]);
            producer.commit(rec);
        });
        let mut header = Header::default();
        let mut payload = Vec::new();
        while !consumer.take_copy(&mut header, &mut payload).unwrap() {
            loom::thread::yield_now();
        }
        assert_eq!(header.payload_length as usize, LEN);
        assert_eq!(payload, expected);
        writer.join().unwrap();
    });
}
