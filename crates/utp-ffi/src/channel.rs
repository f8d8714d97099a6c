//! Channels and listeners: connect, listen, accept, send, receive, close.

use crate::guard::{
    boundary, bytes, bytes_mut, c_str, handle, register, status, take_handle, timeout,
    write_c_string, write_out,
};
use crate::status::{UtpStatus, fail, fail_static, from_error};
use crate::zerocopy::Loan;
use std::ffi::c_char;
use utp::frame::Frame;

/// An open channel to one peer. Opaque; close with `utp_channel_close`.
#[derive(Debug)]
pub struct UtpChannel {
    /// A zero-copy reservation or view lent to C. Declared before `transport`
    /// so it is dropped first: it borrows the link inside `transport`.
    pub(crate) loan: Option<Loan>,
    pub(crate) transport: Transport,
    frame: Frame,
    /// A received frame the caller's buffer was too small for, kept for the next `utp_recv`.
    pending: bool,
}

/// What a channel handle wraps.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Any transport, through the Channel trait.
    Any(Box<dyn utp::Channel>),
    /// A shared-memory link, boxed so its address is stable while loans borrow it.
    Shm(Box<utp::shm::ShmLink>),
}

/// A listening endpoint. Opaque; close with `utp_listener_close` (removes the endpoint).
#[derive(Debug)]
pub struct UtpListener {
    pub(crate) inner: Box<dyn utp::Listener>,
    /// Whether it accepts shared-memory links, which `utp_accept` hands out
    /// concrete so the zero-copy calls work on them too.
    shm: bool,
}

/// The header fields of a received frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UtpFrameInfo {
    /// Message type (0x01 DATA ... 0x10 REQUEST, 0x11 RESPONSE, ...).
    pub message_type: u8,
    /// Flag bits (bit 0: checksum present and verified).
    pub flags: u16,
    /// Payload length in bytes.
    pub payload_length: u32,
    /// The sender's sequence number.
    pub sequence: u64,
    /// Microseconds since the Unix epoch when the sender built the frame.
    pub timestamp_us: u64,
}

impl UtpChannel {
    pub(crate) fn new(transport: Transport) -> Self {
        UtpChannel {
            loan: None,
            transport,
            frame: Frame::default(),
            pending: false,
        }
    }

    /// Whether a received frame waits for a larger buffer (`utp_recv`
    /// refused it with `UTP_ERR_BUFFER_TOO_SMALL`).
    pub(crate) fn has_pending(&self) -> bool {
        self.pending
    }

    /// The channel, unless a zero-copy loan is open (which borrows it).
    pub(crate) fn channel(&mut self) -> Result<&mut dyn utp::Channel, UtpStatus> {
        Ok(self.channel_and_spare()?.0)
    }

    /// The channel (as [`channel`](Self::channel)) and the frame a receive
    /// that cannot lend fills.
    fn channel_and_spare(&mut self) -> Result<(&mut dyn utp::Channel, &mut Frame), UtpStatus> {
        if self.loan.is_some() {
            return Err(fail(
                UtpStatus::UtpErrInvalidArgument,
                "a zero-copy reservation or view is open on this channel: commit or release it first",
            ));
        }
        let channel: &mut dyn utp::Channel = match &mut self.transport {
            Transport::Any(channel) => &mut **channel,
            Transport::Shm(link) => &mut **link,
        };
        Ok((channel, &mut self.frame))
    }
}

/// Whether `endpoint` is a shared-memory link (the zero-copy calls work on those).
fn is_shm(endpoint: &utp::Endpoint) -> bool {
    matches!(
        endpoint.address,
        utp::endpoint::Address::Shm(_)
            | utp::endpoint::Address::SysV(_)
            | utp::endpoint::Address::File(_)
    )
}

/// Connects, keeping shared-memory links concrete so the zero-copy calls work on them.
fn open(url: &str) -> utp::Result<Transport> {
    let endpoint = utp::Endpoint::parse(url)?;
    if is_shm(&endpoint) {
        return Ok(Transport::Shm(Box::new(utp::shm::connect(
            &endpoint,
            &utp::Options::default(),
        )?)));
    }
    Ok(Transport::Any(utp::connect(url)?))
}

