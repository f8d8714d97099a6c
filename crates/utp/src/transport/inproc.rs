//! `inproc://NAME`: channels between threads of one process.
//!
//! Frames travel as owned payload vectors, beside the header fields a
//! receiver cannot work out, over bounded crossbeam channels; no bytes are
//! encoded, but sequence numbers, timestamps and the payload limit behave
//! exactly as on other transports, so code tested over `inproc://` behaves
//! the same over `shm://` or `unix://`. A receiver hands the payload
//! vector its frame held back to the sender (module `spares`: small ones
//! in batches), so a steady flow of frames allocates nothing.

use crate::GoneReason;
use crate::channel::{Channel, Listener, Options, PeerInfo, Readiness};
use crate::error::{Error, Result};
use crate::frame::{Frame, Header, Stamper};
use crate::halves::{RecvHalf, SendHalf};
use crate::transport::{queue, spares};
use crate::wake::Doorbell;
use crossbeam_channel::{Receiver, Sender, bounded};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Frames a sender may have in flight before `send` waits.
pub(crate) const QUEUE_DEPTH: usize = 1024;
/// The room a send that finds its queue full waits for while it looks
/// (`queue::send`): a sixteenth of the queue for a payload under
/// [`spares::SMALLEST`], one slot for a larger one.
///
/// Small frames are where a sender that took each slot as it freed
/// slowed its receiver (a 64 B stream at half the rate it has with a
/// batch, docs/benchmarks/journal.md, 2026-12-06). Larger ones wait for a single
/// slot at every pause, as before: a receiver of 4 KiB frames frees a
/// sixteenth of the queue more slowly than the looks last, so a batch
/// would mostly mean waiting out the window, and no gain was measured
/// there.
pub(crate) fn room_awaited(payload_len: usize) -> usize {
    if payload_len < spares::SMALLEST {
        QUEUE_DEPTH / 16
    } else {
        1
    }
}

/// Clients that may wait for `accept`.
const BACKLOG: usize = 128;

/// A frame in the queue: its payload and the header fields a receiver
/// cannot work out (the length is the vector's, magic and version are
/// implied). 48 bytes where the whole header beside the vector was 56,
/// which with crossbeam's stamp filled a 64-byte slot per frame.
#[derive(Debug)]
struct Message {
    payload: Vec<u8>,
    sequence: u64,
    timestamp_us: u64,
    checksum: u32,
    flags: u16,
    message_type: u8,
}

/// Bytes of one queued frame (its payload vector and header fields): the
/// raw in-process baseline queues elements of this size too.
pub(crate) const MESSAGE_BYTES: usize = std::mem::size_of::<Message>();

// Kept at 48 bytes: one more field would make crossbeam's slot (the
// message and an 8-byte stamp) a whole line per frame again.
const _: () = assert!(MESSAGE_BYTES <= 48);

impl Message {
    fn new(header: Header, payload: Vec<u8>) -> Self {
        Message {
            payload,
            sequence: header.sequence,
            timestamp_us: header.timestamp_us,
            checksum: header.checksum,
            flags: header.flags,
            message_type: header.message_type,
        }
    }
}

/// A listener's queue of new channels and the doorbell its readiness is.
type Acceptor = (Sender<InprocChannel>, Arc<Doorbell>);

fn registry() -> &'static Mutex<HashMap<String, Acceptor>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Acceptor>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// One end of an in-process channel.
#[derive(Debug)]
pub struct InprocChannel {
    name: String,
    tx: Option<Sender<Message>>,
    rx: Receiver<Message>,
    /// Buffers our peer's receive handed back, for our sends to fill.
    spare: spares::Supply,
    /// Where our receive hands back the buffers its frames held.
    give_back: spares::Returns,
    stamper: Stamper,
    max_payload: usize,
    /// Rung by the peer when it queues a frame for us (our readiness).
    bell: Arc<Doorbell>,
    /// The peer's doorbell, rung after each send and at close.
    peer_bell: Arc<Doorbell>,
}

impl InprocChannel {
    /// Two connected ends.
    fn pair(name: &str, max_payload: usize) -> Result<(Self, Self)> {
        let (a_tx, b_rx) = bounded(QUEUE_DEPTH);
        let (b_tx, a_rx) = bounded(QUEUE_DEPTH);
        // A's sends take the buffers B's receive hands back, and the reverse.
        let (b_back, a_spare) = spares::queue(QUEUE_DEPTH);
        let (a_back, b_spare) = spares::queue(QUEUE_DEPTH);
        let (a_bell, b_bell) = (Arc::new(Doorbell::new()?), Arc::new(Doorbell::new()?));
        let end =
            |(tx, rx), (spare, give_back), bell: &Arc<Doorbell>, peer_bell: &Arc<Doorbell>| {
                InprocChannel {
                    name: name.to_string(),
                    tx: Some(tx),
                    rx,
                    spare,
                    give_back,
                    stamper: Stamper::default(),
                    max_payload,
                    bell: bell.clone(),
                    peer_bell: peer_bell.clone(),
                }
            };
        Ok((
            end((a_tx, a_rx), (a_spare, a_back), &a_bell, &b_bell),
            end((b_tx, b_rx), (b_spare, b_back), &b_bell, &a_bell),
        ))
    }

