//! Every vector of `docs/vectors/utp-frames.json` through the library.

use serde_json::Value;
use utp::frame;

fn vectors() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors/utp-frames.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn bytes(v: &Value) -> Vec<u8> {
    let text = v.as_str().expect("hex string");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn every_valid_vector_decodes_to_its_fields_and_reencodes_to_its_bytes() {
    let all = vectors();
    let valid = all["valid"].as_array().expect("valid vectors");
    assert!(valid.len() >= 5, "expected several valid vectors");
    for v in valid {
        let name = v["name"].as_str().unwrap();
        let wire = bytes(&v["hex"]);
        let (header, payload) = frame::decode(&wire, frame::DEFAULT_MAX_PAYLOAD)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            u64::from(header.message_type),
            v["type"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            u64::from(header.flags),
            v["flags"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(header.sequence, v["sequence"].as_u64().unwrap(), "{name}");
        assert_eq!(
            header.timestamp_us,
            v["timestamp_us"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            u64::from(header.checksum),
            v["checksum"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(payload, bytes(&v["payload_hex"]), "{name}");
        // Encoding the decoded fields gives back the exact bytes.
        assert_eq!(frame::encode_to_vec(&header, payload), wire, "{name}");
    }
}

#[test]
fn every_invalid_vector_fails_with_its_error_kind() {
    let all = vectors();
    let invalid = all["invalid"].as_array().expect("invalid vectors");
    assert!(invalid.len() >= 5, "expected several invalid vectors");
    for v in invalid {
        let name = v["name"].as_str().unwrap();
        let wire = bytes(&v["hex"]);
        let limit = v["max_payload"].as_u64().unwrap() as usize;
        let error = frame::decode(&wire, limit).expect_err(name);
        assert_eq!(
            error.kind(),
            v["error"].as_str().unwrap(),
            "{name}: {error}"
        );
    }
}