/// What an accepted channel becomes: a concrete shared-memory link where
/// the listener accepts those (so a C server can use zero-copy too), any
/// other channel as it is.
fn accepted(channel: Box<dyn utp::Channel>, shm: bool) -> Result<Transport, UtpStatus> {
    if !shm {
        return Ok(Transport::Any(channel));
    }
    match channel.downcast::<utp::shm::ShmLink>() {
        Ok(link) => Ok(Transport::Shm(Box::new(link))),
        // Not expected from an shm listener; still a working channel.
        Err(channel) => Ok(Transport::Any(channel)),
    }
}

/// Connects to the endpoint `url` (for example `"shm://calc"` or
/// `"unix:///tmp/calc.sock"`) and stores a new channel in `*out`.
///
/// The caller owns `*out` and must release it with `utp_channel_close`.
///
/// Over `pipe:` and `fifo://`, a send after the peer stopped reading returns
/// `UTP_ERR_PEER_GONE`, also while SIGPIPE is at its default action: the
/// channel blocks the signal around its writes (two system calls each).
/// Ignore SIGPIPE before connecting to skip that; utp never changes it.
///
/// # Safety
/// `url` is a NUL-terminated string; `out` is valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_connect(url: *const c_char, out: *mut *mut UtpChannel) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let url = unsafe { c_str(url, "url") }?;
            let transport = open(url).map_err(from_error)?;
            let raw = register(UtpChannel::new(transport));
            // SAFETY: forwarded from this function's contract.
            unsafe { write_out(out, raw, "out") }.inspect_err(|_| {
                // SAFETY: `raw` was just registered and never shared.
                drop(unsafe { take_handle(raw, "new handle") });
            })
        })())
    })
}

/// Listens at `url` and stores a new listener in `*out`.
///
/// A client that stops reading a channel accepted over `fifo://` or
/// `pipe:` makes the next send return `UTP_ERR_PEER_GONE`, SIGPIPE or
/// not (see `utp_connect`).
///
/// # Safety
/// `url` is a NUL-terminated string; `out` is valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_listen(url: *const c_char, out: *mut *mut UtpListener) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let url = unsafe { c_str(url, "url") }?;
            let shm = utp::Endpoint::parse(url).is_ok_and(|e| is_shm(&e));
            let inner = utp::listen(url).map_err(from_error)?;
            let raw = register(UtpListener { inner, shm });
            // SAFETY: forwarded from this function's contract.
            unsafe { write_out(out, raw, "out") }.inspect_err(|_| {
                // SAFETY: `raw` was just registered and never shared.
                drop(unsafe { take_handle(raw, "new handle") });
            })
        })())
    })
}

/// The URL the listener serves, as a NUL-terminated string into `url`
/// (`capacity` bytes): with the port the system chose for
/// `tcp://HOST:0` or `udp://HOST:0`, so a server can tell its clients.
/// `UTP_ERR_BUFFER_TOO_SMALL` when it does not fit with its NUL.
///
/// # Safety
/// `listener` is a live listener handle; `url` is valid for `capacity`
/// writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_listener_endpoint(
    listener: *mut UtpListener,
    url: *mut c_char,
    capacity: usize,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let listener = unsafe { handle(listener, "listener") }?;
            let endpoint = listener.inner.endpoint();
            // SAFETY: forwarded from this function's contract.
            unsafe { write_c_string(&endpoint, url, capacity, "the listener's URL") }
        })())
    })
}

