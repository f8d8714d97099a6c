//! Round trips: the client sends a request of N bytes and waits for a reply of
//! N bytes, timing each round trip into an HDR histogram.
//!
//! A run lasts at least [`Budget::min_seconds`] and [`Budget::min_count`]
//! timed round trips, and at most [`Budget::max_count`]; the last request is
//! marked ([`END`] in its first byte) so the peer knows the run is over.

use super::link::{Fallible, Link};
use super::sample::{Sample, latency_histogram};
use std::time::Instant;

/// First byte of an ordinary request or streamed message.
pub const MORE: u8 = 0xa5;
/// First byte of the last request or streamed message of a run.
pub const END: u8 = 0xe5;

/// How long a run goes on.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Untimed round trips (or messages) first.
    pub warmup: u64,
    /// Warm-up requests sent before their replies are read (1: strict
    /// ping-pong). Bursts fill a shared-memory ring's lap quickly.
    pub warmup_burst: u64,
    /// Timed round trips (or messages), at least.
    pub min_count: u64,
    /// Seconds of timed work, at least.
    pub min_seconds: f64,
    /// Round trips (or messages) in all, warm-up included, at most: the peer's limit.
    pub max_count: u64,
}

impl Budget {
    /// Whether the run may stop after `done` timed operations taking `seconds`.
    pub fn enough(&self, done: u64, seconds: f64) -> bool {
        (done >= self.min_count && seconds >= self.min_seconds)
            || self.warmup + done + 1 >= self.max_count
    }
}

/// Client side: the warm-up, then timed round trips until the budget says enough.
pub fn measure(link: &mut dyn Link, size: usize, budget: &Budget) -> Fallible<Sample> {
    let size = size.max(1);
    let mut request = vec![MORE; size];
    let mut latencies = latency_histogram();
    let burst = budget.warmup_burst.max(1);
    let mut warmed = 0;
    while warmed < budget.warmup {
        let n = burst.min(budget.warmup - warmed);
        for _ in 0..n {
            link.send(&request)?;
        }
        for _ in 0..n {
            check(link.recv(size)?.len(), size)?;
        }
        warmed += n;
    }
    let started = Instant::now();
    let mut done = 0u64;
    loop {
        let last = budget.enough(done, started.elapsed().as_secs_f64());
        if last {
            request[0] = END;
        }
        let start = Instant::now();
        link.send(&request)?;
        let reply = link.recv(size)?.len();
        let elapsed = start.elapsed();
        check(reply, size)?;
        latencies.saturating_record(elapsed.as_nanos() as u64);
        done += 1;
        if last {
            return Ok(Sample::from_latencies(&latencies));
        }
    }
}

/// Fails unless a reply is as long as its request.
pub(super) fn check(reply: usize, size: usize) -> Fallible<()> {
    if reply != size {
        return Err(format!("reply of {reply} bytes to a request of {size}").into());
    }
    Ok(())
}

/// Peer side: answers requests with replies of the same size until the one
/// marked [`END`], or `count` of them.
pub fn echo(link: &mut dyn Link, size: usize, count: u64) -> Fallible<()> {
    let size = size.max(1);
    let reply = vec![0x5au8; size];
    for _ in 0..count {
        let request = link.recv(size)?;
        let (n, last) = (request.len(), request.first() == Some(&END));
        if n != size {
            return Err(format!("request of {n} bytes, expected {size}").into());
        }
        link.send(&reply)?;
        if last {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_needs_both_its_count_and_its_time_unless_the_cap_is_reached() {
        let budget = Budget {
            warmup: 10,
            warmup_burst: 1,
            min_count: 100,
            min_seconds: 0.5,
            max_count: 1_000,
        };
        assert!(!budget.enough(100, 0.1), "too short");
        assert!(!budget.enough(50, 1.0), "too few");
        assert!(budget.enough(100, 0.5));
        assert!(budget.enough(989, 0.0), "the peer's limit");
    }
}
