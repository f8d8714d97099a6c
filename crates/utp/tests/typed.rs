//! Typed messages (serde/postcard and plain-old-data) over every transport:
//! a value sent by one process-side end arrives equal at the other.
//!
//! Each listening transport gets an echo thread; `pipe:` echoes through
//! `/bin/cat` (a frame written to cat comes back byte for byte).

mod util;

use std::time::Duration;
use utp::frame::Frame;
use utp::typed::{recv_pod, send_pod};
use utp::{Channel, Listener};

const LONG: Option<Duration> = Some(Duration::from_secs(10));

/// A fresh listening URL per transport that can listen in-process.
fn listening_urls() -> Vec<String> {
    vec![
        format!("inproc://{}", util::unique("typed")),
        format!("unix://{}.sock", util::tmp_path("typed")),
        format!("unix://@{}", util::unique("typed")),
        "tcp://127.0.0.1:0".into(),
        "udp://127.0.0.1:0".into(),
        format!("fifo://{}", util::tmp_path("typed")),
        format!("mq://{}", util::unique("typed")),
        format!("shm://{}", util::unique("typed")),
        format!("sysv://0x{:x}", util::unique_key()),
        format!("file://{}.region", util::tmp_path("typed")),
    ]
}

/// Listens on `url`, echoes every frame of one client back, returns the bound URL.
fn echo_server(url: &str) -> (String, std::thread::JoinHandle<()>) {
    let mut listener: Box<dyn Listener> = utp::listen(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let bound = listener.endpoint();
    let handle = std::thread::spawn(move || {
        let mut channel = listener.accept_timeout(LONG).expect("a client");
        let mut frame = Frame::default();
        while channel.recv_timeout(&mut frame, LONG).is_ok() {
            let header = frame.header;
            if channel
                .send_timeout(header.message_type, header.flags, frame.payload(), LONG)
                .is_err()
            {
                break;
            }
        }
    });
    (bound, handle)
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    price: f64,
    size: u32,
    venue: u32,
}

fn pod_round_trip(channel: &mut dyn Channel, url: &str) {
    let mut frame = Frame::default();
    for i in 0..10u32 {
        let tick = Tick {
            price: 10.0 + f64::from(i),
            size: i * 100,
            venue: i,
        };
        send_pod(channel, &tick, LONG).unwrap_or_else(|e| panic!("{url}: {e}"));
        let back: Tick =
            recv_pod(channel, &mut frame, LONG).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(back, tick, "{url}");
    }
}

#[cfg(feature = "serde")]
fn serde_round_trip(channel: Box<dyn Channel>, url: &str) -> Box<dyn Channel> {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Order {
        id: u64,
        symbol: String,
        legs: Vec<(i32, f64)>,
    }
    let mut typed = utp::typed::TypedChannel::<Order>::new(channel);
    for id in 0..10 {
        let order = Order {
            id,
            symbol: format!("SYM{id}"),
            legs: vec![(1, 2.5); id as usize],
        };
        typed
            .send_timeout(&order, LONG)
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let back = typed
            .recv_timeout(LONG)
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(back, order, "{url}");
    }
    typed.into_inner()
}

#[cfg(not(feature = "serde"))]
fn serde_round_trip(channel: Box<dyn Channel>, _url: &str) -> Box<dyn Channel> {
    channel
}

#[test]
fn typed_values_round_trip_over_every_listening_transport() {
    for url in listening_urls() {
        let (bound, server) = echo_server(&url);
        let mut client = utp::connect(&bound).unwrap_or_else(|e| panic!("{bound}: {e}"));
        pod_round_trip(client.as_mut(), &bound);
        let mut client = serde_round_trip(client, &bound);
        client.close().unwrap();
        drop(client);
        server.join().unwrap();
    }
    assert!(util::leftovers().is_empty(), "{:?}", util::leftovers());
}

#[test]
fn typed_values_round_trip_over_pipes() {
    let url = "pipe:/bin/cat";
    let mut client = utp::connect(url).unwrap();
    pod_round_trip(client.as_mut(), url);
    let mut client = serde_round_trip(client, url);
    client.close().unwrap();
}
