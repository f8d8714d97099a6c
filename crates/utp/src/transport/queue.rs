//! Waiting on an in-process queue (crossbeam) with the crate's timeout rules:
//! used by listeners whose clients are handed over by a background thread
//! (inproc, udp, shm) and by the inproc channel.

use crate::error::{Error, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Takes the next item, waiting at most `timeout` (`None`: forever).
/// A timeout is [`Error::Timeout`] naming `waiting_for`; a queue whose
/// senders are all gone is `disconnected()`.
pub(crate) fn recv<T>(
    rx: &Receiver<T>,
    timeout: Option<Duration>,
    waiting_for: &'static str,
    disconnected: impl FnOnce() -> Error,
) -> Result<T> {
    match timeout {
        None => rx.recv().map_err(|_| disconnected()),
        Some(after) => rx.recv_timeout(after).map_err(|e| match e {
            RecvTimeoutError::Timeout => Error::Timeout { waiting_for, after },
            RecvTimeoutError::Disconnected => disconnected(),
        }),
    }
}

/// Takes an item that is already queued, without waiting; when there is
/// none, arms `bell` (the producer rings it after queueing) and looks once
/// more, so that `bell`'s descriptor turns readable for the next item.
pub(crate) fn try_take<T>(
    rx: &Receiver<T>,
    bell: &crate::wake::Doorbell,
    disconnected: impl FnOnce() -> Error,
) -> Result<Option<T>> {
    use crossbeam_channel::TryRecvError;
    for attempt in 0..2 {
        match rx.try_recv() {
            Ok(item) => return Ok(Some(item)),
            Err(TryRecvError::Disconnected) => return Err(disconnected()),
            Err(TryRecvError::Empty) if attempt == 0 => bell.arm(),
            Err(TryRecvError::Empty) => {}
        }
    }
    Ok(None)
}
