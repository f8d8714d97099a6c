//! Round trips: the client sends a request of N bytes and waits for a reply of
//! N bytes, timing each round trip into an HDR histogram.

use super::link::{Fallible, Link};
use super::sample::{Sample, latency_histogram};
use std::time::Instant;

/// Client side: `warmup` untimed round trips, then `iterations` timed ones.
pub fn measure(link: &mut dyn Link, size: usize, warmup: u64, iterations: u64) -> Fallible<Sample> {
    let request = vec![0xa5u8; size];
    let mut latencies = latency_histogram();
    for i in 0..warmup + iterations {
        let start = Instant::now();
        link.send(&request)?;
        let reply = link.recv(size)?.len();
        let elapsed = start.elapsed();
        if reply != size {
            return Err(format!("reply of {reply} bytes to a request of {size}").into());
        }
        if i >= warmup {
            latencies.saturating_record(elapsed.as_nanos() as u64);
        }
    }
    Ok(Sample::from_latencies(&latencies))
}

/// Peer side: answers `count` requests with replies of the same size.
pub fn echo(link: &mut dyn Link, size: usize, count: u64) -> Fallible<()> {
    let reply = vec![0x5au8; size];
    for _ in 0..count {
        let n = link.recv(size)?.len();
        if n != size {
            return Err(format!("request of {n} bytes, expected {size}").into());
        }
        link.send(&reply)?;
    }
    Ok(())
}
