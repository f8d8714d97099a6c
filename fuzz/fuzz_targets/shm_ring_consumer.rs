//! The shared-memory ring consumer (`utp::shm::ring::Consumer`) over an
//! arbitrary image of a ring's data area and arbitrary write positions, as a
//! hostile peer process could leave them: never a panic, never a read out of
//! bounds, and every record it lends is a valid header inside the published
//! bytes and before the end of the data area.
//!
//! Input: one byte choosing the capacity (64 B to 64 KiB), two write
//! positions (u64 LE; the second is published after the first is drained),
//! then the data area (zero-filled or cut to the capacity).
//!
//! NOTE for the shm v2 layout: this target drives the ring through its
//! public pieces (`Indices::from_static`, `RingBytes`, `Consumer`); adapt it
//! when those change.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use utp::frame::{self, HEADER_LEN};
use utp::shm::ring::{Consumer, Indices, RECORD_ALIGN, RingBytes};

/// The ring's shared words: statics, reset for every input (one thread).
static TAIL: AtomicU64 = AtomicU64::new(0);
static HEAD: AtomicU64 = AtomicU64::new(0);
static DATA_WAITERS: AtomicU32 = AtomicU32::new(0);
static SPACE_WAITERS: AtomicU32 = AtomicU32::new(0);

/// The data area on the heap; reads out of bounds fail the target.
struct Area(RefCell<Vec<u8>>);

impl RingBytes for Area {
    fn capacity(&self) -> usize {
        self.0.borrow().len()
    }
    fn write(&self, offset: usize, src: &[u8]) {
        self.0.borrow_mut()[offset..offset + src.len()].copy_from_slice(src);
    }
    fn read(&self, offset: usize, dst: &mut [u8]) {
        let area = self.0.borrow();
        let end = offset.checked_add(dst.len()).expect("read range overflows");
        assert!(
            end <= area.len(),
            "read of {offset}..{end} outside the {}-byte area",
            area.len()
        );
        dst.copy_from_slice(&area[offset..end]);
    }
    fn prefetch(&self, offset: usize) {
        assert!(
            offset < self.capacity(),
            "prefetch outside the area: {offset}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let cap = 64usize << (data[0] % 11);
    let tails = [
        u64::from_le_bytes(data[1..9].try_into().unwrap()),
        u64::from_le_bytes(data[9..17].try_into().unwrap()),
    ];
    let mut area = data[17..].to_vec();
    area.resize(cap, 0);
    for word in [&TAIL, &HEAD] {
        word.store(0, Ordering::Relaxed);
    }
    for word in [&DATA_WAITERS, &SPACE_WAITERS] {
        word.store(0, Ordering::Relaxed);
    }
    let indices = Indices::from_static(&TAIL, &HEAD, &DATA_WAITERS, &SPACE_WAITERS);
    let max_payload = cap / 2;
    let mut consumer = Consumer::new(indices, Area(RefCell::new(area)), max_payload).unwrap();
    'tails: for tail in tails {
        TAIL.store(tail, Ordering::Release);
        // Each record is at least RECORD_ALIGN bytes, so a capacity's worth
        // of them drains the ring; more means the consumer is looping.
        for _ in 0..=cap / RECORD_ALIGN + 1 {
            let record = match consumer.peek() {
                Ok(Some(record)) => record,
                Ok(None) => continue 'tails,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    break 'tails;
                }
            };
            let position = HEAD.load(Ordering::Relaxed);
            let published = tail.wrapping_sub(position);
            assert!(
                record.offset + record.len <= cap,
                "{record:?} runs past {cap}"
            );
            assert!(
                record.len as u64 <= published,
                "{record:?} beyond {published} published"
            );
            assert_eq!(record.offset % RECORD_ALIGN, 0);
            assert_eq!(record.len % RECORD_ALIGN, 0);
            let payload_len = record.header.payload_length as usize;
            assert!(HEADER_LEN + payload_len <= record.len);
            assert_eq!(record.too_large, payload_len > max_payload);
            // What the link does next: copy the payload and verify it.
            let mut payload = vec![0u8; payload_len];
            consumer
                .bytes()
                .read(record.offset + HEADER_LEN, &mut payload);
            let _ = frame::decode(&[&record.header_bytes[..], &payload].concat(), max_payload);
            consumer.release(record.len);
        }
        panic!("the consumer found more records than fit in a {cap}-byte ring");
    }
});
