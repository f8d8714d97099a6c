//! `utp_channel_peer` (who is at the other end of a channel) and
//! `utp_listener_endpoint` (the URL a listener serves), for C servers.

use std::ffi::{CStr, CString};
use std::ptr;
use utp_ffi::*;

mod support;
use support::{Connecting, last_error};

/// Listens at `url`, connects from a thread, accepts: (listener, client, server).
fn connected(url: &str) -> (*mut UtpListener, *mut UtpChannel, *mut UtpChannel) {
    let url = CString::new(url).unwrap();
    let (mut listener, mut server) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid strings and out-pointers; each handle is used by one
    // thread at a time (the client's moves here once connected).
    unsafe {
        let listened = utp_listen(url.as_ptr(), &mut listener);
        assert_eq!(listened, UtpStatus::UtpOk, "{}", last_error());
        // Connected to the URL the listener reports (tcp: the port chosen).
        let mut served = [0u8; 256];
        let status = utp_listener_endpoint(listener, served.as_mut_ptr().cast(), served.len());
        assert_eq!(status, UtpStatus::UtpOk, "{}", last_error());
        let url = CStr::from_bytes_until_nul(&served).unwrap().to_owned();
        let connecting = Connecting::start(&url, None);
        let accepted = utp_accept(listener, 5000, &mut server);
        assert_eq!(accepted, UtpStatus::UtpOk, "{}", last_error());
        (listener, connecting.channel(), server)
    }
}

fn peer(channel: *mut UtpChannel) -> (UtpPeer, String) {
    let mut found = UtpPeer {
        pid: -2,
        uid: -2,
        gid: -2,
        address_length: usize::MAX,
    };
    let mut address = [0xffu8; 256];
    // SAFETY: a live channel handle, a valid struct and buffer.
    let status = unsafe {
        utp_channel_peer(
            channel,
            &mut found,
            address.as_mut_ptr().cast(),
            address.len(),
        )
    };
    assert_eq!(status, UtpStatus::UtpOk, "{}", last_error());
    let text = CStr::from_bytes_until_nul(&address).unwrap();
    assert_eq!(text.to_bytes().len(), found.address_length);
    (found, text.to_string_lossy().into_owned())
}

#[test]
fn a_unix_server_learns_its_clients_process_and_user() {
    let path = std::env::temp_dir().join(format!("ffi-peer-{}.sock", std::process::id()));
    let (listener, client, server) = connected(&format!("unix://{}", path.display()));
    let (found, _) = peer(server);
    assert_eq!(found.pid, i64::from(std::process::id()));
    assert_eq!(found.uid, i64::from(rustix::process::getuid().as_raw()));
    assert_eq!(found.gid, i64::from(rustix::process::getgid().as_raw()));
    // The client's view: the server's process and the socket's path.
    let (found, address) = peer(client);
    assert_eq!(found.pid, i64::from(std::process::id()));
    assert!(address.contains(&*path.to_string_lossy()), "{address}");

    // The address into a buffer too small: refused, the length given.
    let mut small = [0u8; 4];
    let mut sized = UtpPeer {
        pid: 0,
        uid: 0,
        gid: 0,
        address_length: 0,
    };
    // SAFETY: live handles, valid out-pointers and buffer; each closed once.
    unsafe {
        let status = utp_channel_peer(client, &mut sized, small.as_mut_ptr().cast(), small.len());
        assert_eq!(status, UtpStatus::UtpErrBufferTooSmall);
        assert_eq!(sized.address_length, address.len());
        // No address wanted: NULL is fine.
        let status = utp_channel_peer(client, &mut sized, ptr::null_mut(), 0);
        assert_eq!(status, UtpStatus::UtpOk);
        let status = utp_channel_peer(client, ptr::null_mut(), ptr::null_mut(), 0);
        assert_eq!(status, UtpStatus::UtpErrInvalidArgument);
        utp_channel_close(client);
        utp_channel_close(server);
        utp_listener_close(listener);
        let status = utp_channel_peer(client, &mut sized, ptr::null_mut(), 0);
        assert_eq!(status, UtpStatus::UtpErrClosed);
    }
}

#[test]
fn a_tcp_listener_on_port_0_tells_its_port_and_its_peers_address() {
    let (listener, client, server) = connected("tcp://127.0.0.1:0");
    let mut url = [0u8; 64];
    let mut short = [0u8; 8];
    // SAFETY: a live listener handle and valid buffers.
    unsafe {
        let status = utp_listener_endpoint(listener, url.as_mut_ptr().cast(), url.len());
        assert_eq!(status, UtpStatus::UtpOk);
        let status = utp_listener_endpoint(listener, short.as_mut_ptr().cast(), short.len());
        assert_eq!(status, UtpStatus::UtpErrBufferTooSmall);
        assert!(last_error().contains("listener's URL"), "{}", last_error());
    }
    let url = CStr::from_bytes_until_nul(&url).unwrap().to_string_lossy();
    assert!(
        url.starts_with("tcp://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    let (_, address) = peer(server);
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    // SAFETY: live handles, each closed once.
    unsafe {
        utp_channel_close(client);
        utp_channel_close(server);
        utp_listener_close(listener);
    }
}
