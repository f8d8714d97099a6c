//! `utp frame decode|encode` against the shared test vectors.

mod util;

use serde_json::Value;
use std::io::Write;
use std::process::Stdio;
use util::{run, utp};

fn vectors() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors/utp-frames.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("vectors")).unwrap()
}

#[test]
fn decode_prints_every_valid_vector_as_json() {
    for v in vectors()["valid"].as_array().unwrap() {
        let out = run(&["frame", "decode", v["hex"].as_str().unwrap()]);
        assert!(out.status.success(), "{}: {out:?}", v["name"]);
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        for key in [
            "type",
            "flags",
            "sequence",
            "timestamp_us",
            "checksum",
            "payload_hex",
        ] {
            assert_eq!(json[key], v[key], "{} field {key}", v["name"]);
        }
    }
}

#[test]
fn decode_reports_the_error_kind_of_every_invalid_vector() {
    for v in vectors()["invalid"].as_array().unwrap() {
        let max = v["max_payload"].as_u64().unwrap().to_string();
        let mut child = utp()
            .args(["frame", "decode", "-", "--max-payload", &max])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(v["hex"].as_str().unwrap().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", v["name"]);
        let expected = format!("error: {}\n", v["error"].as_str().unwrap());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "{}",
            v["name"]
        );
    }
}

#[test]
fn encode_reverses_decode() {
    for v in vectors()["valid"].as_array().unwrap() {
        let decoded = run(&["frame", "decode", v["hex"].as_str().unwrap()]);
        let json = String::from_utf8(decoded.stdout).unwrap();
        let out = run(&["frame", "encode", json.trim()]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            v["hex"].as_str().unwrap()
        );
    }
}

#[test]
fn non_hex_input_is_a_clear_error() {
    let out = run(&["frame", "decode", "zz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not hex"));
}