/// Waits up to `timeout_ms` (negative: forever) for a client and stores its channel in `*out`.
/// A timeout of 0 takes a client only if one is there (`UTP_ERR_TIMEOUT`
/// if none): the accept of an event loop (see `utp_listener_fd`).
///
/// A channel accepted on a `shm://`, `sysv://` or `file://` listener is a
/// shared-memory link: the zero-copy calls (`utp_reserve`, `utp_recv_view`, ...)
/// work on it as on a connected one.
///
/// # Safety
/// `listener` is a live listener handle; `out` is valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_accept(
    listener: *mut UtpListener,
    timeout_ms: i32,
    out: *mut *mut UtpChannel,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let listener = unsafe { handle(listener, "listener") }?;
            let channel = if timeout_ms == 0 {
                // Not `accept_timeout(0)`: listeners that wake event loops
                // consume their wake-up in `try_accept`.
                listener
                    .inner
                    .try_accept()
                    .map_err(from_error)?
                    .ok_or_else(|| fail_static(UtpStatus::UtpErrTimeout, c"no client is waiting"))?
            } else {
                listener
                    .inner
                    .accept_timeout(timeout(timeout_ms))
                    .map_err(from_error)?
            };
            let raw = register(UtpChannel::new(accepted(channel, listener.shm)?));
            // SAFETY: forwarded from this function's contract.
            unsafe { write_out(out, raw, "out") }.inspect_err(|_| {
                // SAFETY: `raw` was just registered and never shared.
                drop(unsafe { take_handle(raw, "new handle") });
            })
        })())
    })
}

/// Sends one frame of `message_type` with `flags` (pass 1 for a checksum) and
/// `len` bytes of `payload`, waiting up to `timeout_ms` for room (negative: forever).
/// The channel fills in the sequence number and timestamp.
///
/// # Safety
/// `channel` is a live channel handle; `payload` is valid for `len` bytes (or NULL with `len == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_send(
    channel: *mut UtpChannel,
    message_type: u8,
    flags: u16,
    payload: *const u8,
    len: usize,
    timeout_ms: i32,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            // SAFETY: forwarded from this function's contract.
            let payload = unsafe { bytes(payload, len) }?;
            channel
                .channel()?
                .send_timeout(message_type, flags, payload, timeout(timeout_ms))
                .map_err(from_error)
        })())
    })
}

/// Receives the next frame: its header into `*info` and its payload into
/// `buffer` (`capacity` bytes), waiting up to `timeout_ms` (negative: forever).
///
/// If the payload does not fit, returns `UTP_ERR_BUFFER_TOO_SMALL` with
/// `info->payload_length` set; the frame is kept and returned by the next call.
///
/// A timeout of 0 takes a frame only if one is there (`UTP_ERR_TIMEOUT` if
/// none): the receive of an event loop, which drains a channel with it
/// before waiting on its descriptor (see `utp_channel_fd`).
///
/// # Safety
/// `channel` is a live channel handle; `info` is valid for writing; `buffer`
/// is valid for `capacity` writable bytes (or NULL with `capacity == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_recv(
    channel: *mut UtpChannel,
    info: *mut UtpFrameInfo,
    buffer: *mut u8,
    capacity: usize,
    timeout_ms: i32,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            // SAFETY: forwarded from this function's contract.
            let buffer = unsafe { bytes_mut(buffer, capacity) }?;
            if info.is_null() {
                return Err(fail(UtpStatus::UtpErrInvalidArgument, "info is NULL"));
            }
            if !channel.pending {
                // Lent by the channel (`recv_ref`): a stream's frame goes from
                // its read buffer straight into `buffer`, one copy.
                let (inner, spare) = channel.channel_and_spare()?;
                let lent = if timeout_ms == 0 {
                    // Not `recv_ref(0)`: a shared-memory link asks for its
                    // wake-up in `try_recv`.
                    inner
                        .try_recv_ref(spare)
                        .map_err(from_error)?
                        .ok_or_else(|| {
                            fail_static(UtpStatus::UtpErrTimeout, c"no frame is there yet")
                        })?
                } else {
                    inner
                        .recv_ref(spare, timeout(timeout_ms))
                        .map_err(from_error)?
                };
                // SAFETY: forwarded from this function's contract (checked non-null above).
                unsafe { write_out(info, frame_info(&lent.header), "info") }?;
                if let Some(room) = buffer.get_mut(..lent.payload.len()) {
                    room.copy_from_slice(lent.payload);
                    return Ok(());
                }
                // Too large for the caller's buffer: kept for the next call.
                let kept = lent.to_frame();
                channel.frame = kept;
            }
            // SAFETY: forwarded from this function's contract (checked non-null above).
            unsafe { channel.hand_out(info, buffer) }
        })())
    })
}

