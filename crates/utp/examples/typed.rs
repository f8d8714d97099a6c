//! Typed messages: Rust values instead of bytes, over any channel.
//!
//! - `TypedChannel<T>` (feature `serde`): any `Serialize`/`Deserialize`
//!   type, encoded with postcard (message type `TYPED`, 0x30).
//! - `send_pod`/`recv_pod`: `#[repr(C)]` plain-old-data, copied as it is in
//!   memory (message type `POD`, 0x31); no serde needed.
//!
//! ```text
//! cargo run -p utp --features serde --example typed [URL]
//! ```

use serde::{Deserialize, Serialize};
use utp::typed::{TypedChannel, recv_pod, send_pod};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Order {
    Buy { symbol: String, qty: u32 },
    Cancel(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    price: f64,
    size: u32,
    venue: u32,
}

fn main() -> utp::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("unix:///tmp/utp-example-typed-{}.sock", std::process::id()));
    let mut listener = utp::listen(&url)?;
    let client = utp::connect(&listener.endpoint())?;
    let server = listener.accept()?;

    let mut client = TypedChannel::<Order>::new(client);
    let mut server = TypedChannel::<Order>::new(server);
    let order = Order::Buy {
        symbol: "ACME".into(),
        qty: 100,
    };
    client.send(&order)?;
    let got = server.recv()?;
    assert_eq!(got, order);
    println!("typed (serde): {got:?}");

    // The same channels, plain-old-data this time.
    let (mut client, mut server) = (client.into_inner(), server.into_inner());
    let tick = Tick {
        price: 10.25,
        size: 100,
        venue: 7,
    };
    send_pod(&mut client, &tick, None)?;
    let mut frame = utp::frame::Frame::default();
    let got: Tick = recv_pod(&mut server, &mut frame, None)?;
    assert_eq!(got, tick);
    println!("typed (pod): {got:?}");
    Ok(())
}
