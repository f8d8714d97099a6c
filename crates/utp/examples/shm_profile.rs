//! CPU cost of the shm link's software path: one thread plays client and
//! server on one link (no waiting, no cache-line transfers) and reports the
//! thread's CPU time per round trip (send, recv, send, recv). CPU time, not
//! wall time, so it stays meaningful on a busy machine. On a CPU with
//! `CLDEMOTE` the link pushes each small answer to the shared cache for a
//! peer on another core, and this one thread reads it back from there:
//! the figure then includes that (the program says so).
//!
//! `UTP_BENCH_RING=4k cargo run --release -p utp --example shm_profile -- [ROUND_TRIPS] [SIZE]`
//! (`UTP_BENCH_RING`, default 64k, as for `benches/shm_rtt.rs`: a 4k ring
//! keeps the whole link in L1, which leaves only the instructions' own cost)

use utp::Channel;
use utp::frame::{Frame, message_type};
fn main() {
    let ring = std::env::var("UTP_BENCH_RING").unwrap_or_else(|_| "64k".into());
    let url = format!("shm://prof-{}?wait=spin&ring={ring}", std::process::id());
    let mut listener = utp::listen(&url).unwrap();
    let u2 = url.clone();
    let t = std::thread::spawn(move || {
        utp::shm::connect(&u2.parse().unwrap(), &utp::Options::default()).unwrap()
    });
    let mut server = listener.accept().unwrap();
    let mut client = t.join().unwrap();
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().unwrap())
        .unwrap_or(100000);
    let size: usize = std::env::args()
        .nth(2)
        .map(|a| a.parse().unwrap())
        .unwrap_or(8);
    let req = vec![7u8; size];
    let mut f = Frame::with_capacity(2048);
    let mut g = Frame::with_capacity(2048);
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
    };
    let start = cpu();
    for _ in 0..n {
        client.send(message_type::REQUEST, 0, &req).unwrap();
        server.recv(&mut f).unwrap();
        server.send(message_type::RESPONSE, 0, f.payload()).unwrap();
        client.recv(&mut g).unwrap();
    }
    eprintln!(
        "{size} B: {:.1} ns CPU per round trip (one thread, no transfers)",
        (cpu() - start) / n as f64
    );
    if utp::__bench::demote_supported() && size <= utp::__bench::SHM_DEMOTE_PAYLOAD_UP_TO {
        // Each answer sent right after a receive is pushed to the shared
        // cache for a peer on another core (module `demote`); this one
        // thread then reads it back from there: 282 against 42 ns per 8 B
        // round trip on the Xeon of docs/BENCHMARKS.md, with the hint
        // turned off in a scratch build.
        eprintln!(
            "note: this CPU has CLDEMOTE, so the figure includes reading each demoted answer back from the shared cache"
        );
    }
}
