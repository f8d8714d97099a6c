//! The shared-memory publisher: owns the data region and the rendezvous
//! socket, writes each message once, in place.
//!
//! Cost per message with only drop-policy subscribers: the stamp, the
//! header, the tail, one fence, and one load per *sleeping-capable*
//! subscriber (spinners are never checked). Block-policy subscribers add
//! one load of their cursor per message.

use super::dir;
use super::inspect;
use super::layout::{control, region_len};
use super::member::Member;
use super::memory::{self, DATA_SEALS, Mapping};
use super::options::{Policy, PublisherOptions, Wait};
use super::registry::Registry;
use super::rendezvous::Rendezvous;
use super::ring::Ring;
use crate::ProtocolReason;
use crate::error::{Error, Result};
use crate::seqlock::futex;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a publisher spins on a block-policy subscriber before it sleeps.
const BLOCK_SPIN: Duration = Duration::from_micros(50);
/// Longest single futex sleep while waiting for a block-policy subscriber.
const BLOCK_SLICE: Duration = Duration::from_millis(2);

/// A shared-memory publisher (`shm://NAME`).
#[derive(Debug)]
pub struct ShmPublisher {
    ring: Arc<Ring>,
    registry: Arc<Registry>,
    thread: Option<JoinHandle<()>>,
    socket_path: PathBuf,
    endpoint: String,
    next: u64,
    wake_value: u32,
    seen_version: u64,
    blockers: Vec<Arc<Member>>,
    sleepers: Vec<Arc<Member>>,
}

impl ShmPublisher {
    /// Creates the region and binds `NAME`'s rendezvous socket in the
    /// private directory. Fails with `InUse` if a live publisher has it.
    pub fn create(
        name: &str,
        options: &PublisherOptions,
        endpoint: String,
    ) -> Result<ShmPublisher> {
        let len = region_len(options.slots, options.slot_size)
            .ok_or_else(|| Error::protocol(ProtocolReason::Corrupt, "bad ring geometry"))?;
        let fd = memory::create_memfd(&format!("utp-pubsub-{name}"), len)?;
        let map = Mapping::map(&fd, len as usize, true)?;
        memory::seal(fd.as_fd(), DATA_SEALS)?;
        let data_ro = memory::reopen_read_only(fd.as_fd())?;
        drop(fd);
        let ring = Arc::new(Ring::init(map, options.slots, options.slot_size));
        let me = rustix::process::geteuid().as_raw();
        let socket_path = if options.allow_uids.is_empty() {
            dir::socket_path(name)?
        } else {
            dir::shared_socket_path(name, me, true)?
        };
        let listener = bind(&socket_path, &endpoint)?;
        if !options.allow_uids.is_empty() {
            // connect(2) needs write permission on the socket; the peer's
            // uid is checked on every connection (SO_PEERCRED).
            rustix::fs::chmod(&socket_path, rustix::fs::Mode::from_raw_mode(0o666))
                .map_err(|e| Error::io("opening the rendezvous socket to allowed uids", e))?;
        }
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("configuring the rendezvous socket", e))?;
        let registry = Arc::new(Registry::default());
        let rendezvous = Rendezvous {
            listener,
            registry: registry.clone(),
            ring: ring.clone(),
            data_ro,
            max_subscribers: options.max_subscribers,
            allow_uids: options.allow_uids.clone(),
            endpoint: endpoint.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("utp-pubsub-rendezvous".into())
            .spawn(move || rendezvous.run())
            .map_err(|e| Error::io("starting the rendezvous thread", e))?;
        Ok(ShmPublisher {
            ring,
            registry,
            thread: Some(thread),
            socket_path,
            endpoint,
            next: 0,
            wake_value: 0,
            seen_version: u64::MAX,
            blockers: Vec::new(),
            sleepers: Vec::new(),
        })
    }

    /// Largest payload.
    pub fn max_payload(&self) -> usize {
        self.ring.max_payload()
    }

    /// Messages published so far (the next message number).
    pub fn published(&self) -> u64 {
        self.next
    }

    /// Live subscribers right now.
    pub fn subscriber_count(&self) -> usize {
        self.registry.count()
    }

    /// The publisher's state, as `utp inspect` shows it.
    pub fn report(&self) -> inspect::Report {
        // The rendezvous thread builds reports; ask it like anyone else.
        super::shm_subscriber::inspect_path(&self.socket_path, rustix::process::geteuid().as_raw())
            .unwrap_or_else(|_| inspect::Report {
                publisher_pid: std::process::id(),
                transport: "shm".into(),
                slots: self.ring.slot_count() as u64,
                slot_size: self.ring.slot_size() as u64,
                published: self.next,
                subscribers: Vec::new(),
                departed: Vec::new(),
            })
    }

    fn refresh(&mut self) {
        let version = self.registry.version();
        if version == self.seen_version {
            return;
        }
        let (version, members) = self.registry.snapshot();
        self.seen_version = version;
        self.blockers = members
            .iter()
            .filter(|m| matches!(m.policy, Policy::Block { .. }))
            .cloned()
            .collect();
        self.sleepers = members
            .into_iter()
            .filter(|m| m.wait != Wait::Spin || m.notify.is_some())
            .collect();
    }

