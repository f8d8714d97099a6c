//! Fixed-rate load (`utp bench --rate N/s`): requests leave on a fixed
//! schedule, one every 1/N s, whatever happened to the previous one, and the
//! peer echoes each. A request's latency is counted from the moment it was
//! *scheduled* to leave, not from when it actually left: when a reply is late,
//! the requests that should have gone meanwhile wait, and that wait is part of
//! what a user sending at N/s would see. This is the correction for
//! coordinated omission of Aeron's LoadTestRig and of wrk2 (HdrHistogram's
//! `record_correct` estimates the same from uncorrected samples). The
//! uncorrected latency (from the actual send) is kept beside it for contrast.
//!
//! One request is in flight at a time (the link is a blocking ping-pong), so
//! a mechanism whose round trip is longer than the period cannot keep up: the
//! achieved rate then falls below the offered one and the corrected
//! latencies grow with the backlog, which the report says.

use super::link::{Fallible, Link};
use super::rtt::{Budget, END, MORE};
use super::sample::{Sample, latency_histogram};
use std::time::{Duration, Instant};

/// Parses `100000`, `100k`, `100k/s`, `1.5M/s` into messages per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let (number, scale) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'M')) => (&t[..i], 1e6),
        _ => (t, 1.0),
    };
    let rate = number
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|r| r.is_finite() && *r >= 1.0 && *r <= 100e6)
        .ok_or_else(|| {
            format!("{text:?} is not a rate: give messages per second, e.g. 100000, 100k/s or 1.5M/s (1 to 100M)")
        })?;
    Ok(rate)
}

/// Client side: the warm-up (as for round trips), then requests on a fixed
/// schedule of `rate` per second for `seconds`, each answered by the peer.
pub fn measure(
    link: &mut dyn Link,
    size: usize,
    budget: &Budget,
    rate: f64,
    seconds: f64,
) -> Fallible<Sample> {
    let size = size.max(1);
    let mut request = vec![MORE; size];
    let burst = budget.warmup_burst.max(1);
    let mut warmed = 0;
    while warmed < budget.warmup {
        let n = burst.min(budget.warmup - warmed);
        for _ in 0..n {
            link.send(&request)?;
        }
        for _ in 0..n {
            link.recv(size)?;
        }
        warmed += n;
    }
    let period = Duration::from_secs_f64(1.0 / rate);
    // Whole requests only, at least one, and within the peer's limit.
    let total = ((seconds * rate).ceil() as u64)
        .clamp(1, budget.max_count.saturating_sub(budget.warmup).max(1));
    let mut corrected = latency_histogram();
    let mut uncorrected = latency_histogram();
    let start = Instant::now();
    for i in 0..total {
        let scheduled = start + period.mul_f64(i as f64);
        // Spin to the scheduled moment: a sleep would wake tens of µs late.
        while Instant::now() < scheduled {
            std::hint::spin_loop();
        }
        if i + 1 == total {
            request[0] = END;
        }
        let sent = Instant::now();
        link.send(&request)?;
        let n = link.recv(size)?.len();
        let done = Instant::now();
        if n != size {
            return Err(format!("reply of {n} bytes to a request of {size}").into());
        }
        corrected.saturating_record((done - scheduled).as_nanos() as u64);
        uncorrected.saturating_record((done - sent).as_nanos() as u64);
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Sample {
        msgs_per_s: Some(total as f64 / elapsed),
        uncorrected_p99_ns: Some(uncorrected.value_at_quantile(0.99)),
        ..Sample::from_latencies(&corrected)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_suffixes_and_nonsense_is_refused() {
        assert_eq!(parse_rate("100000"), Ok(100_000.0));
        assert_eq!(parse_rate("100k/s"), Ok(100_000.0));
        assert_eq!(parse_rate("1.5M/s"), Ok(1_500_000.0));
        assert_eq!(parse_rate("250/s"), Ok(250.0));
        for bad in ["", "fast", "0", "-5/s", "1e12", "NaN"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