    #[inline]
    fn deliver(&mut self, message: Message, frame: &mut Frame) -> Result<()> {
        let payload = message.payload;
        // The sender checked the length against its own limit (at most
        // u32::MAX); this end's may be lower.
        let payload_length = payload.len() as u32;
        if payload.len() > self.max_payload {
            return Err(crate::frame::DecodeError::TooLarge {
                length: payload_length,
                limit: self.max_payload,
            }
            .into());
        }
        frame.header = Header {
            message_type: message.message_type,
            flags: message.flags,
            payload_length,
            sequence: message.sequence,
            timestamp_us: message.timestamp_us,
            checksum: message.checksum,
        };
        let held = std::mem::replace(frame.payload_mut(), payload);
        self.give_back.give_back(held, self.max_payload);
        Ok(())
    }

    fn gone(&self) -> Error {
        Error::peer_gone(
            GoneReason::Closed,
            format!("inproc://{} peer dropped its end", self.name),
        )
    }
}

impl InprocChannel {
    fn send_frame(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: Option<u64>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(Error::Closed);
        };
        if payload.len() > self.max_payload.min(u32::MAX as usize) {
            return Err(Error::TooLarge {
                len: payload.len(),
                limit: self.max_payload.min(u32::MAX as usize),
                transport: "inproc (raise the max_payload option, ?max_payload=N)",
            });
        }
        // The header's fields travel beside the vector: nothing to encode.
        let header = match answers {
            Some(request) => self
                .stamper
                .next_reply_header(message_type, flags, payload, request),
            None => self.stamper.next_header(message_type, flags, payload),
        };
        let message = Message::new(header, self.spare.filled(payload));
        let room = room_awaited(payload.len());
        queue::send(
            tx,
            message,
            room,
            timeout,
            "room in the inproc queue",
            || self.gone(),
        )?;
        self.peer_bell.ring();
        Ok(())
    }
}

impl Channel for InprocChannel {
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.send_frame(message_type, flags, payload, None, timeout)
    }

    fn reply_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: u64,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.send_frame(message_type, flags, payload, Some(answers), timeout)
    }

    fn sent_sequence(&self) -> Option<u64> {
        self.stamper.last_sent()
    }

    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        // A frame already queued goes straight from crossbeam's answer to
        // the caller's frame. Through `queue::recv` the 48-byte message is
        // moved out of two wrappers first, each move reading with wide
        // loads what was just stored with narrower ones, which waits for
        // those stores (docs/benchmarks/journal.md, 2026-12-07, morning).
        if let Ok(message) = self.rx.try_recv() {
            return self.deliver(message, frame);
        }
        let message = queue::recv(&self.rx, timeout, "a frame", || self.gone())?;
        self.deliver(message, frame)
    }

    fn try_recv(&mut self, frame: &mut Frame) -> Result<bool> {
        match queue::try_take(&self.rx, &self.bell, || self.gone())? {
            Some(message) => self.deliver(message, frame).map(|()| true),
            None => Ok(false),
        }
    }

    /// An eventfd the peer rings when it queues a frame for a receiver
    /// that found its queue empty, and when it closes. A receiver asks to
    /// be rung only once this descriptor has been handed out: one that
    /// polls with `try_recv` and never waits on it costs its peer no
    /// `write` per frame (see `Doorbell::hand_out`).
    fn readiness(&self) -> Option<Readiness<'_>> {
        Some(Readiness {
            fd: self.bell.hand_out(),
            frame_deadline: None,
            idle_timeout: None,
        })
    }

    fn close(&mut self) -> Result<()> {
        if self.tx.take().is_some() {
            self.peer_bell.ring_always();
        }
        Ok(())
    }

    fn peer(&self) -> PeerInfo {
        PeerInfo {
            pid: Some(std::process::id()),
            address: Some(format!("inproc://{}", self.name)),
            ..PeerInfo::default()
        }
    }

    // Two crossbeam channels: the send half takes the sender, the receive
    // half the receiver. Dropping the send half disconnects the peer's
    // receiver once it has drained the queue: a half-close. The queue to us
    // stays open until both halves are gone.
    fn split(self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        // Taken field by field (the type closes on drop): with its sender
        // taken, dropping what is left of `whole` rings nobody.
        let mut whole = *self;
        let sender = InprocChannel {
            name: whole.name.clone(),
            tx: whole.tx.take(),
            // Never read (the send half has no receive call); held so that
            // dropping the receive half alone does not fail the peer's sends.
            rx: whole.rx.clone(),
            spare: std::mem::replace(&mut whole.spare, spares::Supply::unconnected()),
            // Never used (it receives nothing): a queue with no reader.
            give_back: spares::Returns::unconnected(),
            stamper: std::mem::take(&mut whole.stamper),
            max_payload: whole.max_payload,
            // The send half rings the peer; its own doorbell is the receive
            // half's readiness (a copy here only means a spurious wake-up).
            bell: whole.bell.clone(),
            peer_bell: whole.peer_bell.clone(),
        };
        let receiver = InprocChannel {
            name: whole.name.clone(),
            tx: None,
            rx: whole.rx.clone(),
            // Never used (it sends nothing): a queue with no writer, so
            // buffers the peer hands back stay with the send half alone,
            // and are freed once it is gone.
            spare: spares::Supply::unconnected(),
            give_back: std::mem::replace(&mut whole.give_back, spares::Returns::unconnected()),
            stamper: Stamper::default(),
            max_payload: whole.max_payload,
            bell: whole.bell.clone(),
            peer_bell: whole.peer_bell.clone(),
        };
        Ok(crate::halves::halves(sender, receiver))
    }

    fn into_any(self: Box<Self>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(self)
    }

    fn as_any(&self) -> Option<&(dyn std::any::Any + Send)> {
        Some(self)
    }
}

