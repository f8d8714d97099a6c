//! `zenoh://KEY`: channels and services across hosts over [zenoh](https://zenoh.io)
//! (cargo feature `zenoh`).
//!
//! A channel is a *link* between one client and one server, made of zenoh
//! key expressions under `utp/KEY/@link/ID/`: one reliable publication per
//! direction carrying UTP frames byte for byte (checksums and sequence
//! numbers mean the same end to end), one credit key per direction (the
//! receiver grants room, so no queue grows without bound), and one
//! liveliness token per side (a crashed or unreachable peer shows up as
//! [`PeerGone`](crate::Error::PeerGone)).
//!
//! A listener declares a liveliness token `utp/KEY/@srv/SID` and a queryable
//! `utp/KEY/@srv/SID/@connect`. `connect` lists the servers through
//! liveliness, asks the first one that answers for a link (one query, one
//! reply, bounded by the connect timeout) and then talks to that server only:
//! with several servers on one key, each connection goes to one of them.
//!
//! URL options (see `docs/distributed.md`):
//! `connect=tcp/HOST:PORT[,..]`, `listen=tcp/HOST:PORT[,..]`,
//! `mode=peer|client|router`, `config=PATH` (a zenoh JSON5 file),
//! `scout=on|off` (multicast scouting; off by default once endpoints are
//! given), `lease_ms=N` (how fast a vanished host is noticed),
//! `reconnect=on|off` (clients: a lost server is looked up again on the
//! next send; default on).

mod channel;
mod keys;
mod link;
mod listener;
pub(crate) mod session;
mod state;

pub use channel::ZenohChannel;
pub use listener::ZenohListener;

use crate::channel::Options;
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};

/// Connects to the service at `zenoh://KEY`.
pub fn connect(endpoint: &Endpoint, options: &Options) -> Result<ZenohChannel> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["zenoh"])?;
    ZenohChannel::connect(endpoint, service_key(endpoint)?, options)
}

/// Serves `zenoh://KEY`.
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<ZenohListener> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["zenoh"])?;
    ZenohListener::bind(endpoint, service_key(endpoint)?, options)
}

fn service_key(endpoint: &Endpoint) -> Result<&str> {
    match &endpoint.address {
        Address::Zenoh(key) => Ok(key),
        _ => Err(Error::BadUrl {
            url: endpoint.to_string(),
            reason: "not a zenoh:// endpoint".into(),
        }),
    }
}

/// A zenoh error in utp's terms.
pub(crate) fn zenoh_error(context: &str, error: zenoh::Error) -> Error {
    Error::io(
        context.to_string(),
        std::io::Error::other(error.to_string()),
    )
}
