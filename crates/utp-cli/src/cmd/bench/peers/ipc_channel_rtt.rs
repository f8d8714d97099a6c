//! ipc-channel round trips: a byte channel each way between the two
//! processes, bootstrapped through an `IpcOneShotServer`. ipc-channel blocks
//! in the kernel (Unix sockets) while it waits.

use crate::cmd::bench::link::Fallible;
use crate::cmd::bench::sample::{Sample, latency_histogram};
use crate::cmd::bench::spec::PeerSpec;
use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender};
use std::time::Instant;

/// What the client hands the peer: where requests come from, where replies go.
type Bootstrap = (IpcBytesReceiver, IpcBytesSender);

/// Peer side: announces the one-shot server's name, then answers `count` requests.
pub fn serve(spec: &PeerSpec, announce: &mut dyn FnMut(&str)) -> Fallible<()> {
    let (server, name) = IpcOneShotServer::<Bootstrap>::new()?;
    announce(&name);
    let (_, (requests, replies)) = server.accept()?;
    let reply = vec![0x5au8; spec.size];
    for _ in 0..spec.count {
        let request = requests.recv()?;
        if request.len() != spec.size {
            return Err(
                format!("request of {} bytes, expected {}", request.len(), spec.size).into(),
            );
        }
        replies.send(&reply)?;
    }
    Ok(())
}

/// Client side: `warmup` untimed, then timed round trips.
pub fn measure(spec: &PeerSpec, announced: &str, warmup: u64) -> Fallible<Sample> {
    let (requests_tx, requests_rx) = ipc::bytes_channel()?;
    let (replies_tx, replies_rx) = ipc::bytes_channel()?;
    let bootstrap: IpcSender<Bootstrap> = IpcSender::connect(announced.to_string())?;
    bootstrap.send((requests_rx, replies_tx))?;
    let request = vec![0xa5u8; spec.size];
    let mut latencies = latency_histogram();
    for i in 0..spec.count {
        let start = Instant::now();
        requests_tx.send(&request)?;
        let reply = replies_rx.recv()?;
        let elapsed = start.elapsed();
        if reply.len() != spec.size {
            return Err(format!("reply of {} bytes, expected {}", reply.len(), spec.size).into());
        }
        if i >= warmup {
            latencies.saturating_record(elapsed.as_nanos() as u64);
        }
    }
    Ok(Sample::from_latencies(&latencies))
}
