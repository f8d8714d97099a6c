//! [`FrameStream`]: an [`AsyncChannel`] as a `futures` `Stream` of received
//! frames and a `Sink` of [`Outgoing`] frames.

use super::AsyncChannel;
use crate::error::{Error, ProtocolReason, Result};
use crate::frame::{Frame, flags};
use futures_core::Stream;
use futures_sink::Sink;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A frame to send through a [`FrameStream`] (its `Sink` side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The frame's message type ([`crate::frame::message_type`]).
    pub message_type: u8,
    /// The frame's flags ([`crate::frame::flags`]).
    pub flags: u16,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Outgoing {
    /// A frame of `message_type` with a checksum ([`flags::CHECKSUM`]).
    pub fn new(message_type: u8, payload: impl Into<Vec<u8>>) -> Self {
        Outgoing {
            message_type,
            flags: flags::CHECKSUM,
            payload: payload.into(),
        }
    }
}

/// An [`AsyncChannel`] as a [`Stream`] of owned frames and a [`Sink`] of
/// [`Outgoing`] ones (from [`AsyncChannel::into_stream`]).
///
/// The stream ends (`None`) when the peer is gone ([`Error::PeerGone`]);
/// any other error is yielded once, then the stream ends. Receiving is
/// cancellation-safe like [`AsyncChannel::recv`]. The sink holds at most one
/// frame: `poll_ready` waits until the previous one is sent (backpressure).
///
/// With `futures::StreamExt::split` both halves can be driven from two tasks.
#[derive(Debug)]
pub struct FrameStream {
    channel: AsyncChannel,
    next: Frame,
    pending: Option<Outgoing>,
    ended: bool,
}

impl AsyncChannel {
    /// This channel as a [`Stream`] of frames and a [`Sink`] of [`Outgoing`] frames.
    pub fn into_stream(self) -> FrameStream {
        FrameStream {
            channel: self,
            next: Frame::default(),
            pending: None,
            ended: false,
        }
    }
}

impl FrameStream {
    /// The channel underneath.
    pub fn get_mut(&mut self) -> &mut AsyncChannel {
        &mut self.channel
    }

    /// Back to the channel (a frame accepted by the sink and not yet sent is dropped).
    pub fn into_inner(self) -> AsyncChannel {
        self.channel
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(out) = &self.pending else {
            return Poll::Ready(Ok(()));
        };
        let result = std::task::ready!(self.channel.poll_send_with(cx, |c| {
            c.try_send(out.message_type, out.flags, &out.payload)
        }));
        self.pending = None;
        Poll::Ready(result)
    }
}

impl Stream for FrameStream {
    type Item = Result<Frame>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match std::task::ready!(this.channel.poll_recv(cx, &mut this.next)) {
            Ok(()) => Poll::Ready(Some(Ok(std::mem::take(&mut this.next)))),
            Err(Error::PeerGone { .. }) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Err(e) => {
                this.ended = true;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

impl Sink<Outgoing> for FrameStream {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_pending(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Outgoing) -> Result<()> {
        let this = self.get_mut();
        if this.pending.is_some() {
            return Err(Error::protocol(
                ProtocolReason::Unsupported,
                "Sink::start_send without poll_ready: a frame is still waiting to be sent",
            ));
        }
        this.channel.reset_send();
        this.pending = Some(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        this.channel.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        std::task::ready!(this.channel.poll_flush(cx))?;
        Poll::Ready(this.channel.close())
    }
}
