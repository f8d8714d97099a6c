//! Fixed-rate load (`utp bench --rate N/s`): requests leave on a fixed
//! schedule, one every 1/N s, whatever happened to the ones before, and the
//! peer echoes each. The client never waits for a reply before its next
//! request is due: between sends it polls for replies (`Link::try_recv`),
//! one thread doing both, as Aeron's LoadTestRig does. A request's latency
//! is counted from the moment it was *scheduled* to leave, not from when it
//! actually left: a request that leaves late (behind a slow send, or held
//! by the window below) has waited, and that wait is part of what a user
//! sending at N/s would see. This is the correction for coordinated
//! omission of LoadTestRig and of wrk2 (HdrHistogram's `record_correct`
//! estimates the same from uncorrected samples). The uncorrected latency
//! (from the actual send) is kept beside it for contrast.
//!
//! At most [`IN_FLIGHT`] requests are in flight (sent, their replies not
//! yet read), fewer where the mechanism holds fewer
//! (`Mechanism::holds_in_flight`), so neither side's send ever waits for
//! the other to read. A mechanism that cannot carry the rate with that
//! many in flight (its round trip longer than `IN_FLIGHT` periods, or its
//! throughput below the rate) falls behind: the achieved rate drops below
//! the offered one and the corrected latencies grow with the backlog,
//! which the report says.
//!
//! The client spins throughout (to each scheduled moment, and polling for
//! replies), so its own wake-ups are not measured; the peer waits as its
//! mechanism's wait says, so a sleeping receiver's wake-up is.

use super::link::{Fallible, Link};
use super::rtt::{Budget, END, MORE, check};
use super::sample::{Sample, latency_histogram};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Requests in flight at most: at 100 k/s, 640 µs of round trip, some ten
/// times a blocking round trip on the machines measured.
pub const IN_FLIGHT: usize = 64;

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
/// schedule of `rate` per second for `seconds`, at most `in_flight` of them
/// unanswered at a time, each answered by the peer. Fails if no reply comes
/// for `idle` while some are awaited.
pub fn measure(link: &mut dyn Link, size: usize, budget: &Budget, load: Load) -> Fallible<Sample> {
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
            check(link.recv(size)?.len(), size)?;
        }
        warmed += n;
    }
    let period = Duration::from_secs_f64(1.0 / load.rate);
    let window = load.in_flight.clamp(1, IN_FLIGHT);
    // Whole requests only, at least one, and within the peer's limit.
    let total = ((load.seconds * load.rate).ceil() as u64)
        .clamp(1, budget.max_count.saturating_sub(budget.warmup).max(1));
    let mut corrected = latency_histogram();
    let mut uncorrected = latency_histogram();
    // When each awaited request was scheduled and when it left, oldest
    // first: every mechanism measured delivers in order.
    let mut awaited: VecDeque<(Instant, Instant)> = VecDeque::with_capacity(window);
    let (mut sent, mut answered) = (0u64, 0u64);
    let start = Instant::now();
    let mut last_reply = start;
    while answered < total {
        let now = Instant::now();
        if sent < total && awaited.len() < window {
            let scheduled = start + period.mul_f64(sent as f64);
            if now >= scheduled {
                if sent + 1 == total {
                    request[0] = END;
                }
                link.send(&request)?;
                awaited.push_back((scheduled, now));
                sent += 1;
                continue;
            }
        }
        if awaited.is_empty() {
            std::hint::spin_loop();
            continue;
        }
        let Some(reply) = link.try_recv(size)? else {
            if now.duration_since(last_reply) > load.idle {
                return Err(format!(
                    "no reply for {:?} with {} requests awaited: the peer is gone",
                    load.idle,
                    awaited.len()
                )
                .into());
            }
            std::hint::spin_loop();
            continue;
        };
        check(reply.len(), size)?;
        let done = Instant::now();
        last_reply = done;
        if let Some((scheduled, left)) = awaited.pop_front() {
            corrected.saturating_record((done - scheduled).as_nanos() as u64);
            uncorrected.saturating_record((done - left).as_nanos() as u64);
        }
        answered += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Sample {
        msgs_per_s: Some(total as f64 / elapsed),
        uncorrected_p99_ns: Some(uncorrected.value_at_quantile(0.99)),
        ..Sample::from_latencies(&corrected)
    })
}

