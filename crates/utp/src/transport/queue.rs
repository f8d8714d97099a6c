//! Waiting on an in-process queue (crossbeam) with the crate's timeout rules:
//! used by listeners whose clients are handed over by a background thread
//! (inproc, udp, shm) and by the inproc channel.

use crate::error::{Error, Result};
use crossbeam_channel::{
    Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError, TrySendError,
};
use std::time::{Duration, Instant};

/// How long a blocking receive looks at the queue, a CPU pause apart,
/// before waiting in crossbeam's own receive (which looks again after 1,
/// 2, 4, … 64 pauses, then yields, then parks).
///
/// Why: an item that arrives while crossbeam backs off waits for its next
/// look, up to as long again as the wait so far, and one that arrives after
/// it parked waits for a wake-up (tens of microseconds on a virtual
/// machine). Looking at every pause first made `utp bench --only inproc`
/// read p50 481–592 ns where it had 571–1310 and the calculator twice the
/// calls per second (docs/benchmarks/journal.md, 2026-12-04, morning). A time, not
/// a count: a pause lasts 9 ns on one host and several times that on
/// another, and 64 looks (about 1.3 µs on the first) parked most 64 KiB
/// round trips and calculator calls there (section "late morning"). The
/// raw baseline waits the same way (`utp::__bench::inproc_look_first`).
pub const EARLY_LOOK_WINDOW: Duration = Duration::from_micros(10);

/// Looks before the clock is first read, and between two reads: an item
/// that comes within a few hundred nanoseconds costs no clock read.
const LOOKS_PER_CLOCK: u32 = 32;

/// The shortest timeout a receive looks first for (see
/// [`EARLY_LOOK_WINDOW`]); shorter ones wait in crossbeam's receive alone.
const EARLY_LOOKS_MIN_TIMEOUT: Duration = Duration::from_micros(100);

/// What [`look_first`] saw.
#[derive(Debug)]
pub enum Looked<T> {
    /// An item came while looking.
    Item(T),
    /// None came; the looks took about this long (less the first
    /// 32 looks, which read no clock).
    Nothing(Duration),
    /// Every sender is gone.
    Disconnected,
}

/// How [`keep_looking`] spaces its looks.
#[derive(Clone, Copy)]
struct Pace {
    /// CPU pauses after each look that found nothing.
    pauses: u32,
    /// Looks between two reads of the clock.
    looks_per_clock: u32,
}

/// Looks one pause apart (an item or a slot is taken within a pause of
/// its arrival), the clock read every [`LOOKS_PER_CLOCK`] looks: a
/// receive's, and a send's that waits for a single slot.
const EVERY_PAUSE: Pace = Pace {
    pauses: 1,
    looks_per_clock: LOOKS_PER_CLOCK,
};

/// A send's looks at a full queue when it waits for room for more than
/// one item: [`FULL_QUEUE_PAUSES`] apart, the clock read after each.
const FULL_QUEUE_PACE: Pace = Pace {
    pauses: FULL_QUEUE_PAUSES,
    looks_per_clock: 1,
};

/// CPU pauses between two looks of a send at a full queue (0.3 µs at
/// 10 ns a pause, more where a pause is longer).
///
/// Why not one, as a receive looks: every look at a full queue reads the
/// slot the consumer takes next and the consumer's position, so a
/// producer looking at every pause took those lines from the consumer for
/// each frame it took and slowed the very side it waited for. A 64 B
/// stream over `inproc://` between two pinned threads ran 4.8–7.5 M
/// frames/s with a look every pause, 9.6–15.6 M with these looks
/// (docs/benchmarks/journal.md, 2026-12-06). A full queue holds many frames, so
/// the consumer is busy for far longer than a look's spacing.
const FULL_QUEUE_PAUSES: u32 = 32;