impl UtpChannel {
    /// The channel and its spare frame for a call whose answer C takes
    /// through [`hand_out`](Self::hand_out); refused while a received frame
    /// waits for a larger buffer (it would be overwritten).
    pub(crate) fn channel_for_call(
        &mut self,
    ) -> Result<(&mut dyn utp::Channel, &mut Frame), UtpStatus> {
        if self.pending {
            return Err(fail_static(
                UtpStatus::UtpErrInvalidArgument,
                c"a received frame waits for a larger buffer: take it with utp_recv first",
            ));
        }
        self.channel_and_spare()
    }

    /// Hands the frame in the spare to C: its header into `*info`, its
    /// payload into `buffer`; a payload too large for `buffer` stays, for
    /// the next `utp_recv` (`UTP_ERR_BUFFER_TOO_SMALL`).
    ///
    /// # Safety
    /// `info` is non-null and valid for one write.
    pub(crate) unsafe fn hand_out(
        &mut self,
        info: *mut UtpFrameInfo,
        buffer: &mut [u8],
    ) -> Result<(), UtpStatus> {
        // SAFETY: forwarded from this function's contract.
        unsafe { write_out(info, frame_info(&self.frame.header), "info") }?;
        let payload = self.frame.payload();
        let Some(room) = buffer.get_mut(..payload.len()) else {
            self.pending = true;
            return Err(fail(
                UtpStatus::UtpErrBufferTooSmall,
                format!(
                    "the frame's payload is {} bytes; the buffer holds {}",
                    payload.len(),
                    buffer.len()
                ),
            ));
        };
        room.copy_from_slice(payload);
        self.pending = false;
        Ok(())
    }
}

/// The header fields C sees.
fn frame_info(header: &utp::frame::Header) -> UtpFrameInfo {
    UtpFrameInfo {
        message_type: header.message_type,
        flags: header.flags,
        payload_length: header.payload_length,
        sequence: header.sequence,
        timestamp_us: header.timestamp_us,
    }
}

/// Closes a channel and frees it. NULL is ignored.
///
/// Closing twice, or using a handle after closing it, is defined: utp keeps
/// a registry of live handles, so such a call does nothing and fails with
/// `UTP_ERR_CLOSED` (for close: recorded in `utp_last_error()`). A freed
/// address may be reused by a later handle, though: do not rely on it.
///
/// # Safety
/// `channel` is NULL or a pointer not used by any other thread meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_channel_close(channel: *mut UtpChannel) {
    boundary(|| {
        // SAFETY: forwarded from this function's contract.
        match unsafe { take_handle(channel, "channel") } {
            Ok(Some(mut channel)) => {
                channel.loan = None;
                if let Ok(inner) = channel.channel() {
                    let _ = inner.close();
                }
                UtpStatus::UtpOk
            }
            Ok(None) => UtpStatus::UtpOk,
            Err(status) => status,
        }
    });
}

/// Stops listening, removes the endpoint (socket file, segments, ...) and
/// frees the listener. NULL is ignored; a second close fails with
/// `UTP_ERR_CLOSED` in `utp_last_error()`, as for channels.
///
/// # Safety
/// `listener` is NULL or a pointer not used by any other thread meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_listener_close(listener: *mut UtpListener) {
    boundary(|| {
        // SAFETY: forwarded from this function's contract.
        match unsafe { take_handle(listener, "listener") } {
            Ok(Some(mut listener)) => {
                let _ = listener.inner.close();
                UtpStatus::UtpOk
            }
            Ok(None) => UtpStatus::UtpOk,
            Err(status) => status,
        }
    });
}
