//! Every example in `crates/utp/examples/` runs to completion and prints
//! what it claims: each is built and run with `cargo run --example`, as a
//! reader of the docs would (nested cargo; the outer one has finished
//! building when tests run, so the build lock is free).
//!
//! `orderbook` (two processes) is run by `seqlock_example.rs`; `shm_profile`,
//! `inproc_profile`, `stream_profile`, `shm_stream_pace` and `batch_stream`
//! are run here with a small count;
//! `event_loop` is compiled into this test and its `main` called directly.

use std::path::Path;
use std::process::Command;

// event_loop (mio) is compiled into this test and its main() called directly.
#[path = "../examples/event_loop.rs"]
mod event_loop;

#[test]
fn event_loop_serves_three_transports_from_one_mio_poll() {
    event_loop::main().expect("the event_loop example");
}

/// Runs `cargo run -q -p utp [--features F] --example NAME -- ARGS` and
/// returns its stdout and then its stderr; fails the test with both if the
/// example fails.
fn run_example(name: &str, features: &[&str], args: &[&str]) -> String {
    let out = example_output(name, features, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout + &String::from_utf8_lossy(&out.stderr)
}

/// What `cargo run -q -p utp [--features F] --example NAME -- ARGS` did,
/// whether it succeeded or not.
fn example_output(name: &str, features: &[&str], args: &[&str]) -> std::process::Output {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["run", "-q", "--manifest-path"])
        .arg(&manifest)
        .args(["--example", name]);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    cmd.arg("--").args(args).output().expect("run cargo")
}

#[test]
fn request_response_answers_every_client() {
    let out = run_example("request_response", &[], &[]);
    assert!(out.contains("ADD 10 20 -> OK 30"), "{out}");
    assert!(out.contains("ADD 11 20 -> OK 31"), "{out}");
}

#[test]
fn request_response_runs_over_tcp_too() {
    let out = run_example("request_response", &[], &["tcp://127.0.0.1:0"]);
    assert!(out.contains("ADD 10 20 -> OK 30"), "{out}");
}

#[test]
fn streaming_delivers_every_frame_in_order() {
    let out = run_example("streaming", &[], &[]);
    assert!(out.contains("received 10000 frames in order"), "{out}");
}

#[test]
fn streaming_ends_with_an_orderly_close_over_tcp_too() {
    let out = run_example("streaming", &[], &["tcp://127.0.0.1:0", "2000"]);
    assert!(out.contains("received 2000 frames in order"), "{out}");
}

#[test]
fn pubsub_reaches_both_subscribers() {
    let out = run_example("pubsub", &[], &[]);
    assert_eq!(out.matches("tick 4").count(), 2, "{out}");
    assert!(
        out.contains("subscriber 1: tick 0 (message 0, 0 lost before it)"),
        "{out}"
    );
}

#[test]
fn typed_round_trips_serde_and_pod_values() {
    // With tokio too, as scripts/test builds utp for its feature tests
    // (serde and tokio together): one build of utp serves both.
    let out = run_example("typed", &["serde", "tokio"], &[]);
    assert!(
        out.contains(r#"typed (serde): Buy { symbol: "ACME", qty: 100 }"#),
        "{out}"
    );
    assert!(
        out.contains("typed (pod): Tick { price: 10.25, size: 100, venue: 7 }"),
        "{out}"
    );
}

#[test]
fn zero_copy_answers_in_place() {
    let out = run_example("zero_copy", &[], &[]);
    assert!(out.contains("ADD 10 20 -> OK 30"), "{out}");
}

#[test]
fn seqlock_cell_wakes_a_waiting_reader() {
    let out = run_example("seqlock_cell", &[], &[]);
    assert!(out.contains("frame: 1"), "{out}");
    assert!(
        out.contains("woken with Position { x: 1.5, y: 2.5, frame: 2 }"),
        "{out}"
    );
}

#[test]
fn shm_profile_reports_a_cost() {
    let out = run_example("shm_profile", &[], &["2000", "64"]);
    assert!(
        out.contains("64 B: ") && out.contains("ns CPU per round trip"),
        "{out}"
    );
}

/// `stream_profile` over a FIFO and a socket, then its async receives
/// (feature `tokio`; the features of the `typed` example, so the two share
/// one build), then the async modes refused without the feature. One test:
/// builds of one example with two feature sets write the same binary, so
/// two tests running them at once could each run the other's build.
#[test]
fn stream_profile_reports_a_cost_for_every_mode() {
    for transport in ["fifo", "unix"] {
        for mode in ["recv", "lent"] {
            let out = run_example(
                "stream_profile",
                &[],
                &[transport, "2000", "16", "64", mode],
            );
            assert!(
                out.contains(&format!("{transport}, 64 B in batches of 16, {mode}: "))
                    && out.contains("ns CPU per frame"),
                "{out}"
            );
        }
    }
    for mode in ["async", "async-lent"] {
        let out = run_example(
            "stream_profile",
            &["serde", "tokio"],
            &["unix", "2000", "16", "1024", mode],
        );
        assert!(
            out.contains(&format!("unix, 1024 B in batches of 16, {mode}: "))
                && out.contains("ns CPU per frame"),
            "{out}"
        );
    }
    // Without the feature the async modes are refused, clearly.
    let out = example_output(
        "stream_profile",
        &[],
        &["unix", "2000", "16", "64", "async"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("modes: recv, lent"),
        "{stderr}"
    );
}

#[test]
fn inproc_profile_reports_both_costs() {
    let out = run_example("inproc_profile", &[], &["2000", "64"]);
    assert!(
        out.contains("64 B: utp inproc ") && out.contains("x raw)"),
        "{out}"
    );
}

#[test]
fn shm_stream_pace_reports_a_rate_for_each_amount_of_work() {
    let out = run_example("shm_stream_pace", &[], &["20000", "2", "0,10"]);
    for work in ["work 0: median ", "work 10: median "] {
        assert!(
            out.contains(work) && out.contains("M frames/s over 2 rounds"),
            "{out}"
        );
    }
    let rounds = out.lines().filter(|l| l.starts_with("round ")).count();
    assert_eq!(rounds, 2, "one line per round: {out}");
}

#[test]
fn batch_stream_reports_each_batch_against_frame_by_frame() {
    // 20 000 frames in batches of 16 is 1 250 calls: every frame checked
    // in order by the consumer, over shared memory and over a socket,
    // received into a frame and lent.
    for transport in ["shm", "unix"] {
        let out = run_example(
            "batch_stream",
            &[],
            &[transport, "20000", "2", "1,16", "64", "recv,lent"],
        );
        for receive in ["recv", "lent"] {
            assert!(
                out.contains(&format!("batch 1 {receive}: median "))
                    && out.contains("1.00x frame by frame"),
                "{out}"
            );
            assert!(
                out.contains(&format!("batch 16 {receive}: median "))
                    && out.contains("M frames/s over 2 rounds"),
                "{out}"
            );
        }
        assert!(
            out.contains("x recv"),
            "the lent runs against the copied: {out}"
        );
        let rounds = out.lines().filter(|l| l.starts_with("round ")).count();
        assert_eq!(rounds, 2, "one line per round: {out}");
    }
}
