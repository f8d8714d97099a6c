//! Starting the peer of a run and waiting for it: a child process running
//! `utp bench-peer SPEC` (pinned by itself), or a thread for in-process
//! mechanisms. The peer says `ready ADDRESS` once the client may connect.

use super::link::Fallible;
use super::peer;
use super::spec::PeerSpec;
use crossbeam_channel::bounded;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use utp::service::Shutdown;

/// How long a peer may take to exit once the client is done.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// A run may take this many idle timeouts before its peer process is killed,
/// which turns a hung transport into an error on the client's side.
const RUN_LIMIT_IDLE_TIMEOUTS: u32 = 4;

/// Kills a peer process that outlives its run's time limit. It sleeps (no
/// spinning) until the limit or until it is stopped, whichever comes first.
#[derive(Debug)]
struct Watchdog {
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    fn start(pid: rustix::process::Pid, limit: Duration) -> Watchdog {
        let (stop, stopped) = bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("bench-watchdog".into())
            .spawn(move || {
                if let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(limit)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            })
            .ok();
        Watchdog {
            stop: Some(stop),
            thread,
        }
    }

    /// Stops the watchdog before the child is reaped (so its pid is never reused under it).
    fn disarm(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A running peer.
#[derive(Debug)]
pub struct Session {
    watchdog: Option<Watchdog>,
    child: Option<Child>,
    thread: Option<JoinHandle<Fallible<()>>>,
    stop: Shutdown,
    /// The address the peer announced.
    pub announced: String,
    /// The peer's stdin and stdout (to the peer, from the peer), for raw pipes.
    pipes: Option<(OwnedFd, OwnedFd)>,
}

impl Session {
    /// Starts the peer of `spec` and waits until it is ready.
    pub fn start(spec: &PeerSpec, in_process: bool) -> Fallible<Session> {
        if in_process {
            Session::start_thread(spec)
        } else {
            Session::start_process(spec)
        }
    }

    fn start_thread(spec: &PeerSpec) -> Fallible<Session> {
        let (tx, rx) = bounded::<String>(1);
        let stop = Shutdown::default();
        let (spec, peer_stop) = (spec.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("bench-peer".into())
            .spawn(move || {
                peer::serve(&spec, &peer_stop, &mut |address: &str| {
                    let _ = tx.send(address.to_string());
                })
            })?;
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(announced) => Ok(Session {
                watchdog: None,
                child: None,
                thread: Some(thread),
                stop,
                announced,
                pipes: None,
            }),
            Err(_) => Err(match thread.join() {
                Ok(Err(e)) => e,
                _ => "the peer thread never became ready".into(),
            }),
        }
    }

    fn start_process(spec: &PeerSpec) -> Fallible<Session> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("bench-peer")
            .arg(serde_json::to_string(spec)?)
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        // Byte by byte: after the line, stdout may carry raw pipe traffic.
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while byte[0] != b'\n' {
            match stdout.read(&mut byte) {
                Ok(1) => line.push(byte[0]),
                _ => {
                    let mut session = Session::from_child(child, String::new(), None);
                    return Err(session.peer_error("the peer exited before it was ready"));
                }
            }
        }
        let line = String::from_utf8_lossy(&line);
        let announced = line
            .trim_end()
            .strip_prefix("ready")
            .ok_or_else(|| format!("unexpected first line from the peer: {line:?}"))?
            .trim()
            .to_string();
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let limit = Duration::from_secs(spec.idle_timeout_s) * RUN_LIMIT_IDLE_TIMEOUTS;
        let watchdog = Watchdog::start(rustix::process::Pid::from_child(&child), limit);
        let mut session =
            Session::from_child(child, announced, Some((stdin.into(), stdout.into())));
        session.watchdog = Some(watchdog);
        Ok(session)
    }

    fn from_child(child: Child, announced: String, pipes: Option<(OwnedFd, OwnedFd)>) -> Session {
        Session {
            watchdog: None,
            child: Some(child),
            thread: None,
            stop: Shutdown::default(),
            announced,
            pipes,
        }
    }

    /// The peer's stdin and stdout, once (for raw pipe baselines).
    pub fn take_pipes(&mut self) -> Option<(OwnedFd, OwnedFd)> {
        self.pipes.take()
    }

    /// Waits for the peer to exit (after asking it to stop, if `stop`), and
    /// reports its failure if it failed.
    pub fn finish(mut self, stop: bool) -> Fallible<()> {
        self.pipes = None;
        if let Some(watchdog) = self.watchdog.as_mut() {
            watchdog.disarm();
        }
        if let Some(thread) = self.thread.take() {
            if stop {
                self.stop.trigger();
            }
            return thread.join().map_err(|_| "the peer thread panicked")?;
        }
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        if stop {
            let pid = rustix::process::Pid::from_child(child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + EXIT_GRACE;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() && status.code().is_none() {
                    return Err("the peer was killed: the run exceeded its time limit".into());
                }
                return if status.success() {
                    Ok(())
                } else {
                    Err(self.peer_error(&format!("the peer failed ({status})")))
                };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the peer did not exit after the run; killed it".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The peer's own words about why it failed, from its stderr.
    fn peer_error(&mut self, context: &str) -> Box<dyn std::error::Error + Send + Sync> {
        let mut said = String::new();
        if let Some(child) = self.child.as_mut() {
            let _ = child.wait();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut said);
            }
        }
        let said = said.trim().trim_start_matches("utp: error: ");
        if said.is_empty() {
            context.into()
        } else {
            said.to_string().into()
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.trigger();
        if let Some(watchdog) = self.watchdog.as_mut() {
            watchdog.disarm();
        }
        if let Some(child) = self.child.as_mut() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_kills_a_peer_that_overstays_and_spares_a_disarmed_one() {
        let mut hung = Command::new("sleep").arg("30").spawn().unwrap();
        let _watchdog = Watchdog::start(
            rustix::process::Pid::from_child(&hung),
            Duration::from_millis(50),
        );
        let status = hung.wait().unwrap();
        assert_eq!(status.code(), None, "killed by a signal");

        let mut quick = Command::new("sleep").arg("0.2").spawn().unwrap();
        let mut watchdog = Watchdog::start(
            rustix::process::Pid::from_child(&quick),
            Duration::from_millis(100),
        );
        watchdog.disarm();
        assert!(quick.wait().unwrap().success());
    }
}
