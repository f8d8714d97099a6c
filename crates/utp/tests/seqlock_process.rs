//! Seqlock cells between real processes. The test binary re-executes itself
//! (`child_entry` with `UTP_CHILD_ROLE` set) to play readers and writers.
//!
//! - `stress_zero_torn_reads_across_processes`: 3 reader processes verify
//!   the checksum of every read (6 million in all with `--release`, in
//!   under a second; a debug build stops each reader after 3 s) while this
//!   process publishes as fast as it can.
//! - `writer_killed_mid_write_is_detected_and_taken_over`: SIGKILL a writer
//!   of 64 KiB values until it dies with an odd sequence; readers get
//!   PeerGone naming its pid; a new writer takes over and republishes.
//! - `file_cell_survives_sigkill_of_its_writer`: a second writer is refused
//!   while the first lives; write, msync, SIGKILL, reopen, read the last
//!   value; a restarted writer takes over and continues the sequence.
//!
//! The notification paths are in `seqlock_notify.rs`.

mod seqlock_util;

use seqlock_util::{Checked, Proc, Remove, say, unique};
use std::sync::atomic::Ordering;
use std::time::Duration;
use utp::seqlock::{SeqReader, SeqWriter, inspect};

/// 64 KiB: long enough to write that a SIGKILL lands mid-write.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Big {
    pages: [[u64; 4096]; 2],
}

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Some((role, url, arg)) = seqlock_util::role() else {
        return;
    };
    match role.as_str() {
        "stress-reader" => {
            let r = SeqReader::<Checked>::open(&url).unwrap();
            let target: u64 = arg.parse().unwrap();
            let (mut torn, mut distinct, mut last) = (0u64, 0u64, 0u64);
            say("READY");
            let start = std::time::Instant::now();
            let mut done = 0;
            while done < target && (done % 4096 != 0 || start.elapsed() < READ_TIME_CAP) {
                done += 1;
                let (v, seq) = r.read_seq().unwrap();
                if seq != 0 && !v.intact() {
                    torn += 1;
                }
                assert!(seq >= last, "sequence went back from {last} to {seq}");
                if seq != last {
                    distinct += 1;
                    last = seq;
                }
            }
            say(&format!("DONE {done} {torn} {distinct}"));
        }
        "big-writer" => {
            let mut w = SeqWriter::<Big>::open(&url).unwrap();
            let mut big = Big {
                pages: [[0; 4096]; 2],
            };
            say("READY");
            for n in 1u64.. {
                big.pages[0][0] = n;
                w.publish(&big);
            }
        }
        "persist-writer" => {
            let mut w = SeqWriter::<Checked>::open(&url).unwrap();
            w.publish(&Checked::new(arg.parse().unwrap()));
            w.flush().unwrap();
            say("READY");
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role {other}"),
    }
}

/// Reads per reader process (every one checked), unless [`READ_TIME_CAP`]
/// comes first: 3 x 2,000,000 take under a second with `--release`; a debug
/// build on a busy 2-vCPU machine stops at the cap with a few hundred
/// thousand each.
const READS_PER_READER: u64 = 2_000_000;
/// Wall-time cap of each reader, to keep the suite fast.
const READ_TIME_CAP: Duration = Duration::from_secs(3);

