//! A second process writes garbage over a link's control block and rings
//! 10,000 times while this one reads and writes: no crash, no hang, no
//! out-of-bounds access (also run under AddressSanitizer), only errors.
//! Once with stamps as they are and consumers that zero what they give
//! back, once with keyed stamps (the scribbler, a peer, knows the keys).

mod shm_util;

use shm_util::{Proc, unique};
use std::time::{Duration, Instant};
use utp::Channel;
use utp::frame::{Frame, flags, message_type};

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    shm_util::child_entry(|role, url, arg| {
        role == "scribble" && {
            scribble(url, arg.parse().unwrap());
            true
        }
    });
}

/// Child: maps the region named by `url` (a POSIX name) and writes garbage
/// over it `rounds` times.
fn scribble(name: &str, rounds: u32) {
    use utp::shm::layout::{self, Control};
    use utp::shm::region::{Location, Region};
    let cap = 4096;
    let len = layout::region_len(cap).unwrap();
    let region = Region::open(Location::Posix(name.into()), len).unwrap();
    // The rings' stamp keys (zero without keyed stamps), read before any
    // scribbling: plausible stamps are keyed as the peer's would be.
    let base = std::ptr::NonNull::new(region.as_ptr()).unwrap();
    // SAFETY: the region maps `len` bytes, initialised by the reader
    // before it spawned us, and outlives this view (dropped at the end of
    // the statement).
    let keys = [0, 1].map(|r| unsafe { Control::new(base) }.stamp_key(r));
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ std::process::id() as u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    shm_util::say("READY");
    for round in 0..rounds {
        let r = next();
        let (offset, bytes): (usize, Vec<u8>) = match r % 4 {
            // random bytes anywhere
            0 => {
                let n = 1 + (next() % 64) as usize;
                (
                    (next() as usize) % (len - n),
                    (0..n).map(|_| next() as u8).collect(),
                )
            }
            // a plausible or wild index value over head/tail of either ring
            1 => {
                let word = [512, 576, 768, 832][(next() % 4) as usize];
                let v = if next() % 2 == 0 {
                    next() % (3 * cap as u64)
                } else {
                    next()
                };
                (word, v.to_le_bytes().to_vec())
            }
            // a valid-looking UTP header with a random length in a data area
            2 => {
                let mut h = vec![0x42, 0x50, 0x54, 0x55, 1, 1, 0, 0];
                h.extend_from_slice(&((next() % 9000) as u32).to_le_bytes());
                h.extend_from_slice(&[0u8; 20]);
                // where a record's header goes: 8 bytes into a line
                let at = layout::DATA_OFFSET + ((next() as usize % (2 * cap - 64)) & !63) + 8;
                (at, h)
            }
            // a record stamp: plausible (a near position, maybe padding,
            // maybe a progress stamp of a record in pieces) or wild
            _ => {
                let v = match next() % 3 {
                    0 => (next() % (3 * cap as u64)) & !62,
                    1 => ((next() % (3 * cap as u64)) & !61) | 2,
                    _ => next(),
                };
                let at = layout::DATA_OFFSET + ((next() as usize % (2 * cap - 8)) & !63);
                let key = keys[(at - layout::DATA_OFFSET) / cap];
                (at, (v ^ key).to_le_bytes().to_vec())
            }
        };
        assert!(offset + bytes.len() <= region.len());
        // SAFETY: offset + len is inside the mapping (asserted); this
        // process deliberately races with the reader: that is the test.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), region.as_ptr().add(offset), bytes.len())
        };
        if round % 16 == 0 {
            // Spread the 10,000 writes over the reader's activity.
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    shm_util::say("DONE");
}

#[test]
fn scribbler_process_cannot_crash_or_hang_the_reader() {
    scribbled(None);
}

#[test]
fn scribbler_process_cannot_crash_or_hang_a_reader_with_keyed_stamps() {
    scribbled(Some([0x3c5a_96f0_0f69_a5c3, 0x7e81_24db_42bd_18e7]));
}

/// Runs a link end (the server's) over a fresh region while a scribbler
/// process writes garbage over it; `keys` turns on keyed stamps.
fn scribbled(keys: Option<[u64; 2]>) {
    use utp::shm::layout::{self, Control};
    use utp::shm::region::{Location, Region};
    use utp::shm::rendezvous::{FEATURE_KEYED_STAMPS, FEATURE_PIECES};
    use utp::shm::{ShmLink, Side, WaitMode};
    let name = format!("/utp.{}.scribble", unique("s"));
    let cap = 4096;
    let len = layout::region_len(cap).unwrap();
    let region = Region::create(Location::Posix(name.clone()), len).unwrap();
    // SAFETY: the region maps `len` page-aligned bytes and outlives `control`
    // (a temporary dropped at the end of this statement).
    unsafe { Control::new(std::ptr::NonNull::new(region.as_ptr()).unwrap()) }.init(
        len,
        cap,
        1,
        keys.unwrap_or([0, 0]),
    );
    let mut link = ShmLink::over_region(region, Side::Server, WaitMode::Adaptive, 1 << 20).unwrap();
    // Progress stamps are read as such, not refused as reserved bits.
    let keyed = if keys.is_some() {
        FEATURE_KEYED_STAMPS
    } else {
        0
    };
    link.agree_to(FEATURE_PIECES | keyed);
    let mut child = Proc::spawn("scribble", &name, "10000");
    child.expect("READY");
    let (mut ok, mut errors, mut calls) = (0u64, 0u64, 0u64);
    let mut frame = Frame::default();
    let start = Instant::now();
    let mut kinds = std::collections::BTreeMap::new();
    loop {
        let t = Instant::now();
        let got = link.recv_timeout(&mut frame, Some(Duration::from_micros(200)));
        let sent = link.try_send(message_type::DATA, flags::CHECKSUM, b"still alive");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a call hung for {:?}",
            t.elapsed()
        );
        calls += 1;
        for r in [got, sent] {
            match r {
                Ok(()) => ok += 1,
                Err(e) => {
                    errors += 1;
                    let k = e.to_string().chars().take(40).collect::<String>();
                    *kinds.entry(k).or_insert(0u32) += 1;
                }
            }
        }
        if let Ok(Some(_)) = child.child.try_wait() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "scribbler did not finish"
        );
    }
    eprintln!("{calls} rounds, {ok} ok, {errors} errors; kinds: {kinds:#?}");
    assert!(calls > 10);
    drop(link); // removes the region
    assert!(!std::path::Path::new(&format!("/dev/shm{name}")).exists());
}
