//! Waiting on an in-process queue (crossbeam) with the crate's timeout rules:
//! used by listeners whose clients are handed over by a background thread
//! (inproc, udp, shm) and by the inproc channel.

use crate::error::{Error, Result};
use crossbeam_channel::{Receiver, RecvError, RecvTimeoutError, TryRecvError};
use std::time::Duration;

/// Looks at the queue this many times, a CPU pause apart, before waiting
/// in crossbeam's own receive.
///
/// Why: crossbeam's blocking receive looks again after 1, 2, 4, … 64
/// pauses, then yields, then parks, so an item that arrives just after
/// one look waits for the next, up to as long again as the wait so far.
/// In-process round trips sat on those steps (p50 491–501 ns or 591–601
/// ns in a scratch ping-pong, never between) and parked often (p99 24–89
/// µs); looking at every pause first, `utp bench --only inproc` measured
/// p50 481–592 ns where it had 571–1310, p99 about 1 µs, and the
/// calculator at twice the calls per second (docs/BENCHMARKS.md,
/// 2026-12-04). The raw baseline waits the same way
/// (`utp::__bench::inproc_look_first`).
pub const EARLY_LOOKS: u32 = 64;

/// The shortest timeout a receive looks first for (see [`EARLY_LOOKS`]).
const EARLY_LOOKS_MIN_TIMEOUT: Duration = Duration::from_micros(100);

/// The looks `recv` takes before crossbeam's receive: the item if one
/// comes within [`EARLY_LOOKS`] pauses, `None` if none did, `RecvError`
/// if every sender is gone. (Public for the raw in-process baseline,
/// which waits the same way.)
pub fn look_first<T>(rx: &Receiver<T>) -> std::result::Result<Option<T>, RecvError> {
    for _ in 0..EARLY_LOOKS {
        match rx.try_recv() {
            Ok(item) => return Ok(Some(item)),
            Err(TryRecvError::Disconnected) => return Err(RecvError),
            Err(TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
    Ok(None)
}

/// Takes the next item, waiting at most `timeout` (`None`: forever).
/// A timeout is [`Error::Timeout`] naming `waiting_for`; a queue whose
/// senders are all gone is `disconnected()`.
pub(crate) fn recv<T>(
    rx: &Receiver<T>,
    timeout: Option<Duration>,
    waiting_for: &'static str,
    disconnected: impl FnOnce() -> Error,
) -> Result<T> {
    // Not for short deadlines: the looks take a few microseconds.
    if timeout.is_none_or(|t| t >= EARLY_LOOKS_MIN_TIMEOUT) {
        match look_first(rx) {
            Ok(Some(item)) => return Ok(item),
            Ok(None) => {}
            Err(RecvError) => return Err(disconnected()),
        }
    }
    match timeout {
        None => rx.recv().map_err(|_| disconnected()),
        Some(after) => rx.recv_timeout(after).map_err(|e| match e {
            RecvTimeoutError::Timeout => Error::Timeout { waiting_for, after },
            RecvTimeoutError::Disconnected => disconnected(),
        }),
    }
}

/// Takes an item that is already queued, without waiting; when there is
/// none, arms `bell` (the producer rings it after queueing) and looks once
/// more, so that `bell`'s descriptor turns readable for the next item.
pub(crate) fn try_take<T>(
    rx: &Receiver<T>,
    bell: &crate::wake::Doorbell,
    disconnected: impl FnOnce() -> Error,
) -> Result<Option<T>> {
    for attempt in 0..2 {
        match rx.try_recv() {
            Ok(item) => return Ok(Some(item)),
            Err(TryRecvError::Disconnected) => return Err(disconnected()),
            Err(TryRecvError::Empty) if attempt == 0 => bell.arm(),
            Err(TryRecvError::Empty) => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use std::time::Instant;

    fn gone() -> Error {
        Error::Closed
    }

    #[test]
    fn an_item_is_taken_whether_it_comes_during_the_looks_or_after() {
        for delay in [Duration::ZERO, Duration::from_millis(20)] {
            let (tx, rx) = bounded(1);
            let sender = std::thread::spawn(move || {
                std::thread::sleep(delay);
                tx.send(7u32).unwrap();
                tx // kept until joined: the queue is not disconnected meanwhile
            });
            assert_eq!(recv(&rx, None, "an item", gone).unwrap(), 7);
            drop(sender.join().unwrap());
        }
    }

    #[test]
    fn a_queue_whose_senders_left_fails_at_once_with_their_error() {
        let (tx, rx) = bounded::<u32>(1);
        drop(tx);
        let started = Instant::now();
        assert!(matches!(
            recv(&rx, None, "an item", gone),
            Err(Error::Closed)
        ));
        assert!(matches!(
            recv(&rx, Some(Duration::from_secs(5)), "an item", gone),
            Err(Error::Closed)
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_short_timeout_still_times_out_and_names_what_it_waited_for() {
        let (_tx, rx) = bounded::<u32>(1);
        for after in [Duration::from_micros(50), Duration::from_millis(2)] {
            let started = Instant::now();
            match recv(&rx, Some(after), "an item", gone) {
                Err(Error::Timeout {
                    waiting_for,
                    after: reported,
                }) => {
                    assert_eq!(waiting_for, "an item");
                    assert_eq!(reported, after);
                }
                other => panic!("expected a timeout after {after:?}, got {other:?}"),
            }
            assert!(started.elapsed() >= after, "returned before its deadline");
        }
    }
}
