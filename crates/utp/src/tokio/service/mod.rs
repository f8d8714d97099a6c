//! Async request/response: the [`Client`] and [`Server`] of
//! [`crate::service`] for tokio, with the same wire protocol, correlation
//! rules (docs/protocol.md) and [`Handler`](crate::service::Handler) trait.

mod client;
mod server;

pub use client::Client;
pub use server::Server;
