//! The C ABI's defined behaviour for bad handles and unknown status codes
//! (issue 13): `utp_status_name` names any int, and a double close or a use
//! after close is `UTP_ERR_CLOSED`, not undefined behaviour.

use std::ffi::{CStr, CString};
use std::ptr;
use utp_ffi::*;

mod support;
use support::last_error;

fn name(status: i32) -> String {
    // SAFETY: utp_status_name returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(utp_status_name(status)) }
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

/// Every status and reason the C header declares is named by the name
/// functions, and by its own name: a variant added to the Rust enums but
/// left out of a function's list of known values would come out as
/// "unknown" here (the header is cbindgen's output, checked by header.rs).
#[test]
fn every_value_in_the_header_has_its_own_name() {
    let header = include_str!("../include/utp.h");
    let mut checked = (0, 0);
    for line in header.lines() {
        let Some((declared, value)) = line.trim().trim_end_matches(',').split_once(" = ") else {
            continue;
        };
        let Ok(value) = value.parse::<i32>() else {
            continue;
        };
        if declared == "UTP_OK" || declared.starts_with("UTP_ERR_") {
            assert_eq!(name(value), declared);
            checked.0 += 1;
        } else if declared.starts_with("UTP_REASON_") {
            assert_eq!(reason_name(value), declared);
            checked.1 += 1;
        }
    }
    assert_eq!(checked, (17, 14), "statuses and reasons found in utp.h");
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

fn reason_name(reason: i32) -> String {
    // SAFETY: utp_reason_name returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(utp_reason_name(reason)) }
        .to_string_lossy()
        .into_owned()
}

/// The receive a C client makes, with a 5 s timeout.
fn recv_status(channel: *mut UtpChannel) -> UtpStatus {
    let mut info = UtpFrameInfo::default();
    let mut buf = [0u8; 64];
    // SAFETY: a live channel handle, a valid info struct and buffer.
    unsafe { utp_recv(channel, &mut info, buf.as_mut_ptr(), buf.len(), 5000) }
}

/// A C client tells a peer that closed in order from one that died
/// mid-frame, and learns the OS error behind an I/O failure.
#[test]
fn the_last_error_says_why_a_peer_is_gone_and_which_os_error() {
    use std::io::Write;
    let dir = std::env::temp_dir();
    for (tag, died) in [("closed", false), ("died", true)] {
        let path = dir.join(format!("ffi-reason-{tag}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let _removed = RemoveOnDrop(path.clone());
        let server = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let url = CString::new(format!("unix://{}", path.display())).unwrap();
        let mut channel = ptr::null_mut();
        // SAFETY: a valid string and out-pointer.
        let connected = unsafe { utp_connect(url.as_ptr(), &mut channel) };
        assert_eq!(connected, UtpStatus::UtpOk);
        let (mut peer, _) = server.accept().unwrap();
        if died {
            // Half a header, then gone: not a goodbye.
            peer.write_all(&[0x55, 0x54, 0x50]).unwrap();
        }
        drop(peer);
        assert_eq!(recv_status(channel), UtpStatus::UtpErrPeerGone);
        let (expected, name) = if died {
            (UtpReason::UtpReasonPeerDied, "UTP_REASON_PEER_DIED")
        } else {
            (UtpReason::UtpReasonPeerClosed, "UTP_REASON_PEER_CLOSED")
        };
        assert_eq!(utp_last_error_reason(), expected, "{}", last_error());
        assert_eq!(reason_name(utp_last_error_reason() as i32), name);
        assert_eq!(utp_last_os_error(), 0);
        // SAFETY: the handle is live and used by this thread only.
        unsafe { utp_channel_close(channel) };
    }
    // An I/O failure carries its errno (a socket path under a regular file).
    let file = dir.join(format!("ffi-reason-file-{}", std::process::id()));
    std::fs::write(&file, b"").unwrap();
    let _removed = RemoveOnDrop(file.clone());
    let url = CString::new(format!("unix://{}/x.sock", file.display())).unwrap();
    let mut listener = ptr::null_mut();
    // SAFETY: a valid string and out-pointer.
    let status = unsafe { utp_listen(url.as_ptr(), &mut listener) };
    assert_eq!(status, UtpStatus::UtpErrIo, "{}", last_error());
    const ENOTDIR: i32 = 20; // Linux
    assert_eq!(utp_last_os_error(), ENOTDIR);
    assert_eq!(utp_last_error_reason(), UtpReason::UtpReasonNone);
    assert_eq!(reason_name(12345), "UTP_REASON_UNKNOWN");
}

/// Removes a file when the test ends, whether it passed or not.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
