//! The seeds' order book: one market-data process publishes a 100-level
//! book into shared memory through a seqlock; any number of strategy
//! processes read it at full speed, without locks and without ever slowing
//! the writer.
//!
//! Two terminals:
//!
//! ```text
//! cargo run --release -p utp --example orderbook -- writer shm://book
//! cargo run --release -p utp --example orderbook -- reader shm://book
//! ```
//!
//! Options: `--secs N` stops after N seconds (default: run until Ctrl-C);
//! `--wait` makes the reader sleep until each update (futex) instead of
//! spinning; `--interval-us N` makes the writer publish every N µs
//! (default 10). The URL may also be `sysv://KEY` or `file:///PATH` (the book
//! then survives the writer). `utp inspect URL` shows the cell meanwhile.
//! The writer removes the cell when `--secs` runs out; after Ctrl-C the cell
//! stays (cells persist) and the next writer takes it over, or remove it
//! with `rm /dev/shm/utp.cell.NAME`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use utp::seqlock::{SeqReader, SeqWriter};

/// Levels per side.
const LEVELS: usize = 100;

/// A 100-level book: best level first; prices in ticks of 0.01.
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Book {
    /// Microseconds since the Unix epoch when the writer built this book.
    timestamp_micros: u64,
    /// Update number.
    update: u64,
    bid_price: [f64; LEVELS],
    bid_size: [u64; LEVELS],
    ask_price: [f64; LEVELS],
    ask_size: [u64; LEVELS],
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

struct Args {
    role: String,
    url: String,
    secs: Option<u64>,
    wait: bool,
    interval: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let role = it
        .next()
        .ok_or("usage: orderbook writer|reader [URL] [--secs N] [--wait] [--interval-us N]")?;
    let mut args = Args {
        role,
        url: "shm://orderbook".into(),
        secs: None,
        wait: false,
        interval: Duration::from_micros(10),
    };
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match a.as_str() {
            "--secs" => args.secs = Some(number("--secs")?),
            "--interval-us" => args.interval = Duration::from_micros(number("--interval-us")?),
            "--wait" => args.wait = true,
            url if url.contains("://") => args.url = url.to_string(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn writer(args: &Args) -> utp::Result<()> {
    let mut w = SeqWriter::<Book>::open(&args.url)?;
    println!(
        "writer pid {} publishing a {}-byte book to {}",
        std::process::id(),
        size_of::<Book>(),
        args.url
    );
    let mut book = Book::zeroed_book();
    let (start, mut last_report, mut published) = (Instant::now(), Instant::now(), 0u64);
    let mut mid: i64 = 10_000; // 100.00
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    while args
        .secs
        .is_none_or(|s| start.elapsed() < Duration::from_secs(s))
    {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        mid += (rng % 3) as i64 - 1;
        for i in 0..LEVELS {
            book.bid_price[i] = (mid - 1 - i as i64) as f64 / 100.0;
            book.ask_price[i] = (mid + 1 + i as i64) as f64 / 100.0;
            book.bid_size[i] = 100 + (rng >> (i % 48)) % 900;
            book.ask_size[i] = 100 + (rng >> ((i + 7) % 48)) % 900;
        }
        book.update += 1;
        book.timestamp_micros = now_micros();
        w.publish(&book);
        published += 1;
        if last_report.elapsed() >= Duration::from_secs(1) {
            println!(
                "published {published} updates/s, best bid {:.2} ask {:.2}",
                book.bid_price[0], book.ask_price[0]
            );
            published = 0;
            last_report = Instant::now();
        }
        let until = Instant::now() + args.interval;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
    w.remove()
}

fn reader(args: &Args) -> utp::Result<()> {
    let r = SeqReader::<Book>::open(&args.url)?;
    println!(
        "reader of {} (writer {}), {}",
        args.url,
        r.writer_pid()
            .map_or_else(|| "none".to_string(), |pid| format!("pid {pid}")),
        if args.wait {
            "sleeping until each update"
        } else {
            "spinning"
        }
    );
    let (start, mut last_report) = (Instant::now(), Instant::now());
    let (mut reads, mut seq, mut updates) = (0u64, 0u64, 0u64);
    let mut book;
    loop {
        (book, seq) = if args.wait {
            r.wait_next(seq, Some(Duration::from_secs(5)))?
        } else {
            let (b, s) = r.read_seq()?;
            updates += u64::from(s != seq);
            (b, s)
        };
        reads += 1;
        // A report every second, and one more at the end, so a run of any
        // length ends with the latest book.
        let done = args
            .secs
            .is_some_and(|s| start.elapsed() >= Duration::from_secs(s));
        if done || last_report.elapsed() >= Duration::from_secs(1) {
            let secs = last_report.elapsed().as_secs_f64();
            println!(
                "best bid {:.2} x {} | ask {:.2} x {} | update #{} {} µs old | {:.1} M reads/s, {} distinct updates",
                book.bid_price[0],
                book.bid_size[0],
                book.ask_price[0],
                book.ask_size[0],
                book.update,
                now_micros().saturating_sub(book.timestamp_micros),
                reads as f64 / secs / 1e6,
                if args.wait { reads } else { updates },
            );
            (reads, updates) = (0, 0);
            last_report = Instant::now();
        }
        if done {
            return Ok(());
        }
    }
}

impl Book {
    fn zeroed_book() -> Book {
        bytemuck::Zeroable::zeroed()
    }
}

fn main() {
    let result = parse_args().map_err(|e| e.to_string()).and_then(|args| {
        match args.role.as_str() {
            "writer" => writer(&args),
            "reader" => reader(&args),
            other => return Err(format!("unknown role {other:?}: writer or reader")),
        }
        .map_err(|e| e.to_string())
    });
    if let Err(e) = result {
        eprintln!("orderbook: {e}");
        std::process::exit(2);
    }
}
