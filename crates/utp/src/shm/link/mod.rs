//! The duplex link: two rings in one region, a control block, and the
//! rendezvous socket kept open as a death notice.

use super::bytes::MappedBytes;
use super::clock::FrameClock;
use super::layout::{self, Control, SideField, state};
use super::region::Region;
use super::ring::{Consumer, Producer};
use super::sync::{Ordering, futex_wake};
use super::wait::WaitMode;
use crate::channel::{Channel, PeerInfo};
use crate::error::{Error, Result};
use crate::frame::{HEADER_LEN, Header, now_micros};
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;
use std::time::Duration;

mod liveness;
mod zerocopy;

pub use zerocopy::{Reservation, View};

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
    /// Frames sent: the last sequence number used.
    sent: u64,
    clock: FrameClock,
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
            sent: 0,
            clock: FrameClock::default(),
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

    /// The next frame's header: numbered 1, 2, 3, ... and timestamped.
    fn next_header(&mut self, message_type: u8, flags: u16) -> Header {
        self.sent += 1;
        Header::new(message_type, flags, self.sent, self.clock.now_micros())
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

impl Channel for ShmLink {
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.reserve(payload.len(), timeout)?
            .fill_and_commit(message_type, flags, payload);
        Ok(())
    }

    fn recv_timeout(
        &mut self,
        frame: &mut crate::frame::Frame,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let view = self.recv_view(timeout)?;
        frame.set(*view.header(), view.payload());
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
