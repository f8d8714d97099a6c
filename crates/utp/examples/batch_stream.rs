//! A stream of small frames (64 bytes unless told) sent frame by frame (`send`) and in batches
//! (`Channel::send_batch`): a producer thread (CPU 0) sends frames back to
//! back, a consumer thread (CPU 1) receives them, and the run reports
//! frames per second. Every batch size runs once per round, the rounds
//! interleaved, and the medians are printed at the end with their ratio
//! to frame by frame.
//!
//! Over shared memory (`shm`, spinning) a batch's frames are published one
//! by one, as `send` publishes them; what it saves is the work a send
//! does for every frame: the clock read that stamps a frame (once per 64
//! frames), the counts `utp stat` reads, the look at the peer's state.
//! Over a socket or a FIFO (`unix`, `tcp`, `fifo`) a run of up to 32 frames is one
//! system call instead of one per frame.
//!
//! The consumer receives into a reused `Frame` (`recv`) or has each frame
//! lent (`lent`: `Channel::recv_ref`, which hands a socket's or a FIFO's
//! frame out of the read buffer instead of copying it); `recv,lent` runs
//! both, interleaved, and prints the ratio of the lent to the copied.
//!
//! ```text
//! cargo run --release -p utp --example batch_stream -- [shm|unix|tcp|fifo] [FRAMES] [ROUNDS] [BATCH,...] [BYTES] [recv|lent|recv,lent]
//! ```
//! (defaults: shm, 3,200,000 frames, 6 rounds, batches of 1 (plain
//! `send`), 4, 16 and 64, payloads of 64 bytes, `recv`)

use std::time::{Duration, Instant};
use utp::Channel;
use utp::frame::{Frame, message_type};

/// Pins the calling thread to `cpu`, best effort (a machine with one CPU
/// still runs the example, unpinned).
fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// A fresh URL of `transport` for one run.
fn url(transport: &str, round: usize, batch: usize) -> String {
    let name = format!("utp-example-batch-{}-{round}-{batch}", std::process::id());
    match transport {
        "unix" => format!("unix://{}/{name}.sock", std::env::temp_dir().display()),
        "tcp" => "tcp://127.0.0.1:0".to_string(),
        "fifo" => format!("fifo://{}/{name}", std::env::temp_dir().display()),
        _ => format!("shm://{name}?wait=spin"),
    }
}

/// How the consumer receives.
#[derive(Clone, Copy, PartialEq)]
enum Receive {
    /// `recv` into one reused `Frame`.
    Copied,
    /// `recv_ref`, one reused spare `Frame`.
    Lent,
}

impl Receive {
    fn name(self) -> &'static str {
        match self {
            Receive::Copied => "recv",
            Receive::Lent => "lent",
        }
    }
}

/// Streams `frames` frames of `size` bytes over a fresh channel of `transport`,
/// `batch` to a call (1: one `send` per frame), received as `receive`
/// says; frames per second.
fn run(
    transport: &str,
    frames: u64,
    batch: usize,
    size: usize,
    round: usize,
    receive: Receive,
) -> utp::Result<f64> {
    let mut listener = utp::listen(&url(transport, round, batch))?;
    let url = listener.endpoint();
    let calls = frames / batch as u64;
    let producer = std::thread::spawn(move || -> utp::Result<f64> {
        pin(0);
        let mut channel = utp::connect(&url)?;
        let message = vec![7u8; size];
        let messages = vec![&message[..]; batch];
        let mut frame = Frame::default();
        // A FIFO's listener accepts once the client has sent something.
        channel.send(message_type::DATA, 0, b"hello")?;
        channel.recv(&mut frame)?; // the consumer is ready
        let start = Instant::now();
        for _ in 0..calls {
            if batch == 1 {
                channel.send(message_type::DATA, 0, &message)?;
            } else {
                channel.send_batch(message_type::DATA, 0, &messages)?;
            }
        }
        channel.recv(&mut frame)?; // the consumer has them all
        let seconds = start.elapsed().as_secs_f64();
        channel.close()?;
        Ok(seconds)
    });
    pin(1);
    let mut channel = listener.accept_timeout(Some(Duration::from_secs(5)))?;
    let mut frame = Frame::default();
    channel.recv(&mut frame)?; // hello (a FIFO client numbers from a random start)
    let hello = frame.header.sequence;
    channel.send(message_type::DATA, 0, b"ready")?;
    let expected = calls * batch as u64;
    for n in 0..expected {
        let sequence = match receive {
            Receive::Copied => {
                channel.recv(&mut frame)?;
                frame.header.sequence
            }
            Receive::Lent => channel.recv_ref(&mut frame, None)?.header.sequence,
        };
        assert_eq!(sequence, hello.wrapping_add(n + 1), "frame {n} in order");
    }
    channel.send(message_type::DATA, 0, b"done")?;
    let seconds = producer.join().expect("the producer thread panicked")?;
    Ok(expected as f64 / seconds)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> utp::Result<()> {
    let mut args = std::env::args().skip(1);
    let transport = args.next().unwrap_or_else(|| "shm".to_string());
    let frames: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(3_200_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    let batches: Vec<usize> = args
        .next()
        .map(|a| a.split(',').filter_map(|b| b.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 4, 16, 64]);
    let batches: Vec<usize> = batches.into_iter().filter(|&b| b > 0).collect();
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let receives: Vec<Receive> = args
        .next()
        .map(|a| {
            a.split(',')
                .filter_map(|r| match r {
                    "recv" => Some(Receive::Copied),
                    "lent" => Some(Receive::Lent),
                    _ => None,
                })
                .collect()
        })
        .filter(|r: &Vec<Receive>| !r.is_empty())
        .unwrap_or_else(|| vec![Receive::Copied]);
    let runs: Vec<(usize, Receive)> = batches
        .iter()
        .flat_map(|&batch| receives.iter().map(move |&receive| (batch, receive)))
        .collect();
    let mut rates = vec![Vec::new(); runs.len()];
    for round in 0..rounds {
        let line: Vec<String> = runs
            .iter()
            .zip(&mut rates)
            .map(|(&(batch, receive), rates)| {
                let rate = run(&transport, frames, batch, size, round, receive)?;
                rates.push(rate);
                Ok(format!(
                    "batch {batch} {}: {:.2} M/s",
                    receive.name(),
                    rate / 1e6
                ))
            })
            .collect::<utp::Result<_>>()?;
        println!("round {}: {}", round + 1, line.join(", "));
    }
    let medians: Vec<f64> = rates.into_iter().map(median).collect();
    let median_of = |batch: usize, receive: Receive| {
        runs.iter()
            .position(|&run| run == (batch, receive))
            .map(|i| medians[i])
    };
    for (&(batch, receive), rate) in runs.iter().zip(&medians) {
        let mut notes = String::new();
        if let Some(single) = median_of(1, receive) {
            notes += &format!(", {:.2}x frame by frame", rate / single);
        }
        if receive == Receive::Lent
            && let Some(copied) = median_of(batch, Receive::Copied)
        {
            notes += &format!(", {:.2}x recv", rate / copied);
        }
        println!(
            "batch {batch} {}: median {:.2} M frames/s over {rounds} rounds{notes}",
            receive.name(),
            rate / 1e6
        );
    }
    Ok(())
}
