//! Seqlock cells within one process: every region kind, validation of
//! what is read from shared memory, the writer claim.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use utp::Error;
use utp::seqlock::{CellOptions, SeqReader, SeqWriter, inspect, place::Place};

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Pair {
    a: u64,
    b: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Other {
    x: u64,
    y: u64,
}

/// An odd-sized value: 3 bytes, one partial word.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Rgb {
    r: u8,
    g: u8,
    b: u8,
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "p{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn urls(tag: &str) -> Vec<String> {
    let key =
        0x5e00_0000 | (std::process::id() as i32 & 0xffff) << 8 | (unique(tag).len() as i32 & 0xff);
    vec![
        format!("shm://{}", unique(tag)),
        format!(
            "file://{}/utp-test-{}.cell",
            std::env::temp_dir().display(),
            unique(tag)
        ),
        format!("sysv://{key}"),
    ]
}

fn cleanup(url: &str) {
    Place::parse(url).unwrap().remove().unwrap();
    assert_eq!(Place::parse(url).unwrap().existing_len().unwrap(), None);
}

#[test]
fn publish_and_read_on_every_region_kind() {
    for url in urls("kinds") {
        let mut w = SeqWriter::<Pair>::open(&url).unwrap();
        assert!(w.created());
        let r = SeqReader::<Pair>::open(&url).unwrap();
        assert_eq!(r.read_seq().unwrap(), (Pair { a: 0, b: 0 }, 0), "{url}");
        for i in 1..=100u64 {
            w.publish(&Pair { a: i, b: !i });
        }
        assert_eq!(
            r.read_seq().unwrap(),
            (Pair { a: 100, b: !100 }, 200),
            "{url}"
        );
        w.flush().unwrap(); // msync: to disk for file://, harmless elsewhere
        assert_eq!(r.writer_pid(), Some(std::process::id()));
        let state = inspect::cell_state(&url).unwrap();
        assert_eq!((state.sequence, state.value_size), (200, 16));
        assert!(state.writer_alive && state.update_age.is_some());
        drop(w);
        assert_eq!(r.writer_pid(), None, "the claim is released on drop");
        let w2 = SeqWriter::<Pair>::open(&url).unwrap();
        assert!(!w2.created() && w2.took_over().is_none());
        assert_eq!(w2.sequence(), 200);
        drop(w2);
        cleanup(&url);
    }
}

#[test]
fn partial_words_round_trip() {
    let url = format!("shm://{}", unique("rgb"));
    let mut w = SeqWriter::<Rgb>::open(&url).unwrap();
    w.publish(&Rgb { r: 1, g: 2, b: 3 });
    assert_eq!(
        SeqReader::<Rgb>::open(&url).unwrap().read().unwrap(),
        Rgb { r: 1, g: 2, b: 3 }
    );
    w.remove().unwrap();
}

#[test]
fn second_writer_is_refused() {
    let url = format!("shm://{}", unique("two"));
    let w = SeqWriter::<Pair>::open(&url).unwrap();
    let err = SeqWriter::<Pair>::open(&url).unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    assert!(err.to_string().contains("already has a writer"), "{err}");
    w.remove().unwrap();
}

#[test]
fn reader_of_another_type_is_refused() {
    let url = format!("shm://{}", unique("type"));
    let w = SeqWriter::<Pair>::open(&url).unwrap();
    // Same size, different type: the tag differs.
    let err = SeqReader::<Other>::open(&url).unwrap_err();
    assert!(err.to_string().contains("type tag"), "{err}");
    // Same size with the writer's explicit tag is accepted.
    let opts = CellOptions {
        tag: Some(utp::seqlock::type_tag::<Pair>()),
        ..CellOptions::default()
    };
    SeqReader::<Other>::open_with(&url, &opts).unwrap();
    // A different size is refused.
    let err = SeqReader::<Rgb>::open(&url).unwrap_err();
    assert!(err.to_string().contains("values of 16 bytes"), "{err}");
    w.remove().unwrap();
}

#[test]
fn missing_cell_is_not_found() {
    let url = format!("shm://{}", unique("none"));
    let err = SeqReader::<Pair>::open(&url).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = SeqReader::<Pair>::open("tcp://127.0.0.1:1").unwrap_err();
    assert!(matches!(err, Error::BadUrl { .. }), "{err}");
}

#[test]
fn garbage_regions_are_refused_without_panic() {
    let path = std::env::temp_dir().join(format!("utp-test-{}.cell", unique("garbage")));
    let url = format!("file://{}", path.display());
    let mut bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for (case, patch) in [
        ("random", None),
        ("magic only", Some((0usize, 0x4C51_5355u32))),
    ] {
        if let Some((off, v)) = patch {
            bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let err = SeqReader::<Pair>::open(&url).unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{case}: {err}");
        assert!(inspect::cell_state(&url).is_err(), "{case}");
        let err = SeqWriter::<Pair>::open(&url).unwrap_err();
        assert!(
            matches!(err, Error::Protocol { .. } | Error::InUse { .. }),
            "{case}: {err}"
        );
    }
    // A wrong length is refused before anything is mapped as a cell.
    std::fs::write(&path, [0u8; 100]).unwrap();
    let err = SeqReader::<Pair>::open(&url).unwrap_err();
    assert!(err.to_string().contains("another type"), "{err}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn read_if_newer_and_wait_next() {
    let url = format!("shm://{}", unique("wait"));
    let mut w = SeqWriter::<Pair>::open(&url).unwrap();
    let r = SeqReader::<Pair>::open(&url).unwrap();
    let err = r.wait_next(0, Some(Duration::from_millis(30))).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(r.read_if_newer(0).unwrap(), None);
    w.publish(&Pair { a: 1, b: 1 });
    assert_eq!(r.read_if_newer(0).unwrap(), Some((Pair { a: 1, b: 1 }, 2)));
    assert_eq!(r.read_if_newer(2).unwrap(), None);
    assert_eq!(r.wait_next(0, Some(Duration::ZERO)).unwrap().1, 2);
    w.remove().unwrap();
}

#[test]
fn scribbled_live_cell_gives_errors_not_panics() {
    use std::io::{Seek, SeekFrom, Write};
    let path = std::env::temp_dir().join(format!("utp-test-{}.cell", unique("scribble")));
    let url = format!("file://{}", path.display());
    let mut w = SeqWriter::<Pair>::open(&url).unwrap();
    w.publish(&Pair { a: 1, b: 2 });
    let r = SeqReader::<Pair>::open_with(
        &url,
        &CellOptions {
            stall_timeout: Duration::from_millis(50),
            ..CellOptions::default()
        },
    )
    .unwrap();
    // Another process of the same user scribbles 0xFF over the header
    // (through write(2): the page cache is what both mappings show).
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&[0xff; 128]).unwrap();
    drop(f);
    // Odd sequence, writer "pid" 0xffffffff (not a process): PeerGone.
    let err = r.read().unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
    assert!(r.wait_next(0, Some(Duration::from_millis(20))).is_err());
    assert!(inspect::cell_state(&url).is_err());
    assert!(SeqReader::<Pair>::open(&url).is_err());
    // The writer keeps publishing from its own sequence; the garbage signal
    // slots (0xffffffff, not a pid) are skipped, nothing is signalled.
    w.publish(&Pair { a: 3, b: 4 });
    assert_eq!(r.read().unwrap(), Pair { a: 3, b: 4 });
    drop(r);
    drop(w);
    std::fs::remove_file(&path).unwrap();
}
