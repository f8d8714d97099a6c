//! The shared-memory handshake messages (`utp::shm::rendezvous`): the
//! `LINK_HELLO` and `LINK_ATTACH` payload decoders, and `recv_frame`, which
//! reads one handshake frame from the rendezvous socket. Never a panic;
//! accepted messages re-encode to messages that decode to the same value,
//! and an accepted region name is one the client may open.
//!
//! Input: one byte choosing what to feed, then the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::os::unix::net::UnixStream;
use utp::frame::message_type;
use utp::shm::region::Location;
use utp::shm::rendezvous::{Attach, Hello, MAX_HANDSHAKE_PAYLOAD, recv_frame};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    match choice % 3 {
        0 => {
            if let Ok(hello) = Hello::decode(bytes) {
                assert_eq!(Hello::decode(&hello.encode()).ok(), Some(hello));
            }
        }
        1 => {
            if let Ok(attach) = Attach::decode(bytes) {
                match &attach.location {
                    Location::Posix(name) => {
                        assert!(name.starts_with("/utp.") && !name[1..].contains('/'));
                    }
                    Location::File(path) => assert!(path.is_absolute()),
                    Location::SysV(id) => assert!(*id >= 0),
                    // Informational only (the region travels as a descriptor).
                    Location::Memfd(_) => {}
                }
                let again = Attach::decode(&attach.encode()).expect("re-encoded attach decodes");
                assert_eq!(again, attach);
            }
        }
        _ => {
            // One handshake frame from a socket whose peer wrote `bytes` and left.
            let (mut peer, ours) = UnixStream::pair().expect("socketpair");
            peer.write_all(&bytes[..bytes.len().min(64 * 1024)])
                .expect("fits the buffer");
            drop(peer);
            let expected = [message_type::LINK_HELLO, message_type::LINK_ATTACH][bytes.len() % 2];
            if let Ok((payload, fds)) = recv_frame(&ours, expected) {
                assert!(payload.len() <= MAX_HANDSHAKE_PAYLOAD);
                assert!(fds.is_empty(), "no descriptor was sent");
            }
        }
    }
});
