//! Shared test vectors for the shared-memory link's region layout
//! (`docs/vectors/shm-link-v2.json`, described in `docs/shm-layout.md`).
//!
//! With `UTP_BLESS=1` the vectors are regenerated from a real link: two
//! ends over a pre-arranged `file://` region with 4 KiB rings exchange
//! frames so both rings advance and wrap (with padding), a few frames stay
//! unread in each direction, and the region file is copied while the link
//! is alive; one image again with keyed stamps.
//!
//! Without it, every image is checked: written to a fresh 0600 file,
//! `utp::shm::inspect::link_state` must report the expected sides and rings,
//! and walking each ring from head by its record stamps (sections 4.1 and
//! 4.3, frames through `utp::frame::decode`) must give the expected frames.
//! Invalid images must be refused with the expected error category.

use serde_json::{Value, json};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use utp::Channel;
use utp::frame::{Frame, HEADER_LEN, decode, decode_header, flags, message_type};
use utp::shm::inspect::{LinkState, link_state};
use utp::shm::layout::{
    DATA_OFFSET, LAYOUT_VERSION, LINK_MAGIC, SideField, ring_header_offset, stamp_key_offset,
};
use utp::shm::region::Location;
use utp::shm::ring::{RECORD_ALIGN, STAMP_LEN, STAMP_PAD, record_len};

const CAPACITY: usize = 4096;
const SIDE_NAMES: [&str; 2] = ["server", "client"];
const RING_NAMES: [&str; 2] = ["server_to_client", "client_to_server"];
/// The stamp keys of the keyed image (ring 0, ring 1).
const KEYS: [u64; 2] = [0x3c5a_96f0_0f69_a5c3, 0x7e81_24db_42bd_18e7];

fn vectors_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors/shm-link-v2.json")
}

fn unique() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len() % 2 == 0, "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn u32_at(image: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(image[off..off + 4].try_into().unwrap())
}

fn u64_at(image: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(image[off..off + 8].try_into().unwrap())
}

