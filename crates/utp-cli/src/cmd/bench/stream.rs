//! One-way streaming: the client sends messages back to back; the receiver
//! acknowledges every `window` messages (0: only the last), and the clock
//! stops when the final acknowledgement arrives.
//!
//! Warm-up messages go first, untimed, and are acknowledged like the end of a
//! run, so the timed part starts from an empty, warm link. The timed part
//! lasts as long as the [`Budget`] says; its last message is marked [`END`].

use super::link::{Fallible, Link};
use super::rtt::{Budget, END, MORE};
use super::sample::Sample;
use super::spec::ACK_LEN;
use std::time::Instant;

fn is_ack_point(i: u64, window: u64) -> bool {
    window > 0 && (i + 1) % window == 0
}

/// Client side: sends messages of `size` bytes; messages and payload bytes per second.
pub fn measure(link: &mut dyn Link, size: usize, budget: &Budget, window: u64) -> Fallible<Sample> {
    let size = size.max(1);
    let mut message = vec![MORE; size];
    let mut sent = warm_up(link, size, budget, window)?;
    let start = Instant::now();
    let mut done = 0u64;
    loop {
        // Look at the clock every 64 messages: a clock read per 64-byte message would show.
        let last = done % 64 == 63 && budget.enough(done, start.elapsed().as_secs_f64())
            || sent + 1 >= budget.max_count;
        if last {
            message[0] = END;
        }
        link.send(&message)?;
        done += 1;
        if last {
            link.recv(ACK_LEN)?;
            break;
        }
        if is_ack_point(sent, window) {
            link.recv(ACK_LEN)?;
        }
        sent += 1;
    }
    Ok(rates(done, size, start.elapsed().as_secs_f64()))
}

/// Client side of [`Mode::Batch`](super::spec::Mode::Batch): as
/// [`measure`], the messages handed over `batch` to a call
/// ([`Link::send_batch`]); the acknowledgements the peer owes for a batch
/// are read after it. The peer is [`sink`], as for single sends.
pub fn measure_batches(
    link: &mut dyn Link,
    size: usize,
    budget: &Budget,
    window: u64,
    batch: usize,
) -> Fallible<Sample> {
    let size = size.max(1);
    let batch = batch.max(1);
    let more = vec![MORE; size];
    let mut end = more.clone();
    end[0] = END;
    let mut messages: Vec<&[u8]> = vec![&more; batch];
    let mut sent = warm_up(link, size, budget, window)?;
    let start = Instant::now();
    let mut done = 0u64;
    // Look at the clock about every 64 messages, as `measure` does.
    let look_every = (64 / batch as u64).max(1);
    loop {
        let calls = done / batch as u64;
        let last = calls % look_every == look_every - 1
            && budget.enough(done, start.elapsed().as_secs_f64())
            || sent + 2 * batch as u64 > budget.max_count;
        if last {
            messages[batch - 1] = &end;
        }
        link.send_batch(&messages)?;
        for _ in 0..acks_owed(sent, batch as u64, window, last) {
            link.recv(ACK_LEN)?;
        }
        done += batch as u64;
        sent += batch as u64;
        if last {
            break;
        }
    }
    Ok(rates(done, size, start.elapsed().as_secs_f64()))
}

/// The acknowledgements [`sink`] sends for the `count` messages numbered
/// from `first`: one per window filled, and one for the last message if it
/// ends the run (one, even where a window ends with it).
fn acks_owed(first: u64, count: u64, window: u64, ends: bool) -> usize {
    let before_last = (first..first + count - 1)
        .filter(|&i| is_ack_point(i, window))
        .count();
    before_last + usize::from(ends || is_ack_point(first + count - 1, window))
}

/// The untimed warm-up: whole windows (or one burst), then a wait for the
/// peer to catch up. Returns the messages sent.
fn warm_up(link: &mut dyn Link, size: usize, budget: &Budget, window: u64) -> Fallible<u64> {
    if budget.warmup == 0 {
        return Ok(0);
    }
    let mut message = vec![MORE; size];
    let mut sent = 0u64;
    for _ in 0..budget.warmup {
        link.send(&message)?;
        sent += 1;
        if is_ack_point(sent - 1, window) {
            link.recv(ACK_LEN)?;
        }
    }
    message[0] = END - 1;
    link.send(&message)?;
    link.recv(ACK_LEN)?;
    Ok(sent + 1)
}

fn rates(done: u64, size: usize, seconds: f64) -> Sample {
    Sample {
        msgs_per_s: Some(done as f64 / seconds),
        bytes_per_s: Some((done * size as u64) as f64 / seconds),
        ..Sample::default()
    }
}

/// Peer side: receives messages, acknowledging every `window`, the end of the
/// warm-up and the last one; stops after the one marked [`END`] or `count`.
pub fn sink(link: &mut dyn Link, size: usize, count: u64, window: u64) -> Fallible<()> {
    let size = size.max(1);
    let ack = [0u8; ACK_LEN];
    for i in 0..count {
        let message = link.recv(size)?;
        let (n, first) = (message.len(), message.first().copied());
        if n != size {
            return Err(format!("message of {n} bytes, expected {size}").into());
        }
        if first == Some(END) || first == Some(END - 1) || is_ack_point(i, window) {
            link.send(&ack)?;
        }
        if first == Some(END) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_ack_point;

    #[test]
    fn a_batch_owes_the_acknowledgements_of_its_windows_and_of_its_end() {
        use super::acks_owed;
        // Windows of 16: a batch of 16 from message 16 ends one (message 31).
        assert_eq!(acks_owed(16, 16, 16, false), 1);
        assert_eq!(
            acks_owed(16, 16, 16, true),
            1,
            "the end's ack is the window's"
        );
        // Not aligned: messages 10..26 fill the window ending at 15.
        assert_eq!(acks_owed(10, 16, 16, false), 1);
        assert_eq!(acks_owed(10, 16, 16, true), 2);
        // No windows: only the end.
        assert_eq!(acks_owed(0, 16, 0, false), 0);
        assert_eq!(acks_owed(0, 16, 0, true), 1);
        assert_eq!(acks_owed(0, 64, 4, false), 16);
    }

    #[test]
    fn acknowledges_each_window() {
        let points: Vec<u64> = (0..10).filter(|&i| is_ack_point(i, 4)).collect();
        assert_eq!(points, [3, 7]);
        assert!(!(0..10).any(|i| is_ack_point(i, 0)));
    }
}
