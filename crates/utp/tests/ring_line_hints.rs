//! The hints a ring gives the CPU about cache lines, and what they rest on.
//!
//! The producer asks for a later record's lines (`RingBytes::claim_ahead`)
//! with the room the ring has after the record being written, as last
//! seen: so it never asks for lines the consumer has yet to read. A
//! consumer that has fallen behind asks for the lines ahead of it that are
//! published, as far as the producer's `tail` word says
//! (`RingBytes::prefetch`), and one that keeps pace asks for none past the
//! record it reads; the producer stores its position in that word once per
//! sixteenth of the ring, and whenever asked to.

use std::sync::Mutex;
use utp::frame::{HEADER_LEN, Header, flags, message_type};
use utp::shm::ring::read_ahead::DISTANCE;
use utp::shm::ring::{
    Consumer, FLUSH_BATCH, Indices, PAYLOAD_OFFSET, Producer, RECORD_ALIGN, RingBytes,
    SHOW_POSITION_EVERY, SLACK, STAMP_LEN, record_len,
};
use utp::shm::sync::{AtomicU32, AtomicU64};

const CAPACITY: usize = 64 * 1024;
const PAYLOAD: usize = 64;

/// A data area that records the lines the producer asks ahead for
/// (offset, length, room after) and those the consumer asks for.
struct Recording {
    bytes: Mutex<Vec<u8>>,
    claimed: Mutex<Vec<(usize, usize, u64)>>,
    asked: Mutex<Vec<usize>>,
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
        self.claimed.lock().unwrap().push((offset, len, room_after));
    }
    fn prefetch(&self, offset: usize) {
        self.asked.lock().unwrap().push(offset);
    }
}

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// A producer and a consumer over one recording data area; the shared
/// `tail` word, to read back.
fn ring() -> (
    Producer<&'static Recording>,
    Consumer<&'static Recording>,
    &'static Recording,
    impl Fn() -> u64,
) {
    let recording: &'static Recording = leak(Recording {
        bytes: Mutex::new(vec![0; CAPACITY]),
        claimed: Mutex::new(Vec::new()),
        asked: Mutex::new(Vec::new()),
    });
    let (tail, head) = (leak(AtomicU64::new(0)), leak(AtomicU64::new(0)));
    let (data, space) = (leak(AtomicU32::new(0)), leak(AtomicU32::new(0)));
    let producer = Producer::new(Indices::from_static(tail, head, data, space), recording).unwrap();
    let consumer = Consumer::new(
        Indices::from_static(tail, head, data, space),
        recording,
        1 << 20,
    )
    .unwrap();
    let shown = move || Indices::from_static(tail, head, data, space).snapshot().1;
    (producer, consumer, recording, shown)
}

fn publish(producer: &mut Producer<&'static Recording>, n: u64) {
    let rec = record_len(PAYLOAD).unwrap();
    let offset = producer.try_reserve(rec).unwrap().expect("room");
    let body = [n as u8; PAYLOAD];
    let mut head = [0u8; HEADER_LEN];
    Header::new(message_type::DATA, flags::CHECKSUM, n, 0).encode_for(&body, &mut head);
    producer.write(offset + STAMP_LEN, &head);
    producer.write(offset + PAYLOAD_OFFSET, &body);
    producer.commit(rec);
}

fn take(consumer: &mut Consumer<&'static Recording>, n: u64) {
    let (mut header, mut body) = (Header::default(), Vec::new());
    assert!(consumer.take_copy(&mut header, &mut body).unwrap());
    assert_eq!((header.sequence, body[0]), (n, n as u8));
}

#[test]
fn the_producer_shows_its_position_every_sixteenth_of_the_ring_and_when_asked() {
    let (mut producer, _, _, shown) = ring();
    let rec = record_len(PAYLOAD).unwrap() as u64;
    let every = CAPACITY as u64 / SHOW_POSITION_EVERY;
    for n in 0..3 * every / rec {
        publish(&mut producer, n);
        let written = (n + 1) * rec;
        assert_eq!(shown(), written / every * every, "after {written} bytes");
    }
    publish(&mut producer, 1000);
    assert_ne!(shown(), producer.used());
    producer.show_position();
    assert_eq!(shown(), producer.used());
}

#[test]
fn a_consumer_that_keeps_pace_asks_for_no_line_past_its_record() {
    let (mut producer, mut consumer, recording, _) = ring();
    let rec = record_len(PAYLOAD).unwrap();
    // Four laps, each record read as soon as it is published.
    for n in 0..(4 * CAPACITY / rec) as u64 {
        let at = (n as usize * rec) % CAPACITY;
        publish(&mut producer, n);
        take(&mut consumer, n);
        // Only the record's own later line, which `take_copy` asks for
        // before decoding the header.
        let asked = std::mem::take(&mut *recording.asked.lock().unwrap());
        assert!(
            asked.iter().all(|&line| line > at && line < at + rec),
            "record at {at}: asked for {asked:?}"
        );
    }
}

#[test]
fn a_consumer_behind_asks_for_the_published_lines_ahead_of_it() {
    let (mut producer, mut consumer, recording, shown) = ring();
    let rec = record_len(PAYLOAD).unwrap();
    // Most of a ring published before the consumer starts.
    let frames = (CAPACITY - CAPACITY / 8) / rec;
    for n in 0..frames as u64 {
        publish(&mut producer, n);
    }
    let published_as_shown = shown() as usize;
    assert!(published_as_shown > CAPACITY / 2);
    let batch = CAPACITY / FLUSH_BATCH as usize;
    let mut ahead = Vec::new();
    for n in 0..frames as u64 {
        let at = n as usize * rec;
        take(&mut consumer, n);
        let asked = std::mem::take(&mut *recording.asked.lock().unwrap());
        for line in asked.into_iter().filter(|&line| line >= at + rec) {
            // Never a line past the producer's position as the consumer
            // last saw it, nor further than the distance ahead.
            assert!(
                line < published_as_shown,
                "line {line} past {published_as_shown}"
            );
            assert!(
                line < at + rec + DISTANCE as usize,
                "line {line} read at {at}"
            );
            ahead.push(line);
        }
    }
    // Nothing before the first batch given back (the position not yet
    // seen); from there every line up to the position seen, once.
    assert!(!ahead.is_empty(), "no line asked for ahead");
    let first = ahead[0];
    assert!(
        (batch..batch + DISTANCE as usize).contains(&first),
        "{first}"
    );
    let expected: Vec<usize> = (first..published_as_shown).step_by(64).collect();
    assert_eq!(ahead, expected);
}

#[test]
fn the_producer_asks_ahead_with_the_room_left_after_the_record() {
    let (mut producer, _, recording, _) = ring();
    let usable = (CAPACITY - SLACK) as u64;
    let rec = 2 * RECORD_ALIGN;
    for n in 0..3u64 {
        let offset = producer.try_reserve(rec).unwrap().expect("room");
        producer.claim_ahead(offset, rec);
        producer.commit(rec);
        let claimed = *recording.claimed.lock().unwrap().last().unwrap();
        // Room left after this record: nothing given back yet.
        assert_eq!(claimed, (offset, rec, usable - (n + 1) * rec as u64));
    }
    // Once the ring is too full for another record, nothing is asked (no
    // record is reserved), and the room the producer passes never wraps
    // below zero when the record fills the ring exactly.
    let rest = usable as usize - 3 * rec;
    let offset = producer.try_reserve(rest).unwrap().expect("the rest fits");
    producer.claim_ahead(offset, rest);
    assert_eq!(
        *recording.claimed.lock().unwrap().last().unwrap(),
        (offset, rest, 0)
    );
}
