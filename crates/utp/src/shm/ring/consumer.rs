//! The reading end of a ring: acquire the stamp at `head` `[STAMP]`,
//! validate and lend the next record, release it `[HEAD]`, wake a flagged
//! writer `[WAKE]` if it may sleep. A copying consumer also copies a record
//! published in pieces as far as its progress stamp says it is written.

use super::read_ahead::{self, ReadAhead};
use super::{
    FLUSH_BATCH, Indices, PAYLOAD_OFFSET, PREFETCH_LINES, RECORD_ALIGN, RingBytes, STAMP_FLAGS,
    STAMP_LEN, STAMP_MORE, STAMP_PAD, StampKey, check_capacity, corrupt, notify,
};
use crate::error::Result;
use crate::frame::{Header, decode_header_words};
use crate::shm::sync::Ordering;

/// A record found by [`Consumer::peek`].
///
// Invariants (when returned by `peek`): `offset + len <= capacity`, `len`
// is the padded length of a valid header (its payload may exceed the
// consumer's limit: see `Consumer::too_large`), and `offset..offset+len` is
// published and unreleased.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    /// Offset of the record (its stamp) in the data area; the header is at
    /// `offset + 8`, the payload at `offset + 40`.
    pub offset: usize,
    /// The validated header (payload checksum not yet verified). Its bytes
    /// re-encoded (`Header::write_fields`) are the bytes read: magic and
    /// version were checked, every other field is kept.
    pub header: Header,
    /// Bytes the record occupies, stamp and padding included.
    pub len: usize,
}

#[cold]
#[inline(never)]
fn length_mismatch(
    offset: usize,
    payload: u32,
    expected: usize,
    len: usize,
) -> crate::error::Error {
    corrupt(format_args!(
        "frame at offset {offset} declares {payload} payload bytes ({expected}-byte record) \
         but its stamp says {len} bytes"
    ))
}

/// The reading end of a ring.
///
// Invariants: `cap` as for `Producer`; `head` is the position after the
// last record we consumed; `head - pending` is the position published in
// the shared `head` word; without a key, the line-start words of `head -
// pending..head` are not yet zeroed (the producer cannot reuse them until
// `flush`).
#[derive(Debug)]
pub struct Consumer<B> {
    idx: Indices,
    bytes: B,
    cap: u64,
    head: u64,
    pending: u64,
    max_payload: usize,
    peer_sleeps: bool,
    /// Wake-ups sent to a sleeping producer since [`take_wakes`](Self::take_wakes).
    wakes: u64,
    /// This end agreed to records published in pieces ([`STAMP_MORE`]).
    pieces: bool,
    /// The record being published in pieces, as far as it is copied.
    partial: Partial,
    /// Every stamp loaded is XORed with the ring's key if both ends agreed
    /// to keyed stamps: then a word that does not decode to a stamp inside
    /// the readable space is stale bytes (nothing published yet), and
    /// released lines are not zeroed. Otherwise such a word is corrupt,
    /// and 0 means nothing published.
    key: StampKey,
    /// Which lines past `head` to ask for while this side is behind.
    read_ahead: ReadAhead,
}

/// A record published in pieces, copied as far as its progress stamp said
/// it was written.
///
// Invariants when `at` is `Some(pos)`: the record at position `pos` had a
// valid header when its first piece was found, `payload` bytes of payload
// (at most `max_payload`; its record, `record_len(payload)`, inside the
// data area); its progress stamp last said `seen` bytes were written
// (below that record length; 0 until the first is copied), and `buf`
// holds the payload bytes among them. Once the consumer has moved past
// `pos`, `at` is stale and never matches its position again.
#[derive(Debug, Default)]
struct Partial {
    at: Option<u64>,
    payload: usize,
    seen: usize,
    buf: Vec<u8>,
}

