//! The pub/sub layout vectors (docs/vectors/pubsub-v1.json) are what this
//! build writes: a 4-slot ring after 6 messages (slots 0 and 1 lapped),
//! and the SUBSCRIBE / ACCEPT payloads. `UTP_WRITE_VECTORS=1` rewrites the
//! file instead of checking it.

use serde_json::{Value, json};
use std::time::Duration;
use utp::pubsub::{Publisher, wire};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/vectors/pubsub-v1.json"
);

fn messages() -> Vec<(u64, u8, &'static [u8])> {
    vec![
        (1_700_000_000_000_000, 0x05, b"zero"),
        (1_700_000_000_000_001, 0x05, b"one"),
        (1_700_000_000_000_002, 0x05, b"two: a longer payload"),
        (1_700_000_000_000_003, 0x01, b"\x00\x01\x02\x03"),
        (1_700_000_000_000_004, 0x05, b"four"),
        (0, 0x05, b""),
    ]
}

fn generate() -> Value {
    let name = format!("vectors-{}", std::process::id());
    let url = format!("shm://{name}?slots=4&slot=128");
    let mut publisher = Publisher::create(&url).unwrap();
    // Take the descriptors the way any subscriber does.
    let stream =
        std::os::unix::net::UnixStream::connect(utp::pubsub::socket_path(&name).unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let subscribe = wire::Subscribe {
        policy: 0,
        wait: 2,
        block_timeout_ns: 1_000_000_000,
        notify: false,
    };
    wire::send(&stream, wire::SUBSCRIBE, &subscribe.encode(), &[]).unwrap();
    let (_, accept_bytes, fds) = wire::recv(&stream, Some(wire::ACCEPT)).unwrap();
    let accept = wire::Accept::decode(&accept_bytes).unwrap();
    for (ts, mt, payload) in messages() {
        let mut loan = publisher.loan(payload.len()).unwrap();
        loan.payload_mut().copy_from_slice(payload);
        loan.commit_typed(mt, ts).unwrap();
    }
    let mut region = vec![0u8; accept.region_len as usize];
    assert_eq!(
        rustix::io::pread(&fds[0], &mut region, 0).unwrap(),
        region.len()
    );
    region[24..28].fill(0); // publisher pid: differs per run
    let mut accept_fixed = accept;
    accept_fixed.publisher_pid = 0;
    accept_fixed.id = 1;
    let visible: Vec<Value> = messages()
        .iter()
        .enumerate()
        .skip(2)
        .map(|(n, (ts, mt, p))| {
            json!({"sequence": n, "slot": n % 4, "type": mt, "timestamp_us": ts, "payload_hex": hex(p)})
        })
        .collect();
    json!({
        "description": "utp pub/sub layout v1 (docs/pubsub-layout.md): a 4-slot, 128-byte-slot ring after messages 0..5 were published (0 and 1 are lapped: a reader at 0 or 1 sees a larger stamp), the publisher pid field (u32 at +24) zeroed; and the SUBSCRIBE and ACCEPT payloads of sections 2.2",
        "slots": 4,
        "slot_size": 128,
        "tail": 6,
        "data_region_hex": hex(&region),
        "messages": visible,
        "lapped": [0, 1],
        "subscribe": {"policy": 0, "wait": 2, "block_timeout_ns": 1_000_000_000u64, "hex": hex(&subscribe.encode())},
        "accept": {"id": 1, "slot_count": 4, "slot_size": 128, "region_len": accept.region_len, "start": 0, "publisher_pid": 0, "hex": hex(&accept_fixed.encode())},
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn pubsub_vectors_match_this_build() {
    let generated = generate();
    if std::env::var_os("UTP_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap();
        std::fs::write(PATH, text + "\n").unwrap();
        return;
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    assert_eq!(
        stored, generated,
        "docs/vectors/pubsub-v1.json differs from what this build writes"
    );
}

#[test]
fn vector_payloads_decode() {
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let unhex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let sub =
        wire::Subscribe::decode(&unhex(stored["subscribe"]["hex"].as_str().unwrap())).unwrap();
    assert_eq!(
        (sub.policy, sub.wait, sub.block_timeout_ns),
        (0, 2, 1_000_000_000)
    );
    let acc = wire::Accept::decode(&unhex(stored["accept"]["hex"].as_str().unwrap())).unwrap();
    assert_eq!(
        (acc.slot_count, acc.slot_size, acc.region_len),
        (4, 128, 192 + 4 * 128)
    );
    let region = unhex(stored["data_region_hex"].as_str().unwrap());
    assert_eq!(&region[0..4], b"UTPB");
    for m in stored["messages"].as_array().unwrap() {
        let n = m["sequence"].as_u64().unwrap();
        let slot = 192 + (n as usize % 4) * 128;
        assert_eq!(
            u64::from_le_bytes(region[slot..slot + 8].try_into().unwrap()),
            2 * n + 2
        );
        // The frame header at +32 and the payload at +64 form one UTP frame.
        let len = utp::frame::decode_header(&region[slot + 32..slot + 64], 64)
            .unwrap()
            .payload_length as usize;
        let (header, payload) =
            utp::frame::decode(&region[slot + 32..slot + 64 + len], 64).unwrap();
        assert_eq!(
            (header.sequence, header.message_type as u64),
            (n, m["type"].as_u64().unwrap())
        );
        assert_eq!(hex(payload), m["payload_hex"].as_str().unwrap());
    }
}
