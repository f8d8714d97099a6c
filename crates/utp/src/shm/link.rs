//! The duplex link: two rings in one region, a control block, and the
//! rendezvous socket kept open as a death notice.

use super::bytes::MappedBytes;
use super::layout::{self, Control, SideField, state};
use super::region::Region;
use super::ring::{Consumer, Producer, Record, record_len};
use super::sync::{Ordering, futex_wake};
use super::wait::{WaitFor, WaitMode};
use crate::channel::{Channel, PeerInfo};
use crate::error::{Error, Result};
use crate::frame::{HEADER_LEN, Stamper, now_micros};
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;
use std::time::Duration;

/// Which end of a link this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Created the region; writes ring 0, reads ring 1.
    Server = 0,
    /// Opened the region; writes ring 1, reads ring 0.
    Client = 1,
}

/// One end of a shared-memory link. Implements [`Channel`], plus a
/// zero-copy API: [`reserve`](ShmLink::reserve) and [`recv_view`](ShmLink::recv_view).
///
// Invariants: `tx`, `rx` and `control` point into `region`, which is
// declared last so it is dropped (unmapped) after them.
#[derive(Debug)]
pub struct ShmLink {
    pub(crate) tx: Producer<MappedBytes>,
    pub(crate) rx: Consumer<MappedBytes>,
    control: Control,
    side: Side,
    socket: Option<UnixStream>,
    pub(crate) wait: WaitMode,
    stamper: Stamper,
    peer: PeerInfo,
    endpoint: String,
    closed: bool,
    gone: Option<String>,
    messages: u64,
    bytes: u64,
    beats: u64,
    last_beat_us: u64,
    region: Region,
}

impl ShmLink {
    /// Builds one end over a region whose control block is initialised.
    pub(crate) fn new(
        region: Region,
        side: Side,
        socket: Option<UnixStream>,
        wait: WaitMode,
        max_payload: usize,
        peer: PeerInfo,
        endpoint: String,
    ) -> Result<ShmLink> {
        let base = NonNull::new(region.as_ptr())
            .ok_or_else(|| Error::Protocol("region mapped at null".into()))?;
        // SAFETY: the region maps at least MIN_REGION_LEN page-aligned bytes
        // and `validate` below checks the full layout fits before any ring
        // is built; the region outlives `control` (declared last).
        let control = unsafe { Control::new(base) };
        let cap = control.validate(region.len())?;
        let (tx_ring, rx_ring) = match side {
            Side::Server => (0, 1),
            Side::Client => (1, 0),
        };
        let data = |r: usize| {
            // SAFETY: validate() proved region.len() == DATA_OFFSET + 2*cap,
            // so ring r's data area [DATA_OFFSET + r*cap, +cap) is mapped and
            // lives as long as the region, which outlives the rings.
            unsafe { MappedBytes::new(region.as_ptr().add(layout::DATA_OFFSET + r * cap), cap) }
        };
        let tx = Producer::new(control.ring_indices(tx_ring), data(tx_ring))?;
        let rx = Consumer::new(control.ring_indices(rx_ring), data(rx_ring), max_payload)?;
        let me = side as usize;
        control
            .side_u32(me, SideField::Pid)
            .store(std::process::id(), Ordering::Relaxed);
        control
            .side_u32(me, SideField::State)
            .store(state::READY, Ordering::Release);
        let mut link = ShmLink {
            tx,
            rx,
            control,
            side,
            socket,
            wait,
            stamper: Stamper::default(),
            peer,
            endpoint,
            closed: false,
            gone: None,
            messages: 0,
            bytes: 0,
            beats: 0,
            last_beat_us: 0,
            region,
        };
        link.heartbeat();
        Ok(link)
    }

    /// One end of a link over a region whose control block is already
    /// initialised ([`Control::init`](super::layout::Control::init)), without a
    /// rendezvous socket: liveness then rests on the peer's state word only.
    /// For pre-arranged regions and tests.
    pub fn over_region(
        region: Region,
        side: Side,
        wait: WaitMode,
        max_payload: usize,
    ) -> Result<ShmLink> {
        let endpoint = region.location().to_string();
        ShmLink::new(
            region,
            side,
            None,
            wait,
            max_payload,
            PeerInfo::default(),
            endpoint,
        )
    }

    /// The region this link lives in.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The largest payload one frame can carry on this link.
    pub fn max_frame_payload(&self) -> usize {
        self.tx.capacity() - HEADER_LEN
    }

