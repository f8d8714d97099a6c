//! One-way streaming: the client sends `count` messages back to back; the
//! receiver acknowledges every `window` messages (0: only the last), and the
//! clock stops when the final acknowledgement arrives.

use super::link::{Fallible, Link};
use super::sample::Sample;
use super::spec::ACK_LEN;
use std::time::Instant;

fn is_ack_point(i: u64, count: u64, window: u64) -> bool {
    i + 1 == count || (window > 0 && (i + 1) % window == 0)
}

/// Client side: sends `count` messages of `size` bytes; messages and payload bytes per second.
pub fn measure(link: &mut dyn Link, size: usize, count: u64, window: u64) -> Fallible<Sample> {
    let message = vec![0xa5u8; size];
    let start = Instant::now();
    for i in 0..count {
        link.send(&message)?;
        if is_ack_point(i, count, window) {
            link.recv(ACK_LEN)?;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Sample {
        msgs_per_s: Some(count as f64 / seconds),
        bytes_per_s: Some((count * size as u64) as f64 / seconds),
        ..Sample::default()
    })
}

/// Peer side: receives `count` messages, acknowledging as agreed.
pub fn sink(link: &mut dyn Link, size: usize, count: u64, window: u64) -> Fallible<()> {
    let ack = [0u8; ACK_LEN];
    for i in 0..count {
        let n = link.recv(size)?.len();
        if n != size {
            return Err(format!("message of {n} bytes, expected {size}").into());
        }
        if is_ack_point(i, count, window) {
            link.send(&ack)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_ack_point;

    #[test]
    fn acknowledges_each_window_and_the_end() {
        let points: Vec<u64> = (0..10).filter(|&i| is_ack_point(i, 10, 4)).collect();
        assert_eq!(points, [3, 7, 9]);
        let points: Vec<u64> = (0..10).filter(|&i| is_ack_point(i, 10, 0)).collect();
        assert_eq!(points, [9]);
    }
}
