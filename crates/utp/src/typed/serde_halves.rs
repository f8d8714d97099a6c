//! Typed halves: [`TypedSender`] and [`TypedReceiver`], the two halves of a
//! split [`TypedChannel`](super::TypedChannel) (or typed wrappers of any
//! [`SendHalf`] / [`RecvHalf`]). Same wire format: TYPED frames in postcard.

use super::recv_expected_with;
use super::serde_channel::{decode, encode};
use crate::error::Result;
use crate::frame::{Frame, flags, message_type};
use crate::halves::{RecvHalf, SendHalf};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// Sends values of type `T` on a [`SendHalf`].
pub struct TypedSender<T> {
    half: SendHalf,
    encoded: Vec<u8>,
    _value: PhantomData<fn(T)>,
}

/// Receives values of type `T` from a [`RecvHalf`].
pub struct TypedReceiver<T> {
    half: RecvHalf,
    frame: Frame,
    _value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for TypedSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedSender")
            .field("type", &std::any::type_name::<T>())
            .field("half", &self.half)
            .finish()
    }
}

impl<T> fmt::Debug for TypedReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedReceiver")
            .field("type", &std::any::type_name::<T>())
            .field("half", &self.half)
            .finish()
    }
}

impl<T: Serialize> TypedSender<T> {
    /// Wraps `half`.
    pub fn new(half: SendHalf) -> Self {
        TypedSender {
            half,
            encoded: Vec::new(),
            _value: PhantomData,
        }
    }

    /// Sends `value`, waiting as long as it takes for room.
    pub fn send(&mut self, value: &T) -> Result<()> {
        self.send_timeout(value, None)
    }

    /// Sends `value`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, value: &T, timeout: Option<Duration>) -> Result<()> {
        let encoded = encode(value, std::mem::take(&mut self.encoded))?;
        let result =
            self.half
                .send_timeout(message_type::TYPED, flags::CHECKSUM, &encoded, timeout);
        self.encoded = encoded;
        result
    }

    /// The half underneath, for frames of other types.
    pub fn get_mut(&mut self) -> &mut SendHalf {
        &mut self.half
    }

    /// Unwraps the half.
    pub fn into_inner(self) -> SendHalf {
        self.half
    }
}

impl<T: DeserializeOwned> TypedReceiver<T> {
    /// Wraps `half`.
    pub fn new(half: RecvHalf) -> Self {
        TypedReceiver {
            half,
            frame: Frame::default(),
            _value: PhantomData,
        }
    }

    /// Receives the next value, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<T> {
        self.recv_timeout(None)
    }

    /// Receives the next value, waiting at most `timeout` (heartbeats do not
    /// extend it). A payload that is not a `T` is
    /// [`Error::Decode`](crate::Error::Decode); the next call receives the next frame.
    pub fn recv_timeout(&mut self, timeout: Option<Duration>) -> Result<T> {
        let half = &mut self.half;
        recv_expected_with(
            |frame, t| half.recv_timeout(frame, t),
            &mut self.frame,
            message_type::TYPED,
            timeout,
        )?;
        decode(self.frame.payload())
    }

    /// The half underneath, for frames of other types and its readiness.
    pub fn get_mut(&mut self) -> &mut RecvHalf {
        &mut self.half
    }

    /// Unwraps the half.
    pub fn into_inner(self) -> RecvHalf {
        self.half
    }
}
