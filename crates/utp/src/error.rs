//! The crate's error type: one enum, each variant saying what went wrong and,
//! where it helps, what to do about it.

use crate::frame::DecodeError;
use std::io;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in utp.
///
/// `Debug` prints the same sentence as `Display`, so a `main` that returns
/// `utp::Result<()>` shows `Error: shm://x is already in use ...` rather than
/// a struct dump.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint URL could not be understood.
    #[error("invalid endpoint URL {url:?}: {reason}")]
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
    /// The peer closed the channel or died; [`GoneReason`] says which.
    ///
    /// ```
    /// use utp::{Error, GoneReason};
    /// fn retry_worthwhile(e: &Error) -> bool {
    ///     matches!(e, Error::PeerGone { reason: GoneReason::Died | GoneReason::Unreachable, .. })
    /// }
    /// assert!(!retry_worthwhile(&Error::peer_gone(GoneReason::Closed, "the server said goodbye")));
    /// ```
    #[error("peer gone: {detail}")]
    PeerGone {
        /// What happened, matchable.
        reason: GoneReason,
        /// The whole story, for people.
        detail: String,
    },
    /// A blocking call did not complete in time.
    #[error("timed out after {after:?} waiting for {waiting_for}")]
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
    /// The peer broke the protocol in a way that is not a frame error, or
    /// the call is not one this channel supports; [`ProtocolReason`] says which.
    #[error("protocol error: {detail}")]
    Protocol {
        /// What went wrong, matchable.
        reason: ProtocolReason,
        /// The whole story, for people.
        detail: String,
    },
    /// The peer (or a shared object) is not trusted by policy; [`DeniedReason`] says why.
    #[error("permission denied: {detail}")]
    Denied {
        /// Why, matchable.
        reason: DeniedReason,
        /// The whole story, for people.
        detail: String,
    },
    /// A payload did not decode as the type the receiver expected (see
    /// [`crate::typed`]); the frame was consumed and the channel is usable.
    #[error("payload is not a valid {type_name}: {reason}")]
    Decode {
        /// The Rust type that was expected.
        type_name: &'static str,
        /// What did not fit.
        reason: String,
    },
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

/// Why a peer is gone ([`Error::PeerGone`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GoneReason {
    /// The peer ended the conversation in order: it closed its end at a
    /// frame boundary, said goodbye, or closed the link.
    Closed,
    /// The peer ended without a goodbye: its process no longer exists, it
    /// hung up or reset the connection, or stopped in the middle of a frame.
    Died,
    /// Nothing answers at the other end: a datagram port is unreachable, a
    /// remote server went away.
    Unreachable,
    /// The other side ended this conversation on its own terms: a publisher
    /// evicted a slow subscriber, a server expired a silent client.
    Evicted,
    /// The shared memory the link lives in was truncated or damaged under
    /// us: the link is closed (the process and its other links go on).
    Broken,
}

/// What kind of protocol error ([`Error::Protocol`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtocolReason {
    /// Bytes or shared memory failed validation: a corrupt ring, region or
    /// cell, a stream out of step, sizes that contradict the handshake.
    Corrupt,
    /// A well-formed message that the protocol does not allow here: the
    /// wrong message type, the wrong number of descriptors, a sequence
    /// going backwards, more than the granted window.
    Unexpected,
    /// The peer speaks another version of the protocol or layout.
    Version,
    /// The peer refused the request or the link and said why (an ERROR frame).
    Refused,
    /// The call is not supported by this channel or in its configuration
    /// (descriptors on a non-Unix socket, a priority out of range, a second
    /// eventfd server...): a mistake of the caller, not of the peer.
    Unsupported,
}

/// Why access was denied ([`Error::Denied`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeniedReason {
    /// The peer runs as a user the policy does not trust, or the kernel
    /// could not say who it is (see [`crate::identity`]).
    Untrusted,
    /// The other side refused us (not trusted there, or full) and said why.
    Refused,
    /// A shared object is not safe to use: another owner, a mode open to
    /// others, a symlink or another file type, missing seals, or replaced
    /// since we made it.
    Unsafe,
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
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

    /// [`Error::PeerGone`] with a reason and a sentence for people.
    pub fn peer_gone(reason: GoneReason, detail: impl Into<String>) -> Self {
        Error::PeerGone {
            reason,
            detail: detail.into(),
        }
    }

    /// [`Error::Protocol`] with a reason and a sentence for people.
    pub fn protocol(reason: ProtocolReason, detail: impl Into<String>) -> Self {
        Error::Protocol {
            reason,
            detail: detail.into(),
        }
    }

    /// [`Error::Denied`] with a reason and a sentence for people.
    pub fn denied(reason: DeniedReason, detail: impl Into<String>) -> Self {
        Error::Denied {
            reason,
            detail: detail.into(),
        }
    }

    /// Whether this error means the peer is gone (closed, reset or dead).
    pub fn is_peer_gone(&self) -> bool {
        matches!(self, Error::PeerGone { .. })
    }

    /// Whether this error is a timeout.
    #[inline]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }
}

