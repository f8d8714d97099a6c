//! CPU cost of a byte stream's path per frame: one thread holds both ends
//! of a FIFO or a Unix socket, sends a batch of frames (`send_batch`, one
//! write) and receives them (`recv`, one read for a batch of small frames),
//! and reports the thread's CPU time per frame, the system calls included
//! and no waiting, no other core, no wake-up. CPU time, not wall time, so
//! it stays meaningful on a busy machine; the best of several rounds.
//!
//! With `lent` the frames are received with `Channel::recv_ref`, lent from
//! the read buffer, instead of copied into a reused `Frame`. With `async`
//! and `async-lent` (feature `tokio`) the receiving end is a
//! `utp::tokio::AsyncChannel` on a current-thread runtime, each batch
//! received by one `block_on` with `recv` or `recv_ref`.
//!
//! ```text
//! cargo run --release -p utp --example stream_profile -- [fifo|unix] [FRAMES] [BATCH] [BYTES] [recv|lent]
//! cargo run --release -p utp --features tokio --example stream_profile -- unix 200000 16 1024 async-lent
//! ```
//! (defaults: fifo, 200,000 frames a round, batches of 16, payloads of 64
//! bytes, `recv`; a batch of 1 sends with `send`)

use std::time::Duration;
use utp::Channel;
use utp::frame::{Frame, message_type};

/// CPU time of this thread so far, in nanoseconds.
fn cpu_ns() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
}

fn main() -> utp::Result<()> {
    let mut args = std::env::args().skip(1);
    let transport = args.next().unwrap_or_else(|| "fifo".to_string());
    let frames: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let batch: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(16)
        .max(1);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let mode = args.next().unwrap_or_else(|| "recv".to_string());
    let receive = Receive::parse(&mode)?;
    let name = format!("utp-example-stream-profile-{}", std::process::id());
    let dir = std::env::temp_dir();
    let url = match transport.as_str() {
        "unix" => format!("unix://{}/{name}.sock", dir.display()),
        _ => format!("fifo://{}/{name}", dir.display()),
    };
    let mut listener = utp::listen(&url)?;
    let mut client = utp::connect(&listener.endpoint())?;
    // A FIFO's listener accepts once the client has sent something.
    client.send(message_type::DATA, 0, b"hello")?;
    let mut server = listener.accept_timeout(Some(Duration::from_secs(5)))?;
    let mut frame = Frame::default();
    server.recv(&mut frame)?;
    let mut receiver = Receiver::new(server, receive)?;
    let message = vec![7u8; size];
    let messages = vec![&message[..]; batch];
    let calls = (frames / batch).max(1);
    let mut best = f64::MAX;
    for _round in 0..7 {
        let start = cpu_ns();
        for _ in 0..calls {
            if batch == 1 {
                client.send(message_type::DATA, 0, &message)?;
            } else {
                client.send_batch(message_type::DATA, 0, &messages)?;
            }
            receiver.take(batch, size, &mut frame)?;
        }
        best = best.min((cpu_ns() - start) / (calls * batch) as f64);
    }
    println!(
        "{transport}, {size} B in batches of {batch}, {mode}: {best:.1} ns CPU per frame (one thread, best of 7 rounds)"
    );
    client.close()?;
    receiver.close()?;
    Ok(())
}

/// How the frames are received: by a blocking channel or (feature
/// `tokio`) an `AsyncChannel`, lent (`recv_ref`) or copied into a reused
/// `Frame` (`recv`).
#[derive(Clone, Copy)]
enum Receive {
    Blocking {
        lent: bool,
    },
    #[cfg(feature = "tokio")]
    Async {
        lent: bool,
    },
}

impl Receive {
    fn parse(mode: &str) -> utp::Result<Receive> {
        Ok(match mode {
            "recv" => Receive::Blocking { lent: false },
            "lent" => Receive::Blocking { lent: true },
            #[cfg(feature = "tokio")]
            "async" => Receive::Async { lent: false },
            #[cfg(feature = "tokio")]
            "async-lent" => Receive::Async { lent: true },
            other => {
                return Err(utp::Error::io(
                    format!("receive frames by {other:?}"),
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "modes: recv, lent, and with the feature tokio async, async-lent",
                    ),
                ));
            }
        })
    }
}

/// The receiving end, blocking or async; `lent` as in [`Receive`].
enum Receiver {
    Blocking {
        channel: Box<dyn Channel>,
        lent: bool,
    },
    #[cfg(feature = "tokio")]
    Async(Box<AsyncEnd>),
}

/// An async receiving end: the channel and the runtime that drives it.
#[cfg(feature = "tokio")]
struct AsyncEnd {
    runtime: tokio::runtime::Runtime,
    channel: utp::tokio::AsyncChannel,
    lent: bool,
}

impl Receiver {
    fn new(channel: Box<dyn Channel>, receive: Receive) -> utp::Result<Receiver> {
        match receive {
            Receive::Blocking { lent } => Ok(Receiver::Blocking { channel, lent }),
            #[cfg(feature = "tokio")]
            Receive::Async { lent } => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| utp::Error::io("start a tokio runtime", e))?;
                let channel = {
                    let _inside = runtime.enter();
                    utp::tokio::AsyncChannel::new(channel)?
                };
                Ok(Receiver::Async(Box::new(AsyncEnd {
                    runtime,
                    channel,
                    lent,
                })))
            }
        }
    }

    /// Receives `count` frames, each of `size` payload bytes.
    fn take(&mut self, count: usize, size: usize, frame: &mut Frame) -> utp::Result<()> {
        match self {
            Receiver::Blocking { channel, lent } => {
                for _ in 0..count {
                    let len = if *lent {
                        channel.recv_ref(frame, None)?.payload.len()
                    } else {
                        channel.recv(frame)?;
                        frame.payload().len()
                    };
                    assert_eq!(len, size, "a whole payload");
                }
                Ok(())
            }
            #[cfg(feature = "tokio")]
            Receiver::Async(end) => end.runtime.block_on(async {
                let channel = &mut end.channel;
                for _ in 0..count {
                    let len = if end.lent {
                        channel.recv_ref(frame).await?.payload.len()
                    } else {
                        channel.recv(frame).await?;
                        frame.payload().len()
                    };
                    assert_eq!(len, size, "a whole payload");
                }
                Ok(())
            }),
        }
    }

    fn close(&mut self) -> utp::Result<()> {
        match self {
            Receiver::Blocking { channel, .. } => channel.close(),
            #[cfg(feature = "tokio")]
            Receiver::Async(end) => end.channel.close(),
        }
    }
}
