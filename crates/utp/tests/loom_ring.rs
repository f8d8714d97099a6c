//! Loom model of the ring's index protocol: a producer and a consumer
//! thread exchange frames through a tiny ring (one record plus padding at a
//! time), and loom explores their interleavings and memory orderings. Each
//! data byte is its own `loom::cell::UnsafeCell`, so reading a byte the
//! producer wrote without a happens-before edge ([TAIL]), or overwriting a
//! byte the consumer may still read ([HEAD]), fails the model.
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
use utp::shm::ring::{Consumer, Indices, Producer, RingBytes, record_len};
use utp::shm::sync::{AtomicU32, AtomicU64};

struct Cells(Arc<Vec<UnsafeCell<u8>>>);

// SAFETY: every access goes through loom's UnsafeCell, which checks that
// concurrent accesses are ordered; that is exactly what the model tests.
unsafe impl Send for Cells {}
// SAFETY: as above.
unsafe impl Sync for Cells {}

impl RingBytes for Cells {
    fn capacity(&self) -> usize {
        self.0.len()
    }
    fn write(&self, offset: usize, src: &[u8]) {
        for (i, &b) in src.iter().enumerate() {
            // SAFETY: loom verifies no concurrent access to this byte.
            self.0[offset + i].with_mut(|p| unsafe { *p = b });
        }
    }
    fn read(&self, offset: usize, dst: &mut [u8]) {
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: loom verifies no concurrent write to this byte.
            *d = self.0[offset + i].with(|p| unsafe { *p });
        }
    }
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

/// Payload sizes chosen so records are 64, 128 and 64 bytes in a 128-byte
/// ring: the second needs a padding marker and the whole ring, so the
/// producer must wait for the consumer to free space.
const SIZES: [usize; 3] = [5, 40, 1];
const CAPACITY: usize = 128;

#[test]
fn spsc_index_protocol() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let cells = Arc::new(
            (0..CAPACITY)
                .map(|_| UnsafeCell::new(0u8))
                .collect::<Vec<_>>(),
        );
        let (tail, head) = (leak(AtomicU64::new(0)), leak(AtomicU64::new(0)));
        let (dw, sw) = (leak(AtomicU32::new(0)), leak(AtomicU32::new(0)));
        let mut producer = Producer::new(
            Indices::from_static(tail, head, dw, sw),
            Cells(cells.clone()),
        )
        .unwrap();
        let mut consumer =
            Consumer::new(Indices::from_static(tail, head, dw, sw), Cells(cells), 1024).unwrap();

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
                producer.write(offset + HEADER_LEN, &payload);
                producer.write(offset, &head);
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
                .read(record.offset + HEADER_LEN, &mut payload);
            assert!(
                payload.iter().all(|&b| b == i as u8 + 1),
                "frame {i}: {payload:?}"
            );
            consumer.release(record.len);
        }
        assert!(!consumer.has_data().unwrap());
        writer.join().unwrap();
    });
}
