//! The calculator end to end: calls per second, every answer checked.
//!
//! utp runs the real service (`utp::service::Server` with the calculator
//! handler on the peer, `Client::call` here); the raw baseline sends the same
//! request text padded to a fixed 32 bytes and the peer answers with
//! `calc::evaluate`, so the difference is utp's framing and service layer.

use super::link::{Fallible, Link};
use super::rtt::Budget;
use super::sample::{Sample, latency_histogram};
use super::spec::CALC_MSG_LEN;
use std::time::Instant;
use utp::service::{Client, Server, Shutdown, calc};

fn request(i: u64) -> (String, String) {
    (format!("ADD {i} 7"), format!("OK {}", i + 7))
}

fn finish(latencies: &hdrhistogram::Histogram<u64>, calls: u64, seconds: f64) -> Sample {
    Sample {
        msgs_per_s: Some(calls as f64 / seconds),
        ..Sample::from_latencies(latencies)
    }
}

/// Client side over utp: `count` calls through `utp::service::Client`.
pub fn measure_utp(url: &str, budget: &Budget) -> Fallible<Sample> {
    let mut client = Client::connect(url)?;
    let mut latencies = latency_histogram();
    for i in 0..budget.warmup {
        let (text, _) = request(i);
        client.call(text.as_bytes())?;
    }
    let start = Instant::now();
    let mut count = 0;
    while !budget.enough(count, start.elapsed().as_secs_f64()) {
        let i = count;
        count += 1;
        let (text, expected) = request(i);
        let t = Instant::now();
        let reply = client.call(text.as_bytes())?;
        let elapsed = t.elapsed();
        if reply != expected.as_bytes() {
            return Err(format!("{text} answered {:?}", String::from_utf8_lossy(reply)).into());
        }
        latencies.saturating_record(elapsed.as_nanos() as u64);
    }
    let seconds = start.elapsed().as_secs_f64();
    let _ = client.close();
    Ok(finish(&latencies, count, seconds))
}

/// Peer side over utp: serves the calculator at `url` until `stop` triggers.
pub fn serve_utp(url: &str, stop: &Shutdown, announce: &mut dyn FnMut(&str)) -> Fallible<()> {
    let listener = utp::listen(url)?;
    // The outer switch stops the server directly. (A thread relaying it,
    // waking every 20 ms, made utp's calls 5-30 % faster than the raw
    // baseline's: a process that wakes now and then is woken faster on
    // this host; measured in C with a ticking thread beside a socket echo.)
    let mut server = Server::new(listener, calc::handler()).with_shutdown(stop.clone());
    announce(url);
    Ok(server.run()?)
}

fn padded(text: &str) -> Fallible<[u8; CALC_MSG_LEN]> {
    let mut msg = [b' '; CALC_MSG_LEN];
    msg.get_mut(..text.len())
        .ok_or_else(|| format!("{text:?} does not fit in {CALC_MSG_LEN} bytes"))?
        .copy_from_slice(text.as_bytes());
    Ok(msg)
}

/// Client side of the raw baseline: `count` fixed-size calls over `link`.
pub fn measure_raw(link: &mut dyn Link, budget: &Budget) -> Fallible<Sample> {
    let mut latencies = latency_histogram();
    for i in 0..budget.warmup {
        let (text, _) = request(i);
        link.send(&padded(&text)?)?;
        link.recv(CALC_MSG_LEN)?;
    }
    let start = Instant::now();
    let mut count = 0;
    // The last call leaves room for the END message within the peer's limit.
    while !budget.enough(count + 1, start.elapsed().as_secs_f64()) {
        let i = count;
        count += 1;
        let (text, expected) = request(i);
        let t = Instant::now();
        link.send(&padded(&text)?)?;
        let reply = link.recv(CALC_MSG_LEN)?;
        let elapsed = t.elapsed();
        if reply.trim_ascii_end() != expected.as_bytes() {
            return Err(format!("{text} answered {:?}", String::from_utf8_lossy(reply)).into());
        }
        latencies.saturating_record(elapsed.as_nanos() as u64);
    }
    let seconds = start.elapsed().as_secs_f64();
    link.send(&padded(END)?)?;
    Ok(finish(&latencies, count, seconds))
}

/// What the raw client sends after its last call: the peer stops, unanswered.
const END: &str = "END";

/// Peer side of the raw baseline: answers `count` calls with `calc::evaluate`.
pub fn serve_raw(link: &mut dyn Link, count: u64) -> Fallible<()> {
    for _ in 0..count {
        let request = link.recv(CALC_MSG_LEN)?;
        if request.trim_ascii_end() == END.as_bytes() {
            break;
        }
        let reply = calc::evaluate(request);
        link.send(&padded(&reply)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_fit_the_fixed_size_and_evaluate() {
        let (text, expected) = request(u64::from(u32::MAX));
        let msg = padded(&text).unwrap();
        assert_eq!(calc::evaluate(&msg), expected);
        assert!(padded(&"x".repeat(CALC_MSG_LEN + 1)).is_err());
    }
}
