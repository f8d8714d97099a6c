//! The client loops of the zenoh bench: one round-trip loop and one
//! streaming loop per variant, the same payloads for all.

use crate::exit::Exit;
use std::time::{Duration, Instant};
use utp::Channel;
use utp::frame::{Frame, flags, message_type};
use zenoh::Wait;
use zenoh::handlers::FifoChannelHandler;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::sample::Sample;

/// Limit for any one wait, so a broken peer fails the bench instead of hanging it.
const WAIT: Duration = Duration::from_secs(30);

/// What is measured: a round-trip median (ns) or a message rate (msgs/s).
pub(super) type Figure = f64;

fn fail(what: &str, e: impl std::fmt::Display) -> Exit {
    Exit::Error(format!("zenoh bench, {what}: {e}"))
}

/// Median round trip of `iterations` utp REQUEST/RESPONSE exchanges, ns.
pub(super) fn utp_rtt(
    channel: &mut dyn Channel,
    size: usize,
    iterations: usize,
) -> Result<Figure, Exit> {
    let request = vec![0xa5u8; size];
    let mut frame = Frame::with_capacity(size);
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        channel
            .send_timeout(message_type::REQUEST, flags::CHECKSUM, &request, Some(WAIT))
            .map_err(|e| fail("utp send", e))?;
        channel
            .recv_timeout(&mut frame, Some(WAIT))
            .map_err(|e| fail("utp recv", e))?;
        times.push(start.elapsed().as_nanos() as f64);
        if frame.payload().len() != size {
            return Err(fail("utp reply", "wrong size"));
        }
    }
    Ok(median(times))
}

/// utp streaming: `count` DATA frames, then one TEXT whose reply carries the count.
pub(super) fn utp_stream(
    channel: &mut dyn Channel,
    size: usize,
    count: u64,
) -> Result<Figure, Exit> {
    let message = vec![0xa5u8; size];
    let mut frame = Frame::default();
    let start = Instant::now();
    for _ in 0..count {
        channel
            .send_timeout(message_type::DATA, flags::CHECKSUM, &message, Some(WAIT))
            .map_err(|e| fail("utp stream send", e))?;
    }
    channel
        .send_timeout(message_type::TEXT, flags::CHECKSUM, b"count", Some(WAIT))
        .map_err(|e| fail("utp stream end", e))?;
    channel
        .recv_timeout(&mut frame, Some(WAIT))
        .map_err(|e| fail("utp stream ack", e))?;
    let got = <[u8; 8]>::try_from(frame.payload())
        .map(u64::from_le_bytes)
        .unwrap_or(0);
    if got != count {
        return Err(fail("utp stream", format!("peer counted {got} of {count}")));
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

/// Raw zenoh get/reply on a queryable that echoes, ns.
pub(super) fn raw_get_rtt(
    session: &zenoh::Session,
    key: &str,
    size: usize,
    iterations: usize,
) -> Result<Figure, Exit> {
    let request = vec![0xa5u8; size];
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let replies = session
            .get(key)
            .payload(request.clone())
            // No consolidation: the reply is handed over as it arrives.
            .consolidation(zenoh::query::ConsolidationMode::None)
            .timeout(WAIT)
            .wait()
            .map_err(|e| fail("raw get", e))?;
        let reply = replies.recv().map_err(|e| fail("raw reply", e))?;
        times.push(start.elapsed().as_nanos() as f64);
        let len = reply.result().map(|s| s.payload().len()).unwrap_or(0);
        if len != size {
            return Err(fail("raw reply", "wrong size"));
        }
    }
    Ok(median(times))
}

/// A raw pub/sub ping-pong pair: publish on ping, the peer republishes on pong.
pub(super) struct PingPong {
    ping: Publisher<'static>,
    pong: Subscriber<FifoChannelHandler<Sample>>,
}

impl PingPong {
    pub(super) fn new(session: &zenoh::Session, prefix: &str) -> Result<PingPong, Exit> {
        let pong = session
            .declare_subscriber(format!("{prefix}/raw/pong"))
            .wait()
            .map_err(|e| fail("raw pong subscriber", e))?;
        let ping = session
            .declare_publisher(format!("{prefix}/raw/ping"))
            .congestion_control(zenoh::qos::CongestionControl::Block)
            .wait()
            .map_err(|e| fail("raw ping publisher", e))?;
        let until = Instant::now() + WAIT;
        while !ping.matching_status().wait().is_ok_and(|m| m.matching()) {
            if Instant::now() > until {
                return Err(fail("raw ping", "the peer's subscriber never appeared"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(PingPong { ping, pong })
    }

    /// Median ping-pong round trip, ns (the pong subscription may need a moment: retried).
    pub(super) fn rtt(&self, size: usize, iterations: usize) -> Result<Figure, Exit> {
        let request = vec![0xa5u8; size];
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let start = Instant::now();
            self.ping
                .put(request.clone())
                .wait()
                .map_err(|e| fail("raw ping", e))?;
            let reply = self
                .pong
                .recv_timeout(WAIT)
                .map_err(|e| fail("raw pong", e))?
                .ok_or_else(|| fail("raw pong", "no reply"))?;
            times.push(start.elapsed().as_nanos() as f64);
            if reply.payload().len() != size {
                return Err(fail("raw pong", "wrong size"));
            }
        }
        Ok(median(times))
    }
}

/// Raw zenoh streaming: `count` puts (reliable, blocking congestion control),
/// then a get that returns once the peer counted them all.
pub(super) fn raw_stream(
    session: &zenoh::Session,
    prefix: &str,
    size: usize,
    count: u64,
) -> Result<Figure, Exit> {
    let publisher = session
        .declare_publisher(format!("{prefix}/raw/stream"))
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()
        .map_err(|e| fail("raw stream publisher", e))?;
    let until = Instant::now() + WAIT;
    while !publisher
        .matching_status()
        .wait()
        .is_ok_and(|m| m.matching())
    {
        if Instant::now() > until {
            return Err(fail("raw stream", "the peer's subscriber never appeared"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let message = vec![0xa5u8; size];
    let start = Instant::now();
    for _ in 0..count {
        publisher
            .put(message.clone())
            .wait()
            .map_err(|e| fail("raw put", e))?;
    }
    let replies = session
        .get(format!("{prefix}/raw/count"))
        .payload(count.to_le_bytes().to_vec())
        .timeout(WAIT)
        .wait()
        .map_err(|e| fail("raw count", e))?;
    let reply = replies.recv().map_err(|e| fail("raw count reply", e))?;
    let elapsed = start.elapsed().as_secs_f64();
    let got = reply
        .result()
        .ok()
        .and_then(|s| <[u8; 8]>::try_from(&s.payload().to_bytes()[..]).ok())
        .map_or(0, u64::from_le_bytes);
    if got != count {
        return Err(fail("raw stream", format!("peer counted {got} of {count}")));
    }
    Ok(count as f64 / elapsed)
}

/// The median of `values` (0 for none).
pub(super) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