/// The load a fixed-rate run offers.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Requests per second.
    pub rate: f64,
    /// Seconds of requests (their count is `rate * seconds`, rounded up).
    pub seconds: f64,
    /// Requests in flight at most (see [`IN_FLIGHT`]).
    pub in_flight: usize,
    /// How long replies may stop coming before the run fails.
    pub idle: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::bench::raw::inproc;

    /// A real link that counts the requests in flight through it.
    struct Counting {
        inner: Box<dyn Link>,
        in_flight: usize,
        most: usize,
    }

    impl Link for Counting {
        fn send(&mut self, msg: &[u8]) -> Fallible<()> {
            self.in_flight += 1;
            self.most = self.most.max(self.in_flight);
            self.inner.send(msg)
        }

        fn recv(&mut self, len: usize) -> Fallible<&[u8]> {
            self.in_flight -= 1;
            self.inner.recv(len)
        }

        fn try_recv(&mut self, len: usize) -> Fallible<Option<&[u8]>> {
            let got = self.inner.try_recv(len)?;
            if got.is_some() {
                self.in_flight -= 1;
            }
            Ok(got)
        }
    }

    /// An in-process pair whose peer thread answers each request `delay`
    /// after it arrived (a latency: requests that arrive meanwhile are
    /// taken and wait their turn), or, with `serial`, spends `delay` on
    /// each before it reads the next (a service time), until the last.
    fn echoing(
        tag: &str,
        delay: Duration,
        serial: bool,
    ) -> (Counting, std::thread::JoinHandle<()>) {
        let address = format!("rate-test-{tag}-{}", std::process::id());
        let mut peer = inproc::serve(&address, &mut |_| {});
        let client = inproc::connect(&address).unwrap();
        let echo = std::thread::spawn(move || {
            // When each request taken is due, and whether it is the last.
            // Sleeps rather than spins: tests run side by side on few cores.
            let mut due: VecDeque<(Instant, bool)> = VecDeque::new();
            loop {
                let arrived = if serial {
                    let last = peer.recv(64).unwrap().first() == Some(&END);
                    std::thread::sleep(delay);
                    Some(last)
                } else {
                    peer.try_recv(64).unwrap().map(|m| m.first() == Some(&END))
                };
                let now = Instant::now();
                if let Some(last) = arrived {
                    due.push_back((if serial { now } else { now + delay }, last));
                }
                match due.front() {
                    Some(&(at, last)) if now >= at => {
                        due.pop_front();
                        peer.send(&[0x5a; 64]).unwrap();
                        if last {
                            break;
                        }
                    }
                    _ if arrived.is_none() => std::thread::sleep(Duration::from_micros(20)),
                    _ => {}
                }
            }
        });
        let link = Counting {
            inner: Box::new(client),
            in_flight: 0,
            most: 0,
        };
        (link, echo)
    }

    fn budget() -> Budget {
        Budget {
            warmup: 10,
            warmup_burst: 1,
            min_count: 1,
            min_seconds: 0.0,
            max_count: 1_000_000,
        }
    }

    /// Requests overlap (the client does not wait for a reply before the
    /// next is due) but never more than the window; a peer that keeps up
    /// answers every one and the rate achieved is the one offered.
    #[test]
    fn requests_leave_on_schedule_and_overlap_within_the_window() {
        // Each reply comes 300 µs after its request, requests are due every
        // 100 µs: about three in flight at once. (A client that waited for
        // each reply would reach 3,300 a second, one in flight.)
        let (mut link, echo) = echoing("overlap", Duration::from_micros(300), false);
        let load = Load {
            rate: 10_000.0,
            seconds: 0.2,
            in_flight: 16,
            idle: Duration::from_secs(5),
        };
        let sample = measure(&mut link, 64, &budget(), load).unwrap();
        echo.join().unwrap();
        assert_eq!(link.in_flight, 0, "every request answered");
        assert!(
            (2..=16).contains(&link.most),
            "requests overlapped ({} at most)",
            link.most
        );
        // Never ahead of the schedule. (How close to it depends on the
        // machine: these threads share a few cores with other tests.)
        let achieved = sample.msgs_per_s.unwrap();
        assert!(achieved <= 10_500.0, "achieved {achieved}/s of 10,000/s");
        assert!(sample.p50_ns.unwrap() >= 300_000, "{sample:?}");
    }

    /// A peer slower than the rate: the client stops at the window, falls
    /// behind the schedule, and the latencies counted from the schedule
    /// grow past those counted from each actual send.
    #[test]
    fn a_slow_peer_fills_the_window_and_the_schedule_slips() {
        let (mut link, echo) = echoing("slow", Duration::from_micros(500), true);
        let load = Load {
            rate: 10_000.0,
            seconds: 0.1,
            in_flight: 4,
            idle: Duration::from_secs(5),
        };
        let sample = measure(&mut link, 64, &budget(), load).unwrap();
        echo.join().unwrap();
        assert_eq!(link.most, 4, "the window is the limit");
        let achieved = sample.msgs_per_s.unwrap();
        assert!(achieved < 3_000.0, "achieved {achieved}/s");
        let (corrected, uncorrected) = (sample.p99_ns.unwrap(), sample.uncorrected_p99_ns.unwrap());
        assert!(
            corrected > 2 * uncorrected,
            "corrected p99 {corrected} ns, uncorrected {uncorrected} ns"
        );
    }

    /// A peer that stops answering ends the run with an error once the
    /// idle limit passes, not a hang.
    #[test]
    fn a_peer_that_stops_answering_ends_the_run() {
        let address = format!("rate-test-mute-{}", std::process::id());
        let mut peer = inproc::serve(&address, &mut |_| {});
        let mut client = inproc::connect(&address).unwrap();
        let mute = std::thread::spawn(move || {
            // Answers the warm-up, then only reads.
            for _ in 0..10 {
                peer.recv(64).unwrap();
                peer.send(&[0x5a; 64]).unwrap();
            }
            while peer.recv(64).is_ok_and(|m| m.first() != Some(&END)) {}
        });
        let load = Load {
            rate: 1_000.0,
            seconds: 0.05,
            in_flight: 8,
            idle: Duration::from_millis(200),
        };
        let started = Instant::now();
        let err = measure(&mut client, 64, &budget(), load).unwrap_err();
        assert!(err.to_string().contains("no reply"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(client);
        mute.join().unwrap();
    }

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
