//! The peer process of `utp bench --only zenoh` (`utp bench-zenoh-peer`):
//! utp echo/sink servers on zenoh:// and tcp://, and the raw zenoh
//! baselines (a queryable echo, a pub/sub ping-pong echo, a counting
//! subscriber), each on its own session so no two share a connection.

use crate::exit::{CmdResult, Exit};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use utp::Listener;
use utp::frame::{Frame, flags, message_type};
use zenoh::Wait;

/// Arguments of the hidden `utp bench-zenoh-peer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key prefix of this run.
    #[arg(long)]
    key: String,
    /// Loopback port of utp's zenoh session.
    #[arg(long)]
    utp_port: u16,
    /// Loopback port of the raw zenoh session.
    #[arg(long)]
    raw_port: u16,
    /// Loopback port of the tcp:// server.
    #[arg(long)]
    tcp_port: u16,
}

/// A raw zenoh session listening on a loopback port, without scouting.
pub(super) fn raw_session(endpoint_key: &str, port: u16) -> Result<zenoh::Session, Exit> {
    let mut config = zenoh::Config::default();
    let set = |config: &mut zenoh::Config, k: &str, v: &str| {
        config
            .insert_json5(k, v)
            .map_err(|e| Exit::Error(format!("zenoh config {k}: {e}")))
    };
    set(
        &mut config,
        endpoint_key,
        &format!("[\"tcp/127.0.0.1:{port}\"]"),
    )?;
    set(&mut config, "scouting/multicast/enabled", "false")?;
    zenoh::open(config)
        .wait()
        .map_err(|e| Exit::Error(format!("open a zenoh session: {e}")))
}

fn zerr(e: zenoh::Error) -> Exit {
    Exit::Error(e.to_string())
}

/// Serves until stdin closes (the bench process ended).
pub fn run(args: Args) -> CmdResult {
    let zenoh_url = format!(
        "zenoh://{}/utp?listen=tcp/127.0.0.1:{}",
        args.key, args.utp_port
    );
    let tcp_url = format!("tcp://127.0.0.1:{}", args.tcp_port);
    for url in [zenoh_url, tcp_url] {
        let listener = utp::listen(&url)?;
        std::thread::spawn(move || serve_utp(listener));
    }
    let raw = raw_session("listen/endpoints", args.raw_port)?;
    let key = &args.key;
    let _echo = raw
        .declare_queryable(format!("{key}/raw/echo"))
        .callback(|query| {
            let payload = query.payload().cloned().unwrap_or_default();
            let _ = query.reply(query.key_expr().clone(), payload).wait();
        })
        .wait()
        .map_err(zerr)?;
    let pong = raw
        .declare_publisher(format!("{key}/raw/pong"))
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()
        .map_err(zerr)?;
    let _ping = raw
        .declare_subscriber(format!("{key}/raw/ping"))
        .callback(move |sample| {
            let _ = pong.put(sample.payload().clone()).wait();
        })
        .wait()
        .map_err(zerr)?;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let _stream = raw
        .declare_subscriber(format!("{key}/raw/stream"))
        .callback(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .wait()
        .map_err(zerr)?;
    let _count = raw
        .declare_queryable(format!("{key}/raw/count"))
        .callback(move |query| {
            // Replies once `expected` messages arrived (or after 30 s), then resets.
            let expected = query
                .payload()
                .and_then(|p| <[u8; 8]>::try_from(&p.to_bytes()[..]).ok())
                .map_or(0, u64::from_le_bytes);
            let until = Instant::now() + Duration::from_secs(30);
            while received.load(Ordering::Relaxed) < expected && Instant::now() < until {
                std::thread::sleep(Duration::from_micros(50));
            }
            let got = received.swap(0, Ordering::Relaxed);
            let _ = query
                .reply(query.key_expr().clone(), got.to_le_bytes().to_vec())
                .wait();
        })
        .wait()
        .map_err(zerr)?;
    println!("READY");
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    Ok(())
}

/// REQUEST: echoed as RESPONSE; DATA: counted; TEXT: answered with the count.
fn serve_utp(mut listener: Box<dyn Listener>) {
    while let Ok(mut channel) = listener.accept() {
        std::thread::spawn(move || {
            let mut frame = Frame::with_capacity(1 << 16);
            let mut count = 0u64;
            while channel.recv(&mut frame).is_ok() {
                let sent = match frame.message_type() {
                    message_type::REQUEST => {
                        channel.send(message_type::RESPONSE, flags::CHECKSUM, frame.payload())
                    }
                    message_type::DATA => {
                        count += 1;
                        Ok(())
                    }
                    _ => {
                        let reply = count.to_le_bytes();
                        count = 0;
                        channel.send(message_type::RESPONSE, flags::CHECKSUM, &reply)
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
        });
    }
}