/// Bytes of the record of a frame with `payload` bytes of payload, for a
/// payload already checked to lie inside the ring (no overflow).
fn padded_len(payload: usize) -> usize {
    (PAYLOAD_OFFSET + payload).next_multiple_of(RECORD_ALIGN)
}

impl<B: RingBytes> Consumer<B> {
    /// A consumer starting at position 0. Frames with payloads over
    /// `max_payload` are found by [`peek`](Consumer::peek) (so they can be
    /// skipped) but flagged by [`too_large`](Consumer::too_large).
    pub fn new(idx: Indices, bytes: B, max_payload: usize) -> Result<Self> {
        let cap = check_capacity(bytes.capacity())?;
        Ok(Consumer {
            idx,
            bytes,
            cap,
            head: 0,
            pending: 0,
            max_payload,
            peer_sleeps: true,
            wakes: 0,
            pieces: false,
            partial: Partial::default(),
            key: StampKey::default(),
            read_ahead: ReadAhead::default(),
        })
    }

    /// Decodes every stamp with `key` and zeroes nothing it releases (both
    /// ends agreed to keyed stamps, `docs/shm-layout.md` 4.1); `None` (the
    /// default) reads stamps as they are and zeroes the line starts of
    /// what it releases.
    pub fn set_stamp_key(&mut self, key: Option<u64>) {
        self.key = StampKey::new(key);
    }

    /// The key set by [`set_stamp_key`](Self::set_stamp_key).
    pub fn stamp_key(&self) -> Option<u64> {
        self.key.key()
    }

    /// Accepts records published in pieces (both ends agreed in the
    /// handshake). Without it a progress stamp is a reserved bit: corrupt.
    pub fn set_pieces(&mut self, pieces: bool) {
        self.pieces = pieces;
    }

    /// Whether this end accepts pieces (see [`set_pieces`](Self::set_pieces)).
    pub fn pieces(&self) -> bool {
        self.pieces
    }

    /// Whether the producer may sleep on the futex (default true). When
    /// false, releasing skips the `[WAKE]` fence and the waiter word.
    pub fn set_peer_sleeps(&mut self, sleeps: bool) {
        self.peer_sleeps = sleeps;
    }

    /// The ring's indices.
    pub fn indices(&self) -> &Indices {
        &self.idx
    }

    /// Whether `record`'s payload is over this consumer's `max_payload`:
    /// release it unread. (A method, not a field of [`Record`]: a flag byte
    /// there made the compiler copy records through the stack in odd-sized
    /// pieces, which stalled every receive.)
    #[inline]
    pub fn too_large(&self, record: &Record) -> bool {
        record.header.payload_length as usize > self.max_payload
    }

    /// The payload limit given to [`new`](Consumer::new).
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The data area.
    pub fn bytes(&self) -> &B {
        &self.bytes
    }

    /// Whether a whole record (or padding) is published at `head`.
    pub fn has_data(&mut self) -> Result<bool> {
        let offset = self.offset();
        let stamp = self.bytes.load_stamp(offset) ^ self.key.mask();
        Ok(self.whole_len(offset, stamp).is_some())
    }

    /// The length of the record (or padding) that the decoded `stamp` at
    /// `offset` publishes, if it is a whole record's stamp: flags at most
    /// [`STAMP_PAD`], and a length from one line to the end of the data
    /// area.
    #[inline(always)]
    fn whole_len(&self, offset: usize, stamp: u64) -> Option<usize> {
        let contiguous = self.cap - offset as u64;
        let len = (stamp & !STAMP_FLAGS).wrapping_sub(self.head);
        let fits = len.wrapping_sub(RECORD_ALIGN as u64) <= contiguous - RECORD_ALIGN as u64;
        (fits && stamp & STAMP_FLAGS & !STAMP_PAD == 0).then_some(len as usize)
    }

    fn offset(&self) -> usize {
        (self.head & (self.cap - 1)) as usize
    }

