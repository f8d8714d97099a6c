//! Round trips through utp's tokio layer (`utp::tokio`, feature `tokio` of
//! utp-cli): the rows whose wait is [`Wait::Async`](super::spec::Wait),
//! measured beside the blocking rows of the same mechanism in the same run.
//!
//! Each side owns a current-thread runtime and drives one
//! [`AsyncChannel`](utp::tokio::AsyncChannel) with `block_on` per send and
//! receive: a receive that finds nothing parks the thread in the runtime's
//! epoll until the channel's readiness descriptor wakes it, which is the
//! path an async program pays (registration, wake-up, poll) over a blocking
//! `recv`.

use super::link::{Fallible, Link};
use std::time::Duration;

#[cfg(feature = "tokio")]
mod imp {
    use super::*;
    use crate::cmd::bench::link::data;
    use std::task::Poll;
    use utp::frame::{Frame, message_type};
    use utp::tokio::AsyncChannel;

    /// One end of a round-trip run, async.
    #[derive(Debug)]
    pub struct AsyncLink {
        runtime: tokio::runtime::Runtime,
        channel: AsyncChannel,
        frame: Frame,
    }

    impl AsyncLink {
        /// Whether async runs can be made in this build.
        pub const BUILT: bool = true;

        /// Wraps a connected channel (the client's, or the peer's accepted one).
        pub fn new(channel: Box<dyn utp::Channel>, capacity: usize) -> Fallible<Self> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let channel = {
                let _inside = runtime.enter();
                AsyncChannel::new(channel)?
            };
            Ok(AsyncLink {
                runtime,
                channel,
                frame: Frame::with_capacity(capacity),
            })
        }

        /// Waits (at most `timeout`) for the client to close first.
        pub fn wait_for_close(&mut self, timeout: Duration) {
            let (channel, frame) = (&mut self.channel, &mut self.frame);
            self.runtime.block_on(async {
                let _ = tokio::time::timeout(timeout, async {
                    while channel.recv(frame).await.is_ok() {}
                })
                .await;
            });
        }
    }

    impl Link for AsyncLink {
        fn send(&mut self, msg: &[u8]) -> Fallible<()> {
            let channel = &mut self.channel;
            Ok(self
                .runtime
                .block_on(channel.send(message_type::DATA, 0, msg))?)
        }

        /// Lent by the channel (`AsyncChannel::recv_ref`), as the blocking
        /// rows' `UtpLink` receives and as the raw tokio baseline hands out
        /// a slice of its own buffer.
        fn recv(&mut self, _len: usize) -> Fallible<&[u8]> {
            let (channel, frame) = (&mut self.channel, &mut self.frame);
            let lent = self.runtime.block_on(channel.recv_ref(frame))?;
            data(lent)
        }

        fn try_recv(&mut self, _len: usize) -> Fallible<Option<&[u8]>> {
            // A poll of the receive; if nothing is there, one turn of the
            // runtime (`yield_now` lets it look at its descriptors without
            // waiting) and a second poll, as a task that finds nothing and
            // yields would see. Nothing is lost when it gives up: a
            // pending receive takes no frame.
            let (channel, frame) = (&mut self.channel, &mut self.frame);
            let got = self.runtime.block_on(async {
                for attempt in 0..2 {
                    loop {
                        let polled =
                            std::future::poll_fn(|cx| Poll::Ready(channel.poll_recv(cx, frame)))
                                .await;
                        match polled {
                            Poll::Ready(received) => {
                                received?;
                                if frame.message_type() != message_type::HEARTBEAT {
                                    return Ok::<bool, utp::Error>(true);
                                }
                            }
                            Poll::Pending => break,
                        }
                    }
                    if attempt == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                Ok(false)
            })?;
            Ok(got.then(|| self.frame.payload()))
        }
    }
}

#[cfg(not(feature = "tokio"))]
mod imp {
    use super::*;

    /// Without the feature: no async row is measured (`orchestrate` skips
    /// them and says why), and a peer asked for one fails.
    #[derive(Debug)]
    pub enum AsyncLink {}

    fn not_built() -> Box<dyn std::error::Error + Send + Sync> {
        crate::cmd::bench::runner::not_in_build("async rows", "tokio")
    }

    impl AsyncLink {
        /// Whether async runs can be made in this build.
        pub const BUILT: bool = false;

        pub fn new(_channel: Box<dyn utp::Channel>, _capacity: usize) -> Fallible<Self> {
            Err(not_built())
        }

        pub fn wait_for_close(&mut self, _timeout: Duration) {
            match *self {}
        }
    }

    impl Link for AsyncLink {
        fn send(&mut self, _msg: &[u8]) -> Fallible<()> {
            match *self {}
        }

        fn recv(&mut self, _len: usize) -> Fallible<&[u8]> {
            match *self {}
        }

        fn try_recv(&mut self, _len: usize) -> Fallible<Option<&[u8]>> {
            match *self {}
        }
    }
}

pub use imp::AsyncLink;