fn put_u32(image: &mut [u8], off: usize, v: u32) {
    image[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(image: &mut [u8], off: usize, v: u64) {
    image[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// A file that is removed when dropped (also on panic).
struct TempFile(PathBuf);

impl TempFile {
    fn with_bytes(bytes: &[u8]) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("utp-vec-check-{}-{}", std::process::id(), unique()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        let temp = TempFile(path);
        file.write_all(bytes).unwrap();
        temp
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One frame as a reader gets it from a ring.
#[derive(Clone, Debug, PartialEq, Eq)]
struct VFrame {
    message_type: u8,
    flags: u16,
    sequence: u64,
    payload: Vec<u8>,
}

impl VFrame {
    fn to_json(&self, position: u64) -> Value {
        json!({
            "position": position,
            "offset": position & (CAPACITY as u64 - 1),
            "record_len": record_len(self.payload.len()).unwrap(),
            "message_type": self.message_type,
            "flags": self.flags,
            "sequence": self.sequence,
            "payload_hex": hex(&self.payload),
        })
    }
}

/// What walking one ring from head to tail finds.
#[derive(Debug, Default)]
struct Walk {
    /// (position, frame)
    frames: Vec<(u64, VFrame)>,
    /// (position, padding length)
    padding: Vec<(u64, u64)>,
}

/// Walks ring `r` of `image` from head by the record stamps, per
/// docs/shm-layout.md 4.1 and 4.3, until a zero stamp, or with keyed
/// stamps (a non-zero key in the control header) until a word that decodes
/// to no stamp inside the data area. Errors are the vector file's error
/// categories.
fn walk_ring(image: &[u8], r: usize, cap: usize) -> Result<Walk, (&'static str, String)> {
    let key = u64_at(image, stamp_key_offset(r));
    let index = ring_header_offset(r);
    let head = u64_at(image, index + 64);
    let data_start = DATA_OFFSET + r * cap;
    let data = &image[data_start..data_start + cap];
    let cap64 = cap as u64;
    let mut walk = Walk::default();
    let mut pos = head;
    loop {
        let off = (pos & (cap64 - 1)) as usize;
        let contiguous = cap - off;
        let stamp = u64_at(data, off) ^ key;
        let len = (stamp & !(RECORD_ALIGN as u64 - 1)).wrapping_sub(pos);
        let stale = stamp & (RECORD_ALIGN as u64 - 2) != 0
            || len < RECORD_ALIGN as u64
            || len > contiguous as u64;
        if (key == 0 && stamp == 0) || (key != 0 && stale) {
            return Ok(walk);
        }
        if stamp & (RECORD_ALIGN as u64 - 2) != 0 {
            return Err(("bad_stamp", format!("stamp 0x{stamp:x} at offset {off}")));
        }
        let len = (stamp & !STAMP_PAD).wrapping_sub(pos);
        if len < RECORD_ALIGN as u64 || len > contiguous as u64 {
            return Err((
                "stamp_out_of_range",
                format!("stamp at offset {off} gives {len} bytes, {contiguous} to the end"),
            ));
        }
        let len = len as usize;
        if stamp & STAMP_PAD != 0 {
            if len != contiguous {
                return Err((
                    "bad_padding",
                    format!("padding of {len} at offset {off}, expected {contiguous}"),
                ));
            }
            walk.padding.push((pos, len as u64));
            pos = pos.wrapping_add(len as u64);
            continue;
        }
        let at = off + STAMP_LEN;
        let header = decode_header(&data[at..at + HEADER_LEN], cap)
            .map_err(|e| ("bad_frame", format!("at offset {off}: {e}")))?;
        if record_len(header.payload_length as usize) != Some(len) {
            return Err((
                "length_mismatch",
                format!(
                    "header at offset {off} declares {} payload bytes, the stamp {len} record bytes",
                    header.payload_length
                ),
            ));
        }
        let (header, payload) = decode(&data[at..at + header.frame_len()], cap)
            .map_err(|e| ("bad_frame", format!("at offset {off}: {e}")))?;
        walk.frames.push((
            pos,
            VFrame {
                message_type: header.message_type,
                flags: header.flags,
                sequence: header.sequence,
                payload: payload.to_vec(),
            },
        ));
        pos = pos.wrapping_add(len as u64);
    }
}

fn link_state_of(image: &[u8]) -> utp::Result<LinkState> {
    let file = TempFile::with_bytes(image);
    link_state(&Location::File(file.0.clone()))
}

// ---------------------------------------------------------------- bless

/// One step of a scenario.
enum Op {
    /// Side 0 (server) or 1 (client) sends a frame.
    Send(usize, u8, u16, Vec<u8>),
    /// Side 0 or 1 receives this many frames.
    Recv(usize, usize),
    /// Side 0 or 1 closes its end in an orderly way (state CLOSED).
    Close(usize),
}

fn payload(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag.wrapping_add(i as u8)).collect()
}

struct Scenario {
    name: &'static str,
    description: String,
    ops: Vec<Op>,
}

fn scenarios() -> Vec<Scenario> {
    use Op::{Close, Recv, Send};
    let ck = flags::CHECKSUM;
    let mut s1 = vec![
        Send(0, message_type::TEXT, ck, b"hello".to_vec()),
        Send(0, message_type::DATA, 0, payload(0x10, 100)),
        Recv(1, 2),
    ];
    for i in 0..3u8 {
        s1.push(Send(1, message_type::REQUEST, ck, payload(0x40 + i, 1000)));
    }
    s1.push(Recv(0, 3));
    s1.extend([
        Send(0, message_type::RESPONSE, ck, payload(0x20, 200)),
        Send(0, message_type::DATA, 0, payload(0x30, 120)),
        // Ring 1 is at offset 3264: 576 bytes fit, then 256 remain, too
        // few for the next record, which wraps behind padding.
        Send(1, message_type::DATA, ck, payload(0x50, 500)),
        Send(1, message_type::REQUEST, 0, payload(0x60, 300)),
        Send(1, message_type::HEARTBEAT, ck, Vec::new()),
    ]);
    let mut s2 = Vec::new();
    for i in 0..10u8 {
        s2.push(Send(1, message_type::DATA, ck, payload(0x70 + i, 700)));
        s2.push(Recv(0, 1));
    }
    for i in 0..4u8 {
        s2.push(Send(0, message_type::DATA, 0, payload(0x90 + i, 900)));
    }
    s2.extend([
        Recv(1, 3),
        // Ring 0 is at offset 3840: the 448-byte record wraps behind 256
        // bytes of padding; the unread 960-byte record stays before it.
        Send(0, message_type::RESPONSE, ck, payload(0xa0, 400)),
        Send(0, message_type::GOODBYE, 0, Vec::new()),
    ]);
    let mut s3 = Vec::new();
    for i in 0..6u8 {
        s3.push(Send(0, message_type::DATA, ck, payload(0xb0 + i, 600)));
        s3.push(Recv(1, 1));
    }
    s3.extend([
        // Ring 0 is at offset 3840 (6 records of 640): the next record
        // wraps; the client reads it, so the padding is behind the head.
        Send(0, message_type::RESPONSE, 0, payload(0xc0, 300)),
        Recv(1, 1),
        Send(1, message_type::REQUEST, ck, b"ADD 1 2".to_vec()),
        Send(1, message_type::TEXT, 0, payload(0xd0, 33)),
        Send(0, message_type::RESPONSE, ck, payload(0xe0, 31)),
        Close(1),
    ]);
    vec![
        Scenario {
            name: "unread-wrap-in-client-ring",
            description: "Ring 0 (server to client): 2 frames read, 2 unread. Ring 1 (client to server): 3 frames of 1000 bytes (1088-byte records) read, then 3 unread frames of which the second wraps behind 256 bytes of padding (a padding stamp).".into(),
            ops: s1,
        },
        Scenario {
            name: "unread-wrap-in-server-ring",
            description: "Ring 1 (client to server): 10 frames of 700 bytes, each read at once, so the ring wrapped twice and is empty (head == tail). Ring 0 (server to client): 4 frames of 900 bytes (960-byte records), 3 read; then a frame that wraps behind 256 bytes of padding and an empty GOODBYE (one 64-byte record), all unread.".into(),
            ops: s2,
        },
        Scenario {
            name: "client-closed-with-unread",
            description: "Ring 0 (server to client): 7 frames read, the last of which (300 bytes) wrapped behind 256 bytes of padding, now behind the head, and one unread frame of 31 bytes (8 + 32 + 31 = 71 bytes, a 128-byte record). Ring 1 (client to server): 2 unread frames, a 7-byte request (one 64-byte record) and a 33-byte payload (a 128-byte record). Then the client closed in an orderly way: its state is CLOSED, the server's READY.".into(),
            ops: s3,
        },
    ]
}

/// Runs a scenario on a real link and returns (image, unread frames per ring).
///
/// The two ends are made over a pre-arranged `file://` region, as a
/// handshake would leave them but with the features chosen here: records
/// in pieces, and keyed stamps only when `keys` are given (utp's own ends
/// always agree to keys, and under a key the invalid images' broken stamps
/// would read as "not yet published", 4.1, instead of as errors).
fn run_scenario(sc: &Scenario, keys: Option<[u64; 2]>) -> (Vec<u8>, [Vec<VFrame>; 2]) {
    use utp::shm::layout::{Control, region_len};
    use utp::shm::region::Region;
    use utp::shm::rendezvous::{FEATURE_KEYED_STAMPS, FEATURE_PIECES};
    use utp::shm::{ShmLink, Side, WaitMode};
    let path = PathBuf::from(format!(
        "/tmp/utp-vec-{}-{}.region",
        std::process::id(),
        unique()
    ));
    let len = region_len(CAPACITY).unwrap();
    let server_region = Region::create(Location::File(path.clone()), len).unwrap();
    // SAFETY: the region maps `len` page-aligned bytes and outlives the
    // control view (a temporary dropped at the end of the statement).
    unsafe { Control::new(std::ptr::NonNull::new(server_region.as_ptr()).unwrap()) }.init(
        len,
        CAPACITY,
        1,
        keys.unwrap_or([0, 0]),
    );
    let client_region = Region::open(Location::File(path.clone()), len).unwrap();
    let region_file = std::fs::File::open(&path).unwrap();
    server_region.remove();
    let features = FEATURE_PIECES | keys.map_or(0, |_| FEATURE_KEYED_STAMPS);
    let end = |region, side| {
        let mut link = ShmLink::over_region(region, side, WaitMode::Adaptive, CAPACITY).unwrap();
        link.agree_to(features);
        link
    };
    let server = end(server_region, Side::Server);
    let client = end(client_region, Side::Client);
    let mut ends: [utp::shm::ShmLink; 2] = [server, client];
    let mut sequence = [0u64; 2];
    // Frames in flight per ring (ring r is written by side r).
    let mut pending: [std::collections::VecDeque<VFrame>; 2] = Default::default();
    let mut frame = Frame::default();
    for op in &sc.ops {
        match op {
            Op::Send(side, ty, fl, body) => {
                ends[*side].send(*ty, *fl, body).unwrap();
                sequence[*side] += 1;
                pending[*side].push_back(VFrame {
                    message_type: *ty,
                    flags: *fl,
                    sequence: sequence[*side],
                    payload: body.clone(),
                });
            }
            Op::Recv(side, n) => {
                for _ in 0..*n {
                    ends[*side]
                        .recv_timeout(&mut frame, Some(Duration::from_secs(5)))
                        .unwrap();
                    let want = pending[1 - side].pop_front().unwrap();
                    assert_eq!(frame.payload(), want.payload.as_slice());
                    assert_eq!(frame.header.sequence, want.sequence);
                }
            }
            Op::Close(side) => ends[*side].close().unwrap(),
        }
    }
    // Received frames' space is given back (head published, lines zeroed)
    // lazily, and the counts and the ring's position are shown with each
    // heartbeat and wait; make the image show both.
    for end in &mut ends {
        end.flush_received();
        end.flush_counts();
    }
    // Through the handle opened while the link was alive: a side that
    // closes removes the name (section 7), the bytes stay.
    let mut image = vec![0u8; DATA_OFFSET + 2 * CAPACITY];
    region_file.read_exact_at(&mut image, 0).unwrap();
    assert_eq!(region_file.metadata().unwrap().len(), image.len() as u64);
    drop(ends);
    assert!(!path.exists(), "the link's region outlived the link");
    let [p0, p1] = pending;
    (image, [p0.into(), p1.into()])
}

fn expected_of(image: &[u8]) -> Value {
    let state = link_state_of(image).unwrap();
    let sides: Vec<Value> = (0..2)
        .map(|s| {
            let side = &state.sides[s];
            json!({
                "side": SIDE_NAMES[s],
                "state": side.state,
                "pid": side.pid,
                "sleeps": u32_at(image, SideField::Sleeps.offset(s)),
                "heartbeats": side.heartbeats,
                "heartbeat_time_us": u64_at(image, SideField::HeartbeatMicros.offset(s)),
                "messages": side.messages,
                "bytes": side.bytes,
            })
        })
        .collect();
    let rings: Vec<Value> = (0..2)
        .map(|r| {
            let ring = &state.rings[r];
            let walk = walk_ring(image, r, CAPACITY).unwrap();
            json!({
                "ring": r,
                "direction": RING_NAMES[r],
                "index_offset": ring_header_offset(r),
                "data_offset": DATA_OFFSET + r * CAPACITY,
                "head": ring.head,
                "tail": ring.tail,
                "used": ring.used,
                "frames": walk.frames.iter().map(|(p, f)| f.to_json(*p)).collect::<Vec<_>>(),
                "padding": walk.padding.iter().map(|(p, len)| json!({
                    "position": p,
                    "offset": p & (CAPACITY as u64 - 1),
                    "length": len,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "magic": LINK_MAGIC,
        "layout_version": LAYOUT_VERSION,
        "region_len": image.len(),
        "capacity": CAPACITY,
        "data_offset": DATA_OFFSET,
        "link_id": state.link_id,
        "stamp_keys": [u64_at(image, stamp_key_offset(0)), u64_at(image, stamp_key_offset(1))],
        "sides": sides,
        "rings": rings,
    })
}

fn bless() {
    let mut images = Vec::new();
    let mut first = None;
    // Each scenario without keys, then the first again with keyed stamps
    // (the keys are fixed, so a bless changes only what a run changes:
    // pids, heartbeat times).
    let mut runs: Vec<(Scenario, Option<[u64; 2]>)> =
        scenarios().into_iter().map(|sc| (sc, None)).collect();
    let mut keyed = scenarios().swap_remove(0);
    keyed.name = "keyed-stamps";
    keyed.description = format!(
        "The frames of unread-wrap-in-client-ring over a link whose ends agreed to keyed stamps (4.1): each ring's key is in the control header ({:#x} for ring 0, {:#x} for ring 1), every stamp in the data area is stored XORed with it, and a walk from head ends at the first word that decodes to no stamp of the readable space.",
        KEYS[0], KEYS[1]
    );
    runs.push((keyed, Some(KEYS)));
    for (sc, keys) in runs {
        let (image, unread) = run_scenario(&sc, keys);
        // The images are quiescent: nobody was flagged as sleeping.
        for (r, sent_unread) in unread.iter().enumerate() {
            let index = ring_header_offset(r);
            assert_eq!(u32_at(&image, index + 128), 0);
            assert_eq!(u32_at(&image, index + 192), 0);
            let walk = walk_ring(&image, r, CAPACITY).unwrap();
            // The walk by stamps ends exactly at the (informational) tail.
            let end = walk
                .frames
                .last()
                .map(|(p, f)| p + record_len(f.payload.len()).unwrap() as u64)
                .into_iter()
                .chain(walk.padding.last().map(|(p, l)| p + l))
                .max()
                .unwrap_or(u64_at(&image, index + 64));
            assert_eq!(
                end,
                u64_at(&image, index),
                "{}: ring {r} ends at tail",
                sc.name
            );
            let got: Vec<VFrame> = walk.frames.into_iter().map(|(_, f)| f).collect();
            assert_eq!(&got, sent_unread, "{}: ring {r}", sc.name);
        }
        let expected = expected_of(&image);
        images.push(json!({
            "name": sc.name,
            "description": sc.description,
            "region_hex": hex(&image),
            "expected": expected,
        }));
        first.get_or_insert(image);
    }
    let base = first.unwrap();
    let mut invalid = Vec::new();
    let mut add = |name: &str, description: &str, image: Vec<u8>, error: Value| {
        invalid.push(json!({
            "name": name,
            "description": description,
            "based_on": "unread-wrap-in-client-ring",
            "region_hex": hex(&image),
            "expected_error": error,
        }));
    };
    let mut bad = base.clone();
    put_u32(&mut bad, 0, 0x4B4E_4C56);
    add(
        "bad-magic",
        "control header magic changed to 0x4b4e4c56",
        bad,
        json!({"category": "bad_magic", "reported_by": "control_header"}),
    );
    let mut bad = base.clone();
    put_u32(&mut bad, 4, 1);
    add(
        "bad-layout-version",
        "control header layout version changed to 1",
        bad,
        json!({"category": "bad_layout_version", "reported_by": "control_header"}),
    );
    let first_unread = |image: &[u8], r: usize| {
        let walk = walk_ring(image, r, CAPACITY).unwrap();
        let (pos, f) = walk.frames[0].clone();
        (
            DATA_OFFSET + r * CAPACITY + (pos as usize & (CAPACITY - 1)),
            pos,
            record_len(f.payload.len()).unwrap(),
        )
    };
    let mut bad = base.clone();
    let (at, pos, _) = first_unread(&bad, 0);
    put_u64(&mut bad, at, (pos + 64) | 2);
    add(
        "bad-stamp",
        "the stamp of ring 0's first unread record has reserved bit 1 set",
        bad,
        json!({"category": "bad_stamp", "reported_by": "ring", "ring": 0}),
    );
    let mut bad = base.clone();
    let (at, pos, _) = first_unread(&bad, 0);
    put_u64(&mut bad, at, pos + CAPACITY as u64 + 64);
    add(
        "stamp-out-of-range",
        "the stamp of ring 0's first unread record points a capacity past it",
        bad,
        json!({"category": "stamp_out_of_range", "reported_by": "ring", "ring": 0}),
    );
    let mut bad = base.clone();
    let (at, pos, len) = first_unread(&bad, 1);
    assert!(len > 64);
    put_u64(&mut bad, at, pos + 64);
    add(
        "length-mismatch",
        "the stamp of ring 1's first unread record (a 1088-byte record) says 64 bytes",
        bad,
        json!({"category": "length_mismatch", "reported_by": "ring", "ring": 1}),
    );
    let mut bad = base.clone();
    let walk = walk_ring(&bad, 1, CAPACITY).unwrap();
    let (pos, _) = walk.padding[0];
    let at = DATA_OFFSET + CAPACITY + (pos as usize & (CAPACITY - 1));
    put_u64(&mut bad, at, (pos + 128) | STAMP_PAD);
    add(
        "bad-padding-length",
        "ring 1 padding stamp says 128 bytes, not the rest of the data area",
        bad,
        json!({"category": "bad_padding", "reported_by": "ring", "ring": 1}),
    );
    let doc = json!({
        "format": "utp shm link test vectors",
        "version": 2,
        "spec": "docs/shm-layout.md",
        "layout_version": LAYOUT_VERSION,
        "generated_by": "UTP_BLESS=1 cargo test -p utp --test shm_vectors",
        "images": images,
        "invalid_images": invalid,
    });
    let path = vectors_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text = serde_json::to_string_pretty(&doc).unwrap();
    text.push('\n');
    std::fs::write(&path, text).unwrap();
}

// ---------------------------------------------------------------- check

fn as_u64(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

fn check_image(entry: &Value) {
    let name = entry["name"].as_str().unwrap();
    let image = unhex(entry["region_hex"].as_str().unwrap());
    let exp = &entry["expected"];
    assert_eq!(image.len() as u64, as_u64(&exp["region_len"]), "{name}");
    assert_eq!(u32_at(&image, 0) as u64, as_u64(&exp["magic"]), "{name}");
    assert_eq!(
        u32_at(&image, 4) as u64,
        as_u64(&exp["layout_version"]),
        "{name}"
    );
    assert_eq!(u64_at(&image, 8), as_u64(&exp["region_len"]), "{name}");
    assert_eq!(u64_at(&image, 16), as_u64(&exp["capacity"]), "{name}");
    assert_eq!(u64_at(&image, 24), as_u64(&exp["data_offset"]), "{name}");
    let cap = as_u64(&exp["capacity"]) as usize;

    let state = link_state_of(&image).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(state.link_id as u64, as_u64(&exp["link_id"]), "{name}");
    for (r, key) in exp["stamp_keys"].as_array().unwrap().iter().enumerate() {
        assert_eq!(u64_at(&image, stamp_key_offset(r)), as_u64(key), "{name}");
    }
    for (s, side) in exp["sides"].as_array().unwrap().iter().enumerate() {
        let got = &state.sides[s];
        let what = format!("{name}: side {s}");
        assert_eq!(got.state, side["state"].as_str().unwrap(), "{what}");
        assert_eq!(got.pid as u64, as_u64(&side["pid"]), "{what}");
        assert_eq!(got.heartbeats, as_u64(&side["heartbeats"]), "{what}");
        assert_eq!(got.messages, as_u64(&side["messages"]), "{what}");
        assert_eq!(got.bytes, as_u64(&side["bytes"]), "{what}");
        assert_eq!(
            u64_at(&image, SideField::HeartbeatMicros.offset(s)),
            as_u64(&side["heartbeat_time_us"]),
            "{what}"
        );
        assert_eq!(
            u32_at(&image, SideField::Sleeps.offset(s)) as u64,
            as_u64(&side["sleeps"]),
            "{what}"
        );
    }
    for (r, ring) in exp["rings"].as_array().unwrap().iter().enumerate() {
        let got = &state.rings[r];
        let what = format!("{name}: ring {r}");
        assert_eq!(got.capacity, cap as u64, "{what}");
        assert_eq!(got.head, as_u64(&ring["head"]), "{what}");
        assert_eq!(got.tail, as_u64(&ring["tail"]), "{what}");
        assert_eq!(got.used, as_u64(&ring["used"]), "{what}");
        assert_eq!(
            as_u64(&ring["index_offset"]) as usize,
            ring_header_offset(r)
        );
        assert_eq!(as_u64(&ring["data_offset"]) as usize, DATA_OFFSET + r * cap);

        let walk = walk_ring(&image, r, cap).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let frames = ring["frames"].as_array().unwrap();
        assert_eq!(walk.frames.len(), frames.len(), "{what}");
        for ((pos, f), want) in walk.frames.iter().zip(frames) {
            assert_eq!(*pos, as_u64(&want["position"]), "{what}");
            assert_eq!(pos & (cap as u64 - 1), as_u64(&want["offset"]), "{what}");
            assert_eq!(
                record_len(f.payload.len()).unwrap() as u64,
                as_u64(&want["record_len"])
            );
            assert_eq!(
                f.message_type as u64,
                as_u64(&want["message_type"]),
                "{what}"
            );
            assert_eq!(f.flags as u64, as_u64(&want["flags"]), "{what}");
            assert_eq!(f.sequence, as_u64(&want["sequence"]), "{what}");
            assert_eq!(hex(&f.payload), want["payload_hex"].as_str().unwrap());
        }
        let padding = ring["padding"].as_array().unwrap();
        assert_eq!(walk.padding.len(), padding.len(), "{what}");
        for ((pos, len), want) in walk.padding.iter().zip(padding) {
            assert_eq!(*pos, as_u64(&want["position"]), "{what}");
            assert_eq!(*len, as_u64(&want["length"]), "{what}");
        }
    }
}

fn check_invalid(entry: &Value) {
    let name = entry["name"].as_str().unwrap();
    let image = unhex(entry["region_hex"].as_str().unwrap());
    let error = &entry["expected_error"];
    let category = error["category"].as_str().unwrap();
    match error["reported_by"].as_str().unwrap() {
        "control_header" => {
            let err = link_state_of(&image).expect_err(name).to_string();
            let needle = match category {
                "bad_magic" => "magic",
                "bad_layout_version" => "layout version",
                other => panic!("{name}: unknown category {other}"),
            };
            assert!(
                err.contains("not a utp link region") && err.contains(needle),
                "{name}: {err}"
            );
        }
        "ring" => {
            // The control block is fine: link_state reads it.
            let state = link_state_of(&image).unwrap_or_else(|e| panic!("{name}: {e}"));
            let r = as_u64(&error["ring"]) as usize;
            let cap = state.rings[r].capacity as usize;
            let got = walk_ring(&image, r, cap).expect_err(name);
            assert_eq!(got.0, category, "{name}: {}", got.1);
            // The other ring is still well formed.
            walk_ring(&image, 1 - r, cap).unwrap();
        }
        other => panic!("{name}: unknown reporter {other}"),
    }
}

#[test]
fn shm_link_vectors() {
    if std::env::var_os("UTP_BLESS").is_some_and(|v| v == "1") {
        bless();
    }
    let text = std::fs::read_to_string(vectors_path()).expect("docs/vectors/shm-link-v2.json");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(as_u64(&doc["layout_version"]), LAYOUT_VERSION as u64);
    let images = doc["images"].as_array().unwrap();
    assert!(!images.is_empty());
    let mut saw_padding = false;
    let mut saw_keyed = false;
    for entry in images {
        check_image(entry);
        saw_keyed |= entry["expected"]["stamp_keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|key| as_u64(key) != 0);
        saw_padding |= entry["expected"]["rings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| !r["padding"].as_array().unwrap().is_empty());
    }
    assert!(saw_padding, "no image has padding in unread content");
    assert!(saw_keyed, "no image has keyed stamps");
    let invalid = doc["invalid_images"].as_array().unwrap();
    assert!(invalid.len() >= 2);
    for entry in invalid {
        check_invalid(entry);
    }
}