    /// The next record, skipping padding; `None` if nothing is published.
    /// [`flush`](Self::flush)es what earlier calls consumed first if it
    /// makes a batch ([`FLUSH_BATCH`]), and always
    /// before returning `None`.
    #[inline(always)]
    pub fn peek(&mut self) -> Result<Option<Record>> {
        let Some((offset, len)) = self.next_published(false)? else {
            return Ok(None);
        };
        let header = match self.header_at(offset, len) {
            Ok(header) => header,
            Err(e) => return self.stale_or(e),
        };
        Ok(Some(Record {
            offset,
            header,
            len,
        }))
    }

    /// The copying receive in one step: the next record's header into
    /// `header` and its payload into `payload` (replacing its contents),
    /// the record released; `Ok(false)` (nothing touched) if nothing is
    /// published. A payload over this consumer's `max_payload` is released
    /// unread: [`DecodeError::TooLarge`](crate::frame::DecodeError::TooLarge).
    /// The checksum is the caller's to verify, on the private copy.
    ///
    /// Why not `peek` then a copy: the header goes straight into the
    /// caller's frame instead of through a [`Record`] moved between
    /// layers, and the cold paths stay out of line. A 64 B stream is
    /// bound by the work of its two sides (docs/benchmarks/journal.md,
    /// 2026-12-03, late morning).
    ///
    /// A record published in pieces is copied piece by piece as it lands
    /// (here and in [`ready`](Self::ready)), into a buffer of the
    /// consumer's that is swapped with `payload` once the record is whole.
    #[inline(always)]
    pub fn take_copy(&mut self, header: &mut Header, payload: &mut Vec<u8>) -> Result<bool> {
        let Some((offset, len)) = self.next_published(true)? else {
            return Ok(false);
        };
        let found = match self.header_at(offset, len) {
            Ok(header) => header,
            Err(e) => return self.stale_or::<()>(e).map(|_| false),
        };
        let n = found.payload_length as usize;
        if n > self.max_payload {
            self.release(len);
            return Err(self.too_large_error(n));
        }
        // Not yet released: the producer cannot reuse these bytes.
        if self.partial.at == Some(self.head) {
            self.finish_partial(offset, n, payload)?;
        } else {
            payload.clear();
            self.bytes.append(offset + PAYLOAD_OFFSET, n, payload);
        }
        self.release(len);
        *header = found;
        Ok(true)
    }

    /// The next record's offset and length (from its stamp), padding
    /// skipped, after giving back what earlier calls consumed if it makes
    /// a batch: by now this side has published whatever it did in between
    /// (a reply), so these stores no longer stand in front of it. `None`
    /// if nothing is published, after giving back everything: the caller
    /// may now wait or turn to other work, so nothing it consumed may
    /// stay held back. A `copying` caller copies what is written of a
    /// record in pieces.
    #[inline(always)]
    fn next_published(&mut self, copying: bool) -> Result<Option<(usize, usize)>> {
        if self.pending >= self.cap / FLUSH_BATCH {
            self.flush();
            // How far the producer has published, now and then: a hint
            // for the read-ahead, never trusted for anything else.
            self.read_ahead.saw(self.idx.tail().load(Ordering::Relaxed));
        }
        if let Some((from, to)) = self.read_ahead.due(self.head) {
            self.ask_for_lines(from, to);
        }
        let next = self.next_stamp(copying)?;
        if next.is_none() {
            self.flush();
        }
        Ok(next)
    }

    /// Asks for the lines of positions `from..to` (at most
    /// `read_ahead::DISTANCE` bytes): a hint, no memory is read.
    #[cold]
    #[inline(never)]
    fn ask_for_lines(&self, from: u64, to: u64) {
        for offset in read_ahead::line_offsets(from, to, self.cap as usize) {
            self.bytes.prefetch(offset);
        }
    }

