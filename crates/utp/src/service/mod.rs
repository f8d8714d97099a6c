//! Request/response over any [`Channel`](crate::Channel): a [`Server`] that
//! serves a [`Handler`] to many clients, a [`Client`] that makes calls, and the
//! [`calc`]ulator service.
//!
//! Wire protocol: a request is a frame of type
//! [`REQUEST`](crate::frame::message_type::REQUEST) (0x10); the server answers
//! each with one frame of type [`RESPONSE`](crate::frame::message_type::RESPONSE)
//! (0x11), in order. A request the server cannot handle at all gets an
//! [`ERROR`](crate::frame::message_type::ERROR) (0x12) frame with a text reason.
//! Other message types are ignored by the server (HEARTBEAT) or answered with ERROR.

pub(crate) mod answer;
pub mod calc;
mod client;
mod reactor;
mod server;

pub use client::{Client, DEFAULT_CALL_TIMEOUT, call};
#[cfg(feature = "tokio")]
pub(crate) use client::{is_the_answer, refusal};
#[cfg(feature = "tokio")]
pub(crate) use server::HandlerDebug;
pub use server::{
    DEFAULT_MAX_CLIENTS, DEFAULT_MAX_THREADS, DEFAULT_REPLY_TIMEOUT, Handler, Server, ServerStats,
    Shutdown,
};