    fn peer_index(&self) -> usize {
        1 - self.side as usize
    }

    /// Records a heartbeat in our side block.
    pub(crate) fn heartbeat(&mut self) {
        self.beat_at(now_micros());
    }

    fn beat_at(&mut self, now_us: u64) {
        self.beats += 1;
        self.last_beat_us = now_us;
        let me = self.side as usize;
        let c = &self.control;
        c.side_u64(me, SideField::Heartbeat)
            .store(self.beats, Ordering::Relaxed);
        c.side_u64(me, SideField::HeartbeatMicros)
            .store(now_us, Ordering::Relaxed);
    }

    fn gone(&mut self, why: String) -> Error {
        let msg = format!("{}: {why}", self.endpoint);
        self.gone = Some(msg.clone());
        Error::PeerGone(msg)
    }

    /// Fails if we closed, or the peer closed or died. Costs syscalls
    /// (poll, kill 0): called between wait slices, not per message.
    pub(crate) fn check_peer(&mut self) -> Result<()> {
        self.check_cheap()?;
        if let Some(sock) = &self.socket {
            use rustix::event::{PollFd, PollFlags, poll};
            let mut fds = [PollFd::new(sock, PollFlags::IN | PollFlags::RDHUP)];
            let zero = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            if poll(&mut fds, Some(&zero)).unwrap_or(0) > 0 && !fds[0].revents().is_empty() {
                let pid = self.peer.pid.map(|p| format!(" {p}")).unwrap_or_default();
                return Err(self.gone(format!(
                    "peer process{pid} died or closed the link (its rendezvous socket hung up)"
                )));
            }
        }
        if let Some(pid) = self
            .peer
            .pid
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
            && rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
        {
            return Err(self.gone(format!("peer process {pid} no longer exists")));
        }
        Ok(())
    }

    /// The per-message checks: closed locally, peer gone or marked CLOSED.
    fn check_cheap(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if let Some(msg) = &self.gone {
            return Err(Error::PeerGone(msg.clone()));
        }
        let peer_state = self
            .control
            .side_u32(self.peer_index(), SideField::State)
            .load(Ordering::Acquire);
        if peer_state == state::CLOSED {
            // Not sticky: the word lives in shared memory and is re-read each time.
            return Err(Error::PeerGone(format!(
                "{}: the peer closed the link",
                self.endpoint
            )));
        }
        Ok(())
    }

    /// Reserves room for a frame with `len` bytes of payload, waiting at
    /// most `timeout` (`Some(ZERO)`: don't wait, fail with [`Error::Full`]).
    pub fn reserve(&mut self, len: usize, timeout: Option<Duration>) -> Result<Reservation<'_>> {
        self.check_cheap()?;
        let rec = record_len(len)
            .filter(|&r| r <= self.tx.capacity() && len <= u32::MAX as usize)
            .ok_or(Error::TooLarge {
                len,
                limit: self.max_frame_payload(),
                transport: "shm",
            })?;
        let offset = if timeout == Some(Duration::ZERO) {
            self.tx.try_reserve(rec)?.ok_or(Error::Full)?
        } else {
            self.wait_until(WaitFor::Space, timeout, |l| l.tx.try_reserve(rec))?
        };
        Ok(Reservation {
            link: self,
            offset,
            len,
            rec,
        })
    }

    /// Sends without waiting: [`Error::Full`] if the ring has no room.
    pub fn try_send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<()> {
        self.send_timeout(message_type, flags, payload, Some(Duration::ZERO))
    }

    /// Waits at most `timeout` for the next frame and lends it in place.
    /// Dropping the [`View`] frees its space in the ring.
    pub fn recv_view(&mut self, timeout: Option<Duration>) -> Result<View<'_>> {
        if self.closed {
            return Err(Error::Closed);
        }
        let record = self.wait_until(WaitFor::Data, timeout, |l| match l.rx.peek()? {
            Some(r) => Ok(Some(r)),
            None => l.check_cheap().map(|()| None),
        })?;
        let view = View { link: self, record };
        let header = view.record.header;
        if header.has_checksum() {
            let actual = crate::frame::frame_checksum(&view.record.header_bytes, view.payload());
            if actual != header.checksum {
                // Dropping the view skips the bad frame; the link goes on.
                return Err(crate::frame::DecodeError::ChecksumMismatch {
                    expected: header.checksum,
                    actual,
                }
                .into());
            }
        }
        Ok(view)
    }

    fn published(&mut self, rec: usize, timestamp_us: u64) {
        self.tx.commit(rec);
        self.messages += 1;
        self.bytes += rec as u64;
        let me = self.side as usize;
        let c = &self.control;
        c.side_u64(me, SideField::Messages)
            .store(self.messages, Ordering::Relaxed);
        c.side_u64(me, SideField::Bytes)
            .store(self.bytes, Ordering::Relaxed);
        if timestamp_us.wrapping_sub(self.last_beat_us) >= super::wait::SLICE.as_micros() as u64 {
            self.beat_at(timestamp_us);
        }
    }
}