    /// The error for a frame of `n` payload bytes, over this consumer's
    /// `max_payload` (see [`too_large`](Self::too_large)).
    #[cold]
    #[inline(never)]
    pub fn too_large_error(&self, n: usize) -> crate::error::Error {
        crate::frame::DecodeError::TooLarge {
            length: n as u32,
            limit: self.max_payload,
        }
        .into()
    }

    /// The header of the record of `len` bytes (from its stamp) at
    /// `offset`, validated: magic, version, a payload inside the ring, and
    /// a padded length equal to the stamp's.
    #[inline(always)]
    fn header_at(&self, offset: usize, len: usize) -> Result<Header> {
        // Start fetching the record's later lines now, so the payload
        // does not wait for the header to be decoded.
        let mut line = RECORD_ALIGN;
        while line < len && line < PREFETCH_LINES * RECORD_ALIGN {
            self.bytes.prefetch(offset + line);
            line += RECORD_ALIGN;
        }
        // Structural bound only: a frame over our own limit but inside
        // the ring is well formed and can be skipped by the caller.
        let words = self.bytes.read_words(offset + STAMP_LEN);
        let header = decode_header_words(words, self.cap as usize)?;
        // No overflow: the payload length is at most the capacity (checked
        // above), which is at most 2^30.
        let expected = padded_len(header.payload_length as usize);
        if expected != len {
            return Err(length_mismatch(
                offset,
                header.payload_length,
                expected,
                len,
            ));
        }
        Ok(header)
    }

    /// Whether a record is published at `head`, skipping padding as
    /// [`peek`](Self::peek) does and validating its header, but not
    /// building a [`Record`]: the poll of a waiting receiver, which then
    /// calls `peek` or `take_copy` once (an empty poll is the stamp load
    /// alone). A record still being written is not ready; the
    /// poll of a receiver that will take it by copy (`copying`) copies
    /// what is written of it so far, that of a zero-copy one does not.
    #[inline(always)]
    pub fn ready(&mut self, copying: bool) -> Result<bool> {
        self.flush();
        match self.next_stamp(copying)? {
            // With keyed stamps the header decides (see `next_stamp`);
            // without, `peek` or `take_copy` reports a bad one.
            Some((offset, len)) if self.key.keyed() => Ok(self.header_at(offset, len).is_ok()),
            found => Ok(found.is_some()),
        }
    }

    /// The stamp at `head`, validated, past any padding (released): the
    /// record's offset and length, or `None` if nothing is published (or
    /// only pieces of it, which a `copying` caller copies).
    ///
    /// With keyed stamps a record whose header is not valid (the callers
    /// check it, [`stale_or`](Self::stale_or)), or padding that does not
    /// reach the end, is taken for stale bytes too: a word of old payload
    /// decodes to a stamp once in about 2^48 looks (1 MiB ring), and its
    /// old bytes would also have to make a valid header to be taken for a
    /// record; so a spurious stamp costs a second look, not the link. A
    /// peer that publishes such a record (it knows the key) holds its own
    /// link up, as one that sends nothing does.
    ///
    /// The header is not decoded here: returned through this function's
    /// `Result<Option<..>>`, it went through the stack in pieces of
    /// different widths, and the reloads stalled every receive (a third of
    /// a 64 B stream's consumer, perf).
    #[inline(always)]
    fn next_stamp(&mut self, copying: bool) -> Result<Option<(usize, usize)>> {
        loop {
            let offset = self.offset();
            let stamp = self.bytes.load_stamp(offset) ^ self.key.mask(); // [STAMP]
            let Some(len) = self.whole_len(offset, stamp) else {
                // Nothing published here: a zero without keys; with keys
                // whatever does not decode to a progress stamp (old stamps
                // and payload bytes of earlier laps).
                if (!self.key.keyed() && stamp == 0)
                    || (self.key.keyed() && stamp & STAMP_FLAGS != STAMP_MORE)
                {
                    return Ok(None);
                }
                self.not_whole(offset, stamp, copying)?;
                return Ok(None);
            };
            if stamp & STAMP_PAD == 0 {
                return Ok(Some((offset, len)));
            }
            if let Err(e) = self.skip_padding(offset, len) {
                return self.stale_or(e);
            }
        }
    }