#[test]
fn stress_zero_torn_reads_across_processes() {
    let url = format!("shm://{}", unique("stress"));
    let _guard = Remove(url.clone());
    let mut w = SeqWriter::<Checked>::open(&url).unwrap();
    w.publish(&Checked::new(1));
    let mut readers: Vec<Proc> = (0..3)
        .map(|_| Proc::spawn("stress-reader", &url, &READS_PER_READER.to_string()))
        .collect();
    for r in &mut readers {
        r.expect_fields("READY");
    }
    let (mut n, mut running) = (1u64, readers.len());
    let mut results = Vec::new();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let writer = std::thread::scope(|s| {
        let h = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                w.publish(&Checked::new(n));
            }
            n
        });
        for r in &mut readers {
            results.push(r.expect_fields("DONE"));
            running -= 1;
        }
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap()
    });
    assert_eq!(running, 0);
    let (mut total, mut distinct) = (0u64, 0u64);
    for fields in &results {
        let f: Vec<u64> = fields.iter().map(|x| x.parse().unwrap()).collect();
        assert_eq!(f[1], 0, "torn reads: {fields:?}");
        total += f[0];
        distinct += f[2];
    }
    assert!(total >= 3 * 4096, "readers stopped early: {results:?}");
    assert!(
        distinct >= 2,
        "readers saw no publishes during their run ({writer} published)"
    );
    eprintln!("{total} reads, 0 torn, {distinct} distinct values seen, {writer} publishes");
    w.remove().unwrap();
}

#[test]
fn writer_killed_mid_write_is_detected_and_taken_over() {
    let url = format!("shm://{}", unique("midwrite"));
    let _guard = Remove(url.clone());
    let mut attempts = 0;
    let dead = loop {
        attempts += 1;
        assert!(attempts <= 20, "never caught the writer mid-write");
        let mut p = Proc::spawn("big-writer", &url, "");
        p.expect_fields("READY");
        std::thread::sleep(Duration::from_millis(20));
        let pid = p.pid();
        p.kill();
        if inspect::cell_state(&url).unwrap().sequence & 1 == 1 {
            break pid;
        }
    };
    let r = SeqReader::<Big>::open(&url).unwrap();
    let err = r.read().map(|_| ()).unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("pid {dead} died mid-write")),
        "{err}"
    );
    let state = inspect::cell_state(&url).unwrap();
    assert!(!state.writer_alive && state.writer_pid == dead);

    let mut w = SeqWriter::<Big>::open(&url).unwrap();
    assert_eq!(w.took_over(), Some(dead));
    assert!(w.recovering_torn());
    let mut big = Big {
        pages: [[7; 4096]; 2],
    };
    big.pages[1][4095] = 99;
    w.publish(&big);
    assert!(!w.recovering_torn() && w.sequence() & 1 == 0);
    let got = r.read().unwrap();
    assert_eq!((got.pages[0][0], got.pages[1][4095]), (7, 99));
    w.remove().unwrap();
}

#[test]
fn file_cell_survives_sigkill_of_its_writer() {
    let path = std::env::temp_dir().join(format!("utp-test-{}.cell", unique("persist")));
    let url = format!("file://{}", path.display());
    let _guard = Remove(url.clone());
    let mut p = Proc::spawn("persist-writer", &url, "4242");
    p.expect_fields("READY");
    let pid = p.pid();
    // While it lives, a second writer (another process) is refused.
    let err = SeqWriter::<Checked>::open(&url).unwrap_err();
    assert!(matches!(err, utp::Error::InUse { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("writer, pid {pid}")),
        "{err}"
    );
    p.kill(); // SIGKILL
    let r = SeqReader::<Checked>::open(&url).unwrap();
    assert_eq!(r.read_seq().unwrap(), (Checked::new(4242), 2));
    drop(r);
    // Restart: a new writer takes the dead one's claim; the value is still there.
    let mut w = SeqWriter::<Checked>::open(&url).unwrap();
    assert_eq!(
        (w.took_over(), w.sequence(), w.created()),
        (Some(pid), 2, false)
    );
    let r = SeqReader::<Checked>::open(&url).unwrap();
    assert_eq!(r.read().unwrap(), Checked::new(4242));
    w.publish(&Checked::new(4243));
    w.flush().unwrap();
    drop(w);
    drop(r);
    // The bytes on disk hold the value (read the file as a stranger would).
    let bytes = std::fs::read(&path).unwrap();
    let value: Checked = bytemuck::pod_read_unaligned(&bytes[128..128 + 256]);
    assert_eq!(value, Checked::new(4243));
    assert_eq!(u64::from_le_bytes(bytes[64..72].try_into().unwrap()), 4);
    std::fs::remove_file(&path).unwrap();
}
