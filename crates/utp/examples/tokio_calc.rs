//! The calculator served and called from tokio (feature `tokio`).
//!
//! ```text
//! cargo run -p utp --features tokio --example tokio_calc                  # both in one program
//! cargo run -p utp --features tokio --example tokio_calc -- serve unix:///tmp/calc.sock
//! cargo run -p utp --features tokio --example tokio_calc -- call unix:///tmp/calc.sock 100
//! ```
//!
//! `serve` answers until Ctrl-C (or SIGTERM); `call URL N` runs N concurrent
//! clients on one runtime, each making 10 calls, checks every answer and
//! prints `OK <calls>`. Without arguments it does both on a socket of its own.

use std::time::{Duration, Instant};
use utp::tokio::service::{Client, Server};

#[tokio::main]
async fn main() {
    if let Err(e) = run(std::env::args().skip(1).collect()).await {
        eprintln!("tokio_calc: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", url] => serve(url).await,
        ["call", url, clients] => call(url, clients.parse()?).await,
        [] => {
            let path = std::env::temp_dir().join(format!("tokio-calc-{}.sock", std::process::id()));
            let url = format!("unix://{}", path.display());
            let server = Server::new(utp::tokio::listen(&url)?, utp::service::calc::handler());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let serving = tokio::spawn(server.run_until(async {
                let _ = stopped.await;
            }));
            call(&url, 100).await?;
            let _ = stop.send(());
            serving.await??;
            Ok(())
        }
        _ => Err("usage: tokio_calc [serve URL | call URL CLIENTS]".into()),
    }
}

/// Serves the calculator at `url` until SIGINT or SIGTERM.
async fn serve(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::new(utp::tokio::listen(url)?, utp::service::calc::handler());
    println!("serving {}", server.endpoint());
    let stop = utp::service::Shutdown::default();
    stop.on_signals()?;
    server
        .run_until(async move {
            while !stop.is_triggered() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await?;
    println!("stopped");
    Ok(())
}

/// `clients` concurrent clients, 10 calls each, every answer checked.
async fn call(url: &str, clients: u64) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..clients as i64 {
        let url = url.to_owned();
        tasks.spawn(async move {
            let mut client = Client::connect(&url).await?;
            for i in 0..10 {
                let reply = client.call(&format!("ADD {n} {i}")).await?;
                if reply != format!("OK {}", n + i) {
                    return Err(utp::Error::protocol(
                        utp::error::ProtocolReason::Unexpected,
                        format!("ADD {n} {i} gave {reply}"),
                    ));
                }
            }
            client.close().await?;
            Ok::<u64, utp::Error>(10)
        });
    }
    let mut calls = 0;
    while let Some(done) = tasks.join_next().await {
        calls += done??;
    }
    println!(
        "OK {calls} calls from {clients} clients in {:?}",
        started.elapsed()
    );
    Ok(())
}