    /// After a stamp that names no valid record: with keyed stamps nothing
    /// is published yet (see [`next_stamp`](Self::next_stamp)), so this
    /// gives back what was consumed, as any look that finds nothing does;
    /// without them the ring is corrupt.
    #[cold]
    #[inline(never)]
    fn stale_or<T>(&mut self, error: crate::error::Error) -> Result<Option<T>> {
        if !self.key.keyed() {
            return Err(error);
        }
        self.flush();
        Ok(None)
    }

    /// A decoded stamp at `offset` that is no whole record's: a record
    /// still being written, if this end agreed to pieces (copied as far as
    /// it is written if `copying`); with keyed stamps, stale bytes if it
    /// is no progress stamp this consumer may read; corrupt otherwise.
    #[cold]
    #[inline(never)]
    fn not_whole(&mut self, offset: usize, stamp: u64, copying: bool) -> Result<()> {
        let contiguous = self.cap as usize - offset;
        let span = (stamp & !STAMP_FLAGS).wrapping_sub(self.head);
        let inside = (RECORD_ALIGN as u64..contiguous as u64).contains(&span);
        let progress = stamp & STAMP_FLAGS == STAMP_MORE;
        if self.key.keyed() && !(progress && inside && self.pieces) {
            return Ok(());
        }
        if !progress || !self.pieces {
            if stamp & STAMP_FLAGS & !STAMP_PAD == 0 {
                return Err(corrupt(format_args!(
                    "stamp at offset {offset} gives a record of {span} bytes at position {} \
                     ({contiguous} bytes to the end of the data area)",
                    self.head
                )));
            }
            return Err(corrupt(format_args!(
                "stamp 0x{stamp:x} at offset {offset} has reserved bits set"
            )));
        }
        if !inside {
            return Err(corrupt(format_args!(
                "progress stamp at offset {offset} says {span} bytes are written at \
                 position {} ({contiguous} bytes to the end of the data area)",
                self.head
            )));
        }
        if copying {
            self.copy_piece(offset, span as usize)?;
        }
        Ok(())
    }

    /// Copies what the progress stamp of the record at `offset` says is
    /// written (`written` bytes from its stamp, checked to lie inside the
    /// data area) and not yet copied. The first piece's header is
    /// validated as a whole record's is; later pieces may only move
    /// forward, and never to the record's end (which the final stamp says).
    #[cold]
    #[inline(never)]
    fn copy_piece(&mut self, offset: usize, written: usize) -> Result<()> {
        if self.partial.at != Some(self.head) {
            // A first piece whose header is not valid is, with keyed
            // stamps, stale bytes as a whole record's would be.
            let words = self.bytes.read_words(offset + STAMP_LEN);
            let header = match decode_header_words(words, self.cap as usize) {
                Ok(header) => header,
                Err(e) => return self.stale_or::<()>(e.into()).map(drop),
            };
            let payload = header.payload_length as usize;
            if padded_len(payload) > self.cap as usize - offset {
                let e = corrupt(format_args!(
                    "record at offset {offset} declares {payload} payload bytes, past the \
                     end of the data area"
                ));
                return self.stale_or::<()>(e).map(drop);
            }
            if payload > self.max_payload {
                // Released unread once whole (`take_copy`).
                return Ok(());
            }
            let p = &mut self.partial;
            p.buf.clear();
            (p.at, p.payload, p.seen) = (Some(self.head), payload, 0);
        }
        let p = &mut self.partial;
        let len = padded_len(p.payload);
        if written < p.seen || written >= len {
            // Kept as it is, so every later look reports it again.
            let seen = p.seen;
            return Err(corrupt(format_args!(
                "progress stamp at offset {offset} went from {seen} to {written} bytes \
                 of a {len}-byte record"
            )));
        }
        p.seen = written;
        // `written` >= one line > PAYLOAD_OFFSET.
        let upto = (written - PAYLOAD_OFFSET).min(p.payload);
        let have = p.buf.len();
        if upto > have {
            self.bytes
                .append(offset + PAYLOAD_OFFSET + have, upto - have, &mut p.buf);
        }
        Ok(())
    }

