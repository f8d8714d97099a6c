//! CPU cost of the inproc transport against its raw baseline (bounded
//! crossbeam channels of byte vectors, as `utp bench` uses): one thread plays
//! client and server, so no thread ever waits and the figure is the software
//! path alone. Reports the thread's CPU time per round trip (send, recv,
//! send, recv) for both; CPU time, not wall time, so it stays meaningful on a
//! busy machine.
//!
//! `cargo run --release -p utp --example inproc_profile -- [ROUND_TRIPS] [SIZE]`

use utp::Channel;
use utp::frame::{Frame, message_type};

fn cpu_ns() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ROUND_TRIPS: a number"))
        .unwrap_or(300_000);
    let size: usize = std::env::args()
        .nth(2)
        .map(|a| a.parse().expect("SIZE: a number"))
        .unwrap_or(8);
    let request = vec![7u8; size];

    let (a_tx, b_rx) = crossbeam_channel::bounded::<Vec<u8>>(1024);
    let (b_tx, a_rx) = crossbeam_channel::bounded::<Vec<u8>>(1024);
    let start = cpu_ns();
    for _ in 0..n {
        a_tx.send(request.to_vec()).expect("raw send");
        let got = b_rx.recv().expect("raw recv");
        b_tx.send(got.to_vec()).expect("raw reply");
        std::hint::black_box(a_rx.recv().expect("raw recv reply"));
    }
    let raw = (cpu_ns() - start) / n as f64;

    let url = format!("inproc://profile-{}", std::process::id());
    let mut listener = utp::listen(&url).expect("listen");
    let mut client = utp::connect(&url).expect("connect");
    let mut server = listener.accept().expect("accept");
    let (mut f, mut g) = (Frame::with_capacity(size), Frame::with_capacity(size));
    let start = cpu_ns();
    for _ in 0..n {
        client
            .send(message_type::REQUEST, 0, &request)
            .expect("send");
        server.recv(&mut f).expect("recv");
        server
            .send(message_type::RESPONSE, 0, f.payload())
            .expect("reply");
        client.recv(&mut g).expect("recv reply");
    }
    let utp = (cpu_ns() - start) / n as f64;
    println!(
        "{size} B: utp inproc {utp:.1} ns, raw crossbeam {raw:.1} ns CPU per round trip ({:.2}x raw)",
        utp / raw
    );
}
