//! Request/response: the calculator served by `utp::service::Server` to two
//! client threads over a Unix socket, then stopped cleanly.
//!
//! ```text
//! cargo run -p utp --example request_response [URL]
//! ```
//!
//! Any URL works (`shm://calc`, `tcp://127.0.0.1:0`...); the default is a
//! socket in /tmp named after this process.

use std::time::Duration;
use utp::service::{Client, Server, calc};

fn main() -> utp::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("unix:///tmp/utp-example-rr-{}.sock", std::process::id()));

    // The server: a listener and a handler (here the calculator; any
    // `Fn(&[u8], &PeerInfo) -> Vec<u8>` works too), run on its own thread.
    let listener = utp::listen(&url)?;
    let url = listener.endpoint(); // the bound address (tcp port 0 becomes a real port)
    let mut server = Server::new(listener, calc::handler()).max_clients(64);
    let stop = server.shutdown_handle();
    let serving = std::thread::spawn(move || server.run());

    // Clients: each call sends one REQUEST frame and waits (5 s at most by
    // default) for its RESPONSE.
    let clients: Vec<_> = (0..2)
        .map(|n| {
            let url = url.clone();
            std::thread::spawn(move || -> utp::Result<String> {
                let mut client = Client::connect(&url)?;
                client.set_timeout(Some(Duration::from_secs(5)));
                let request = format!("ADD {} 20", 10 + n);
                let reply = client.call(request.as_bytes())?;
                Ok(format!("{request} -> {}", String::from_utf8_lossy(reply)))
            })
        })
        .collect();
    for client in clients {
        println!("{}", client.join().expect("client thread")?);
    }

    // Stop: the server finishes what it is doing, removes the socket and returns.
    stop.trigger();
    serving.join().expect("server thread")?;
    Ok(())
}
