//! `utp bench` end to end: a quick run over unix and inproc whose report and
//! JSON must follow the documented shape, and a short fixed-rate run.
//! Correctness only: no figure is judged beyond sanity.

use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

const RESULT_KEYS: [&str; 16] = [
    "mechanism",
    "impl",
    "mode",
    "wait",
    "payload_bytes",
    "p50_ns",
    "p99_ns",
    "p999_ns",
    "max_ns",
    "msgs_per_s",
    "bytes_per_s",
    "ratio_to",
    "ratio",
    "ratio_min",
    "ratio_max",
    "steal_percent",
];

fn utp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_utp"))
}

fn number(result: &Value, key: &str) -> u64 {
    result[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} should be a number in {result}"))
}

fn check_result(result: &Value) {
    let keys: BTreeSet<&str> = result
        .as_object()
        .expect("each result is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, RESULT_KEYS.into_iter().collect(), "{result}");
    assert!(["unix", "inproc"].contains(&result["mechanism"].as_str().unwrap()));
    assert!(["utp", "raw"].contains(&result["impl"].as_str().unwrap()));
    // "async": the rows over tokio (utp's, and the raw tokio socket beside
    // the unix one), in a build with the `tokio` feature.
    let waits: &[&str] = if cfg!(feature = "tokio") {
        &["spin", "block", "async"]
    } else {
        &["spin", "block"]
    };
    if result["wait"] == "async" {
        assert_eq!(result["mechanism"], "unix", "{result}");
        assert_eq!(
            result["mode"], "rtt",
            "async rows are round trips: {result}"
        );
    }
    assert!(
        waits.contains(&result["wait"].as_str().unwrap()),
        "{result}"
    );
    assert!(number(result, "payload_bytes") > 0);
    // The host's steal time while the point ran: a percentage, or null on
    // a kernel without the steal column.
    if let Some(steal) = result["steal_percent"].as_f64() {
        assert!((0.0..=100.0).contains(&steal), "{result}");
    } else {
        assert!(result["steal_percent"].is_null(), "{result}");
    }
    match result["mode"].as_str().unwrap() {
        "rtt" | "calc" => {
            let p = ["p50_ns", "p99_ns", "p999_ns", "max_ns"].map(|k| number(result, k));
            assert!(
                p[0] > 0 && p[0] <= p[1] && p[1] <= p[2] && p[2] <= p[3],
                "{result}"
            );
        }
        "stream" | "batch" => {
            assert!(result["p50_ns"].is_null(), "{result}");
            assert!(number(result, "bytes_per_s") >= number(result, "msgs_per_s"));
        }
        other => panic!("unknown mode {other}"),
    }
    // utp is judged against raw; raw against nothing.
    match result["impl"].as_str().unwrap() {
        "utp" => {
            assert_eq!(result["ratio_to"], "raw", "{result}");
            let ratio = result["ratio"].as_f64().expect("utp rows have a ratio");
            assert!(ratio > 0.0 && ratio.is_finite(), "{result}");
            // The median of the per-repeat ratios lies within their range
            // (each rounded to three decimals).
            let low = result["ratio_min"].as_f64().expect("a range of repeats");
            let high = result["ratio_max"].as_f64().expect("a range of repeats");
            assert!(low <= ratio && ratio <= high, "{result}");
        }
        _ => assert!(
            result["ratio_to"].is_null()
                && result["ratio"].is_null()
                && result["ratio_min"].is_null()
                && result["ratio_max"].is_null()
        ),
    }
    match result["mode"].as_str().unwrap() {
        "rtt" => assert!(result["msgs_per_s"].is_null() && result["bytes_per_s"].is_null()),
        _ => assert!(number(result, "msgs_per_s") > 0),
    }
}

/// Runs `utp ARGS` in `dir` to the end: its pid (for [`leftovers`]) and
/// its standard output. Fails the test, with both outputs, if it failed.
fn run_in(dir: &std::path::Path, args: &[&str]) -> (u32, String) {
    let child = utp()
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "utp {}: {stdout}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    (pid, stdout)
}

/// The JSON file `name` a run wrote in `dir`.
fn json_in(dir: &std::path::Path, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

/// Names of OS objects a process with this pid would have created.
fn leftovers(pid: u32) -> Vec<String> {
    let tag = format!("utp-bench-{pid}-");
    ["/dev/shm", "/tmp", "/dev/mqueue"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|entries| entries.flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(&tag))
        .collect()
}

#[test]
fn quick_run_writes_json_of_the_documented_schema_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let (pid, stdout) = run_in(
        dir.path(),
        &[
            "bench",
            "--quick",
            "--only",
            "unix,inproc",
            "--json",
            "out.json",
            "--plot",
            "out.svg",
        ],
    );
    assert!(stdout.contains("Round trip"), "{stdout}");
    assert!(stdout.contains("Recommended — latency:"), "{stdout}");
    // The summary comes first, before any table.
    let summary = stdout.find("Summary (medians").expect("a summary");
    assert!(summary < stdout.find("Round trip").unwrap(), "{stdout}");
    assert!(stdout.contains("  latency            "), "{stdout}");
    assert!(stdout.contains("utp against raw"), "{stdout}");
    // Unix sockets send in batches; the summary says what that gains.
    let batches = stdout
        .lines()
        .find(|l| l.starts_with("  batches of 16 "))
        .unwrap_or_else(|| panic!("no batch line: {stdout}"));
    assert!(
        batches.contains("unix (block): ") && batches.contains("x its single sends, "),
        "{batches}"
    );
    assert!(
        stdout.contains("Streaming one way in batches of 16"),
        "{stdout}"
    );
    // Every raw baseline says how it was set up.
    assert!(stdout.contains("Raw baselines"), "{stdout}");
    assert!(
        stdout.contains("unix (block)") && stdout.contains("Unix stream socket"),
        "{stdout}"
    );
    assert!(
        stdout.contains("inproc (block)") && stdout.contains("crossbeam"),
        "{stdout}"
    );
    // And the files written are named where the user can find them.
    let json_path = dir.path().canonicalize().unwrap().join("out.json");
    assert!(
        stdout.contains(&format!(
            "wrote the results as JSON to {}",
            json_path.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("wrote the charts as SVG to "), "{stdout}");

    let json = json_in(dir.path(), "out.json");
    let top: BTreeSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["machine", "results"].into_iter().collect());
    let machine = &json["machine"];
    assert!(machine["cpu_model"].is_string() && machine["kernel"].is_string());
    assert!(machine["cores"].as_u64().unwrap() >= 1);
    assert!(machine["virtualized"].is_boolean());
    assert_eq!(machine["placement"], "cross-core");
    assert!(machine["warnings"].is_array());
    // What else ran, measured (tests run side by side: any share is possible).
    for key in ["other_work_percent", "other_work_before_percent"] {
        let share = machine[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {machine}"));
        assert!((0.0..=100.0).contains(&share), "{key} {share}");
    }
    assert!(
        stdout.contains("other work: processes other than the bench"),
        "{stdout}"
    );
    let baselines = machine["baselines"].as_array().unwrap();
    assert!(
        baselines.iter().any(|b| b["mechanism"] == "unix"
            && b["wait"] == "block"
            && b["setup"].as_str().unwrap().contains("Unix stream socket")),
        "{baselines:?}"
    );

    let results = json["results"].as_array().unwrap();
    for result in results {
        check_result(result);
    }
    // Every mode has utp beside raw, for both mechanisms; batches only
    // where utp sends them with fewer calls (unix, not inproc).
    let has = |mechanism: &str, mode: &str, implementation: &str| {
        results.iter().any(|r| {
            r["mechanism"] == mechanism && r["mode"] == mode && r["impl"] == implementation
        })
    };
    for mechanism in ["unix", "inproc"] {
        for mode in ["rtt", "stream", "calc", "batch"] {
            for implementation in ["utp", "raw"] {
                let expected = mode != "batch" || mechanism == "unix";
                assert_eq!(
                    has(mechanism, mode, implementation),
                    expected,
                    "{implementation} {mechanism} {mode} result"
                );
            }
        }
    }
    // In a build with tokio, the async round trips over unix have utp's
    // and a raw tokio socket's rows, and the report says how the latter is
    // set up; without it, the report says how to get them.
    let no_async = "async rows (utp::tokio against a tokio socket) are not in this build";
    assert_eq!(
        stdout.contains(no_async),
        !cfg!(feature = "tokio"),
        "{stdout}"
    );
    if cfg!(feature = "tokio") {
        for implementation in ["utp", "raw"] {
            assert!(
                results.iter().any(|r| r["mechanism"] == "unix"
                    && r["wait"] == "async"
                    && r["mode"] == "rtt"
                    && r["impl"] == implementation),
                "no {implementation} unix (async) round trip"
            );
        }
        assert!(
            baselines.iter().any(|b| b["mechanism"] == "unix"
                && b["wait"] == "async"
                && b["setup"]
                    .as_str()
                    .unwrap()
                    .contains("tokio::net::UnixStream")),
            "{baselines:?}"
        );
    }
    let svg = std::fs::read_to_string(dir.path().join("out.svg")).unwrap();
    assert!(svg.contains("<svg"), "the plot is not SVG");
    assert_eq!(leftovers(pid), Vec::<String>::new(), "objects left behind");
}

/// Processes that spin until dropped.
struct Hogs(Vec<std::process::Child>);

impl Drop for Hogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

/// Processes spinning beside the bench, before and during the run (one
/// per CPU, at most 16): the report measures their share of the CPU time
/// and warns, whatever the load average says (it lags by a minute).
/// `--only ...,memcpy` measures the floors: the plain two-core ring runs
/// beside the first ring streaming 64 KiB (here the file row's), or after
/// the copies when no ring streamed; the summary sets the raw ring against
/// it, and the report says how it was set up.
#[test]
fn the_floors_include_a_plain_ring_set_against_the_raw_ring() {
    for only in ["file,memcpy", "memcpy"] {
        let dir = tempfile::tempdir().unwrap();
        let (pid, stdout) = run_in(
            dir.path(),
            &["bench", "--quick", "--only", only, "--json", "out.json"],
        );
        let json = json_in(dir.path(), "out.json");
        let results = json["results"].as_array().unwrap();
        let ring: Vec<&Value> = results
            .iter()
            .filter(|r| r["mechanism"] == "ring")
            .collect();
        assert_eq!(ring.len(), 1, "{only}: one plain-ring row, not {ring:?}");
        let keys: BTreeSet<&str> = ring[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, RESULT_KEYS.into_iter().collect(), "{}", ring[0]);
        assert_eq!(ring[0]["impl"], "raw");
        assert_eq!(ring[0]["mode"], "stream");
        assert_eq!(number(ring[0], "payload_bytes"), 65536);
        assert!(number(ring[0], "bytes_per_s") > 0);
        assert!(
            stdout.contains("ring (spin)")
                && stdout.contains("the floor under the shared-memory rings"),
            "{only}: {stdout}"
        );
        let floors = stdout.lines().find(|l| l.contains("  floors  "));
        if only.starts_with("file") {
            let line = floors.unwrap_or_else(|| panic!("no floors line: {stdout}"));
            assert!(
                line.contains("(file spin) = ") && line.contains("x the plain two-core ring ("),
                "{line}"
            );
        } else {
            // No raw ring ran: nothing to set against the floors.
            assert!(floors.is_none(), "{stdout}");
        }
        assert_eq!(leftovers(pid), Vec::<String>::new(), "objects left behind");
    }
    // On one core two spinning threads only measure the scheduler: skipped,
    // and said so.
    let dir = tempfile::tempdir().unwrap();
    let (_, stdout) = run_in(
        dir.path(),
        &[
            "bench",
            "--quick",
            "--placement",
            "same-core",
            "--only",
            "memcpy",
            "--json",
            "out.json",
        ],
    );
    assert!(
        stdout.contains("plain ring: skipped, spinning on one core only measures the scheduler"),
        "{stdout}"
    );
    let json = json_in(dir.path(), "out.json");
    assert!(
        !json["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["mechanism"] == "ring"),
        "{json}"
    );
}

#[test]
fn processes_spinning_beside_the_run_are_measured_and_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get().min(16));
    let hogs = Hogs(
        (0..cpus)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    let output = utp()
        .args(["bench", "--quick", "--only", "inproc", "--json", "out.json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    drop(hogs);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json = json_in(dir.path(), "out.json");
    let machine = &json["machine"];
    // The bench's own sides mostly sleep here: the spinners take most of
    // the machine, and well over the 10 % that makes a warning.
    for key in ["other_work_percent", "other_work_before_percent"] {
        let share = machine[key].as_f64().unwrap();
        assert!(share >= 20.0, "{key} {share}\n{stdout}");
    }
    let warnings = machine["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("the machine was busy: other processes used")),
        "{warnings:?}"
    );
}

#[test]
fn unknown_mechanisms_are_refused_with_the_known_ones_listed() {
    let output = utp()
        .args(["bench", "--quick", "--only", "carrier-pigeon"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("carrier-pigeon") && stderr.contains("unix"),
        "{stderr}"
    );
}

/// `--rate`: a real fixed-rate run over shm and unix (a few thousand
/// requests each), whose report and JSON must have the documented shape and
/// sane values.
#[test]
fn fixed_rate_mode_reports_corrected_percentiles_for_shm_and_unix() {
    let dir = tempfile::tempdir().unwrap();
    let offered = 2_000.0;
    let (pid, stdout) = run_in(
        dir.path(),
        &[
            "bench",
            "--quick",
            "--rate",
            "2k/s",
            "--rate-seconds",
            "1",
            "--repeats",
            "1",
            "--json",
            "rate.json",
        ],
    );
    assert!(
        stdout.contains("Summary at a fixed 2.00 k msgs/s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lowest p99") || stdout.contains("could not keep up"),
        "{stdout}"
    );
    assert!(
        stdout.contains("corrected for coordinated omission"),
        "{stdout}"
    );
    assert!(stdout.contains("uncorrected p99"), "{stdout}");
    assert!(
        !stdout.contains("Streaming one way"),
        "only the rate mode runs: {stdout}"
    );
    if !cfg!(feature = "peers") {
        assert!(
            stdout.contains("build with --features peers to compare"),
            "{stdout}"
        );
    }

    let json = json_in(dir.path(), "rate.json");
    let results = json["results"].as_array().unwrap();
    for (mechanism, wait) in [("shm", "spin"), ("shm", "block"), ("unix", "block")] {
        for implementation in ["utp", "raw"] {
            let r = results
                .iter()
                .find(|r| {
                    r["mechanism"] == mechanism && r["wait"] == wait && r["impl"] == implementation
                })
                .unwrap_or_else(|| panic!("no {implementation} {mechanism} ({wait}) result"));
            assert_eq!(r["mode"], "rate", "{r}");
            assert_eq!(number(r, "payload_bytes"), 64);
            let p = ["p50_ns", "p99_ns", "p999_ns", "max_ns"].map(|k| number(r, k));
            assert!(
                p[0] > 0 && p[0] <= p[1] && p[1] <= p[2] && p[2] <= p[3],
                "{r}"
            );
            // Latency is counted from the scheduled send, and a round trip
            // is at least a few hundred nanoseconds here.
            assert!(p[0] >= 100, "{r}");
            let achieved = number(r, "msgs_per_s") as f64;
            // Requests leave on the schedule, never ahead of it.
            assert!(
                achieved > 0.0 && achieved <= offered * 1.05,
                "achieved {achieved}/s of {offered}/s: {r}"
            );
            // One repeat: a ratio, but no range of repeats to give.
            if implementation == "utp" {
                assert!(r["ratio"].as_f64().is_some(), "{r}");
                assert!(r["ratio_min"].is_null() && r["ratio_max"].is_null(), "{r}");
            }
        }
    }
    assert_eq!(leftovers(pid), Vec::<String>::new(), "objects left behind");
}

#[test]
fn a_rate_that_is_not_one_is_refused() {
    let output = utp().args(["bench", "--rate", "fast"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a rate"), "{stderr}");
}
