//! Raw in-process baseline: bounded crossbeam channels of byte vectors between
//! two threads, the machinery under `inproc://` without frames: the same
//! copy, the same waiting, the same buffers handed back for reuse.

use crate::cmd::bench::link::{Fallible, Link};
use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded};
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::sync::{Mutex, OnceLock};

/// A queued message: the vector, and unwritten room up to the size of
/// utp's queued frame (where utp carries the header's fields), so both
/// queues have slots of one size, as the raw shared-memory ring writes its
/// messages at utp's record stride.
type Queued = (Vec<u8>, MaybeUninit<[u8; HEADER_ROOM]>);

/// Bytes beside the vector in a [`Queued`] message.
const HEADER_ROOM: usize = utp::__bench::INPROC_MESSAGE_BYTES - std::mem::size_of::<Vec<u8>>();

const _: () = assert!(std::mem::size_of::<Queued>() == utp::__bench::INPROC_MESSAGE_BYTES);

/// One end of a channel pair.
#[derive(Debug)]
pub struct InprocLink {
    tx: Sender<Queued>,
    rx: Receiver<Queued>,
    /// Buffers the other end's receive handed back, for our sends.
    spare: utp::__bench::InprocSupply,
    /// Where our receive hands back the buffer of the previous message.
    give_back: utp::__bench::InprocReturns,
    buf: Vec<u8>,
}

/// Buffers up to this size are handed back (utp's limit is the channel's
/// `max_payload`, larger than any message the bench sends).
const LARGEST_SPARE: usize = usize::MAX;

impl Link for InprocLink {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        // As utp's send, through the same function: a queue with room
        // takes it at once; at a full one the sender looks again, waiting
        // for the room utp waits for, before crossbeam's blocking send.
        let queued = (self.spare.filled(msg), MaybeUninit::uninit());
        let room = utp::__bench::inproc_room_awaited(msg.len());
        utp::__bench::inproc_send(&self.tx, queued, room, None, "room in the queue", || {
            utp::Error::Closed
        })
        .map_err(|_| "the other thread dropped its end")?;
        Ok(())
    }

    fn recv(&mut self, _len: usize) -> Fallible<&[u8]> {
        // As utp's untimed receive: a message already queued is taken at
        // once; otherwise it looks a CPU pause apart, then waits in a
        // plain blocking receive (a timed one reads the clock and arms a
        // timer each time). A dead peer thread drops its sender, which
        // ends either wait.
        use utp::__bench::InprocLooked;
        let message = match self.rx.try_recv() {
            Ok(message) => message,
            Err(_) => match utp::__bench::inproc_look_first(&self.rx) {
                InprocLooked::Item(message) => message,
                InprocLooked::Nothing(_) => {
                    self.rx.recv().map_err(|e| format!("inproc receive: {e}"))?
                }
                InprocLooked::Disconnected => {
                    return Err("inproc receive: the other thread dropped its end".into());
                }
            },
        };
        let held = std::mem::replace(&mut self.buf, message.0);
        self.give_back.give_back(held, LARGEST_SPARE);
        Ok(&self.buf)
    }

    fn try_recv(&mut self, _len: usize) -> Fallible<Option<&[u8]>> {
        let message = match self.rx.try_recv() {
            Ok(message) => message,
            Err(TryRecvError::Empty) => return Ok(None),
            Err(TryRecvError::Disconnected) => {
                return Err("inproc receive: the other thread dropped its end".into());
            }
        };
        let held = std::mem::replace(&mut self.buf, message.0);
        self.give_back.give_back(held, LARGEST_SPARE);
        Ok(Some(&self.buf))
    }
}

/// Frames each direction's queue holds, as utp's.
const QUEUE_DEPTH: usize = utp::__bench::INPROC_QUEUE_DEPTH;

/// Client ends waiting to be picked up, by address.
fn pending() -> &'static Mutex<HashMap<String, InprocLink>> {
    static PENDING: OnceLock<Mutex<HashMap<String, InprocLink>>> = OnceLock::new();
    PENDING.get_or_init(Default::default)
}

/// Peer side: makes a channel pair, leaves the client's end under `address`, announces.
pub fn serve(address: &str, announce: &mut dyn FnMut(&str)) -> InprocLink {
    let (a_tx, b_rx) = bounded(QUEUE_DEPTH);
    let (b_tx, a_rx) = bounded(QUEUE_DEPTH);
    let (b_back, a_spare) = utp::__bench::inproc_spares(QUEUE_DEPTH);
    let (a_back, b_spare) = utp::__bench::inproc_spares(QUEUE_DEPTH);
    let end = |tx, rx, spare, give_back| InprocLink {
        tx,
        rx,
        spare,
        give_back,
        buf: Vec::new(),
    };
    let client = end(b_tx, b_rx, b_spare, b_back);
    pending()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(address.to_string(), client);
    announce(address);
    end(a_tx, a_rx, a_spare, a_back)
}

/// Client side: takes the end the peer left under `address`.
pub fn connect(address: &str) -> Fallible<InprocLink> {
    pending()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(address)
        .ok_or_else(|| format!("no inproc peer at {address}").into())
}
