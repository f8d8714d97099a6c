//! The duplex link: two rings in one region, a control block, and the
//! rendezvous socket kept open as a death notice.

use super::bytes::MappedBytes;
use super::layout::{self, Control, SideField, state};
use super::region::Region;
use super::ring::{Consumer, PAYLOAD_OFFSET, PIECE, Producer, STAMP_LEN, max_payload};
use super::sync::{Ordering, futex_wake};
use super::wait::WaitMode;
use crate::ProtocolReason;
use crate::channel::{Channel, PeerInfo, Readiness};
use crate::error::{Error, Result};
use crate::frame::Header;
use crate::frame::coarse_micros;
use crate::halves::Role;
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

mod batch;
mod events;
mod liveness;
#[cfg(test)]
mod tests;
mod zerocopy;

pub use zerocopy::{Reservation, View};

/// Which end of a link this is (hidden: only [`ShmLink::over_region`] takes it).
#[doc(hidden)]
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
    /// Frames sent: the last sequence number used (also the `messages`
    /// counter of our counters line).
    sent: u64,
    peer: PeerInfo,
    endpoint: String,
    closed: bool,
    /// When a poll that found nothing may next make `check_peer`'s system
    /// calls: once per wait slice (see `check_peer_now_and_then`).
    peer_check: crate::now_and_then::NowAndThen,
    gone: Option<(crate::error::GoneReason, String)>,
    /// What `utp stat` counts of this side's sends (see `publish`).
    counted: SentCounts,
    beats: u64,
    last_beat_us: u64,
    /// Whole, or one half of a split link (decides what `close` does).
    role: Role,
    /// Shared by the halves of a split link; unmapped when the last is gone.
    region: Arc<Region>,
    /// Where `utp stat` reads this link's waits, wake-ups and ring fill
    /// (set by [`Channel::attach_counters`]); this process's own memory.
    pub(crate) counters: Option<crate::stats::Counters>,
    /// Event-loop waiting, when both ends agreed on wake-up bytes.
    events: Option<events::Events>,
    /// What [`Channel::readiness`] reports as the idle limit (servers).
    idle_timeout: Option<Duration>,
    /// The last operation was a receive: the next send most likely
    /// answers a peer that is polling for it, and a small record is
    /// demoted once published (see [`crate::demote::RECORD_UP_TO`]) and
    /// asks for no lines ahead (`claim::ahead`).
    after_receive: bool,
    /// Records demoted, for the tests of when that happens.
    #[cfg(test)]
    demoted: u64,
    /// Records that asked for a later record's lines, for the tests of
    /// when that happens.
    #[cfg(test)]
    asked_ahead: u64,
    /// Clock reads of `send_batch` (tests: how many frames share one).
    #[cfg(test)]
    batch_clock_reads: u64,
}

