//! The C ABI's defined behaviour for bad handles and unknown status codes
//! (issue 13): `utp_status_name` names any int, and a double close or a use
//! after close is `UTP_ERR_CLOSED`, not undefined behaviour.

use std::ffi::{CStr, CString};
use std::ptr;
use utp_ffi::*;

fn name(status: i32) -> String {
    // SAFETY: utp_status_name returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(utp_status_name(status)) }
        .to_string_lossy()
        .into_owned()
}

fn last_error() -> String {
    // SAFETY: utp_last_error returns a NUL-terminated string valid until the next call.
    unsafe { CStr::from_ptr(utp_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn any_int_has_a_status_name() {
    assert_eq!(name(0), "UTP_OK");
    assert_eq!(name(-4), "UTP_ERR_TIMEOUT");
    assert_eq!(name(-16), "UTP_ERR_PANIC");
    for unknown in [12345, 1, -17, i32::MIN, i32::MAX] {
        assert_eq!(name(unknown), "UTP_UNKNOWN_STATUS");
    }
}

#[test]
fn double_close_and_use_after_close_are_errors() {
    let url = CString::new(format!("inproc://ffi-handles-{}", std::process::id())).unwrap();
    let mut listener = ptr::null_mut();
    let mut channel = ptr::null_mut();
    // SAFETY: valid strings and out-pointers; handles are used from this thread only.
    unsafe {
        assert_eq!(utp_listen(url.as_ptr(), &mut listener), UtpStatus::UtpOk);
        assert_eq!(utp_connect(url.as_ptr(), &mut channel), UtpStatus::UtpOk);
        utp_channel_close(channel);
        // A second close does nothing and says why.
        utp_channel_close(channel);
        assert!(last_error().contains("already closed"), "{}", last_error());
        // Use after close: an error code.
        let status = utp_send(channel, 0x01, 0, b"x".as_ptr(), 1, 100);
        assert_eq!(status, UtpStatus::UtpErrClosed);
        // A listener handle is not a channel handle.
        let status = utp_send(listener.cast(), 0x01, 0, b"x".as_ptr(), 1, 100);
        assert_eq!(status, UtpStatus::UtpErrClosed);
        utp_listener_close(listener);
        utp_listener_close(listener);
        assert!(last_error().contains("already closed"), "{}", last_error());
    }
}

#[test]
fn pubsub_handles_are_checked_too() {
    let url = CString::new(format!("unix:///tmp/ffi-pub-{}.sock", std::process::id())).unwrap();
    let mut publisher = ptr::null_mut();
    let mut subscriber = ptr::null_mut();
    // SAFETY: valid strings and out-pointers; handles are used from this thread only.
    unsafe {
        assert_eq!(
            utp_pub_create(url.as_ptr(), &mut publisher),
            UtpStatus::UtpOk
        );
        assert_eq!(
            utp_sub_connect(url.as_ptr(), &mut subscriber),
            UtpStatus::UtpOk
        );
        assert_eq!(utp_sub_close(subscriber), UtpStatus::UtpOk);
        assert_eq!(utp_sub_close(subscriber), UtpStatus::UtpErrClosed);
        // A publisher handle is not a subscriber handle.
        assert_eq!(utp_sub_close(publisher.cast()), UtpStatus::UtpErrClosed);
        assert_eq!(utp_pub_close(publisher), UtpStatus::UtpOk);
        assert_eq!(utp_pub_close(publisher), UtpStatus::UtpErrClosed);
        assert!(last_error().contains("already closed"), "{}", last_error());
    }
}
