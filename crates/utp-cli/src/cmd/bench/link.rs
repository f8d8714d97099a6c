//! [`Link`]: the one interface the measurement loops drive, implemented by
//! utp channels and by every raw baseline, so utp and raw run the very same loop.

use std::time::Duration;
use utp::Channel;
use utp::frame::{Frame, FrameRef, message_type};

/// Errors of the benchmark: anything printable, carried as a note when a run fails.
pub type Fallible<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A duplex message path between the two sides of a run.
pub trait Link: Send {
    /// Sends one message.
    fn send(&mut self, msg: &[u8]) -> Fallible<()>;

    /// Sends several messages in order, as one batch where the mechanism
    /// has a way to ([`Mode::Batch`](super::spec::Mode::Batch)): utp's
    /// `Channel::send_batch`, one write or `sendmmsg` for the raw
    /// descriptors. By default, one [`send`](Self::send) each.
    fn send_batch(&mut self, msgs: &[&[u8]]) -> Fallible<()> {
        msgs.iter().try_for_each(|msg| self.send(msg))
    }

    /// Receives one message of `len` bytes (byte streams read exactly `len`;
    /// message mechanisms return the next message, whatever its length).
    fn recv(&mut self, len: usize) -> Fallible<&[u8]>;

    /// Receives the next message if it has begun to arrive, `None` at once
    /// if nothing has: the fixed-rate client polls for replies with it
    /// between its scheduled sends. (A message whose first bytes are here
    /// is waited for whole: the rest is on its way.)
    fn try_recv(&mut self, len: usize) -> Fallible<Option<&[u8]>>;
}

/// A utp [`Channel`] as a [`Link`]: frames of type DATA, blocking calls.
#[derive(Debug)]
pub struct UtpLink {
    channel: Box<dyn Channel>,
    frame: Frame,
    flags: u16,
}

impl UtpLink {
    /// Wraps a connected channel; `flags` go on every frame sent (checksum or not).
    pub fn new(channel: Box<dyn Channel>, flags: u16, capacity: usize) -> Self {
        UtpLink {
            channel,
            frame: Frame::with_capacity(capacity),
            flags,
        }
    }
}

impl UtpLink {
    /// Waits (at most `timeout`) until the other side closes the channel,
    /// discarding anything else, so this side never closes first: a frame
    /// sent just before a close must not race with it.
    pub fn wait_for_close(&mut self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            if self
                .channel
                .recv_timeout(&mut self.frame, Some(left))
                .is_err()
            {
                return;
            }
        }
    }
}

impl Link for UtpLink {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        Ok(self.channel.send(message_type::DATA, self.flags, msg)?)
    }

    fn send_batch(&mut self, msgs: &[&[u8]]) -> Fallible<()> {
        Ok(self
            .channel
            .send_batch(message_type::DATA, self.flags, msgs)?)
    }

    /// Lent by the channel (`recv_ref`), as the raw baselines hand out a
    /// slice of their own buffer: a stream's frames are not copied out of
    /// its read buffer; the other channels receive into `frame`.
    fn recv(&mut self, _len: usize) -> Fallible<&[u8]> {
        let frame = self.channel.recv_ref(&mut self.frame, None)?;
        data(frame)
    }

    fn try_recv(&mut self, _len: usize) -> Fallible<Option<&[u8]>> {
        match self.channel.try_recv_ref(&mut self.frame)? {
            Some(frame) => data(frame).map(Some),
            None => Ok(None),
        }
    }
}

/// The payload of a frame the benchmark's peer sent: every one is DATA.
pub(super) fn data(frame: FrameRef<'_>) -> Fallible<&[u8]> {
    if frame.message_type() != message_type::DATA {
        return Err(format!(
            "a frame of type {:#04x} where the peer sends only DATA",
            frame.message_type()
        )
        .into());
    }
    Ok(frame.payload)
}

/// Checks a deadline every so many spins, so a busy-wait whose peer died ends.
///
/// Creating one reads no clock: the deadline is set at the first check
/// (after 65,536 spins), so a wait that ends quickly, as almost all do, costs
/// nothing beyond its spins (a clock read per message would be a cost the
/// raw baselines pay and utp does not).
#[derive(Debug)]
pub struct SpinBudget {
    spins: u32,
    deadline: Option<std::time::Instant>,
    idle: Duration,
}

impl SpinBudget {
    /// A budget of about `idle`, counted from the first check.
    pub fn new(idle: Duration) -> Self {
        SpinBudget {
            spins: 0,
            deadline: None,
            idle,
        }
    }

    /// One spin (`spin_loop` hint); fails once the budget is spent.
    #[inline]
    pub fn spin(&mut self, waiting_for: &str) -> Fallible<()> {
        std::hint::spin_loop();
        self.spins = self.spins.wrapping_add(1);
        if self.spins % (1 << 16) == 0 && self.expired() {
            return Err(format!("no {waiting_for} for {:?}: the peer is gone", self.idle).into());
        }
        Ok(())
    }

    /// Whether the budget is spent (for waits that sleep between checks); the
    /// first call starts the clock.
    pub fn expired(&mut self) -> bool {
        let now = std::time::Instant::now();
        now > *self.deadline.get_or_insert(now + self.idle)
    }
}
