//! A seqlock cell: one writer publishes the latest value of a plain-old-data
//! type into shared memory; any number of readers (threads or processes)
//! get a consistent copy without locks and without slowing the writer.
//!
//! ```text
//! cargo run -p utp --example seqlock_cell [URL]
//! ```
//!
//! `shm://NAME` (default), `sysv://KEY` or `file:///PATH` (the value then
//! survives the writer). For a long-running writer and readers in separate
//! processes, see the `orderbook` example.

use std::time::Duration;
use utp::seqlock::{SeqReader, SeqWriter};

#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Position {
    x: f64,
    y: f64,
    frame: u64,
}

fn main() -> utp::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("shm://utp-example-cell-{}", std::process::id()));
    let mut writer = SeqWriter::<Position>::open(&url)?;
    writer.publish(&Position {
        x: 1.0,
        y: 2.0,
        frame: 1,
    });

    let reader = SeqReader::<Position>::open(&url)?;
    let (now, seq) = reader.read_seq()?;
    println!("read {now:?} (sequence {seq})");

    // A reader thread sleeps (futex) until the next publish.
    let waiter = std::thread::spawn({
        let url = url.clone();
        move || SeqReader::<Position>::open(&url)?.wait_next(seq, Some(Duration::from_secs(5)))
    });
    std::thread::sleep(Duration::from_millis(20));
    writer.publish(&Position {
        x: 1.5,
        y: 2.5,
        frame: 2,
    });
    let (next, _) = waiter.join().expect("reader thread")?;
    assert_eq!(next.frame, 2);
    println!("woken with {next:?}");

    writer.remove() // cells persist until removed
}
