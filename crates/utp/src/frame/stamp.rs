//! Filling sequence numbers and timestamps on the sending side.

use super::header::{HEADER_LEN, Header};
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch to the resolution of a kernel tick
/// (`CLOCK_REALTIME_COARSE`, about 4 ms at HZ=250): what [`Stamper`] puts
/// in frames. A precise read (`clock_gettime(CLOCK_REALTIME)` and the
/// conversion, ~45 ns in this KVM guest) was a fifth of a whole inproc round
/// trip; the coarse clock is a read of the vDSO data page. Frame timestamps
/// say when a frame was built, not how long it took: time latency with your
/// own clock around send and receive (docs/frame.md).
#[inline]
pub fn coarse_micros() -> u64 {
    #[cfg(test)]
    CLOCK_READS.with(|n| n.set(n.get() + 1));
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec as u64 / 1_000)
}

#[cfg(test)]
thread_local! {
    /// [`coarse_micros`] calls this thread made: tests of batches count them.
    pub(crate) static CLOCK_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The sending half of a channel's framing state: numbers frames 1, 2, 3, ...
/// and stamps them with the current time (to a kernel tick, see [`coarse_micros`]).
///
/// ```
/// use utp::frame::{Stamper, flags, message_type};
/// let mut stamper = Stamper::default();
/// let mut head = [0u8; 32];
/// let first = stamper.stamp(message_type::DATA, flags::CHECKSUM, b"x", &mut head);
/// let second = stamper.stamp(message_type::DATA, flags::CHECKSUM, b"y", &mut head);
/// assert_eq!((first.sequence, second.sequence), (1, 2));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Stamper {
    /// Frames stamped.
    sent: u64,
    /// Frames numbered by `stamp` (replies carry the number they answer).
    numbered: u64,
    /// The sequence number of the last frame stamped by `stamp`.
    last: u64,
}

impl Stamper {
    /// The header of the next frame, completed for `payload` (length, and
    /// checksum when `flags` ask for one) but not encoded: for transports
    /// that hand the header over as it is (inproc).
    #[inline]
    pub(crate) fn next_header(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Header {
        self.next_header_at(message_type, flags, payload, coarse_micros())
    }

    /// [`next_header`](Self::next_header) stamped `micros` (as
    /// [`coarse_micros`] reads the clock).
    #[inline]
    fn next_header_at(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        micros: u64,
    ) -> Header {
        self.sent += 1;
        self.numbered += 1;
        self.last = self.last.wrapping_add(1);
        Header::new(message_type, flags, self.last, micros).completed_for(payload)
    }

    /// [`stamp`](Self::stamp) with the time given, read once by the caller
    /// with [`coarse_micros`] for a run of frames written together (a
    /// batch): each stamp still says when its frame was written, to the
    /// coarse clock's tick, for one clock read a run.
    pub(crate) fn stamp_at(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        micros: u64,
        out: &mut [u8; HEADER_LEN],
    ) {
        self.next_header_at(message_type, flags, payload, micros)
            .write_fields(out);
    }

    /// [`next_header`](Self::next_header) for a reply to the frame numbered
    /// `answers` (see [`stamp_reply`](Self::stamp_reply)).
    #[inline]
    pub(crate) fn next_reply_header(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: u64,
    ) -> Header {
        self.sent += 1;
        Header::new(
            message_type,
            flags | super::flags::REPLY,
            answers,
            coarse_micros(),
        )
        .completed_for(payload)
    }

    /// Encodes the header of the next frame into `out` and returns it.
    pub fn stamp(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        out: &mut [u8; HEADER_LEN],
    ) -> Header {
        let header = self.next_header(message_type, flags, payload);
        header.write_fields(out);
        header
    }

    /// Encodes the header of a reply to the frame numbered `answers`: the
    /// reply carries [`flags::REPLY`](super::flags::REPLY) and that number as
    /// its sequence (docs/protocol.md, "Correlation").
    pub fn stamp_reply(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: u64,
        out: &mut [u8; HEADER_LEN],
    ) -> Header {
        let header = self.next_reply_header(message_type, flags, payload, answers);
        header.write_fields(out);
        header
    }

    /// Takes back the numbers of the last `frames` frames [`stamp`](Self::stamp)ed,
    /// which were not sent after all: the next frame is numbered as the
    /// first of them was (a send that does not wait found no room for them).
    pub(crate) fn unstamp(&mut self, frames: u64) {
        debug_assert!(frames <= self.numbered && frames <= self.sent);
        self.sent -= frames;
        self.numbered -= frames;
        self.last = self.last.wrapping_sub(frames);
    }

    /// The sequence number of the last frame stamped by [`stamp`](Self::stamp).
    pub fn last_sequence(&self) -> u64 {
        self.last
    }

    /// Numbers the following frames from `first` on (instead of 1): a client
    /// on a medium other clients share (a FIFO pair) starts at a random
    /// number, so that its requests' numbers are its own.
    pub fn start_at(&mut self, first: u64) {
        self.last = first.wrapping_sub(1);
    }

    /// Numbers the following frames from a random start (in `1..2^62`), so
    /// that a reply naming one of them cannot have been meant for another
    /// client that used the same medium or address before (a FIFO pair, a
    /// reused UDP port).
    pub fn start_at_random(&mut self) {
        self.start_at(random_sequence_start());
    }

    /// Whether `sequence` is the number of a frame this stamper numbered
    /// (one of the last [`stamp`](Self::stamp)ed, with wrap-around): a reply
    /// naming any other number answers somebody else.
    ///
    /// ```
    /// use utp::frame::{Stamper, flags, message_type};
    /// let mut stamper = Stamper::default();
    /// stamper.start_at(100);
    /// assert!(!stamper.numbered(100));
    /// stamper.stamp(message_type::DATA, flags::CHECKSUM, b"x", &mut [0u8; 32]);
    /// assert!(stamper.numbered(100));
    /// assert!(!stamper.numbered(99) && !stamper.numbered(101));
    /// ```
    pub fn numbered(&self, sequence: u64) -> bool {
        self.last.wrapping_sub(sequence) < self.numbered
    }

    /// What [`numbered`](Self::numbered) decides from: the last number and
    /// how many were numbered (for a receive half that checks replies
    /// against what its send half numbered).
    pub(crate) fn numbering(&self) -> (u64, u64) {
        (self.last, self.numbered)
    }

    /// How many frames have been stamped.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The sequence number of the last frame stamped, `None` before the
    /// first: what [`Channel::sent_sequence`](crate::Channel::sent_sequence) reports.
    pub fn last_sent(&self) -> Option<u64> {
        (self.sent > 0).then_some(self.last)
    }
}

/// A random first sequence number in `1..2^62` (pid and time when the
/// kernel has no randomness to give).
pub(crate) fn random_sequence_start() -> u64 {
    let mut bytes = [0u8; 8];
    let filled = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty());
    let random = match filled {
        Ok(8) => u64::from_le_bytes(bytes),
        _ => (u64::from(std::process::id()) << 32) ^ now_micros(),
    };
    (random >> 2).max(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn coarse_time_is_within_a_few_ticks_of_the_real_clock() {
        let real = super::now_micros();
        let coarse = super::coarse_micros();
        assert!(real.abs_diff(coarse) < 50_000, "{real} vs {coarse}");
    }
}
