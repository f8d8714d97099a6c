//! The single writer of a cell.

use super::cell::{Cell, CellOptions};
use super::eventfd::EventHub;
use super::signal::signal_subscribers;
use super::{futex, place, protocol};
use crate::ProtocolReason;
use crate::error::{Error, Result};
use crate::frame::coarse_micros;
use crate::shm::reclaim::pid_alive;
use crate::shm::sync::Ordering;
use bytemuck::Pod;
use std::marker::PhantomData;

/// The one process that publishes values of type `T` into a cell.
///
/// Opening creates the cell if needed (mode 0600) and claims it: a second
/// writer is refused with [`Error::InUse`] while the first lives; a claim
/// left by a dead process is taken over. Dropping the writer releases the
/// claim; the cell and its last value stay until [`SeqWriter::remove`] (or,
/// for `file://`, until the file is deleted).
///
/// ```
/// use utp::seqlock::{SeqReader, SeqWriter};
///
/// #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Quote { bid: f64, ask: f64, ts: u64 }
///
/// let url = format!("shm://doc-quote-{}", std::process::id());
/// let mut writer = SeqWriter::<Quote>::open(&url)?;
/// writer.publish(&Quote { bid: 99.5, ask: 100.5, ts: 1 });
/// let reader = SeqReader::<Quote>::open(&url)?;
/// assert_eq!(reader.read()?.ask, 100.5); // never torn, never locked
/// writer.remove()?;
/// # Ok::<(), utp::Error>(())
/// ```
#[derive(Debug)]
pub struct SeqWriter<T: Pod> {
    cell: Cell,
    seq: u64,
    pid: u32,
    created: bool,
    took_over: Option<u32>,
    torn: bool,
    events: Option<EventHub>,
    _value: PhantomData<fn(T)>,
}

impl<T: Pod> SeqWriter<T> {
    /// Creates or opens the cell at `url` (`shm://NAME`, `sysv://KEY`,
    /// `file:///PATH`) and claims it as its writer.
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &CellOptions::default())
    }

    /// [`open`](Self::open) with options (an explicit type tag).
    pub fn open_with(url: &str, opts: &CellOptions) -> Result<Self> {
        super::layout::assert_value_fits::<T>();
        let (cell, created) = Cell::create_or_open::<T>(url, opts)?;
        let pid = std::process::id();
        let took_over = claim(&cell, pid)?;
        if cell.header.is_blank() {
            cell.header.init(cell.tag);
        }
        if let Err(e) = cell.header.validate(cell.tag, url) {
            let _ =
                cell.header
                    .writer()
                    .compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Relaxed);
            return Err(e);
        }
        let seq = cell.header.seq().load(Ordering::Acquire);
        Ok(SeqWriter {
            cell,
            seq,
            pid,
            created,
            took_over,
            torn: seq & 1 == 1,
            events: None,
            _value: PhantomData,
        })
    }

    /// Publishes `value`: readers from now on get it (or a later one).
    /// Never blocks; wakes readers sleeping in
    /// [`wait_next`](super::SeqReader::wait_next) and notifies eventfd and
    /// signal subscribers if there are any.
    #[inline]
    pub fn publish(&mut self, value: &T) {
        let bytes = bytemuck::bytes_of(value);
        let h = &self.cell.header;
        self.seq = protocol::publish(h.seq(), h.words(), self.seq, |i| {
            super::layout::word_of(bytes, i)
        });
        self.torn = false;
        h.updated().store(coarse_micros(), Ordering::Relaxed);
        if protocol::take_waiters(h.waiters()) {
            futex::wake_all(h.seq_futex_addr());
        }
        if h.u32_at(super::layout::OFF_SIGNAL_FLAG)
            .load(Ordering::Relaxed)
            != 0
        {
            signal_subscribers(h);
        }
        if let Some(hub) = &self.events {
            hub.notify();
        }
    }

    /// The sequence number of the last publish (twice the number of
    /// publishes since the cell was created; 0 before the first).
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// Whether this writer created the cell (rather than reopening one).
    pub fn created(&self) -> bool {
        self.created
    }

    /// If this writer took over the claim of a dead writer, its pid.
    pub fn took_over(&self) -> Option<u32> {
        self.took_over
    }

    /// Whether the previous writer died mid-write and nothing was published
    /// since: readers refuse the cell until the next [`publish`](Self::publish).
    pub fn recovering_torn(&self) -> bool {
        self.torn
    }

    /// Writes the cell to its file and waits for the disk (`msync`), so the
    /// last published value survives a crash of the machine (`file://`
    /// only; shared memory does not survive a reboot). The value survives
    /// the *process* dying without this: the page cache has it.
    pub fn flush(&self) -> Result<()> {
        place::flush(&self.cell.region)
    }

    /// Serves eventfds on the Unix socket `socket_url` (`unix://@NAME` or
    /// `unix:///PATH`): each subscriber that connects gets its own eventfd,
    /// which this writer increments on every publish. See
    /// [`subscribe_eventfd`](super::subscribe_eventfd).
    pub fn serve_eventfds(&mut self, socket_url: &str) -> Result<()> {
        if self.events.is_some() {
            return Err(Error::protocol(
                ProtocolReason::Unsupported,
                "eventfds are already being served",
            ));
        }
        self.events = Some(EventHub::serve(socket_url)?);
        Ok(())
    }

    /// The cell's URL.
    pub fn url(&self) -> &str {
        &self.cell.url
    }

    /// Releases the claim and removes the cell (its name, file or segment).
    /// Readers that have it open keep reading the last value.
    pub fn remove(self) -> Result<()> {
        self.cell.place.remove()
    }
}

impl<T: Pod> Drop for SeqWriter<T> {
    fn drop(&mut self) {
        let _ = self.cell.header.writer().compare_exchange(
            self.pid,
            0,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

/// Claims the writer word for `pid`: free (0) or held by a dead process.
/// Returns the dead writer's pid when one was taken over.
fn claim(cell: &Cell, pid: u32) -> Result<Option<u32>> {
    let word = cell.header.writer();
    let mut seen = 0;
    loop {
        match word.compare_exchange(seen, pid, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok((seen != 0).then_some(seen)),
            Err(holder) if holder != 0 && (holder == pid || pid_alive(holder)) => {
                return Err(Error::InUse {
                    endpoint: cell.url.clone(),
                    hint: Some(format!(
                        "seqlock cell already has a writer, pid {holder}{}",
                        if holder == pid { " (this process)" } else { "" }
                    )),
                });
            }
            Err(holder) => seen = holder,
        }
    }
}
