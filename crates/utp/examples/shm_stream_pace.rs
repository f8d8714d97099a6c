//! How a consumer's pace changes a 64-byte shared-memory stream: a
//! producer thread (CPU 0) sends frames back to back over `shm://`, a
//! consumer thread (CPU 1) receives them and does `WORK` dependent
//! additions after each (about a cycle apiece), and the run reports frames
//! per second. Every `WORK` value runs once per round, the rounds
//! interleaved, and the medians are printed at the end.
//!
//! A consumer that does nothing with its frames is faster than utp's
//! producer, keeps reading right behind it and pulls each line across
//! while it is being written; one that does a few nanoseconds of work
//! falls a batch behind and reads lines the producer has finished, and
//! the stream runs faster (docs/benchmarks/journal.md, 2026-12-04).
//!
//! ```text
//! cargo run --release -p utp --example shm_stream_pace -- [FRAMES] [ROUNDS] [WORK,...]
//! ```
//! (defaults: 3,000,000 frames, 6 rounds, work 0,10,20,40)

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

/// `work` dependent additions the optimiser cannot remove.
fn busy(work: u32) {
    let mut x = 0u64;
    for i in 0..work {
        x = std::hint::black_box(x.wrapping_add(u64::from(i)));
    }
    std::hint::black_box(x);
}

/// Streams `frames` 64-byte frames over a fresh link; frames per second.
fn run(frames: u64, work: u32, round: usize) -> utp::Result<f64> {
    let url = format!(
        "shm://utp-example-pace-{}-{round}-{work}?wait=spin",
        std::process::id()
    );
    let mut listener = utp::listen(&url)?;
    let url = listener.endpoint();
    let producer = std::thread::spawn(move || -> utp::Result<f64> {
        pin(0);
        let mut channel = utp::connect(&url)?;
        let message = [7u8; 64];
        let mut frame = Frame::default();
        channel.recv(&mut frame)?; // the consumer is ready
        let start = Instant::now();
        for _ in 0..frames {
            channel.send(message_type::DATA, 0, &message)?;
        }
        channel.recv(&mut frame)?; // the consumer has them all
        let seconds = start.elapsed().as_secs_f64();
        channel.close()?;
        Ok(seconds)
    });
    pin(1);
    let mut channel = listener.accept_timeout(Some(Duration::from_secs(5)))?;
    let mut frame = Frame::default();
    channel.send(message_type::DATA, 0, b"ready")?;
    for n in 0..frames {
        channel.recv(&mut frame)?;
        assert_eq!(frame.payload().len(), 64, "frame {n} arrived whole");
        busy(work);
    }
    channel.send(message_type::DATA, 0, b"done")?;
    let seconds = producer.join().expect("the producer thread panicked")?;
    Ok(frames as f64 / seconds)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> utp::Result<()> {
    let mut args = std::env::args().skip(1);
    let frames: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(3_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    let works: Vec<u32> = args
        .next()
        .map(|a| a.split(',').filter_map(|w| w.parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 10, 20, 40]);
    let mut rates = vec![Vec::new(); works.len()];
    for round in 0..rounds {
        let line: Vec<String> = works
            .iter()
            .zip(&mut rates)
            .map(|(&work, rates)| {
                let rate = run(frames, work, round)?;
                rates.push(rate);
                Ok(format!("work {work}: {:.1} M/s", rate / 1e6))
            })
            .collect::<utp::Result<_>>()?;
        println!("round {}: {}", round + 1, line.join(", "));
    }
    for (work, rates) in works.iter().zip(rates) {
        println!(
            "work {work}: median {:.1} M frames/s over {rounds} rounds",
            median(rates) / 1e6
        );
    }
    Ok(())
}