/// Calls `look` until it gives an answer, for about [`EARLY_LOOK_WINDOW`]
/// at `pace`: `look` takes `state` and hands it back when it has no
/// answer yet (a send's item the full queue refused). Without an answer,
/// the state and how long the looks took (less the looks before the
/// first clock read). The one loop both directions wait in before
/// crossbeam's own waits.
#[inline(always)]
fn keep_looking<S, R>(
    mut state: S,
    pace: Pace,
    mut look: impl FnMut(S) -> std::result::Result<R, S>,
) -> std::result::Result<R, (S, Duration)> {
    let mut started: Option<Instant> = None;
    loop {
        for _ in 0..pace.looks_per_clock {
            match look(state) {
                Ok(answer) => return Ok(answer),
                Err(back) => {
                    state = back;
                    for _ in 0..pace.pauses {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        let now = Instant::now();
        match started {
            None => started = Some(now),
            Some(at) if now.duration_since(at) >= EARLY_LOOK_WINDOW => {
                return Err((state, now.duration_since(at)));
            }
            Some(_) => {}
        }
    }
}

/// The looks a blocking receive takes before crossbeam's receive: for
/// about [`EARLY_LOOK_WINDOW`], a CPU pause apart. (Public for the raw
/// in-process baseline, which waits the same way.)
pub fn look_first<T>(rx: &Receiver<T>) -> Looked<T> {
    keep_looking((), EVERY_PAUSE, |()| match rx.try_recv() {
        Ok(item) => Ok(Looked::Item(item)),
        Err(TryRecvError::Disconnected) => Ok(Looked::Disconnected),
        Err(TryRecvError::Empty) => Err(()),
    })
    .unwrap_or_else(|((), looked)| Looked::Nothing(looked))
}

/// What [`look_first_send`] did with the item.
#[derive(Debug)]
enum Placed<T> {
    /// The queue took it.
    Yes,
    /// The queue had not the room awaited while the looks took about this
    /// long (less the looks before the first clock read); here the item
    /// is back.
    Full(T, Duration),
    /// Every receiver is gone.
    Disconnected,
}

/// A send into a queue found full: looks again for about
/// [`EARLY_LOOK_WINDOW`] and queues once there is room for `wait_for`
/// items (looking [`FULL_QUEUE_PAUSES`] pauses apart), or for one (at
/// every pause, as it always did), before the caller waits in
/// crossbeam's blocking send (which takes any room at once and parks
/// only on a queue still full), for the reason
/// [`look_first`] gives on the receiving side (room that comes while
/// crossbeam backs off waits for its next look, room that comes after it
/// parked for a wake-up).
///
/// Why wait for more than one slot: queueing as soon as one is free
/// makes every further send find the queue full again, the producer
/// writing beside the slot the consumer reads; room for a batch lets the
/// consumer run ahead on lines the producer no longer touches. The caller
/// says how much (`inproc://`: a sixteenth of the queue for small frames,
/// one slot for large ones, `inproc::room_awaited`).
fn look_first_send<T>(tx: &Sender<T>, item: T, wait_for: usize) -> Placed<T> {
    let capacity = tx.capacity().unwrap_or(usize::MAX);
    // Not `clamp(1, capacity)`: a rendezvous queue has capacity 0, and
    // clamp panics when its bounds cross.
    let wait_for = wait_for.min(capacity).max(1);
    let pace = if wait_for > 1 {
        FULL_QUEUE_PACE
    } else {
        EVERY_PAUSE
    };
    keep_looking(item, pace, |item| {
        // Waiting for one slot, the try itself looks (as it always did).
        if wait_for > 1 && capacity - tx.len().min(capacity) < wait_for {
            // A disconnected queue looks full here too: the first look
            // that finds room, or the try after the looks, says so.
            return Err(item);
        }
        match tx.try_send(item) {
            Ok(()) => Ok(Placed::Yes),
            Err(TrySendError::Disconnected(_)) => Ok(Placed::Disconnected),
            Err(TrySendError::Full(back)) => Err(back),
        }
    })
    .unwrap_or_else(|(item, tried)| Placed::Full(item, tried))
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
    let mut left = timeout;
    // Not for short deadlines: the looks take about 10 µs.
    if timeout.is_none_or(|t| t >= EARLY_LOOKS_MIN_TIMEOUT) {
        match look_first(rx) {
            Looked::Item(item) => return Ok(item),
            // The looks count against the deadline.
            Looked::Nothing(looked) => left = timeout.map(|t| t.saturating_sub(looked)),
            Looked::Disconnected => return Err(disconnected()),
        }
    }
    match left {
        None => rx.recv().map_err(|_| disconnected()),
        Some(rest) => rx.recv_timeout(rest).map_err(|e| match e {
            RecvTimeoutError::Timeout => Error::Timeout {
                waiting_for,
                after: timeout.unwrap_or_default(),
            },
            RecvTimeoutError::Disconnected => disconnected(),
        }),
    }
}

/// Puts `item` into the queue, waiting at most `timeout` for room
/// (`None`: forever; zero: not at all). A queue with room takes it without
/// a clock read (crossbeam's timed send reads the clock first, to set its
/// deadline); only a full one waits (`send_to_full`), and while it looks
/// first it waits for room for `room` items (`look_first_send`).
/// (Public for the raw in-process baseline, which sends the same way.)
#[inline]
pub fn send<T>(
    tx: &Sender<T>,
    item: T,
    room: usize,
    timeout: Option<Duration>,
    waiting_for: &'static str,
    disconnected: impl FnOnce() -> Error,
) -> Result<()> {
    match tx.try_send(item) {
        Ok(()) => Ok(()),
        Err(TrySendError::Disconnected(_)) => Err(disconnected()),
        Err(TrySendError::Full(item)) => {
            send_to_full(tx, item, room, timeout, waiting_for, disconnected)
        }
    }
}

/// Puts `item` into a queue that was just found full, waiting at most
/// `timeout` for room (`None`: forever; zero: not at all), trying first as
/// [`look_first_send`] does when the timeout is long enough. A timeout is
/// [`Error::Timeout`] naming `waiting_for`; a queue whose receivers are all
/// gone is `disconnected()`.
fn send_to_full<T>(
    tx: &Sender<T>,
    mut item: T,
    room: usize,
    timeout: Option<Duration>,
    waiting_for: &'static str,
    disconnected: impl FnOnce() -> Error,
) -> Result<()> {
    let timed_out = || Error::Timeout {
        waiting_for,
        after: timeout.unwrap_or_default(),
    };
    let mut left = timeout;
    if timeout.is_none_or(|t| t >= EARLY_LOOKS_MIN_TIMEOUT) {
        match look_first_send(tx, item, room) {
            Placed::Yes => return Ok(()),
            // The tries count against the deadline.
            Placed::Full(back, tried) => {
                item = back;
                left = timeout.map(|t| t.saturating_sub(tried));
            }
            Placed::Disconnected => return Err(disconnected()),
        }
    }
    match left {
        None => tx.send(item).map_err(|_| disconnected()),
        Some(rest) if rest.is_zero() => Err(timed_out()),
        Some(rest) => tx.send_timeout(item, rest).map_err(|e| match e {
            SendTimeoutError::Timeout(_) => timed_out(),
            SendTimeoutError::Disconnected(_) => disconnected(),
        }),
    }
}

/// Takes an item that is already queued, without waiting. When there is
/// none and `bell`'s descriptor has been handed out (someone waits on it),
/// arms the bell (the producer rings it after queueing) and looks once
/// more, so that the descriptor turns readable for the next item; a
/// receiver that only polls looks once and is never rung (see
/// `Doorbell::hand_out`).
pub(crate) fn try_take<T>(
    rx: &Receiver<T>,
    bell: &crate::wake::Doorbell,
    disconnected: impl FnOnce() -> Error,
) -> Result<Option<T>> {
    for attempt in 0..2 {
        match rx.try_recv() {
            Ok(item) => return Ok(Some(item)),
            Err(TryRecvError::Disconnected) => return Err(disconnected()),
            Err(TryRecvError::Empty) if attempt == 0 && bell.handed_out() => bell.arm(),
            Err(TryRecvError::Empty) => return Ok(None),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

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
    fn the_looks_last_the_window_and_take_an_item_that_comes_within_it() {
        // Nothing comes: the looks give up once the window has passed.
        let (tx, rx) = bounded::<u32>(1);
        let started = Instant::now();
        match look_first(&rx) {
            Looked::Nothing(looked) => assert!(looked >= EARLY_LOOK_WINDOW, "{looked:?}"),
            other => panic!("nothing was sent, yet {other:?}"),
        }
        assert!(started.elapsed() >= EARLY_LOOK_WINDOW);
        // An item sent 5 µs into the looks is taken by them (a count of 64
        // looks gave up after about 1.3 µs on one host). Both threads must
        // run at once, which other tests running in parallel on two CPUs
        // can prevent for a while: tries for up to 5 s, stopping at the
        // first catch (20 tries had failed once under that load).
        let trying = Instant::now();
        let caught = (0..)
            .take_while(|_| trying.elapsed() < Duration::from_secs(5))
            .any(|_: u32| {
                let go = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let sender = {
                    let (go, tx) = (go.clone(), tx.clone());
                    std::thread::spawn(move || {
                        while !go.load(std::sync::atomic::Ordering::Acquire) {
                            std::hint::spin_loop();
                        }
                        let from = Instant::now();
                        while from.elapsed() < Duration::from_micros(5) {
                            std::hint::spin_loop();
                        }
                        tx.send(7).unwrap();
                    })
                };
                // Let the sender start spinning before the looks begin.
                std::thread::sleep(Duration::from_millis(2));
                go.store(true, std::sync::atomic::Ordering::Release);
                let looked = look_first(&rx);
                sender.join().unwrap();
                let _ = rx.try_recv();
                matches!(looked, Looked::Item(7))
            });
        assert!(caught, "no item sent 5 µs into the looks was taken by them");
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

    #[test]
    fn a_send_into_a_full_queue_tries_for_the_window_then_hands_the_item_back() {
        let (tx, rx) = bounded::<u32>(1);
        tx.send(1).unwrap();
        let started = Instant::now();
        match look_first_send(&tx, 2, 1) {
            Placed::Full(item, tried) => {
                assert_eq!(item, 2, "the item came back whole");
                assert!(tried >= EARLY_LOOK_WINDOW, "{tried:?}");
            }
            other => panic!("the queue stayed full, yet {other:?}"),
        }
        assert!(started.elapsed() >= EARLY_LOOK_WINDOW);
        assert_eq!(rx.try_recv(), Ok(1), "the queued item is untouched");
        drop(rx);
        assert!(matches!(look_first_send(&tx, 3, 1), Placed::Disconnected));
    }

    #[test]
    fn a_queue_of_no_capacity_is_looked_at_without_a_panic() {
        // A rendezvous queue (capacity 0) takes an item only from a
        // receiver waiting for it; with none, the looks end Full.
        let (tx, _rx) = bounded::<u32>(0);
        for wait_for in [0, 1, 2] {
            match look_first_send(&tx, 5, wait_for) {
                Placed::Full(item, _) => assert_eq!(item, 5),
                other => panic!("no receiver waits, yet {other:?}"),
            }
        }
    }

    #[test]
    fn a_send_into_a_full_queue_waits_for_room_for_a_batch_during_its_looks() {
        let (tx, rx) = bounded::<u32>(32);
        for item in 0..32 {
            tx.send(item).unwrap();
        }
        // One slot free: the looks leave it alone for the whole window,
        // then the send takes it.
        assert_eq!(rx.try_recv(), Ok(0));
        let started = Instant::now();
        match look_first_send(&tx, 100, 2) {
            Placed::Full(item, tried) => {
                assert_eq!(item, 100);
                assert!(tried >= EARLY_LOOK_WINDOW, "{tried:?}");
            }
            other => panic!("room for one of a batch of two, yet {other:?}"),
        }
        assert_eq!(tx.len(), 31, "the free slot was left alone");
        send_to_full(&tx, 100, 2, None, "room", gone).unwrap();
        assert!(started.elapsed() >= EARLY_LOOK_WINDOW);
        assert_eq!(tx.len(), 32);
        // Two free: the first look queues.
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Ok(2));
        assert!(matches!(look_first_send(&tx, 101, 2), Placed::Yes));
        assert_eq!(tx.len(), 31);
        let queued: Vec<u32> = rx.try_iter().collect();
        assert_eq!(queued, (3..32).chain([100, 101]).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_queue_whose_receiver_left_fails_the_send_with_its_error() {
        let (tx, rx) = bounded::<u32>(16);
        for item in 0..16 {
            tx.send(item).unwrap();
        }
        drop(rx);
        let started = Instant::now();
        for timeout in [None, Some(Duration::from_secs(5))] {
            assert!(matches!(
                send(&tx, 16, 4, timeout, "room", gone),
                Err(Error::Closed)
            ));
        }
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_send_into_a_full_queue_gets_in_when_room_comes_and_times_out_when_none_does() {
        // Room made 20 ms in: after the tries, crossbeam's blocking send.
        let (tx, rx) = bounded::<u32>(1);
        tx.send(1).unwrap();
        let receiver = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let first = rx.recv().unwrap();
            (first, rx.recv().unwrap())
        });
        send_to_full(&tx, 2, 1, None, "room", gone).unwrap();
        assert_eq!(receiver.join().unwrap(), (1, 2), "both arrived, in order");
        // No room ever: a timeout that names what it waited for, not before
        // its deadline; a zero timeout does not wait.
        let (tx, rx) = bounded::<u32>(1);
        tx.send(1).unwrap();
        for after in [
            Duration::ZERO,
            Duration::from_micros(50),
            Duration::from_millis(2),
        ] {
            let started = Instant::now();
            match send_to_full(&tx, 2, 1, Some(after), "room", gone) {
                Err(Error::Timeout {
                    waiting_for,
                    after: reported,
                }) => assert_eq!((waiting_for, reported), ("room", after)),
                other => panic!("expected a timeout after {after:?}, got {other:?}"),
            }
            assert!(started.elapsed() >= after, "returned before its deadline");
        }
        // Every receiver gone: the caller's error, at once.
        drop(rx);
        let started = Instant::now();
        assert!(matches!(
            send_to_full(&tx, 2, 1, None, "room", gone),
            Err(Error::Closed)
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
