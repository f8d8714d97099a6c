//! The async [`Client`].

use crate::error::{Error, ProtocolReason, Result};
use crate::frame::{Frame, flags, message_type};
use crate::service::{DEFAULT_CALL_TIMEOUT, is_the_answer, refusal};
use crate::tokio::AsyncChannel;
use crate::tokio::channel::within;
use std::time::Duration;

/// Makes calls to a [`Server`](super::Server) (or the blocking
/// [`crate::service::Server`]) over any async channel, one at a time.
///
/// Same rules as the blocking [`crate::service::Client`]: each call has a
/// deadline (5 s unless changed) that frames which are not the answer do
/// not extend; a reply naming another request is refused; an ERROR frame is
/// [`Error::Protocol`] with its text. A call abandoned part-way (its future
/// dropped) leaves its reply to arrive later: the next call refuses it,
/// because it names the abandoned request.
#[derive(Debug)]
pub struct Client {
    channel: AsyncChannel,
    timeout: Option<Duration>,
    frame: Frame,
}

impl Client {
    /// Connects to a server at `url`.
    pub async fn connect(url: &str) -> Result<Client> {
        Ok(Client::new(crate::tokio::connect(url).await?))
    }

    /// A client over a connected channel.
    pub fn new(channel: AsyncChannel) -> Client {
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

    /// Sends the text `request` and returns the text of the response, e.g.
    /// `call("ADD 10 20")` → `"OK 30"` from the calculator.
    pub async fn call(&mut self, request: &str) -> Result<String> {
        let reply = self.call_bytes(request.as_bytes()).await?;
        String::from_utf8(reply.to_vec()).map_err(|_| {
            Error::protocol(ProtocolReason::Unexpected, "the response is not UTF-8 text")
        })
    }

    /// Sends `request` and returns the response payload.
    pub async fn call_bytes(&mut self, request: &[u8]) -> Result<&[u8]> {
        let exchange = exchange(&mut self.channel, &mut self.frame, request);
        match self.timeout {
            Some(limit) => within(limit, "the reply to a call", exchange).await?,
            None => exchange.await?,
        }
        Ok(self.frame.payload())
    }

    /// The channel underneath.
    pub fn channel(&mut self) -> &mut AsyncChannel {
        &mut self.channel
    }

    /// Tells the server this client is leaving (waiting at most 100 ms for
    /// room), then closes the channel.
    pub async fn close(mut self) -> Result<()> {
        let _ = self
            .channel
            .send_timeout(
                message_type::GOODBYE,
                flags::CHECKSUM,
                b"",
                Duration::from_millis(100),
            )
            .await;
        self.channel.close()
    }
}

/// One call: the request out, then frames in until its answer.
async fn exchange(channel: &mut AsyncChannel, frame: &mut Frame, request: &[u8]) -> Result<()> {
    let sent = channel
        .send(message_type::REQUEST, flags::CHECKSUM, request)
        .await;
    if let Err(error) = sent {
        // A server that refuses a client (busy, denied) says why and closes:
        // the reason may already be waiting to be read.
        if error.is_peer_gone() {
            let reason = within(Duration::from_millis(50), "a refusal", channel.recv(frame)).await;
            if reason.is_ok() && frame.message_type() == message_type::ERROR {
                return Err(refusal(frame));
            }
        }
        return Err(error);
    }
    let ours = channel.get_ref().sent_sequence();
    loop {
        channel.recv(frame).await?;
        if is_the_answer(frame, ours)? {
            return Ok(());
        }
    }
}
