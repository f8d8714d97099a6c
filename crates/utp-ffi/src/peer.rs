//! Who is at the other end of a channel: `utp_channel_peer`.

use crate::channel::UtpChannel;
use crate::guard::{boundary, handle, status, write_c_string, write_out};
use crate::status::UtpStatus;
use std::ffi::c_char;

/// What a channel knows about its peer (`utp_channel_peer`): `-1` where
/// the mechanism does not tell (a TCP or UDP peer's process, say).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UtpPeer {
    /// The peer's process id, or -1.
    pub pid: i64,
    /// The peer's user id, or -1.
    pub uid: i64,
    /// The peer's group id, or -1.
    pub gid: i64,
    /// Bytes of the peer's printable address (IP:port, a socket or FIFO
    /// path), without the terminating NUL; 0 when it has none.
    pub address_length: usize,
}

/// Stores what the channel knows about its peer in `*peer` and, when
/// `address` is not NULL, the peer's printable address there as a
/// NUL-terminated string (`""` when it has none).
///
/// A server in an event loop logs or checks its clients with it; utp has
/// already refused peers of other users unless the URL admits them
/// (`?allow_uid=`, docs/transports.md).
///
/// Returns `UTP_ERR_BUFFER_TOO_SMALL` when the address needs more than
/// `capacity` bytes with its NUL (`*peer` is filled all the same, so
/// `peer->address_length + 1` is the size to pass).
///
/// # Safety
/// `channel` is a live channel handle; `peer` is valid for one write;
/// `address` is NULL or valid for `capacity` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utp_channel_peer(
    channel: *mut UtpChannel,
    peer: *mut UtpPeer,
    address: *mut c_char,
    capacity: usize,
) -> UtpStatus {
    boundary(|| {
        status((|| {
            // SAFETY: forwarded from this function's contract.
            let channel = unsafe { handle(channel, "channel") }?;
            let info = channel.channel()?.peer();
            let text = info.address.unwrap_or_default();
            let known = |id: Option<u32>| id.map_or(-1, i64::from);
            let found = UtpPeer {
                pid: known(info.pid),
                uid: known(info.uid),
                gid: known(info.gid),
                address_length: text.len(),
            };
            // SAFETY: forwarded from this function's contract.
            unsafe { write_out(peer, found, "peer") }?;
            if address.is_null() {
                return Ok(());
            }
            // SAFETY: forwarded from this function's contract (checked non-null above).
            unsafe { write_c_string(&text, address, capacity, "the peer's address") }
        })())
    })
}
