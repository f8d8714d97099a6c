//! Helpers shared by the integration tests: unique names, leftover checks,
//! and raw-byte injectors that play a broken or hostile client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The prefix of every name this test process creates.
pub fn prefix() -> String {
    format!("utp-t{}-", std::process::id())
}

/// A name no other test (in this or another process) uses.
pub fn unique(tag: &str) -> String {
    format!(
        "{}{}-{tag}",
        prefix(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A System V IPC key no other test uses (high bit clear, never 0).
pub fn unique_key() -> u32 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) as u32;
    0x5500_0000 | ((std::process::id() & 0xffff) << 8) | (n & 0xff)
}

/// A path in /tmp no other test uses.
pub fn tmp_path(tag: &str) -> String {
    format!("/tmp/{}", unique(tag))
}

/// Names this process left in /tmp, /dev/shm and /dev/mqueue (if mounted).
pub fn leftovers() -> Vec<String> {
    let prefix = prefix();
    let mut found = Vec::new();
    for dir in ["/tmp", "/dev/shm", "/dev/mqueue"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(&prefix) {
                found.push(format!("{dir}/{name}"));
            }
        }
    }
    found
}

/// A UTP header declaring `length` payload bytes (no checksum).
pub fn header_declaring(length: u32) -> Vec<u8> {
    let mut head = vec![0u8; 32];
    head[..4].copy_from_slice(&utp::frame::MAGIC_BYTES);
    head[4] = utp::frame::VERSION;
    head[5] = utp::frame::message_type::REQUEST;
    head[8..12].copy_from_slice(&length.to_le_bytes());
    head[12..20].copy_from_slice(&1u64.to_le_bytes());
    head
}

/// What a hostile or broken stream client sends, one connection each.
pub fn stream_garbage() -> Vec<Vec<u8>> {
    let mut mid_frame = header_declaring(100);
    mid_frame.extend_from_slice(b"only ten b");
    let mut bad_version = header_declaring(0);
    bad_version[4] = 9;
    vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        header_declaring(u32::MAX), // a declared length of 4 GiB
        mid_frame,                  // then the client vanishes
        bad_version,
        (4u32 << 20).to_le_bytes().to_vec(), // tutorial framing, 4 MiB: over the limit
        vec![5, 0, 0, 0, b'A'],              // tutorial framing, vanishing mid-message
    ]
}

/// Writes each garbage sequence on its own connection, waits a moment for
/// the server's reaction, and vanishes.
pub fn inject_stream<S: Read + Write>(mut connect: impl FnMut() -> S) {
    for bytes in stream_garbage() {
        let mut conn = connect();
        let _ = conn.write_all(&bytes);
        let _ = conn.flush();
        std::thread::sleep(Duration::from_millis(20));
        drop(conn);
    }
}

mod stale_socket;
#[allow(unused_imports)] // each test binary uses a different subset
pub use stale_socket::stale_socket;