impl Drop for InprocChannel {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Accepts in-process channels at `inproc://NAME`.
#[derive(Debug)]
pub struct InprocListener {
    name: String,
    incoming: Receiver<InprocChannel>,
    bell: Arc<Doorbell>,
    registered: bool,
}

/// Registers `name`; fails if another listener in this process holds it.
pub(crate) fn listen(name: &str) -> Result<InprocListener> {
    let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
    if map.contains_key(name) {
        return Err(Error::InUse {
            endpoint: format!("inproc://{name}"),
            hint: Some("another listener in this process".into()),
        });
    }
    let (tx, rx) = bounded(BACKLOG);
    let bell = Arc::new(Doorbell::new()?);
    map.insert(name.to_string(), (tx, bell.clone()));
    Ok(InprocListener {
        name: name.to_string(),
        incoming: rx,
        bell,
        registered: true,
    })
}

/// Connects to the listener registered as `name`.
pub(crate) fn connect(name: &str, options: &Options) -> Result<InprocChannel> {
    let map = registry().lock().unwrap_or_else(|p| p.into_inner());
    let not_found = |reason: &str| Error::NotFound {
        endpoint: format!("inproc://{name}"),
        reason: reason.to_string(),
    };
    let (acceptor, bell) = map
        .get(name)
        .ok_or_else(|| not_found("no listener with that name in this process"))?;
    let (ours, theirs) = InprocChannel::pair(name, options.max_payload)?;
    acceptor
        .try_send(theirs)
        .map_err(|_| not_found("the listener's backlog is full or it is closing"))?;
    bell.ring();
    Ok(ours)
}

impl Listener for InprocListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        if !self.registered {
            return Err(Error::Closed);
        }
        let channel = queue::recv(&self.incoming, timeout, "a client to connect", || {
            Error::Closed
        })?;
        Ok(Box::new(channel))
    }

    fn try_accept(&mut self) -> Result<Option<Box<dyn Channel>>> {
        if !self.registered {
            return Err(Error::Closed);
        }
        Ok(
            queue::try_take(&self.incoming, &self.bell, || Error::Closed)?
                .map(|channel| Box::new(channel) as Box<dyn Channel>),
        )
    }

    /// An eventfd `connect` rings after queueing a new channel.
    fn readiness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.bell.hand_out())
    }

    fn endpoint(&self) -> String {
        format!("inproc://{}", self.name)
    }

    fn close(&mut self) -> Result<()> {
        if std::mem::take(&mut self.registered) {
            let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
            map.remove(&self.name);
        }
        Ok(())
    }
}

impl Drop for InprocListener {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::message_type;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn pair() -> (Box<dyn Channel>, Box<dyn Channel>) {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let url = format!(
            "inproc://spares-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut listener = crate::listen(&url).unwrap();
        let client = crate::connect(&url).unwrap();
        (client, listener.accept().unwrap())
    }