/// The rings `side` writes and reads: the server produces ring 0, the
/// client ring 1.
fn rings(side: Side) -> (usize, usize) {
    match side {
        Side::Server => (0, 1),
        Side::Client => (1, 0),
    }
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
            .ok_or_else(|| Error::protocol(ProtocolReason::Corrupt, "region mapped at null"))?;
        // SAFETY: the region maps at least MIN_REGION_LEN page-aligned bytes
        // and `validate` below checks the full layout fits before any ring
        // is built; the region outlives `control` (declared last).
        let control = unsafe { Control::new(base) };
        let cap = control.validate(region.len())?;
        let (tx_ring, rx_ring) = rings(side);
        let data = |r: usize| {
            // SAFETY: validate() proved region.len() == DATA_OFFSET + 2*cap,
            // so ring r's data area [DATA_OFFSET + r*cap, +cap) is mapped,
            // 4096-aligned, and lives as long as the region, which outlives
            // the rings.
            unsafe { MappedBytes::new(region.as_ptr().add(layout::DATA_OFFSET + r * cap), cap) }
        };
        let tx = Producer::new(control.ring_indices(tx_ring), data(tx_ring))?;
        let rx = Consumer::new(control.ring_indices(rx_ring), data(rx_ring), max_payload)?;
        let me = side as usize;
        control
            .side_u32(me, SideField::Pid)
            .store(std::process::id(), Ordering::Relaxed);
        control
            .side_u32(me, SideField::Sleeps)
            .store(u32::from(wait != WaitMode::Spin), Ordering::Relaxed);
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
            peer,
            endpoint,
            closed: false,
            peer_check: crate::now_and_then::NowAndThen::new(crate::shm::wait::SLICE),
            gone: None,
            counted: SentCounts::default(),
            beats: 0,
            last_beat_us: 0,
            role: Role::Whole,
            region: Arc::new(region),
            counters: None,
            events: None,
            idle_timeout: None,
            after_receive: false,
            #[cfg(test)]
            demoted: 0,
            #[cfg(test)]
            asked_ahead: 0,
            #[cfg(test)]
            batch_clock_reads: 0,
        };
        if side == Side::Client {
            // The server wrote its side before LINK_ATTACH.
            link.learn_peer();
        }
        link.heartbeat();
        Ok(link)
    }

    /// Reads whether the peer may sleep (its `sleeps` word, written before
    /// its state went READY): if it only spins, publishing and releasing
    /// skip the `[WAKE]` fence. Anything but 0 counts as "may sleep".
    pub(crate) fn learn_peer(&mut self) {
        let sleeps = self
            .control
            .side_u32(self.peer_index(), SideField::Sleeps)
            .load(Ordering::Acquire)
            != 0;
        self.tx.set_peer_sleeps(sleeps);
        self.rx.set_peer_sleeps(sleeps);
    }

    /// Turns on what both ends agreed to in the handshake (`features`
    /// of `LINK_ATTACH`): wake-up bytes, records in pieces, keyed stamps
    /// (each ring's key read once, here, from the control header).
    pub(crate) fn enable_features(&mut self, features: u32) {
        if features & super::rendezvous::FEATURE_WAKE_BYTES != 0 {
            self.enable_events();
        }
        let pieces = features & super::rendezvous::FEATURE_PIECES != 0;
        self.tx.set_pieces(pieces);
        self.rx.set_pieces(pieces);
        if features & super::rendezvous::FEATURE_KEYED_STAMPS != 0 {
            let (tx_ring, rx_ring) = rings(self.side);
            self.tx.set_stamp_key(Some(self.control.stamp_key(tx_ring)));
            self.rx.set_stamp_key(Some(self.control.stamp_key(rx_ring)));
        }
    }

    /// Lets the peer wake this end with a byte on the socket (both ends
    /// agreed in the handshake), which gives the link a readiness descriptor.
    fn enable_events(&mut self) {
        if self.socket.is_some() {
            crate::wake::register_for_barriers();
            self.events = Some(events::Events::new(self.wait != WaitMode::Spin));
        }
    }

    /// The idle limit [`Channel::readiness`] reports (servers close links
    /// idle for longer).
    pub(crate) fn set_idle_timeout(&mut self, idle: Option<Duration>) {
        self.idle_timeout = idle;
    }

    /// One end of a link over a region whose control block is already
    /// initialised ([`Control::init`](super::layout::Control::init)), without a
    /// rendezvous socket: liveness then rests on the peer's state word only,
    /// and the peer is assumed to sleep. For pre-arranged regions and tests
    /// (hidden: regions are not part of the API).
    #[doc(hidden)]
    pub fn over_region(
        region: Region,
        side: Side,
        wait: WaitMode,
        max_payload: usize,
    ) -> Result<ShmLink> {
        let endpoint = region.location().to_string();
        let mut link = ShmLink::new(
            region,
            side,
            None,
            wait,
            max_payload,
            PeerInfo::default(),
            endpoint,
        )?;
        link.tx.set_peer_sleeps(true);
        link.rx.set_peer_sleeps(true);
        Ok(link)
    }

    /// Turns on `features` (`rendezvous::FEATURE_*`) as a handshake that
    /// agreed to them does, for a link over a pre-arranged region
    /// ([`over_region`](Self::over_region)) whose other end does the same
    /// (hidden, like `over_region`). Keyed stamps take the keys in the
    /// region's control header.
    #[doc(hidden)]
    pub fn agree_to(&mut self, features: u32) {
        self.enable_features(features);
    }

    /// Gives the ring space of frames already received back to the sender
    /// now. utp does this on its own at the next receive or wait (so it
    /// never delays a reply); call it when you stop receiving for a while.
    pub fn flush_received(&mut self) {
        self.rx.flush();
        self.count_consumer_wakes();
    }

    /// Moves the consumer's wake-ups into the counters, if any.
    pub(crate) fn count_consumer_wakes(&mut self) {
        if let Some(c) = &self.counters {
            let woke = self.rx.take_wakes();
            if woke != 0 {
                c.add_shared(crate::stats::Counter::Wakeups, woke);
            }
        }
    }

    /// The region this link lives in (hidden: for tests and `utp inspect`).
    #[doc(hidden)]
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Capacity of each ring in bytes.
    pub fn capacity(&self) -> usize {
        self.tx.capacity() + super::ring::SLACK
    }

    /// The largest payload one frame can carry on this link.
    pub fn max_frame_payload(&self) -> usize {
        max_payload(self.capacity())
    }

    fn peer_index(&self) -> usize {
        1 - self.side as usize
    }

    /// Records a heartbeat in our counters line.
    pub(crate) fn heartbeat(&mut self) {
        self.beat_at(coarse_micros());
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
        self.flush_counts();
    }

    /// Writes what this side has sent where other processes look now: the
    /// frames and bytes in its counters line and the ring's write position
    /// in its `tail` word (for `utp inspect`), the ring's fill for `utp
    /// stat`. utp does this with each heartbeat (at most every
    /// [`SLICE`](crate::shm::SLICE) while sending), before a wait and at
    /// close, not with every frame (the position also every sixteenth of
    /// the ring, `ring::SHOW_POSITION_EVERY`); call it when you stop
    /// sending for a while and want the last frames shown. Two stores per
    /// frame cost a 64-byte stream a sixth of its rate (docs/benchmarks/journal.md,
    /// 2026-12-05, afternoon): a producer streaming into lines its consumer
    /// holds runs short of stores. The receive half of a split link sends
    /// nothing and leaves the counts to the send half.
    ///
    /// ```
    /// # fn main() -> utp::Result<()> {
    /// // A file-backed link, so that its region has a name to inspect.
    /// let path = std::env::temp_dir().join(format!("doc-flush-counts-{}", std::process::id()));
    /// let url: utp::Endpoint = format!("file://{}", path.display()).parse()?;
    /// let mut listener = utp::shm::listen(&url, &utp::Options::default())?;
    /// let client = std::thread::spawn({
    ///     let url = url.clone();
    ///     move || utp::shm::connect(&url, &utp::Options::default())
    /// });
    /// let _server = listener.accept_link(None)?;
    /// let mut client = client.join().unwrap()?;
    /// utp::Channel::send(&mut client, utp::frame::message_type::DATA, 0, b"last one")?;
    /// client.flush_counts();
    /// let state = utp::shm::inspect::link_state(client.region().location())?;
    /// assert_eq!(state.sides[1].messages, 1);
    /// # Ok(()) }
    /// ```
    pub fn flush_counts(&self) {
        if self.role == Role::Receiver {
            return;
        }
        if let Some(counters) = &self.counters {
            // For `utp stat`: the send ring's fill as this side last saw it
            // (a level, so sampled, not kept with every frame).
            counters.set(crate::stats::Counter::RingUsed, self.tx.used());
        }
        let me = self.side as usize;
        let c = &self.control;
        c.side_u64(me, SideField::Messages)
            .store(self.sent, Ordering::Relaxed);
        c.side_u64(me, SideField::Bytes)
            .store(self.tx.record_bytes(), Ordering::Relaxed);
        self.tx.show_position();
    }

    /// Encodes the next frame's header (numbered 1, 2, 3, ..., stamped
    /// `now`, a [`coarse_micros`] read) for `payload` into the record at
    /// `offset`, then publishes the record. `payload` is the private bytes
    /// the checksum covers.
    ///
    /// The common frame (copied from a private buffer, one piece, no
    /// checksum) builds its header in registers; every other kind goes
    /// out of line ([`publish_other`](Self::publish_other)). A header that
    /// a call takes by reference or by value (it is 32 bytes: passed in
    /// memory) is stored on the stack before the branch that needs it, for
    /// every frame, and stores are what a producer streaming into lines
    /// its consumer owns runs short of (they retire in order behind the
    /// misses).
    #[inline(always)]
    fn publish(
        &mut self,
        offset: usize,
        rec: usize,
        message_type: u8,
        flags: u16,
        payload: Payload<'_>,
        now: u64,
    ) {
        let len = self.write_record(offset, rec, message_type, flags, payload, now);
        self.after_write(offset, rec, len, now);
    }

    /// [`publish`](Self::publish)'s first half: the header and payload
    /// written into the record at `offset`, nothing published yet.
    /// Returns the payload's length.
    #[inline(always)]
    fn write_record(
        &mut self,
        offset: usize,
        rec: usize,
        message_type: u8,
        flags: u16,
        payload: Payload<'_>,
        now: u64,
    ) -> usize {
        match payload {
            Payload::Private(bytes)
                if flags & crate::frame::flags::CHECKSUM == 0
                    && (rec <= PIECE || !self.tx.pieces()) =>
            {
                let header = self.next_header(message_type, flags, bytes.len(), now);
                // Payload and header in one bounds-checked write, ordered so
                // the line the consumer polls changes hands once (see
                // `write_frame`).
                self.tx.bytes().write_frame(offset, &header, bytes);
                bytes.len()
            }
            other => self.publish_other(offset, rec, message_type, flags, other, now),
        }
    }

    /// [`publish`](Self::publish)'s write for the frames it does not
    /// write itself: a checksum, a frame in pieces, a payload already in
    /// the ring. Returns the payload's length.
    #[inline(never)]
    fn publish_other(
        &mut self,
        offset: usize,
        rec: usize,
        message_type: u8,
        flags: u16,
        payload: Payload<'_>,
        now: u64,
    ) -> usize {
        let len = match payload {
            Payload::Private(bytes) => bytes.len(),
            Payload::InRing(len) => len,
        };
        let mut header = self.next_header(message_type, flags, len, now);
        if header.has_checksum() {
            header.checksum = self.checksum(header, offset, payload);
        }
        match payload {
            Payload::Private(bytes) if rec <= PIECE || !self.tx.pieces() => {
                self.tx.bytes().write_frame(offset, &header, bytes)
            }
            Payload::Private(bytes) => self.write_in_pieces(offset, &header, bytes),
            Payload::InRing(_) => self.tx.bytes().write_header(offset + STAMP_LEN, &header),
        }
        len
    }

    /// The header of the next frame, numbered and stamped `now`, for a
    /// payload of `len` bytes (at most the ring's capacity: it fits in a
    /// u32).
    #[inline(always)]
    fn next_header(&mut self, message_type: u8, flags: u16, len: usize, now: u64) -> Header {
        self.sent += 1;
        Header {
            payload_length: len as u32,
            ..Header::new(message_type, flags, self.sent, now)
        }
    }

    /// What follows the write of every frame: the stamp that publishes
    /// it, then the bookkeeping (the peer is already reading).
    #[inline(always)]
    fn after_write(&mut self, offset: usize, rec: usize, len: usize, now: u64) {
        self.commit_record(offset, rec);
        // Everything else comes after the stamp: the peer is already
        // reading while this side does its bookkeeping. The counts reach
        // the counters line with the heartbeat (`flush_counts`).
        if self.count_bytes(len) {
            self.store_counts();
        }
        self.after_sends(now);
    }

    /// Adds a frame of `len` payload bytes to the bytes counted for `utp
    /// stat`, if this link is counted; whether it is.
    #[inline(always)]
    fn count_bytes(&mut self, len: usize) -> bool {
        let counted = self.counters.is_some();
        if counted {
            self.counted.bytes += (crate::frame::HEADER_LEN + len) as u64;
        }
        counted
    }

    /// Publishes the record of `rec` bytes written at `offset` (its stamp),
    /// and pushes it towards the peer if it answers a frame just received.
    #[inline(always)]
    fn commit_record(&mut self, offset: usize, rec: usize) {
        self.tx.commit(rec);
        if self.after_receive {
            self.after_receive = false;
            if rec <= crate::demote::RECORD_UP_TO {
                self.tx.bytes().demote(offset, rec);
                #[cfg(test)]
                {
                    self.demoted += 1;
                }
            }
        }
    }

    /// Stores this side's frames and bytes sent (as `self.sent` and
    /// `self.counted` have them) in its counters for `utp stat`, in this
    /// process's own memory. Counted here rather than by the counting
    /// wrapper (`stats::counted`), which leaves a shared-memory link's
    /// sends to it: the counts are stored from this side's own, not read
    /// back from the block and added to, and zero-copy sends are counted
    /// too.
    #[inline(always)]
    fn store_counts(&self) {
        if let Some(counters) = &self.counters {
            counters.set(
                crate::stats::Counter::FramesSent,
                self.sent - self.counted.frames_before,
            );
            counters.set(crate::stats::Counter::BytesSent, self.counted.bytes);
        }
    }

    /// The bookkeeping after one or more frames are published at time
    /// `now`: whether the peer started sleeping, the event-loop wake-up it
    /// asked for, the heartbeat.
    #[inline(always)]
    fn after_sends(&mut self, now: u64) {
        if !self.tx.peer_sleeps() {
            self.watch_peer_sleeps();
        }
        let event_due = self.tx.take_event_due();
        if event_due
            || self.tx.has_wakes()
            || now.wrapping_sub(self.last_beat_us) >= super::wait::SLICE.as_micros() as u64
        {
            self.after_publish(now, event_due);
        }
    }

    /// Writes a frame of more than one [`PIECE`] into the record at
    /// `offset`, publishing a progress stamp after each piece so the
    /// consumer copies it while the next is written (the final stamp is
    /// `commit`'s). The first piece holds the header.
    #[inline(never)]
    fn write_in_pieces(&self, offset: usize, header: &Header, payload: &[u8]) {
        let bytes = self.tx.bytes();
        // The caller checked the record is over a piece: 40 + len > PIECE.
        let mut at = PIECE - PAYLOAD_OFFSET;
        bytes.write_frame(offset, header, &payload[..at]);
        self.tx.publish_progress(PIECE);
        // Every progress stays short of the record's end (at < len).
        while payload.len() - at > PIECE {
            self.tx
                .write(offset + PAYLOAD_OFFSET + at, &payload[at..at + PIECE]);
            at += PIECE;
            self.tx.publish_progress(PAYLOAD_OFFSET + at);
        }
        self.tx.write(offset + PAYLOAD_OFFSET + at, &payload[at..]);
    }

    /// The CRC-32C of a frame about to be published, over its payload in
    /// our private buffer or already in the reserved record.
    #[inline(never)]
    fn checksum(&self, header: Header, offset: usize, payload: Payload<'_>) -> u32 {
        match payload {
            Payload::Private(bytes) => header.checksum_of(bytes),
            Payload::InRing(len) => {
                // SAFETY: the reservation `offset..offset+rec` is ours (not
                // yet published) and inside the data area; the view ends
                // before this function returns.
                let view = unsafe { self.tx.bytes().view(offset + PAYLOAD_OFFSET, len) };
                checksum_of_view(&header, view)
            }
        }
    }

    /// A publish's occasional work, out of line: the event-loop wake-up
    /// the peer asked for (`event_due`), the count of futex wake-ups sent
    /// for `utp stat`, the heartbeat.
    #[cold]
    #[inline(never)]
    fn after_publish(&mut self, now: u64, event_due: bool) {
        if event_due {
            self.send_wake();
        }
        if now.wrapping_sub(self.last_beat_us) >= super::wait::SLICE.as_micros() as u64 {
            self.beat_at(now);
        }
        let woke = self.tx.take_wakes();
        if woke != 0
            && let Some(counters) = &self.counters
        {
            counters.add_shared(crate::stats::Counter::Wakeups, woke);
        }
    }
}

