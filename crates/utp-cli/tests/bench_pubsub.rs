//! `utp bench --only pubsub`: the section runs with real subscriber
//! processes, prints a row per implementation and subscriber count with
//! ratios, and leaves nothing behind. Correctness only: no figure is judged.

use std::process::Command;

#[test]
fn pubsub_section_runs_prints_ratios_and_cleans_up() {
    let child = Command::new(env!("CARGO_BIN_EXE_utp"))
        .args(["bench", "--quick", "--only", "pubsub", "--repeats", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Names carry the bench's pid: other benches may run meanwhile.
    let ours = format!("utp-bench-pubsub-{}-", child.id());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Pinned: the publisher on one CPU, the subscribers on others when
    // there are others (a single-CPU machine shares it).
    let placement = stdout
        .lines()
        .find(|l| l.starts_with("placement: publisher CPU "))
        .unwrap_or_else(|| panic!("no placement line:\n{stdout}"));
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        let cpus: Vec<&str> = placement
            .trim_start_matches("placement: publisher CPU ")
            .split([' ', ','])
            .filter(|w| !w.is_empty())
            .collect();
        let (publisher, rest) = cpus.split_first().unwrap();
        assert_eq!(rest[0], "subscribers", "{placement}");
        assert!(
            rest[2..6]
                .iter()
                .all(|c| c != publisher && c.parse::<usize>().is_ok()),
            "subscribers not pinned away from the publisher: {placement}"
        );
    }
    assert!(stdout.contains("load average: "), "{stdout}");
    for subs in ["1", "2", "4"] {
        for kind in ["raw", "utp"] {
            let row = stdout
                .lines()
                .find(|l| {
                    let f: Vec<_> = l.split_whitespace().collect();
                    f.len() >= 9 && f[0] == subs && f[1] == kind
                })
                .unwrap_or_else(|| panic!("no row for {subs} x {kind}:\n{stdout}"));
            assert!(row.ends_with('x'), "{row}");
            if kind == "raw" {
                assert!(row.contains("1.00x"), "{row}");
            }
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&ours))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