    /// A receiver that polls and never took its readiness descriptor is
    /// never rung (its sender writes no eventfd per frame); once it took
    /// it, a `try_recv` that finds nothing asks to be rung, and the next
    /// frame rings.
    #[test]
    fn only_a_receiver_that_took_its_descriptor_is_rung() {
        use crate::wake::readable;
        let name = format!("rung-{}", std::process::id());
        let (mut a, mut b) = InprocChannel::pair(&name, 1024).unwrap();
        let bell = Arc::clone(&b.bell);
        let mut frame = Frame::default();
        for _ in 0..10 {
            assert!(!b.try_recv(&mut frame).unwrap());
            a.send(message_type::DATA, 0, b"polled").unwrap();
            assert!(!readable(bell.fd()), "rung, but nobody waits");
            assert!(b.try_recv(&mut frame).unwrap());
        }
        assert!(b.readiness().is_some());
        for _ in 0..10 {
            assert!(!b.try_recv(&mut frame).unwrap());
            a.send(message_type::DATA, 0, b"awaited").unwrap();
            assert!(readable(bell.fd()), "not rung for a receiver that waits");
            assert!(b.try_recv(&mut frame).unwrap());
            assert_eq!(frame.payload(), b"awaited");
        }
    }

    #[test]
    fn a_full_queue_is_awaited_in_batches_for_small_frames_and_a_slot_for_large() {
        assert_eq!(room_awaited(0), QUEUE_DEPTH / 16);
        assert_eq!(room_awaited(spares::SMALLEST - 1), QUEUE_DEPTH / 16);
        assert_eq!(room_awaited(spares::SMALLEST), 1);
        assert_eq!(room_awaited(64 << 10), 1);
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[test]
    fn small_payloads_travel_in_buffers_handed_back_in_batches() {
        let (mut client, mut server) = pair();
        let mut frame = Frame::default();
        // A batch's worth and one: each receive gives up the buffer the
        // frame held (the first, an empty one, nothing); the 33rd receive
        // completes the batch.
        for i in 0..33u8 {
            client
                .send(message_type::DATA, 0, &pattern(100, i))
                .unwrap();
            server.recv(&mut frame).unwrap();
            assert_eq!(frame.payload(), pattern(100, i));
        }
        // The next 32 payloads arrive in those buffers: room for 100 bytes,
        // where a new one for 40 would have room for 64 (a freed buffer's
        // address may come back from the allocator; its capacity may not).
        for i in 0..32u8 {
            client.send(message_type::DATA, 0, &pattern(40, i)).unwrap();
            server.recv(&mut frame).unwrap();
            assert_eq!(frame.payload(), pattern(40, i));
            assert_eq!(
                frame.payload_mut().capacity(),
                100,
                "frame {i} was not reused"
            );
        }
    }

    #[test]
    fn the_buffer_a_frame_gave_up_carries_the_next_payload_sent_its_way() {
        let (mut client, mut server) = pair();
        let mut frame = Frame::with_capacity(8192);
        let held = frame.payload().as_ptr();
        client
            .send(message_type::DATA, 0, &pattern(4096, 1))
            .unwrap();
        server.recv(&mut frame).unwrap();
        assert_eq!(frame.payload(), pattern(4096, 1));
        // Receiving handed the frame's old buffer back to the client's
        // sends: the next payload arrives in it, whole and exact.
        client
            .send(message_type::DATA, 0, &pattern(3000, 2))
            .unwrap();
        server.recv(&mut frame).unwrap();
        assert_eq!(frame.payload().as_ptr(), held, "the buffer was not reused");
        assert_eq!(frame.payload(), pattern(3000, 2));
    }

    #[test]
    fn frames_of_mixed_sizes_arrive_exact_in_both_directions_and_through_halves() {
        let sizes = [
            0, 1, 1023, 1024, 4096, 70_000, 2000, 5, 65_536, 1500, 300_000, 1024,
        ];
        let (client, mut server) = pair();
        let echo = std::thread::spawn(move || {
            let mut frame = Frame::default();
            for _ in 0..sizes.len() * 3 {
                server.recv(&mut frame).unwrap();
                let answer = frame.payload().iter().map(|b| b ^ 0xff).collect::<Vec<_>>();
                server.send(message_type::DATA, 0, &answer).unwrap();
            }
        });
        let (mut tx, mut rx) = client.split().unwrap();
        let mut frame = Frame::default();
        for round in 0..3u8 {
            for (i, &size) in sizes.iter().enumerate() {
                let sent = pattern(size, round ^ i as u8);
                tx.send(message_type::DATA, 0, &sent).unwrap();
                rx.recv(&mut frame).unwrap();
                let expected = sent.iter().map(|b| b ^ 0xff).collect::<Vec<_>>();
                assert_eq!(frame.payload(), expected, "round {round}, {size} B");
                if i % 4 == 3 {
                    // A payload taken leaves nothing to hand back.
                    assert_eq!(frame.take_payload(), expected);
                }
            }
        }
        echo.join().unwrap();
    }
}
