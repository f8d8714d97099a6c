//! Two-thread models of the seqlock protocol (`utp::seqlock::protocol`),
//! the functions the cells run, over ordinary heap atomics; run natively
//! and under Miri (which checks the atomics for data races and explores
//! weak-memory outcomes of the Relaxed accesses).
//!
//! ```text
//! cargo test -p utp --test threads_seqlock
//! cargo +nightly miri test -p utp --test threads_seqlock
//! ```

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use utp::seqlock::protocol::{Attempt, arm, publish, take_waiters, try_read};

const WRITES: u64 = if cfg!(miri) { 40 } else { 50_000 };
const ROUNDS: usize = if cfg!(miri) { 20 } else { 2_000 };
const WORDS: usize = 4;

#[test]
fn a_reader_thread_never_sees_a_torn_or_stale_value() {
    let seq = AtomicU64::new(0);
    let words: [AtomicU64; WORDS] = Default::default();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut seq_now = 0;
            for v in 1..=WRITES {
                seq_now = publish(&seq, &words, seq_now, |i| v * 10 + i as u64);
            }
            assert_eq!(seq_now, 2 * WRITES);
            done.store(true, Ordering::Release);
        });
        let mut last = 0;
        let mut consistent = 0u64;
        loop {
            let finished = done.load(Ordering::Acquire);
            let mut copy = [0u64; WORDS];
            match try_read(&seq, &words, |i, w| copy[i] = w) {
                Attempt::Consistent(s) => {
                    let v = s / 2;
                    let expected: Vec<u64> = (0..WORDS as u64)
                        .map(|i| if v == 0 { 0 } else { v * 10 + i })
                        .collect();
                    assert_eq!(&copy[..], &expected[..], "torn copy at seq {s}");
                    assert!(s >= last, "sequence went back from {last} to {s}");
                    last = s;
                    consistent += 1;
                    if finished && s == 2 * WRITES {
                        break;
                    }
                }
                Attempt::Writing(s) => assert_eq!(s & 1, 1),
                Attempt::Raced => {}
            }
            std::thread::yield_now();
        }
        assert!(consistent > 0);
    });
}

#[test]
fn a_reader_that_decides_to_sleep_is_always_seen_by_the_writer() {
    // Store-buffering litmus of `[WAKE]`: the reader arms and re-reads the
    // sequence, the writer publishes and checks the waiter word. At least
    // one must see the other's store, in every round.
    let barrier = Barrier::new(2);
    let seq = AtomicU64::new(0);
    let words: [AtomicU64; 1] = Default::default();
    let waiters = AtomicU32::new(0);
    let would_sleep = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..ROUNDS {
                barrier.wait();
                let seen = arm(&waiters, &seq);
                would_sleep.store(seen % 4 == 0, Ordering::Relaxed);
                barrier.wait();
                barrier.wait();
            }
        });
        let mut s = 0;
        for round in 0..ROUNDS {
            // Sequence before the round: 4*round (even); the publish makes it 4*round+2.
            barrier.wait();
            s = publish(&seq, &words, s, |_| round as u64);
            let woke = take_waiters(&waiters);
            barrier.wait();
            let slept = would_sleep.load(Ordering::Relaxed);
            assert!(
                !slept || woke,
                "round {round}: the reader sleeps and nobody wakes it"
            );
            // Reset for the next round: back to a multiple of 4, no waiter.
            s = publish(&seq, &words, s, |_| 0);
            waiters.store(0, Ordering::Relaxed);
            barrier.wait();
        }
    });
}
