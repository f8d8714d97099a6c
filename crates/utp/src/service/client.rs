//! [`Client`]: makes request/response calls over any channel.

use crate::ProtocolReason;
use crate::channel::{Channel, Deadline, Options};
use crate::error::{Error, Result};
use crate::frame::{Frame, flags, message_type};
use std::time::Duration;

/// The timeout a new [`Client`] applies to each call.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends requests and waits for their responses, one at a time.
///
/// Every call has a timeout (5 s unless changed), so a server that died or
/// hangs produces an error instead of a hang.
///
/// ```no_run
/// let mut client = utp::service::Client::connect("unix:///tmp/calc.sock")?;
/// assert_eq!(client.call(b"ADD 10 20")?, b"OK 30");
/// # Ok::<(), utp::Error>(())
/// ```
#[derive(Debug)]
pub struct Client {
    channel: Box<dyn Channel>,
    timeout: Option<Duration>,
    frame: Frame,
}

impl Client {
    /// Connects to a server at `url`.
    pub fn connect(url: &str) -> Result<Client> {
        Ok(Client::new(crate::connect(url)?))
    }

    /// Connects to a server at `url` with the given options.
    pub fn connect_with(url: &str, options: &Options) -> Result<Client> {
        Ok(Client::new(crate::connect_with(url, options)?))
    }

    /// A client over an already connected channel.
    pub fn new(channel: Box<dyn Channel>) -> Client {
        Client {
            channel,
            timeout: Some(DEFAULT_CALL_TIMEOUT),
            frame: Frame::with_capacity(4096),
        }
    }

    /// Sets the time limit of each call (`None`: wait forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Sends `request` and returns the response payload.
    ///
    /// The timeout is a deadline for the whole call: frames that are not the
    /// answer (heartbeats, replies to other requests) do not extend it.
    /// A reply that names another request (see docs/protocol.md,
    /// "Correlation") is refused: dropped with a log line, and the call goes
    /// on waiting for its own.
    ///
    /// A server-side `ERROR` frame becomes [`Error::Protocol`] with its text.
    pub fn call(&mut self, request: &[u8]) -> Result<&[u8]> {
        call(&mut *self.channel, request, &mut self.frame, self.timeout)?;
        Ok(self.frame.payload())
    }

    /// The underlying channel.
    pub fn channel(&mut self) -> &mut dyn Channel {
        &mut *self.channel
    }

    /// Tells the server this client is leaving, then closes the channel.
    pub fn close(mut self) -> Result<()> {
        let _ = self.channel.send_timeout(
            message_type::GOODBYE,
            flags::CHECKSUM,
            b"",
            Some(Duration::from_millis(100)),
        );
        self.channel.close()
    }
}

/// Sends `request` as a `REQUEST` frame through `channel` and waits for
/// its answer, which is left in `reply`: the call [`Client::call`] makes,
/// for a channel kept for other work too (a C or async wrapper, a channel
/// that also carries other frames between calls).
///
/// `timeout` is a deadline for the whole call (`None`: none): frames that
/// are not the answer (heartbeats, replies naming another request, see
/// docs/protocol.md, "Correlation") are dropped and do not extend it. A
/// `RESPONSE` is the answer; an `ERROR` becomes [`Error::Protocol`]
/// ([`ProtocolReason::Refused`]) with its text, and is left in `reply`
/// too.
///
/// ```no_run
/// use std::time::Duration;
/// use utp::frame::Frame;
///
/// let mut channel = utp::connect("unix:///tmp/calc.sock")?;
/// let mut reply = Frame::default();
/// utp::service::call(&mut *channel, b"ADD 10 20", &mut reply, Some(Duration::from_secs(1)))?;
/// assert_eq!(reply.payload(), b"OK 30");
/// # Ok::<(), utp::Error>(())
/// ```
pub fn call(
    channel: &mut dyn Channel,
    request: &[u8],
    reply: &mut Frame,
    timeout: Option<Duration>,
) -> Result<()> {
    // Most requests go out at once: the deadline then starts just after
    // the send, so no clock read stands between the call and its
    // request, and the first wait for the reply, which starts as the
    // deadline is set, takes the whole timeout (reading the clock again
    // for what is left would change nothing but cost a read per call).
    // A send that must wait for room starts the deadline first.
    let sent = match channel.try_send(message_type::REQUEST, flags::CHECKSUM, request) {
        Ok(true) => Ok((Deadline::after(timeout), timeout)),
        Ok(false) => {
            let deadline = Deadline::after(timeout);
            channel
                .send_timeout(
                    message_type::REQUEST,
                    flags::CHECKSUM,
                    request,
                    deadline.remaining(),
                )
                .map(|()| (deadline, deadline.remaining()))
        }
        Err(error) => Err(error),
    };
    // `left`: what the next wait for the reply may take.
    let (deadline, mut left) = match sent {
        Ok(sent) => sent,
        Err(error) => {
            // A server that refuses a client (busy, denied) says why and
            // closes: the reason may already be waiting to be read.
            if error.is_peer_gone() {
                let reason = channel.recv_timeout(reply, Some(Duration::from_millis(50)));
                if reason.is_ok() && reply.message_type() == message_type::ERROR {
                    return Err(refusal(reply));
                }
            }
            return Err(error);
        }
    };
    let ours = channel.sent_sequence();
    loop {
        let received = channel.recv_timeout(reply, left);
        if let Err(Error::Timeout { waiting_for, .. }) = received {
            return Err(Error::Timeout {
                waiting_for,
                after: timeout.unwrap_or_default(),
            });
        }
        received?;
        if is_the_answer(reply, ours)? {
            return Ok(());
        }
        // Frames that are not the answer do not extend the deadline.
        left = deadline.remaining();
    }
}

/// Whether `frame`, received while waiting for the answer to request
/// `ours` (where the channel knows it), is that answer: `Ok(false)` for
/// frames to drop (heartbeats, replies naming another request), an error
/// for a server's `ERROR` reply or any other message.
pub(crate) fn is_the_answer(frame: &Frame, ours: Option<u64>) -> Result<bool> {
    let header = frame.header;
    let names_another = header.flags & flags::REPLY != 0
        && ours.is_some_and(|sequence| sequence != header.sequence);
    match header.message_type {
        message_type::RESPONSE | message_type::ERROR if names_another => {
            log::warn!(
                "refused a reply to request {} while waiting for the reply to request {}: \
                 another client shares this channel",
                header.sequence,
                ours.unwrap_or_default()
            );
            Ok(false)
        }
        message_type::RESPONSE => Ok(true),
        message_type::ERROR => Err(refusal(frame)),
        // Liveness frames may arrive between calls.
        message_type::HEARTBEAT => Ok(false),
        other => Err(Error::protocol(
            ProtocolReason::Unexpected,
            format!("expected a RESPONSE (0x11), got message type 0x{other:02x}"),
        )),
    }
}

/// The error a server's `ERROR` reply (in `reply`) becomes.
pub(crate) fn refusal(reply: &Frame) -> Error {
    Error::protocol(
        ProtocolReason::Refused,
        format!(
            "the server refused the request: {}",
            String::from_utf8_lossy(reply.payload())
        ),
    )
}