/// Lets utp calls sit inside functions that return `std::io::Result`, with
/// the kind a caller of the standard library would expect; the utp error is
/// kept inside (as the `io::Error`'s inner error) with its message.
///
/// ```
/// fn ping(url: &str) -> std::io::Result<()> {
///     let _channel = utp::connect(url)?;
///     Ok(())
/// }
/// let err = ping("unix:///nonexistent/utp-doc.sock").unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// ```
impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match &err {
            Error::BadUrl { .. } | Error::TooLarge { .. } => io::ErrorKind::InvalidInput,
            Error::Frame(_) | Error::Decode { .. } => io::ErrorKind::InvalidData,
            Error::Protocol { reason, .. } => match reason {
                ProtocolReason::Refused => io::ErrorKind::ConnectionRefused,
                ProtocolReason::Unsupported => io::ErrorKind::Unsupported,
                _ => io::ErrorKind::InvalidData,
            },
            Error::NotFound { .. } => io::ErrorKind::NotFound,
            Error::InUse { .. } => io::ErrorKind::AddrInUse,
            Error::PeerGone { reason, .. } => match reason {
                GoneReason::Closed => io::ErrorKind::BrokenPipe,
                GoneReason::Died => io::ErrorKind::ConnectionReset,
                GoneReason::Unreachable => io::ErrorKind::ConnectionRefused,
                _ => io::ErrorKind::ConnectionAborted,
            },
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::Full => io::ErrorKind::WouldBlock,
            Error::Overwritten => io::ErrorKind::Interrupted,
            Error::Denied { .. } => io::ErrorKind::PermissionDenied,
            Error::Closed => io::ErrorKind::NotConnected,
            Error::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod io_conversion_tests {
    use super::*;

    #[test]
    fn kinds_follow_the_meaning_and_the_message_survives() {
        let cases = [
            (
                Error::peer_gone(GoneReason::Closed, "closed"),
                io::ErrorKind::BrokenPipe,
            ),
            (
                Error::peer_gone(GoneReason::Died, "pid 7 no longer exists"),
                io::ErrorKind::ConnectionReset,
            ),
            (
                Error::peer_gone(GoneReason::Unreachable, "port unreachable"),
                io::ErrorKind::ConnectionRefused,
            ),
            (
                Error::peer_gone(GoneReason::Evicted, "expired"),
                io::ErrorKind::ConnectionAborted,
            ),
            (
                Error::protocol(ProtocolReason::Corrupt, "ring"),
                io::ErrorKind::InvalidData,
            ),
            (
                Error::protocol(ProtocolReason::Refused, "ERR"),
                io::ErrorKind::ConnectionRefused,
            ),
            (
                Error::protocol(ProtocolReason::Unsupported, "fds"),
                io::ErrorKind::Unsupported,
            ),
            (
                Error::Timeout {
                    waiting_for: "a frame",
                    after: Duration::from_secs(1),
                },
                io::ErrorKind::TimedOut,
            ),
            (Error::Full, io::ErrorKind::WouldBlock),
            (
                Error::denied(DeniedReason::Untrusted, "uid 7"),
                io::ErrorKind::PermissionDenied,
            ),
            (Error::Closed, io::ErrorKind::NotConnected),
            (
                Error::io("bind /x", io::Error::from(io::ErrorKind::AddrNotAvailable)),
                io::ErrorKind::AddrNotAvailable,
            ),
        ];
        for (err, kind) in cases {
            let text = err.to_string();
            let converted = io::Error::from(err);
            assert_eq!(converted.kind(), kind, "{text}");
            assert_eq!(converted.to_string(), text);
            assert!(converted.get_ref().unwrap().is::<Error>());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentence_is_unchanged_by_the_reason() {
        let e = Error::peer_gone(GoneReason::Died, "peer process 12 no longer exists");
        assert_eq!(e.to_string(), "peer gone: peer process 12 no longer exists");
        let e = Error::denied(DeniedReason::Unsafe, "x is a symbolic link");
        assert_eq!(e.to_string(), "permission denied: x is a symbolic link");
        let e = Error::protocol(ProtocolReason::Version, "layout 3");
        assert_eq!(e.to_string(), "protocol error: layout 3");
    }

    #[test]
    fn a_timeout_says_what_it_was_waiting_for() {
        let e = Error::Timeout {
            waiting_for: "a frame from the peer",
            after: Duration::from_secs(1),
        };
        assert_eq!(
            e.to_string(),
            "timed out after 1s waiting for a frame from the peer"
        );
    }

    #[test]
    fn debug_is_the_sentence_not_a_struct_dump() {
        // What `fn main() -> utp::Result<()>` prints after "Error: ".
        let e = Error::InUse {
            endpoint: "shm://calc".into(),
            hint: Some("held by pid 1234".into()),
        };
        assert_eq!(
            format!("{e:?}"),
            "shm://calc is already in use by a running server (held by pid 1234)"
        );
        let e = Error::InUse {
            endpoint: "tcp://127.0.0.1:80".into(),
            hint: None,
        };
        assert_eq!(
            format!("{e:?}"),
            "tcp://127.0.0.1:80 is already in use by a running server"
        );
    }
}
