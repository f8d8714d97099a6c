//! Invalid datagrams a server dropped: counted, and logged at most once a
//! second, whether the listener's reader thread or a conversation reading
//! its own socket found them.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often (at most) dropped invalid datagrams are logged.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// One listener's count of invalid datagrams, shared with its conversations.
#[derive(Debug)]
pub(super) struct InvalidDatagrams {
    local: SocketAddr,
    count: AtomicU64,
    log: Mutex<Logged>,
}

/// What the log has said so far.
#[derive(Debug, Default)]
struct Logged {
    /// The count when the last line was written.
    count: u64,
    at: Option<Instant>,
}

impl InvalidDatagrams {
    pub(super) fn new(local: SocketAddr) -> Self {
        InvalidDatagrams {
            local,
            count: AtomicU64::new(0),
            log: Mutex::new(Logged::default()),
        }
    }

    /// Invalid datagrams dropped so far.
    pub(super) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Counts one dropped datagram and logs it (or, within a second of the
    /// last line, only counts it).
    pub(super) fn dropped(&self, len: usize, from: SocketAddr, error: crate::frame::DecodeError) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.report(Some(format!("{len} bytes from {from}: {error}")));
    }

    /// Logs the dropped datagrams not logged yet, unless a line was written
    /// less than a second ago: the latest in detail when it is the only
    /// one, else their number.
    pub(super) fn report(&self, latest: Option<String>) {
        let now = Instant::now();
        // A panic elsewhere while logging leaves only counts behind.
        let mut logged = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if logged.at.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            return;
        }
        let total = self.count();
        let unlogged = total - logged.count;
        match (unlogged, latest) {
            (0, _) => return,
            (1, Some(latest)) => log::warn!(
                "udp://{}: dropped an invalid datagram of {latest}",
                self.local
            ),
            (n, latest) => log::warn!(
                "udp://{}: dropped {n} invalid datagrams since the last report ({total} in all){}",
                self.local,
                latest
                    .map(|l| format!("; the latest: {l}"))
                    .unwrap_or_default()
            ),
        }
        logged.count = total;
        logged.at = Some(now);
    }
}
