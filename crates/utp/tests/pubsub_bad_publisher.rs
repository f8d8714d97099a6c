//! A subscriber facing a broken or malicious publisher (a fake one speaking
//! the rendezvous protocol) gets a clear error, never a crash or a hang.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use utp::pubsub::{Subscriber, wire};

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "p{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn memfd(len: u64, seals: rustix::fs::SealFlags) -> OwnedFd {
    let fd = rustix::fs::memfd_create(
        "fake",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )
    .unwrap();
    rustix::fs::ftruncate(&fd, len).unwrap();
    if !seals.is_empty() {
        rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
    }
    fd
}

/// Runs a fake publisher that answers one SUBSCRIBE with `accept` and
/// `fds`, then returns what `Subscriber::connect` said.
fn against(accept: Vec<u8>, fds: Vec<OwnedFd>) -> utp::Error {
    let name = unique("fake");
    let path = utp::pubsub::socket_path(&name).unwrap();
    let listener = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        wire::recv(&stream, Some(wire::SUBSCRIBE)).unwrap();
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        wire::send(&stream, wire::ACCEPT, &accept, &borrowed).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    });
    let err = Subscriber::connect(&format!("shm://{name}")).unwrap_err();
    server.join().unwrap();
    let _ = std::fs::remove_file(&path);
    err
}

fn accept(slots: u32, slot: u32, len: u64) -> Vec<u8> {
    wire::Accept {
        id: 1,
        slot_count: slots,
        slot_size: slot,
        region_len: len,
        start: 0,
        publisher_pid: std::process::id(),
    }
    .encode()
}

const SIZE_SEALS: rustix::fs::SealFlags = rustix::fs::SealFlags::SHRINK
    .union(rustix::fs::SealFlags::GROW)
    .union(rustix::fs::SealFlags::SEAL);

#[test]
fn unsealed_region_is_refused() {
    let len = 192 + 4 * 128;
    let err = against(
        accept(4, 128, len),
        vec![
            memfd(len, rustix::fs::SealFlags::empty()),
            memfd(4096, SIZE_SEALS),
        ],
    );
    assert!(err.to_string().contains("lacks seals"), "{err}");
}

#[test]
fn region_smaller_than_announced_is_refused() {
    let len = 192 + 4 * 128;
    let err = against(
        accept(4, 128, len),
        vec![memfd(len - 64, SIZE_SEALS), memfd(4096, SIZE_SEALS)],
    );
    assert!(
        err.to_string().contains("bytes, the handshake said"),
        "{err}"
    );
}

#[test]
fn bad_geometry_is_refused() {
    let err = against(
        accept(3, 128, 192 + 3 * 128),
        vec![memfd(192 + 3 * 128, SIZE_SEALS), memfd(4096, SIZE_SEALS)],
    );
    assert!(err.to_string().contains("bad geometry"), "{err}");
    let err = against(
        accept(1 << 30, 1 << 30, 0),
        vec![memfd(4096, SIZE_SEALS), memfd(4096, SIZE_SEALS)],
    );
    assert!(err.to_string().contains("bad geometry"), "{err}");
}

#[test]
fn missing_descriptors_and_garbage_headers_are_refused() {
    let len = 192 + 4 * 128;
    let err = against(accept(4, 128, len), vec![memfd(len, SIZE_SEALS)]);
    assert!(err.to_string().contains("expected 2"), "{err}");
    // Sealed and sized right, but no UTPB header inside.
    let err = against(
        accept(4, 128, len),
        vec![memfd(len, SIZE_SEALS), memfd(4096, SIZE_SEALS)],
    );
    assert!(
        err.to_string().contains("does not match the handshake"),
        "{err}"
    );
    let err = against(b"short".to_vec(), vec![]);
    assert!(err.to_string().contains("ACCEPT of 5 bytes"), "{err}");
}