/// A side's sends as `utp stat` counts them, from the moment counters were
/// attached (`Channel::attach_counters`).
#[derive(Debug, Default, Clone, Copy)]
struct SentCounts {
    /// Bytes of the frames sent since: header and payload.
    bytes: u64,
    /// Frames sent before (the frames counted are `sent` less these).
    frames_before: u64,
}

/// Where the payload whose checksum a header covers is.
#[derive(Clone, Copy)]
enum Payload<'a> {
    /// In a private buffer (the copying send path).
    Private(&'a [u8]),
    /// Already in the reserved record (the zero-copy path), this long.
    InRing(usize),
}

/// `header.checksum_of` over a payload that is already in the ring (its
/// `payload_length` set): computed over private copies taken chunk by
/// chunk, never over the shared bytes in place.
fn checksum_of_view(header: &Header, view: super::bytes::ShmSlice<'_>) -> u32 {
    let mut crc = crate::frame::header_crc(&header.words());
    let mut buf = [0u8; 4096];
    let mut at = 0;
    while at < view.len() {
        let n = view.sub(at, buf.len()).copy_to(&mut buf);
        crc = crate::frame::crc32c_append(crc, &buf[..n]);
        at += n;
    }
    crc
}

impl ShmLink {
    /// Makes this link the receive half and returns the send half (see
    /// [`Channel::split`]): the send half takes the send ring, this one
    /// keeps the receive ring. Each half gets the other ring's end too, as
    /// a fresh object it never touches (the half types expose no call that
    /// would), so neither shares mutable state with the other.
    fn split_off_sender(&mut self) -> Result<ShmLink> {
        let base = NonNull::new(self.region.as_ptr()).ok_or_else(|| {
            Error::protocol(crate::ProtocolReason::Unexpected, "region mapped at null")
        })?;
        // SAFETY: the same mapping this link's control block was built on,
        // validated then; the send half holds the region (Arc) for as long
        // as it holds this Control.
        let control = unsafe { Control::new(base) };
        let cap = self.tx.capacity() + super::ring::SLACK;
        let (tx_ring, rx_ring) = rings(self.side);
        let data = |r: usize| {
            // SAFETY: as in `new`: the region was validated to hold both
            // rings of `cap` bytes at DATA_OFFSET; it outlives the rings
            // (the halves hold it through the Arc, declared last).
            unsafe {
                MappedBytes::new(self.region.as_ptr().add(layout::DATA_OFFSET + r * cap), cap)
            }
        };
        // Idle ends: the send half's receive ring, the receive half's send ring.
        let idle_rx = Consumer::new(
            control.ring_indices(rx_ring),
            data(rx_ring),
            self.rx.max_payload(),
        )?;
        let idle_tx = Producer::new(control.ring_indices(tx_ring), data(tx_ring))?;
        let socket = match &self.socket {
            Some(sock) => Some(
                sock.try_clone()
                    .map_err(|e| Error::io("duplicate the link's rendezvous socket", e))?,
            ),
            None => None,
        };
        let sender = ShmLink {
            tx: std::mem::replace(&mut self.tx, idle_tx),
            rx: idle_rx,
            control,
            side: self.side,
            socket,
            wait: self.wait,
            sent: self.sent,
            peer: self.peer.clone(),
            endpoint: self.endpoint.clone(),
            closed: self.closed,
            peer_check: crate::now_and_then::NowAndThen::new(crate::shm::wait::SLICE),
            gone: self.gone.clone(),
            counted: self.counted,
            beats: self.beats,
            last_beat_us: self.last_beat_us,
            role: Role::Sender,
            region: self.region.clone(),
            counters: self.counters.clone(),
            // Event-loop waiting is the receiving side's (the receive half
            // keeps it); the send half's wake-up bytes go out on its own
            // descriptor of the socket.
            events: None,
            idle_timeout: None,
            // The send half never receives, so it never demotes.
            after_receive: false,
            #[cfg(test)]
            demoted: 0,
            #[cfg(test)]
            asked_ahead: 0,
            #[cfg(test)]
            batch_clock_reads: 0,
        };
        self.role = Role::Receiver;
        Ok(sender)
    }
}