/// Room for one frame in the send ring; write the payload, then [`commit`](Reservation::commit).
/// Dropping it without committing sends nothing.
#[derive(Debug)]
pub struct Reservation<'a> {
    link: &'a mut ShmLink,
    offset: usize,
    len: usize,
    rec: usize,
}

impl Reservation<'_> {
    /// The payload bytes, in the ring; their previous contents are unspecified.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        // SAFETY: `offset..offset+rec` was reserved by try_reserve and is not
        // published, so the peer does not read or write it; `&mut self`
        // makes this the only slice of it.
        unsafe {
            self.link
                .tx
                .bytes()
                .slice_mut(self.offset + HEADER_LEN, self.len)
        }
    }

    /// Writes the header (sequence, timestamp, checksum if flagged) and publishes the frame.
    pub fn commit(self, message_type: u8, flags: u16) {
        let mut head = [0u8; HEADER_LEN];
        let link = &mut *self.link;
        // SAFETY: our reservation (see payload_mut); the shared slice ends
        // before the header is written below.
        let payload = unsafe { link.tx.bytes().slice(self.offset + HEADER_LEN, self.len) };
        let header = link.stamper.stamp(message_type, flags, payload, &mut head);
        self.link.tx.write(self.offset, &head);
        self.link.published(self.rec, header.timestamp_us);
    }
}

/// A received frame, lent in place from the ring; its space is freed on drop.
#[derive(Debug)]
pub struct View<'a> {
    link: &'a mut ShmLink,
    record: Record,
}

impl View<'_> {
    /// The frame's header.
    pub fn header(&self) -> &crate::frame::Header {
        &self.record.header
    }

    /// The payload, in shared memory. Its bytes come from the peer and are
    /// untrusted like any received data.
    pub fn payload(&self) -> &[u8] {
        let len = self.record.header.payload_length as usize;
        // SAFETY: the record is published and not released until drop, so
        // the peer does not legitimately write it; bounds were validated by
        // peek (and slice() re-checks them).
        unsafe {
            self.link
                .rx
                .bytes()
                .slice(self.record.offset + HEADER_LEN, len)
        }
    }
}

impl Drop for View<'_> {
    fn drop(&mut self) {
        self.link.rx.release(self.record.len);
    }
}

impl Channel for ShmLink {
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        let r = self.reserve(payload.len(), timeout)?;
        let mut head = [0u8; HEADER_LEN];
        let header = r
            .link
            .stamper
            .stamp(message_type, flags, payload, &mut head);
        r.link.tx.write(r.offset + HEADER_LEN, payload);
        r.link.tx.write(r.offset, &head);
        let rec = r.rec;
        r.link.published(rec, header.timestamp_us);
        Ok(())
    }

    fn recv_timeout(
        &mut self,
        frame: &mut crate::frame::Frame,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let view = self.recv_view(timeout)?;
        frame.set(view.record.header, view.payload());
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        let me = self.side as usize;
        self.control
            .side_u32(me, SideField::State)
            .store(state::CLOSED, Ordering::Release);
        // Wake the peer wherever it sleeps so it sees CLOSED at once.
        futex_wake(self.tx.indices().data_waiters());
        futex_wake(self.rx.indices().space_waiters());
        if let Some(sock) = self.socket.take() {
            let _ = sock.shutdown(std::net::Shutdown::Both);
        }
        // Both ends have it mapped; the name is only needed for inspection
        // while the link runs, so whichever side closes first (or survives)
        // removes it, and a crash of the other side leaves nothing behind.
        self.region.remove();
        Ok(())
    }

    fn peer(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl Drop for ShmLink {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