    /// Completes the copy of the whole record at `offset`, `n` payload
    /// bytes (its header validated against its stamp), whose pieces this
    /// consumer copied: the rest into its buffer, which is then swapped
    /// with `payload`.
    #[cold]
    #[inline(never)]
    fn finish_partial(&mut self, offset: usize, n: usize, payload: &mut Vec<u8>) -> Result<()> {
        let p = &mut self.partial;
        // The same length makes the same record length, which the caller
        // checked against the stamp.
        if p.payload != n {
            // Kept: every later look reports it again.
            return Err(corrupt(format_args!(
                "record at offset {offset} declared {} payload bytes in its first piece \
                 and {n} when whole",
                p.payload
            )));
        }
        p.at = None;
        let have = p.buf.len();
        self.bytes
            .append(offset + PAYLOAD_OFFSET + have, n - have, &mut p.buf);
        std::mem::swap(payload, &mut p.buf);
        Ok(())
    }

    /// Releases the padding of `len` bytes (from its stamp) at `offset`,
    /// which must reach exactly to the end of the data area.
    #[cold]
    fn skip_padding(&mut self, offset: usize, len: usize) -> Result<()> {
        let contiguous = self.cap as usize - offset;
        if len != contiguous {
            return Err(corrupt(format_args!(
                "padding of {len} bytes at offset {offset} (expected {contiguous})"
            )));
        }
        self.release(len);
        Ok(())
    }

    /// Consumes `len` bytes (a record returned by `peek`): the next `peek`
    /// looks past them. The space goes back to the producer at a later
    /// [`flush`](Self::flush): `peek` flushes once a batch has built up or
    /// when it finds nothing, and utp's link before it waits, so the stores
    /// that free it never delay this side's own next publish.
    #[inline]
    pub fn release(&mut self, len: usize) {
        self.head = self.head.wrapping_add(len as u64);
        self.pending += len as u64;
    }

    /// Gives released space back to the producer: without keyed stamps,
    /// zeroes the line-start word of every released line (so no stale byte
    /// there can ever be taken for a stamp); then publishes `head` `[HEAD]`
    /// and wakes a flagged producer `[WAKE]` if it may sleep.
    #[inline]
    pub fn flush(&mut self) {
        if self.pending == 0 {
            return;
        }
        if !self.key.keyed() {
            self.zero_released();
        }
        self.pending = 0;
        self.idx.head().store(self.head, Ordering::Release); // [HEAD]
        if self.peer_sleeps && notify(self.idx.space_waiters()) {
            self.wakes += 1;
        }
    }

    /// Zeroes the line-start word of every line consumed since the last
    /// [`flush`](Self::flush).
    fn zero_released(&self) {
        // In at most two runs: released space ends at the data area's end
        // at most once (`pending` < capacity, records never wrap).
        let mut pos = self.head.wrapping_sub(self.pending);
        let mut left = self.pending;
        while left != 0 {
            let offset = pos & (self.cap - 1);
            let run = left.min(self.cap - offset);
            self.bytes.zero_stamps(offset as usize, run as usize);
            pos = pos.wrapping_add(run);
            left -= run;
        }
    }

    /// Wake-ups sent since the last call (for counters).
    pub fn take_wakes(&mut self) -> u64 {
        std::mem::take(&mut self.wakes)
    }

    /// Bytes consumed but not yet given back by [`flush`](Self::flush).
    pub fn pending(&self) -> u64 {
        self.pending
    }
}
