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
    let mut sent = 0u64;
    // Warm-up: whole windows (or one burst), then wait for the peer to catch up.
    if budget.warmup > 0 {
        for _ in 0..budget.warmup {
            link.send(&message)?;
            sent += 1;
            if is_ack_point(sent - 1, window) {
                link.recv(ACK_LEN)?;
            }
        }
        message[0] = END - 1;
        link.send(&message)?;
        sent += 1;
        link.recv(ACK_LEN)?;
        message[0] = MORE;
    }
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
    let seconds = start.elapsed().as_secs_f64();
    Ok(Sample {
        msgs_per_s: Some(done as f64 / seconds),
        bytes_per_s: Some((done * size as u64) as f64 / seconds),
        ..Sample::default()
    })
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
    fn acknowledges_each_window() {
        let points: Vec<u64> = (0..10).filter(|&i| is_ack_point(i, 4)).collect();
        assert_eq!(points, [3, 7]);
        assert!(!(0..10).any(|i| is_ack_point(i, 0)));
    }
}
