//! A consumer that has fallen behind its producer asks for the lines it
//! will read next.
//!
//! A consumer that keeps pace reads each record just after it is written;
//! the hardware fetches the lines one miss at a time, and asking for lines
//! further on would take from the producer lines it is still writing. One
//! that has fallen behind, because it did some work or because the ring is
//! small enough to fill, reads lines that were written a while ago and
//! still sit, modified, in the producer's cache. The hardware's own
//! prefetchers did not fetch those on the Intel host this project measures
//! on: every record's lines waited for a transfer of their own, and a
//! 64-byte stream over a ring of 128 KiB or less stayed at about 22 M
//! frames/s, where a 256 KiB one ran at 54 M.
//!
//! So a consumer asks for the lines up to [`DISTANCE`] bytes past its read
//! position, but only lines it knows are published: before the producer's
//! position as last seen (its `tail` word, which the producer stores every
//! sixteenth of the ring, `Producer::commit`, and which the consumer reads
//! once per batch it gives back). A consumer that keeps pace never sees a
//! position far enough ahead, and asks for nothing. The position is a hint
//! and nothing else: a peer that writes anything there changes which lines
//! of the ring are asked for, never what is read.
//!
//! Measured on the Intel host (docs/benchmarks/journal.md, 2026-12-05, evening):
//! 64-byte streams over a 64 KiB ring went from 21–23 M to 55–58 M frames/s.

/// How far past its read position a consumer that has fallen behind has
/// the lines asked for: 32 lines. Half of it is asked for at a time, once
/// the consumer has read half of it. Distances of 512 bytes to 4 KiB
/// measured alike.
pub const DISTANCE: u64 = 2048;

/// Where a consumer stands in asking for lines ahead.
///
// Invariants: none that reading depends on. `horizon` comes from memory
// the peer writes; it only bounds which positions are returned.
#[derive(Debug, Default, Clone)]
pub struct ReadAhead {
    /// The producer's position as last seen: lines before it are published
    /// (if the peer is honest).
    horizon: u64,
    /// Lines before this position have been asked for.
    asked_to: u64,
    /// The read position from which to look again.
    next: u64,
}

/// Whether position `a` comes before position `b` (positions grow from 0
/// and stay far from 2^63, so the wrapping difference's sign says).
#[inline(always)]
fn before(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) < 0
}

impl ReadAhead {
    /// Notes the producer's position as last seen (its `tail` word), and
    /// looks again at the next [`due`](Self::due).
    #[inline]
    pub fn saw(&mut self, published: u64) {
        self.horizon = published;
        self.next = 0;
    }

    /// At read position `head`: the positions `from..to` whose lines to ask
    /// for now, if any: from the first not yet asked for (or `head`) to
    /// [`DISTANCE`] past `head`, cut at the producer's position as last
    /// seen. Looks once every half [`DISTANCE`] read while there is
    /// something to ask for, otherwise not until the producer's position
    /// is seen again; in between it is one comparison.
    #[inline(always)]
    pub fn due(&mut self, head: u64) -> Option<(u64, u64)> {
        if before(head, self.next) {
            return None;
        }
        self.look(head)
    }

    #[cold]
    #[inline(never)]
    fn look(&mut self, head: u64) -> Option<(u64, u64)> {
        let mut to = head.wrapping_add(DISTANCE);
        if before(self.horizon, to) {
            to = self.horizon;
        }
        let from = if before(self.asked_to, head) {
            head
        } else {
            self.asked_to
        };
        if !before(from, to) {
            // Nothing published past what was asked for, as last seen (a
            // consumer that keeps pace): not again until `saw`.
            self.next = head.wrapping_add(UNTIL_SEEN_AGAIN);
            return None;
        }
        self.next = head.wrapping_add(DISTANCE / 2);
        self.asked_to = to;
        Some((from, to))
    }
}

/// The offsets in a data area of `cap` bytes (a power of two) of every
/// line that positions `from..to` touch, at most [`DISTANCE`] bytes as
/// [`ReadAhead::due`] returns them: what to prefetch, in order, wrapping
/// at the end of the area.
pub fn line_offsets(from: u64, to: u64, cap: usize) -> impl Iterator<Item = usize> {
    const LINE: u64 = super::RECORD_ALIGN as u64;
    let start = from & !(LINE - 1);
    let lines = to
        .wrapping_sub(start)
        .div_ceil(LINE)
        .min(DISTANCE / LINE + 1);
    (0..lines).map(move |i| (start.wrapping_add(i * LINE) & (cap as u64 - 1)) as usize)
}

