//! Loom models of the seqlock protocol (`utp::seqlock::protocol`), the
//! exact functions the cells run, over loom's atomics.
//!
//! - `reads_are_never_torn`: a writer publishes two values whose two words
//!   are equal; a reader's consistent copies must have equal words and
//!   match a published value. Loom explores interleavings and the weak
//!   memory orderings of the Relaxed word accesses.
//! - `takeover_of_a_torn_cell`: a cell left odd (writer died mid-write) is
//!   never read as consistent until the new writer's publish completes.
//! - `a_sleeper_is_always_woken`: the `[WAKE]` handshake: a reader that
//!   decides to sleep is always seen by the writer's waiter check.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p utp --test loom_seqlock
//! ```
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::AtomicBool;
use utp::seqlock::protocol::{Attempt, arm, publish, take_waiters, try_read};
use utp::shm::sync::{AtomicU32, AtomicU64, Ordering};

struct Cell {
    seq: AtomicU64,
    words: [AtomicU64; 2],
    waiters: AtomicU32,
}

fn cell(seq: u64, w: u64) -> Arc<Cell> {
    Arc::new(Cell {
        seq: AtomicU64::new(seq),
        words: [AtomicU64::new(w), AtomicU64::new(w)],
        waiters: AtomicU32::new(0),
    })
}

fn read(c: &Cell) -> Option<(u64, [u64; 2])> {
    let mut out = [0u64; 2];
    match try_read(&c.seq, &c.words, |i, w| out[i] = w) {
        Attempt::Consistent(seq) => Some((seq, out)),
        Attempt::Writing(_) | Attempt::Raced => None,
    }
}

#[test]
fn reads_are_never_torn() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let c = cell(0, 0);
        let w = c.clone();
        let writer = loom::thread::spawn(move || {
            let mut s = 0;
            for v in [1u64, 2] {
                s = publish(&w.seq, &w.words, s, |_| v);
            }
            s
        });
        for _ in 0..2 {
            if let Some((seq, words)) = read(&c) {
                assert_eq!(words[0], words[1], "torn read at seq {seq}");
                assert_eq!(words[0], seq / 2, "seq {seq} carries value {}", words[0]);
            }
        }
        assert_eq!(writer.join().unwrap(), 4);
        assert_eq!(read(&c), Some((4, [2, 2])));
    });
}

#[test]
fn takeover_of_a_torn_cell() {
    loom::model(|| {
        // The dead writer left seq 3 (odd) and half-written words.
        let c = cell(3, 0);
        c.words[0].store(7, Ordering::Relaxed);
        let w = c.clone();
        let writer = loom::thread::spawn(move || publish(&w.seq, &w.words, 3, |_| 9));
        if let Some((seq, words)) = read(&c) {
            assert_eq!((seq, words), (4, [9, 9]));
        }
        assert_eq!(writer.join().unwrap(), 4);
    });
}

#[test]
fn a_sleeper_is_always_woken() {
    loom::model(|| {
        let c = cell(0, 0);
        let slept = Arc::new(AtomicBool::new(false));
        let (w, s) = (c.clone(), slept.clone());
        let reader = loom::thread::spawn(move || {
            // Wait for a sequence other than 0: sleep only if still 0 after arming.
            if arm(&w.waiters, &w.seq) == 0 {
                s.store(true, Ordering::Relaxed);
                true
            } else {
                false
            }
        });
        publish(&c.seq, &c.words, 0, |_| 1);
        let woke = take_waiters(&c.waiters);
        let would_sleep = reader.join().unwrap();
        assert!(
            !would_sleep || woke,
            "reader sleeps and the writer does not wake it"
        );
    });
}
