//! One run: the publisher (this process, pinned) and its subscriber
//! processes (pinned by `--cpu`), paced or flat out, set up from scratch
//! and cleaned up whatever happens.

use super::cpus::Assignment;
use super::sides::{self, Kind, MESSAGE};
use super::{PACE, STOP_FLAG, now_ns};
use crate::exit::Exit;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What one subscriber measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    /// Publish-to-receive p50 and p99, ns.
    pub p50_ns: u64,
    /// See `p50_ns`.
    pub p99_ns: u64,
    /// Messages received (the stop message not counted).
    pub received: u64,
    /// Messages the implementation reported lost.
    pub reported_lost: u64,
    /// Received per second between its first and last receive.
    pub msgs_per_s: f64,
    /// p50 of the samples taken while it kept its CPU, ns.
    pub on_cpu_p50_ns: u64,
    /// How many samples that was.
    pub on_cpu_samples: u64,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Per subscriber.
    pub subscribers: Vec<Measured>,
    /// Messages published (the stop message not counted).
    pub published: u64,
    /// The publisher's time per message, ns.
    pub publish_ns: f64,
}

impl Outcome {
    /// Share of the published messages the subscribers did not receive,
    /// over all subscribers (counted by the publisher: published − received).
    pub fn lost_share(&self) -> f64 {
        let want = self.published * self.subscribers.len() as u64;
        let got: u64 = self.subscribers.iter().map(|m| m.received).sum();
        want.saturating_sub(got) as f64 / want.max(1) as f64
    }

    /// Whether every subscriber's own loss count matches published − received.
    pub fn accounting_agrees(&self) -> bool {
        self.subscribers
            .iter()
            .all(|m| m.received + m.reported_lost == self.published)
    }
}

type Subscriber = (Child, BufReader<ChildStdout>);

fn spawn(kind: Kind, name: &str, placement: &Assignment, i: usize) -> Result<Subscriber, Exit> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["bench-pubsub", "--child", kind.name(), "--name", name])
        .args(["--subscribers", &placement.subscribers.len().to_string()])
        .args(["--sharing", &placement.sharing(i).to_string()]);
    if let Some(cpu) = placement.subscribers[i] {
        command.args(["--cpu", &cpu.to_string()]);
    }
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let out = BufReader::new(child.stdout.take().ok_or(Exit::Failed(2))?);
    Ok((child, out))
}

fn line(out: &mut BufReader<ChildStdout>) -> Result<String, Exit> {
    let mut s = String::new();
    out.read_line(&mut s)?;
    Ok(s.trim().to_string())
}

fn parse_result(said: &str) -> Option<Measured> {
    let f: Vec<&str> = said.split_whitespace().collect();
    if f.len() != 8 || f[0] != "RESULT" {
        return None;
    }
    let int = |i: usize| f[i].parse::<u64>().ok();
    Some(Measured {
        p50_ns: int(1)?,
        p99_ns: int(2)?,
        received: int(3)?,
        reported_lost: int(4)?,
        msgs_per_s: f[5].parse().ok()?,
        on_cpu_p50_ns: int(6)?,
        on_cpu_samples: int(7)?,
    })
}

/// Kills and reaps subscriber processes still running (a failed run).
struct Reaper(Vec<Subscriber>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for (child, _) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One run of `kind` with `placement.subscribers.len()` subscribers for
/// `ms` milliseconds, paced (one message per [`PACE`]) or flat out.
pub fn once(kind: Kind, placement: &Assignment, paced: bool, ms: u64) -> Result<Outcome, Exit> {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "utp-bench-pubsub-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    );
    let result = publish(kind, &name, placement, paced, ms);
    sides::cleanup(kind, &name);
    result
}

fn publish(
    kind: Kind,
    name: &str,
    placement: &Assignment,
    paced: bool,
    ms: u64,
) -> Result<Outcome, Exit> {
    let fail =
        |e: Box<dyn std::error::Error + Send + Sync>| Exit::Error(format!("{}: {e}", kind.name()));
    if let Some(cpu) = placement.publisher {
        crate::cmd::bench::placement::pin(cpu).map_err(|e| Exit::Error(e.to_string()))?;
    }
    let count = placement.subscribers.len();
    let mut publisher = sides::publisher(kind, name, count).map_err(fail)?;
    let mut children = Reaper(Vec::new());
    for i in 0..count {
        children.0.push(spawn(kind, name, placement, i)?);
    }
    for (_, out) in &mut children.0 {
        let said = line(out)?;
        if said != "READY" {
            return Err(Exit::Error(format!(
                "{} subscriber said {said:?}",
                kind.name()
            )));
        }
    }
    publisher.subscribers_ready().map_err(fail)?;
    std::thread::sleep(Duration::from_millis(20));
    let mut msg = [0u8; MESSAGE];
    let pace = PACE.as_nanos() as u64;
    let started = Instant::now();
    let end = started + Duration::from_millis(ms);
    let mut seq = 0u64;
    let mut next_at = now_ns();
    while Instant::now() < end {
        for _ in 0..64 {
            if paced {
                let mut now = now_ns();
                while now < next_at {
                    std::hint::spin_loop();
                    now = now_ns();
                }
                // Late (this process was preempted): go on from now rather
                // than catch up with a burst, which would measure a queue.
                next_at = (next_at + pace).max(now);
            }
            msg[..8].copy_from_slice(&seq.to_le_bytes());
            msg[8..16].copy_from_slice(&now_ns().to_le_bytes());
            publisher.publish(&msg).map_err(fail)?;
            seq += 1;
        }
    }
    let publish_ns = started.elapsed().as_nanos() as f64 / seq.max(1) as f64;
    // The stop message: the next sequence number (so gap counting stays
    // right) and the stop flag.
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg[16..24].copy_from_slice(&STOP_FLAG.to_le_bytes());
    publisher.publish(&msg).map_err(fail)?;
    let mut subscribers = Vec::new();
    for (child, out) in &mut children.0 {
        let said = line(out)?;
        let measured = parse_result(&said)
            .ok_or_else(|| Exit::Error(format!("{} subscriber said {said:?}", kind.name())))?;
        subscribers.push(measured);
        let _ = child.wait();
    }
    drop(publisher);
    Ok(Outcome {
        subscribers,
        published: seq,
        publish_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_parse_and_losses_are_counted_by_the_publisher() {
        let m = parse_result("RESULT 150 900 98 2 1000000.5 120 90").unwrap();
        assert_eq!(
            (m.p50_ns, m.p99_ns, m.received, m.reported_lost),
            (150, 900, 98, 2)
        );
        assert_eq!((m.on_cpu_p50_ns, m.on_cpu_samples), (120, 90));
        assert!(parse_result("RESULT 1 2 3").is_none());
        assert!(parse_result("READY").is_none());
        let run = Outcome {
            subscribers: vec![m, Measured { received: 100, ..m }],
            published: 100,
            publish_ns: 1.0,
        };
        assert!((run.lost_share() - 0.01).abs() < 1e-12);
        assert!(
            !run.accounting_agrees(),
            "the second one reported 2 lost but got all"
        );
    }
}