impl Channel for ShmLink {
    // Inlined into the counting wrapper (`stats::count_channel`), which
    // calls the link directly.
    #[inline(always)]
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        let (offset, rec) = self.reserve_raw(payload.len(), timeout)?;
        let now = coarse_micros();
        self.publish(
            offset,
            rec,
            message_type,
            flags,
            Payload::Private(payload),
            now,
        );
        Ok(())
    }

    fn send_batch(&mut self, message_type: u8, flags: u16, payloads: &[&[u8]]) -> Result<()> {
        self.publish_batch(message_type, flags, payloads, true).1
    }

    fn try_send_batch(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> Result<usize> {
        match self.publish_batch(message_type, flags, payloads, false) {
            (sent, Ok(()) | Err(Error::Full)) => Ok(sent),
            (0, Err(e)) => Err(e),
            // The failure is met again by the next call, which starts there.
            (sent, Err(_)) => Ok(sent),
        }
    }

    #[inline(always)]
    fn recv_timeout(
        &mut self,
        frame: &mut crate::frame::Frame,
        timeout: Option<Duration>,
    ) -> Result<()> {
        // `receive`, spelled out: through its closure this path cost
        // about 25 more instructions a frame (callgrind).
        self.check_receivable()?;
        if self.take_into(frame)? {
            return Ok(());
        }
        self.wait_then_take(timeout, true, |l| Ok(l.take_into(frame)?.then_some(())))
    }

    fn close(&mut self) -> Result<()> {
        self.close_link()
    }

    fn peer(&self) -> PeerInfo {
        self.peer.clone()
    }

    fn attach_counters(&mut self, counters: &crate::stats::Counters) {
        counters.set(
            crate::stats::Counter::RingCapacity,
            self.tx.capacity() as u64,
        );
        // This link counts its own sends from here on (see `publish`).
        self.counted = SentCounts {
            bytes: 0,
            frames_before: self.sent,
        };
        self.counters = Some(counters.clone());
    }

    fn readiness(&self) -> Option<Readiness<'_>> {
        Some(Readiness {
            fd: self.readiness_fd()?,
            frame_deadline: None,
            idle_timeout: self.idle_timeout,
        })
    }

    fn try_recv(&mut self, frame: &mut crate::frame::Frame) -> Result<bool> {
        self.try_recv_frame(frame)
    }

    fn try_send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<bool> {
        match self.send_timeout(message_type, flags, payload, Some(Duration::ZERO)) {
            Ok(()) => Ok(true),
            Err(Error::Full | Error::Timeout { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // The send ring to the send half, the receive ring to the receive half.
    fn split(mut self: Box<Self>) -> Result<(crate::halves::SendHalf, crate::halves::RecvHalf)> {
        let sender = self.split_off_sender()?;
        Ok(crate::halves::halves(sender, *self))
    }

    fn into_any(self: Box<Self>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(self)
    }

    fn as_any(&self) -> Option<&(dyn std::any::Any + Send)> {
        Some(self)
    }
}

impl ShmLink {
    /// The copying receive: the next frame into `frame` if one is
    /// published (`Ok(false)` if not), its space released, then its
    /// checksum verified on the private copy (the peer cannot change what
    /// we checked).
    #[inline(always)]
    fn take_into(&mut self, frame: &mut crate::frame::Frame) -> Result<bool> {
        let (header, payload) = frame.parts_mut();
        if !self.rx.take_copy(header, payload)? {
            return Ok(false);
        }
        self.after_receive = true;
        crate::frame::verify_checksum(frame.header, frame.payload())?;
        Ok(true)
    }

    fn close_link(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        if self.role != Role::Whole {
            return self.close_half();
        }
        self.flush_counts();
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
        // A file region's name is only needed while the link runs, so
        // whichever side closes first (or survives) removes it. memfd and
        // System V regions have none.
        self.region.remove();
        Ok(())
    }

    /// Closing one half of a split link. The link has one close word per
    /// side, so the send half's close is the link's: the peer reads what
    /// was sent, then `PeerGone` (and its later sends fail); this side's
    /// receive half still reads what the peer sent before. The receive
    /// half's close only stops receiving. Each half holds a descriptor of
    /// the rendezvous socket, so the peer sees it hang up once both are gone.
    fn close_half(&mut self) -> Result<()> {
        if self.role == Role::Sender {
            self.flush_counts();
            let me = self.side as usize;
            self.control
                .side_u32(me, SideField::State)
                .store(state::CLOSED, Ordering::Release);
            // Wake the peer wherever it sleeps so it sees CLOSED at once
            // (the receive ring's words are the same shared words for the
            // idle end this half holds).
            futex_wake(self.tx.indices().data_waiters());
            futex_wake(self.rx.indices().space_waiters());
            self.region.remove();
        } else {
            // Give back what we read, so a peer waiting for room is not stuck.
            self.rx.flush();
        }
        self.socket = None;
        Ok(())
    }
}

impl Drop for ShmLink {
    fn drop(&mut self) {
        let _ = self.close_link();
    }
}
