//! Every fenced code block of README.md, docs/*.md and the bindings'
//! READMEs either runs here (shell and Python blocks, against the `utp`
//! binary this build made), runs as a doctest (the README's Rust blocks:
//! `utp::ReadmeDoctests`), is data (`text`, `json`, `toml`, or no language:
//! diagrams), or is marked `no-run: REASON` in its info string, as in
//! ```` ```sh no-run: takes minutes ````. Anything else fails, so a new
//! block cannot be forgotten and an old one cannot rot.
//!
//! Shell blocks run with `bash -euo pipefail` from the repository root,
//! `utp` first on PATH, `PYTHONPATH=bindings/python`, and a trailing
//! `wait` (a block that leaves a background job running times out). A
//! comment `# prints X` requires X in the block's output.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a block may run.
const BLOCK_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Block {
    file: PathBuf,
    line: usize,
    lang: String,
    attrs: String,
    body: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files() -> Vec<PathBuf> {
    let root = repo();
    let mut files = vec![root.join("README.md")];
    for dir in [
        "docs",
        "docs/benchmarks",
        "bindings/python",
        "bindings/swift",
        "examples/c",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut md: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        md.sort();
        files.extend(md);
    }
    files
}

fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    let mut open: Option<(usize, String, String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut open {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    let info = info.trim();
                    let (lang, attrs) = info.split_once(' ').unwrap_or((info, ""));
                    open = Some((
                        i + 1,
                        lang.to_string(),
                        attrs.trim().to_string(),
                        String::new(),
                    ));
                }
            }
            Some((start, lang, attrs, body)) => {
                if line.trim_start() == "```" {
                    out.push(Block {
                        file: file.to_path_buf(),
                        line: *start,
                        lang: std::mem::take(lang),
                        attrs: std::mem::take(attrs),
                        body: std::mem::take(body),
                    });
                    open = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "{}: an unclosed code block", file.display());
    out
}

/// Runs `program args` with the block's environment; returns its output or why it failed.
fn run(mut command: Command) -> Result<String, String> {
    let utp_dir = Path::new(env!("CARGO_BIN_EXE_utp")).parent().unwrap();
    let path = format!(
        "{}:{}",
        utp_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    use std::os::unix::process::CommandExt;
    let mut child = command
        .current_dir(repo())
        .env("PATH", path)
        .env("PYTHONPATH", repo().join("bindings/python"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + BLOCK_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            // The whole group: the block's background jobs too.
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::KILL,
            );
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Background jobs the block left running would hold the output pipes
    // open (and live on after the test): a block must clean up after itself.
    let group = rustix::process::Pid::from_child(&child);
    let leftover = status.is_some() && rustix::process::test_kill_process_group(group).is_ok();
    if leftover {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let out = out_thread.join().unwrap();
    let err = err_thread.join().unwrap();
    if leftover {
        return Err(format!(
            "the block exited but left processes running (killed now): stop what it starts\nstdout:\n{out}\nstderr:\n{err}"
        ));
    }
    match status {
        Some(s) if s.success() => Ok(out),
        Some(s) => Err(format!("{s}\nstdout:\n{out}\nstderr:\n{err}")),
        None => Err(format!(
            "still running after {BLOCK_LIMIT:?} (a background job left running?)\nstdout:\n{out}\nstderr:\n{err}"
        )),
    }
}

/// `# prints X` comments: X must be in the output.
fn check_prints(block: &Block, output: &str) -> Result<(), String> {
    for line in block.body.lines() {
        if let Some((_, said)) = line.split_once("# prints ") {
            let expected = said.split_whitespace().next().unwrap_or("");
            let expected = expected.trim_end_matches(',');
            if !output.contains(expected) {
                return Err(format!("expected {expected:?} in the output:\n{output}"));
            }
        }
    }
    Ok(())
}

fn execute(block: &Block) -> Result<(), String> {
    match block.lang.as_str() {
        "sh" | "bash" | "shell" => {
            let script = format!("set -euo pipefail\n{}\nwait\n", block.body);
            let mut command = Command::new("bash");
            command.args(["-c", &script]);
            let out = run(command)?;
            check_prints(block, &out)
        }
        "python" => {
            let mut command = Command::new("python3");
            command.args(["-c", &block.body]);
            let out = run(command)?;
            check_prints(block, &out)
        }
        other => Err(format!("no runner for {other:?} blocks")),
    }
}

/// Whether utp's lib.rs includes `file` as a doctest (`include_str!`).
fn included_as_doctest(lib: &str, file: &Path) -> bool {
    file.strip_prefix(repo())
        .is_ok_and(|rel| lib.contains(&format!(r#"include_str!("../../../{}")"#, rel.display())))
}

#[test]
fn every_docs_code_block_runs_or_is_marked() {
    let lib = std::fs::read_to_string(repo().join("crates/utp/src/lib.rs")).unwrap();
    assert!(
        lib.contains(r#"include_str!("../../../README.md")"#),
        "the README's Rust blocks are doctests of utp"
    );
    let mut failures = Vec::new();
    let (mut ran, mut marked, mut data, mut doctests) = (0, 0, 0, 0);
    for file in files() {
        for block in blocks(&file) {
            let at = format!(
                "{}:{}",
                block
                    .file
                    .strip_prefix(repo())
                    .unwrap_or(&block.file)
                    .display(),
                block.line
            );
            // rustdoc parses the README's info strings (it runs the Rust
            // blocks) and warns about characters such as '.' and '\''.
            if block.file == repo().join("README.md")
                && !block
                    .attrs
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " :;,/_-".contains(c))
            {
                failures.push(format!(
                    "{at}: in README.md an info string may hold only letters, digits and \" :;,/_-\" \
                     (rustdoc reads it): {:?}",
                    block.attrs
                ));
            }
            if let Some(reason) = block.attrs.strip_prefix("no-run") {
                let reason = reason.trim_start_matches(':').trim();
                if reason.is_empty() {
                    failures.push(format!("{at}: `no-run` needs a reason: `no-run: WHY`"));
                }
                marked += 1;
                continue;
            }
            match block.lang.as_str() {
                "" | "text" | "json" | "toml" => data += 1,
                // Files that crates/utp/src/lib.rs includes as doctests
                // (README.md, docs/api.md): rustdoc compiles and runs them.
                "rust" if included_as_doctest(&lib, &block.file) => doctests += 1,
                "rust" => failures.push(format!(
                    "{at}: a Rust block outside README.md is not compiled by any test; \
                     make it a doctest or mark it `no-run: WHY`"
                )),
                "sh" | "bash" | "shell" | "python" => {
                    ran += 1;
                    if let Err(e) = execute(&block) {
                        failures.push(format!("{at} ({}):\n{}\n=> {e}", block.lang, block.body));
                    }
                }
                other => failures.push(format!(
                    "{at}: a {other:?} block is neither run nor marked `no-run: WHY`"
                )),
            }
        }
    }
    eprintln!(
        "docs blocks: {ran} run, {doctests} Rust doctests, {marked} marked no-run, {data} data"
    );
    assert!(
        ran >= 5,
        "the README's tour at least runs ({ran} blocks ran)"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_block_that_fails_is_reported() {
    let block = Block {
        file: repo().join("README.md"),
        line: 1,
        lang: "sh".into(),
        attrs: String::new(),
        body: "utp call unix:///nonexistent/x.sock ADD 1 2   # prints 3\n".into(),
    };
    let e = execute(&block).unwrap_err();
    assert!(e.contains("no server at"), "{e}");
    let block = Block {
        body: "echo 31   # prints 30\n".into(),
        ..block
    };
    assert!(execute(&block).unwrap_err().contains("expected \"30\""));
}