    /// Begins message number `next`: waits for block-policy subscribers
    /// (evicting any that exceed their timeout), then marks the slot.
    pub fn begin(&mut self, len: usize) -> Result<u64> {
        if len > self.max_payload() {
            return Err(Error::TooLarge {
                len,
                limit: self.max_payload(),
                transport: "shm pub/sub",
            });
        }
        self.refresh();
        let n = self.next;
        let slots = self.ring.slot_count() as u64;
        if n >= slots {
            let need = n - slots + 1;
            for m in &self.blockers {
                wait_for(m, need);
            }
        }
        self.ring.begin(n);
        Ok(n)
    }

    /// The payload room of the message begun last.
    ///
    /// # Safety
    ///
    /// Only between `begin` and `commit`, with no other reference to it.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn room(&self, len: usize) -> &mut [u8] {
        // SAFETY: forwarded contract; `next` is the slot begun.
        unsafe { self.ring.payload_mut(self.next, len) }
    }

    /// Publishes the message begun last and wakes sleepers that need it.
    pub fn commit(&mut self, message_type: u8, flags: u16, len: usize, timestamp_us: u64) -> u64 {
        let n = self.next;
        self.ring.commit(n, message_type, flags, len, timestamp_us);
        self.next = n + 1;
        if !self.sleepers.is_empty() {
            super::protocol::before_waking();
            let wake = self.wake_value;
            let mut futex_sleepers = false;
            let mut bumped = false;
            for m in &self.sleepers {
                if m.sleeps_on(wake) {
                    if !bumped {
                        // Bump first: a sleeper re-arms only on the new value.
                        self.wake_value = wake.wrapping_add(1);
                        self.ring.wake().store(self.wake_value, Ordering::Release);
                        bumped = true;
                    }
                    m.notify();
                    futex_sleepers |= m.notify.is_none() || m.wait != Wait::Spin;
                }
            }
            if futex_sleepers {
                futex::wake_all(self.ring.map().addr(super::layout::data::WAKE));
            }
        }
        n
    }

    /// Endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// Waits until block-policy member `m` has read past `need - 1`; evicts it
/// after its timeout. Returns early if it is gone.
fn wait_for(m: &Member, need: u64) {
    let Policy::Block { timeout } = m.policy else {
        return;
    };
    if m.is_gone() || m.cursor() >= need {
        return;
    }
    let start = Instant::now();
    let waiting = m.control.u32(control::PUBLISHER_WAITING);
    loop {
        let cursor = m.cursor();
        if cursor >= need || m.is_gone() {
            break;
        }
        let waited = start.elapsed();
        if waited >= timeout {
            m.remove(
                &format!(
                    "evicted: block-policy subscriber did not read message {} within {timeout:?}",
                    need - 1
                ),
                true,
            );
            break;
        }
        if waited < BLOCK_SPIN {
            std::hint::spin_loop();
            continue;
        }
        // Do not wait for the rendezvous thread to notice a death: its
        // socket hangs up when it exits (a zombie still answers kill 0).
        if super::rendezvous::peer_hung_up(&m.socket) {
            m.remove(
                "its rendezvous socket hung up (process exited or closed)",
                false,
            );
            break;
        }
        waiting.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let cursor = m.cursor();
        if cursor < need && !m.is_gone() {
            futex::wait(
                m.control.addr(control::CURSOR),
                cursor as u32,
                BLOCK_SLICE.min(timeout - waited),
            );
        }
        waiting.store(0, Ordering::Relaxed);
    }
}

fn bind(path: &PathBuf, endpoint: &str) -> Result<UnixListener> {
    match UnixListener::bind(path) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            // A failure to connect counts as nobody answering, but for a
            // full accept queue (a live publisher that is not accepting); a
            // publisher just starting is given a grace to begin listening.
            let full = |e: &std::io::Error| e.kind() == std::io::ErrorKind::TimedOut;
            let probe = crate::runtime_dir::connect_with_grace(
                || crate::transport::unix::connect_path(path, crate::runtime_dir::PROBE_TIMEOUT),
                |e| !full(e),
            );
            if probe.as_ref().is_ok() || probe.as_ref().is_err_and(full) {
                return Err(Error::InUse {
                    endpoint: endpoint.to_string(),
                    hint: Some(format!("a publisher answers on {}", path.display())),
                });
            }
            // A socket file left by a dead publisher: nobody answers.
            let _ = std::fs::remove_file(path);
            UnixListener::bind(path)
                .map_err(|e| Error::io(format!("binding {}", path.display()), e))
        }
        Err(e) => Err(Error::io(format!("binding {}", path.display()), e)),
    }
}

impl Drop for ShmPublisher {
    fn drop(&mut self) {
        self.ring.close();
        self.wake_value = self.wake_value.wrapping_add(1);
        self.ring.wake().store(self.wake_value, Ordering::Release);
        futex::wake_all(self.ring.map().addr(super::layout::data::WAKE));
        for m in self.registry.snapshot().1 {
            m.notify(); // event loops learn of the end too
        }
        self.registry.request_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket_path);
    }
}
