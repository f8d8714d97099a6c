//! The C ABI of utp.
//!
//! Every function returns a [`UtpStatus`] (0 on success, negative on error)
//! and, on error, leaves a message for [`utp_last_error`] on the calling
//! thread. No panic crosses the boundary: a panic inside becomes
//! `UTP_ERR_PANIC`.
//!
//! Ownership: handles returned through `out` parameters belong to the caller
//! and are released with the matching `*_close` function exactly once.
//! Pointers passed in are borrowed for the duration of the call only.
//!
//! Thread safety: a handle may move between threads but must not be used by
//! two threads at the same time. [`utp_last_error`] is per thread.
//!
//! Signals: utp never changes the process's signal dispositions. A send
//! over `pipe:` or `fifo://` whose reader is gone returns
//! `UTP_ERR_PEER_GONE` even while SIGPIPE is at its default (which would
//! end the process): such a channel blocks the signal in the calling
//! thread around each write. A host that ignores SIGPIPE before it
//! connects saves that (two system calls a write).
//!
//! The header `include/utp.h` is generated from this crate by cbindgen and
//! checked in; `cargo test -p utp-ffi --test header` fails when it drifts.

#![deny(missing_docs)]

mod batch;
mod calc;
mod call;
mod channel;
mod event_loop;
mod guard;
mod peer;
mod pubsub;
mod status;
mod zerocopy;

pub use batch::{UtpBytes, utp_send_batch, utp_try_send_batch};
pub use calc::utp_calc_call;
pub use call::{utp_call, utp_reply, utp_try_reply};
pub use channel::{
    UtpChannel, UtpFrameInfo, UtpListener, utp_accept, utp_channel_close, utp_connect, utp_listen,
    utp_listener_close, utp_listener_endpoint, utp_recv, utp_send,
};
pub use event_loop::{utp_channel_fd, utp_listener_fd, utp_try_flush, utp_try_send};
pub use peer::{UtpPeer, utp_channel_peer};
pub use pubsub::{
    UtpMessageInfo, UtpPublisher, UtpSubscriber, utp_pub_close, utp_pub_create, utp_pub_send,
    utp_pub_subscribers, utp_sub_arm, utp_sub_close, utp_sub_connect, utp_sub_counts,
    utp_sub_notify_fd, utp_sub_recv,
};
pub use status::{
    UtpReason, UtpStatus, utp_last_error, utp_last_error_reason, utp_last_os_error,
    utp_reason_name, utp_status_name,
};
pub use zerocopy::{utp_cancel, utp_commit, utp_recv_view, utp_release, utp_reserve};
