//! The producer asks for a later record's lines (`RingBytes::claim_ahead`)
//! with the room the ring has after the record being written, as last
//! seen: so it never asks for lines the consumer has yet to read.

use std::sync::Mutex;
use utp::shm::ring::{Indices, Producer, RECORD_ALIGN, RingBytes, SLACK};
use utp::shm::sync::{AtomicU32, AtomicU64};

const CAPACITY: usize = 4096;

/// A data area that records what the producer asks ahead for.
struct Recording {
    bytes: Mutex<Vec<u8>>,
    asked: Mutex<Vec<(usize, usize, u64)>>,
}

impl RingBytes for &'static Recording {
    fn capacity(&self) -> usize {
        CAPACITY
    }
    fn write(&self, offset: usize, src: &[u8]) {
        self.bytes.lock().unwrap()[offset..offset + src.len()].copy_from_slice(src);
    }
    fn read(&self, offset: usize, dst: &mut [u8]) {
        dst.copy_from_slice(&self.bytes.lock().unwrap()[offset..offset + dst.len()]);
    }
    fn load_stamp(&self, offset: usize) -> u64 {
        let bytes = self.bytes.lock().unwrap();
        u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
    }
    fn store_stamp(&self, offset: usize, value: u64, _publish: bool) {
        self.bytes.lock().unwrap()[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }
    fn claim_ahead(&self, offset: usize, len: usize, room_after: u64) {
        self.asked.lock().unwrap().push((offset, len, room_after));
    }
}

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

#[test]
fn the_producer_asks_ahead_with_the_room_left_after_the_record() {
    let recording: &'static Recording = leak(Recording {
        bytes: Mutex::new(vec![0; CAPACITY]),
        asked: Mutex::new(Vec::new()),
    });
    let head = leak(AtomicU64::new(0));
    let indices = Indices::from_static(
        leak(AtomicU64::new(0)),
        head,
        leak(AtomicU32::new(0)),
        leak(AtomicU32::new(0)),
    );
    let mut producer = Producer::new(indices, recording).unwrap();
    let usable = (CAPACITY - SLACK) as u64;
    let rec = 2 * RECORD_ALIGN;
    for n in 0..3u64 {
        let offset = producer.try_reserve(rec).unwrap().expect("room");
        producer.claim_ahead(offset, rec);
        producer.commit(rec);
        let asked = *recording.asked.lock().unwrap().last().unwrap();
        // Room left after this record: nothing given back yet.
        assert_eq!(asked, (offset, rec, usable - (n + 1) * rec as u64));
    }
    // Once the ring is too full for another record, nothing is asked (no
    // record is reserved), and the room the producer passes never wraps
    // below zero when the record fills the ring exactly.
    let rest = usable as usize - 3 * rec;
    let offset = producer.try_reserve(rest).unwrap().expect("the rest fits");
    producer.claim_ahead(offset, rest);
    assert_eq!(
        *recording.asked.lock().unwrap().last().unwrap(),
        (offset, rest, 0)
    );
}
