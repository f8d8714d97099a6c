//! `utp bench --only zenoh`: utp over zenoh:// beside raw zenoh (the same
//! payloads through a plain queryable, a pub/sub ping-pong and a plain
//! publisher) and beside utp over tcp://, two processes on loopback, in one
//! run: every repeat runs every variant, in rotating order; medians.

mod measure;
pub mod peer;

use crate::exit::{CmdResult, Exit};
use measure::PingPong;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use utp::Channel;

/// The round-trip variants, in table order.
const RTT_VARIANTS: [&str; 4] = ["utp zenoh://", "raw pub/sub", "raw get", "utp tcp://"];
/// The streaming variants, in table order.
const STREAM_VARIANTS: [&str; 3] = ["utp zenoh://", "raw put", "utp tcp://"];

fn free_port() -> Result<u16, Exit> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Connects to `url`, retrying while the peer comes up.
fn connect(url: &str) -> Result<Box<dyn Channel>, Exit> {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        match utp::connect(url) {
            Ok(channel) => return Ok(channel),
            Err(e) if Instant::now() > until => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Runs the zenoh section of `utp bench` and prints its tables.
pub fn run(quick: bool, repeats: usize) -> CmdResult {
    let key = format!("utpbench{}", std::process::id());
    let (utp_port, raw_port, tcp_port) = (free_port()?, free_port()?, free_port()?);
    let mut peer = Command::new(std::env::current_exe()?)
        .arg("bench-zenoh-peer")
        .args(["--key", &key])
        .args(["--utp-port", &utp_port.to_string()])
        .args(["--raw-port", &raw_port.to_string()])
        .args(["--tcp-port", &tcp_port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .env("RUST_LOG", "warn")
        .spawn()?;
    let result = measure_with_peer(
        &mut peer,
        &key,
        [utp_port, raw_port, tcp_port],
        quick,
        repeats,
    );
    drop(peer.stdin.take());
    let _ = peer.kill();
    let _ = peer.wait();
    result
}

fn measure_with_peer(
    peer: &mut std::process::Child,
    key: &str,
    [utp_port, raw_port, tcp_port]: [u16; 3],
    quick: bool,
    repeats: usize,
) -> CmdResult {
    let mut lines = BufReader::new(
        peer.stdout
            .take()
            .ok_or(Exit::Error("no peer stdout".into()))?,
    );
    let mut line = String::new();
    while line.trim() != "READY" {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Err(Exit::Error(
                "the zenoh bench peer exited before READY".into(),
            ));
        }
    }
    let mut over_zenoh = connect(&format!(
        "zenoh://{key}/utp?connect=tcp/127.0.0.1:{utp_port}"
    ))?;
    let mut over_tcp = connect(&format!("tcp://127.0.0.1:{tcp_port}"))?;
    let raw = peer::raw_session("connect/endpoints", raw_port)?;
    let pingpong = PingPong::new(&raw, key)?;
    let echo_key = format!("{key}/raw/echo");

    let (rtt_sizes, stream_sizes): (&[usize], &[usize]) = if quick {
        (&[64, 4096], &[64, 4096])
    } else {
        (&[64, 4096, 65536], &[64, 4096, 65536])
    };
    let iterations = if quick { 300 } else { 2000 };
    let count: u64 = if quick { 2000 } else { 20000 };
    let mut rtt = vec![vec![Vec::new(); RTT_VARIANTS.len()]; rtt_sizes.len()];
    let mut stream = vec![vec![Vec::new(); STREAM_VARIANTS.len()]; stream_sizes.len()];
    // Warm every path once (connections, routes, matching) before timing.
    measure::utp_rtt(&mut *over_zenoh, 64, 50)?;
    pingpong.rtt(64, 50)?;
    measure::raw_get_rtt(&raw, &echo_key, 64, 50)?;
    measure::utp_rtt(&mut *over_tcp, 64, 50)?;
    for repeat in 0..repeats {
        for (s, &size) in rtt_sizes.iter().enumerate() {
            for k in 0..RTT_VARIANTS.len() {
                let v = (k + repeat) % RTT_VARIANTS.len();
                let figure = match v {
                    0 => measure::utp_rtt(&mut *over_zenoh, size, iterations)?,
                    1 => pingpong.rtt(size, iterations)?,
                    2 => measure::raw_get_rtt(&raw, &echo_key, size, iterations)?,
                    _ => measure::utp_rtt(&mut *over_tcp, size, iterations)?,
                };
                rtt[s][v].push(figure);
            }
        }
        for (s, &size) in stream_sizes.iter().enumerate() {
            for k in 0..STREAM_VARIANTS.len() {
                let v = (k + repeat) % STREAM_VARIANTS.len();
                let figure = match v {
                    0 => measure::utp_stream(&mut *over_zenoh, size, count)?,
                    1 => measure::raw_stream(&raw, key, size, count)?,
                    _ => measure::utp_stream(&mut *over_tcp, size, count)?,
                };
                stream[s][v].push(figure);
            }
        }
    }
    print_tables(
        rtt_sizes,
        &rtt,
        stream_sizes,
        &stream,
        repeats,
        iterations,
        count,
    );
    Ok(())
}

fn medians(rows: &[Vec<Vec<f64>>]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|row| row.iter().map(|v| measure::median(v.clone())).collect())
        .collect()
}

fn print_tables(
    rtt_sizes: &[usize],
    rtt: &[Vec<Vec<f64>>],
    stream_sizes: &[usize],
    stream: &[Vec<Vec<f64>>],
    repeats: usize,
    iterations: usize,
    count: u64,
) {
    println!(
        "\nzenoh: two processes on loopback, explicit endpoints, each variant on its own session \
         ({repeats} repeats in rotating order, medians; not pinned: zenoh runs its own threads)"
    );
    println!("round trip p50 (µs, {iterations} per point); ratios = utp zenoh:// / raw zenoh");
    println!(
        "{:>7} {:>13} {:>12} {:>10} {:>11} {:>13} {:>9}",
        "size",
        RTT_VARIANTS[0],
        RTT_VARIANTS[1],
        RTT_VARIANTS[2],
        RTT_VARIANTS[3],
        "÷ raw pub/sub",
        "÷ raw get"
    );
    for (size, m) in rtt_sizes.iter().zip(medians(rtt)) {
        println!(
            "{size:>7} {:>13.1} {:>12.1} {:>10.1} {:>11.1} {:>13.2} {:>9.2}",
            m[0] / 1e3,
            m[1] / 1e3,
            m[2] / 1e3,
            m[3] / 1e3,
            m[0] / m[1],
            m[0] / m[2]
        );
    }
    println!("streaming ({count} messages, thousands/s); ratio = raw put / utp zenoh://");
    println!(
        "{:>7} {:>13} {:>12} {:>11} {:>9}",
        "size", STREAM_VARIANTS[0], STREAM_VARIANTS[1], STREAM_VARIANTS[2], "ratio"
    );
    for (size, m) in stream_sizes.iter().zip(medians(stream)) {
        println!(
            "{size:>7} {:>13.1} {:>12.1} {:>11.1} {:>9.2}",
            m[0] / 1e3,
            m[1] / 1e3,
            m[2] / 1e3,
            m[1] / m[0]
        );
    }
}
