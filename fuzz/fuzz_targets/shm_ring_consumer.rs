//! The shared-memory ring consumer (`utp::shm::ring::Consumer`, layout v2)
//! over an arbitrary image of a ring's data area, as a hostile peer process
//! could leave it: never a panic, never a read out of bounds, and every
//! record it lends lies inside the data area with its payload.
//!
//! Input: one byte choosing the capacity (4 KiB to 64 KiB; its value mod
//! 5) and, in its top two bits, whether this end agreed to records in
//! pieces and whether its waiting polls copy them (so progress stamps reach
//! the consumer's piece checks and copies), and in bit 5 whether stamps are
//! keyed (the key is then the next 8 bytes, little-endian: a peer knows
//! it), then the data area (zero-filled or cut to the capacity). In layout v2 the consumer
//! finds records by their stamps alone; it never reads the producer's tail.
//!
//! The ring runs over a heap block laid out like a region's ring (256-byte
//! index header, then the data area), through the same `Indices::from_raw`
//! and `MappedBytes` the link uses on a mapping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use utp::shm::bytes::MappedBytes;
use utp::shm::ring::{Consumer, Indices, MIN_CAPACITY, PAYLOAD_OFFSET, RECORD_ALIGN};

const INDEX_LEN: usize = 256;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, mut image)) = data.split_first() else {
        return;
    };
    let mut key = None;
    if choice & 0x20 != 0 {
        let Some((word, rest)) = image.split_first_chunk::<8>() else {
            return;
        };
        (key, image) = (Some(u64::from_le_bytes(*word)), rest);
    }
    let cap = MIN_CAPACITY << (choice % 5);
    let layout = Layout::from_size_align(INDEX_LEN + cap, 64).unwrap();
    // SAFETY: the layout has a non-zero size.
    let block = unsafe { alloc_zeroed(layout) };
    assert!(!block.is_null());
    let copied = image.len().min(cap);
    // SAFETY: `copied` bytes fit after the index header of the new block.
    unsafe { std::ptr::copy_nonoverlapping(image.as_ptr(), block.add(INDEX_LEN), copied) };
    // SAFETY: 256 zeroed, 64-aligned bytes at the start of the block, which
    // outlives the consumer (dropped before the block is freed).
    let indices = unsafe { Indices::from_raw(block) };
    // SAFETY: `cap` bytes after the index header, alive as above.
    let bytes = unsafe { MappedBytes::new(block.add(INDEX_LEN), cap) };
    let (pieces, copying) = (choice & 0x80 != 0, choice & 0x40 != 0);
    if let Ok(mut consumer) = Consumer::new(indices, bytes, cap / 2) {
        consumer.set_pieces(pieces);
        consumer.set_stamp_key(key);
        // Each record is at least RECORD_ALIGN bytes, so a capacity's worth
        // of them drains the ring; more would mean the consumer is looping.
        for _ in 0..=cap / RECORD_ALIGN + 1 {
            // `ready` (a waiting receiver's poll) skips padding as `peek`
            // does: when it says a record is there, `peek` finds it or
            // reports the ring corrupt, never nothing (nobody writes the
            // bytes meanwhile). A record still in pieces is neither.
            let ready = consumer.ready(copying);
            let peeked = consumer.peek();
            if let Ok(true) = ready {
                assert!(!matches!(peeked, Ok(None)), "ready() saw a record peek() did not");
            }
            match peeked {
                Ok(Some(record)) => {
                    assert!(record.offset < cap, "record at {} of {cap}", record.offset);
                    assert!(record.len >= RECORD_ALIGN && record.len <= cap);
                    if !consumer.too_large(&record) {
                        let len = record.header.payload_length as usize;
                        let end = record.offset + PAYLOAD_OFFSET + len;
                        assert!(end <= cap, "payload ends at {end}, past {cap}");
                        // SAFETY: inside the data area (checked just above);
                        // the record is released only after the copy.
                        let copy = unsafe {
                            consumer.bytes().view(record.offset + PAYLOAD_OFFSET, len)
                        }
                        .to_vec();
                        assert_eq!(copy.len(), len);
                    }
                    consumer.release(record.len);
                    consumer.flush();
                }
                Ok(None) | Err(_) => break,
            }
        }
        drop(consumer);
    }
    // SAFETY: allocated above with this layout; nothing refers to it now.
    unsafe { dealloc(block, layout) };
});
