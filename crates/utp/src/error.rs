//! The crate's error type: one enum, each variant saying what went wrong and,
//! where it helps, what to do about it.

use crate::frame::DecodeError;
use std::io;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in utp.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint URL could not be understood.
    #[error(
        "invalid endpoint URL {url:?}: {reason}\n{}",
        crate::endpoint::ACCEPTED_FORMS
    )]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Bytes from the peer were not a valid UTP frame.
    #[error("invalid frame from peer: {0}")]
    Frame(#[from] DecodeError),
    /// Nothing is listening at the endpoint.
    #[error("no server at {endpoint}: {reason}")]
    NotFound {
        /// The endpoint that was tried.
        endpoint: String,
        /// What the operating system said.
        reason: String,
    },
    /// Another live server already listens at the endpoint.
    #[error("{endpoint} is already in use by a running server{}", show_hint(.hint))]
    InUse {
        /// The endpoint.
        endpoint: String,
        /// Who holds it, when known.
        hint: Option<String>,
    },
    /// The peer closed the channel or died.
    #[error("peer gone: {0}")]
    PeerGone(String),
    /// A blocking call did not complete in time.
    #[error("timed out after {after:?} while {waiting_for}")]
    Timeout {
        /// What the call was waiting for.
        waiting_for: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// A non-blocking send found no room; nothing was sent.
    #[error("no room to send right now (the peer is not keeping up); retry or use a blocking send")]
    Full,
    /// The payload is larger than this transport or channel can carry.
    #[error("payload of {len} bytes is too large for {transport} (limit {limit} bytes)")]
    TooLarge {
        /// Payload length that was offered.
        len: usize,
        /// The transport's limit.
        limit: usize,
        /// Which transport.
        transport: &'static str,
    },
    /// The peer broke the protocol in a way that is not a frame error.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer (or a shared region) is not trusted by policy.
    #[error("permission denied: {0}")]
    Denied(String),
    /// The channel was closed locally.
    #[error("channel is closed")]
    Closed,
    /// A pub/sub subscriber was reading a message in place when the
    /// publisher overwrote it; the message counts as lost.
    #[error("the publisher overwrote this message while it was being read (counted as lost)")]
    Overwritten,
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What utp was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn show_hint(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
}

impl Error {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Whether this error means the peer is gone (closed, reset or dead).
    pub fn is_peer_gone(&self) -> bool {
        matches!(self, Error::PeerGone(_))
    }

    /// Whether this error is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }
}
