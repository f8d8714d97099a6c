//! What the C-ABI tests share.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::ffi::{CStr, CString};
use std::ptr;
use std::thread::JoinHandle;
use utp_ffi::*;

/// `utp_last_error()` of this thread.
pub fn last_error() -> String {
    // SAFETY: utp_last_error returns a NUL-terminated string valid until the next call.
    unsafe { CStr::from_ptr(utp_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A client of `url` connected from a thread of its own (an `mq://`
/// connect waits for the accept), which first sends `hello` as a DATA frame
/// if given (a FIFO server sees a client once it has sent something).
/// [`Connecting::channel`] waits for it.
pub struct Connecting(JoinHandle<usize>);

impl Connecting {
    pub fn start(url: &CStr, hello: Option<&'static [u8]>) -> Connecting {
        let url: CString = url.to_owned();
        Connecting(std::thread::spawn(move || {
            let mut client = ptr::null_mut();
            // SAFETY: a valid string and out-pointer; the handle is used by
            // this thread until it is handed over through `join`.
            unsafe {
                let connected = utp_connect(url.as_ptr(), &mut client);
                assert_eq!(connected, UtpStatus::UtpOk, "{}", last_error());
                if let Some(bytes) = hello {
                    let sent = utp_send(client, 0x01, 1, bytes.as_ptr(), bytes.len(), 5000);
                    assert_eq!(sent, UtpStatus::UtpOk, "{}", last_error());
                }
            }
            client as usize
        }))
    }

    /// The connected client's handle, now this thread's to use.
    pub fn channel(self) -> *mut UtpChannel {
        self.0.join().expect("the connecting thread") as *mut UtpChannel
    }
}