/// How far past a read position `next` goes when only a new sighting of
/// the producer can give something to ask for: "never", for positions
/// that grow by bytes read.
const UNTIL_SEEN_AGAIN: u64 = 1 << 62;

#[cfg(test)]
mod tests {
    use super::{DISTANCE, ReadAhead, line_offsets};

    /// Walks `reads` read positions `step` bytes apart from `start`; every
    /// range returned, in order.
    fn walk(ahead: &mut ReadAhead, start: u64, step: u64, reads: u64) -> Vec<(u64, u64)> {
        (0..reads)
            .filter_map(|i| ahead.due(start + i * step))
            .collect()
    }

    #[test]
    fn a_consumer_behind_asks_for_every_line_once_up_to_the_distance() {
        let mut ahead = ReadAhead::default();
        ahead.saw(1 << 20);
        let ranges = walk(&mut ahead, 0, 128, 64);
        // Read 64 records of 128 bytes: asked for 0..2048 at first, then
        // half the distance more each time half the distance was read.
        assert_eq!(ranges[0], (0, DISTANCE));
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].1, pair[1].0, "no line twice, none skipped");
            assert_eq!(pair[1].1 - pair[1].0, DISTANCE / 2);
        }
        let last_read = 63 * 128;
        let asked_to = ranges.last().unwrap().1;
        assert!(asked_to > last_read + DISTANCE / 2 && asked_to <= last_read + DISTANCE);
    }

    #[test]
    fn nothing_past_the_producer_as_last_seen() {
        let mut ahead = ReadAhead::default();
        // A consumer that keeps pace: the producer was last seen where the
        // consumer reads now.
        ahead.saw(4096);
        assert_eq!(ahead.due(4096), None);
        assert_eq!(walk(&mut ahead, 4096, 128, 100), []);
        // Seen 1000 bytes ahead: up to there, and no further.
        let mut ahead = ReadAhead::default();
        ahead.saw(5096);
        assert_eq!(ahead.due(4096), Some((4096, 5096)));
        assert_eq!(walk(&mut ahead, 4224, 128, 8), [], "not yet time to look");
        assert_eq!(ahead.due(5120), None, "nothing more published as seen");
        assert_eq!(walk(&mut ahead, 5248, 128, 1000), [], "nor later");
        // Seen further on: from where it reads, at once.
        ahead.saw(1 << 20);
        assert_eq!(ahead.due(200_000), Some((200_000, 200_000 + DISTANCE)));
    }

    #[test]
    fn a_consumer_that_jumps_ahead_starts_from_where_it_reads() {
        let mut ahead = ReadAhead::default();
        ahead.saw(u64::MAX / 2);
        assert_eq!(ahead.due(0), Some((0, DISTANCE)));
        // A large record read: the lines asked for are all behind.
        assert_eq!(ahead.due(1 << 20), Some((1 << 20, (1 << 20) + DISTANCE)));
    }

    #[test]
    fn any_position_the_peer_writes_gives_a_range_of_at_most_the_distance() {
        let mut ranges = 0;
        for horizon in [0, 1, 63, DISTANCE - 1, u64::MAX, u64::MAX / 2, 1 << 63] {
            let mut ahead = ReadAhead::default();
            ahead.saw(horizon);
            // Read positions are this side's own: they only grow.
            for head in [0, 100, 1000, 1 << 20, 1 << 40] {
                if let Some((from, to)) = ahead.due(head) {
                    ranges += 1;
                    let len = to.wrapping_sub(from);
                    assert!(len > 0 && len <= DISTANCE, "{horizon} {head}: {from}..{to}");
                    assert!(
                        from.wrapping_sub(head) < DISTANCE,
                        "{horizon} {head}: {from}"
                    );
                }
            }
        }
        assert!(ranges > 0, "some of those positions lie ahead");
    }

    #[test]
    fn the_lines_of_a_range_wrap_at_the_end_of_the_data_area() {
        let cap = 4096;
        let offsets: Vec<usize> = line_offsets(3968 + 8192, 3968 + 8192 + 200, cap).collect();
        assert_eq!(offsets, [3968, 4032, 0, 64]);
        // A range that starts inside a line includes that line.
        let offsets: Vec<usize> = line_offsets(100, 129, cap).collect();
        assert_eq!(offsets, [64, 128]);
        assert_eq!(line_offsets(640, 640, cap).count(), 0);
        // Never more than the distance's lines, whatever the range.
        assert_eq!(line_offsets(0, u64::MAX, 1 << 20).count(), 33);
    }
}
