//! One bridged client: frames both ways between the client's channel and
//! the bridge's own channel to the service, on one thread, holding at most
//! one frame (the sending side's backpressure reaches the receiving side).
//!
//! A `Channel` is used from one thread, so the pump waits on one side at a
//! time: after forwarding a frame it waits on the side that received it
//! (a reply is usually next), otherwise it alternates with slices that grow
//! from 1 ms to [`MAX_SLICE`] while both sides are idle.

use std::time::Duration;
use utp::frame::{Frame, flags, message_type};
use utp::service::Shutdown;
use utp::{Channel, Error};

/// Longest wait on one side while the other may have a frame.
const MAX_SLICE: Duration = Duration::from_millis(20);
/// How long to wait for the reply to a frame just forwarded.
const REPLY_WAIT: Duration = Duration::from_millis(50);

/// A client and the bridge's connection to the service for it.
pub struct Pair {
    /// Number of this client, for the log.
    pub id: u64,
    /// The client's channel (accepted on TO).
    pub client: Box<dyn Channel>,
    /// The bridge's channel to the service (connected to FROM).
    pub service: Box<dyn Channel>,
    /// Limit for handing one frame to a side.
    pub send_timeout: Duration,
    /// The bridge is stopping.
    pub shutdown: Shutdown,
}

/// Which side a frame came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Service,
}

/// Moves frames until either side leaves, then closes both.
pub fn pump(mut pair: Pair) {
    let id = pair.id;
    let mut frame = Frame::with_capacity(4096);
    let mut next = Side::Client;
    let mut slice = Duration::from_millis(1);
    let outcome = loop {
        if pair.shutdown.is_triggered() {
            break Ok("the bridge is stopping");
        }
        let (from, to) = match next {
            Side::Client => (&mut pair.client, &mut pair.service),
            Side::Service => (&mut pair.service, &mut pair.client),
        };
        match from.recv_timeout(&mut frame, Some(slice)) {
            Ok(()) => {
                let header = frame.header;
                if let Err(e) = to.send_timeout(
                    header.message_type,
                    header.flags,
                    frame.payload(),
                    Some(pair.send_timeout),
                ) {
                    break Err((next.other(), e));
                }
                if next == Side::Client && header.message_type == message_type::GOODBYE {
                    break Ok("the client said goodbye");
                }
                // The answer usually comes from the side that just got a frame.
                next = next.other();
                slice = REPLY_WAIT;
            }
            Err(Error::Timeout { .. }) => {
                if slice > MAX_SLICE {
                    slice = Duration::from_millis(1);
                } else {
                    slice = (slice * 2).min(MAX_SLICE);
                }
                next = next.other();
            }
            Err(e) => break Err((next, e)),
        }
    };
    match outcome {
        Ok(why) => log::info!("bridge client {id}: done ({why})"),
        Err((Side::Client, e)) => log::info!("bridge client {id}: client side ended: {e}"),
        Err((Side::Service, e)) => {
            log::warn!("bridge client {id}: service side ended: {e}");
            let reason = format!("bridge: the service went away: {e}");
            let _ = pair.client.send_timeout(
                message_type::ERROR,
                flags::CHECKSUM,
                reason.as_bytes(),
                Some(Duration::from_millis(100)),
            );
        }
    }
    let _ = pair.client.close();
    let _ = pair.service.close();
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Service,
            Side::Service => Side::Client,
        }
    }
}
