//! Loom models of the pub/sub broadcast ring protocol
//! (`utp::pubsub::protocol`), the exact functions the ring runs, over
//! loom's atomics.
//!
//! - `copies_are_never_torn_and_losses_are_exact`: a publisher writes three
//!   two-word messages into a two-slot ring (so it laps); a reader copies
//!   with look / copy / intact. Every copy it accepts must be the message
//!   it claims to be (both words equal to n + 1), numbers only increase,
//!   and received + lost covers every message up to the last one read.
//! - `a_sleeper_is_always_woken`: a reader that decides to sleep (declared
//!   its wake value, then saw nothing) is always seen by the publisher's
//!   check, which then changes the wake word (so the futex wait returns).
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p utp --test loom_pubsub
//! ```
#![cfg(loom)]

use loom::sync::Arc;
use utp::pubsub::protocol::{
    AtomicU32, AtomicU64, Ordering, Seen, before_waking, begin, commit, intact, look,
    prepare_sleep, resume_after_lap, sleeps_on,
};

const SLOTS: u64 = 2;
const MESSAGES: u64 = 3;

struct Ring {
    tail: AtomicU64,
    stamps: [AtomicU64; SLOTS as usize],
    words: [[AtomicU64; 2]; SLOTS as usize],
}

#[test]
fn copies_are_never_torn_and_losses_are_exact() {
    loom::model(|| {
        let ring = Arc::new(Ring {
            tail: AtomicU64::new(0),
            stamps: [AtomicU64::new(0), AtomicU64::new(0)],
            words: [
                [AtomicU64::new(0), AtomicU64::new(0)],
                [AtomicU64::new(0), AtomicU64::new(0)],
            ],
        });
        let publisher = {
            let ring = ring.clone();
            loom::thread::spawn(move || {
                for n in 0..MESSAGES {
                    let slot = (n % SLOTS) as usize;
                    begin(&ring.stamps[slot], n);
                    for w in &ring.words[slot] {
                        w.store(n + 1, Ordering::Relaxed);
                    }
                    commit(&ring.stamps[slot], &ring.tail, n);
                }
            })
        };
        // The reader: one pass over what is there, without waiting (loom
        // needs bounded loops); then again after the publisher is done.
        let mut cursor = 0u64;
        let (mut received, mut lost) = (0u64, 0u64);
        let read = |cursor: &mut u64, received: &mut u64, lost: &mut u64| {
            for _ in 0..4 {
                if *cursor >= MESSAGES {
                    return;
                }
                let slot = (*cursor % SLOTS) as usize;
                match look(&ring.stamps[slot], *cursor) {
                    Seen::Empty => return,
                    Seen::Lapped => {
                        let resume = resume_after_lap(&ring.tail, *cursor, SLOTS);
                        assert!(resume > *cursor);
                        *lost += resume - *cursor;
                        *cursor = resume;
                    }
                    Seen::Ready => {
                        let copy = [
                            ring.words[slot][0].load(Ordering::Relaxed),
                            ring.words[slot][1].load(Ordering::Relaxed),
                        ];
                        if intact(&ring.stamps[slot], *cursor) {
                            assert_eq!(copy, [*cursor + 1, *cursor + 1], "torn or stale copy");
                            *received += 1;
                        } else {
                            *lost += 1;
                        }
                        *cursor += 1;
                    }
                }
            }
        };
        read(&mut cursor, &mut received, &mut lost);
        publisher.join().unwrap();
        read(&mut cursor, &mut received, &mut lost);
        read(&mut cursor, &mut received, &mut lost);
        assert_eq!(
            cursor, MESSAGES,
            "the reader reaches the end once the publisher is done"
        );
        assert_eq!(
            received + lost,
            MESSAGES,
            "every message received or counted lost"
        );
    });
}

#[test]
fn a_sleeper_is_always_woken() {
    loom::model(|| {
        let stamp = Arc::new(AtomicU64::new(0));
        let tail = Arc::new(AtomicU64::new(0));
        let wake = Arc::new(AtomicU32::new(0));
        let sleep = Arc::new(AtomicU64::new(0));
        let publisher = {
            let (stamp, tail, wake, sleep) =
                (stamp.clone(), tail.clone(), wake.clone(), sleep.clone());
            loom::thread::spawn(move || {
                begin(&stamp, 0);
                commit(&stamp, &tail, 0);
                before_waking();
                let current = wake.load(Ordering::Relaxed); // the publisher is its only writer
                if sleeps_on(&sleep, current) {
                    wake.store(current + 1, Ordering::Release);
                }
            })
        };
        let w = prepare_sleep(&wake, &sleep);
        let would_sleep = look(&stamp, 0) == Seen::Empty;
        publisher.join().unwrap();
        if would_sleep {
            // FUTEX_WAIT(wake, w) must not block for ever: the value moved on.
            assert_ne!(wake.load(Ordering::Acquire), w, "a sleeper was never woken");
        }
    });
}
