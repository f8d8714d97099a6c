"""One single-producer single-consumer ring of the shm link (docs/shm-layout.md section 4, layout v2).

A ring is an index block (``tail``, ``head``, two futex words, each on its
own cache line) plus a data area of C bytes holding records: an 8-byte
*stamp* (the position just after the record; bit 0 set = padding), the UTP
header and the payload, padded to a multiple of 64, never wrapping. The
consumer polls the stamp at ``head`` and never reads ``tail``; it zeroes the
line-start word of every line it releases before publishing ``head``, so a
stale byte of an earlier lap is never taken for a stamp.

Stamps, index and futex words are read and written through ``memoryview.cast``
views in native byte order: CPython copies such an item with one fixed-size
``memcpy`` (a single aligned load or store), whereas ``struct`` with ``<Q``
assembles it byte by byte and could tear. On x86-64 an aligned load is an
acquire and an aligned store a release, so keeping program order is enough
for ``[STAMP]`` and ``[HEAD]``; on weakly ordered machines (aarch64) a full
fence follows each such load and precedes each such store. The ``[WAKE]``
fence is :func:`full_fence`, done only when the peer declared it may sleep.

Everything read from the region comes from another process: each stamp and
header is read once, each length checked before use, the payload copied out
before its checksum is verified, and any violation makes the ring raise
:class:`RingCorrupt` from then on.
"""

from __future__ import annotations

import platform
from collections.abc import Callable

from . import frame as utp_frame
from .errors import UtpError
from .frame import HEADER_SIZE, Frame
from .futex import full_fence, futex_wake
from .shm_layout import (
    INDEX_DATA_EVENT,
    INDEX_DATA_WAITERS,
    INDEX_HEAD,
    INDEX_SPACE_WAITERS,
    INDEX_TAIL,
    RECORD_ALIGN,
    SLACK,
    STAMP_SIZE,
    record_length,
)

_U64 = (1 << 64) - 1
# x86-64 (TSO): aligned loads are acquires and aligned stores releases.
_NEEDS_ORDERING_FENCES = platform.machine().lower() not in ("x86_64", "amd64")
_STAMP_PADDING = 1
_STAMP_RESERVED = 62  # bits 1..5 must be clear: records start and end on 64-byte boundaries


class RingCorrupt(UtpError):
    """The peer (or a stranger) wrote indices or records that break the ring's rules."""


class RingFull(UtpError):
    """A record larger than the ring can ever hold."""


class RingWords:
    """The index block and data area of one ring inside a mapped region.

    ``u64`` and ``u32`` are native-order views of the whole region;
    ``base_address`` is the region's address in this process (for futexes).
    """

    def __init__(self, region: memoryview, u64: memoryview, u32: memoryview, base_address: int,
                 index_offset: int, data_offset: int, capacity: int):
        self.region = region
        self._u64, self._u32 = u64, u32
        self._tail = (index_offset + INDEX_TAIL) // 8
        self._head = (index_offset + INDEX_HEAD) // 8
        self._data_waiters = (index_offset + INDEX_DATA_WAITERS) // 4
        self._data_event = (index_offset + INDEX_DATA_EVENT) // 4
        self._space_waiters = (index_offset + INDEX_SPACE_WAITERS) // 4
        self.data_waiters_address = base_address + index_offset + INDEX_DATA_WAITERS
        self.space_waiters_address = base_address + index_offset + INDEX_SPACE_WAITERS
        self.data_offset = data_offset
        self.capacity = capacity
        self.mask = capacity - 1

    def load_stamp(self, offset: int) -> int:
        """The stamp of the record at data-area ``offset``, with acquire ordering."""
        value = self._u64[(self.data_offset + offset) // 8]
        if _NEEDS_ORDERING_FENCES:
            full_fence()
        return value

    def store_stamp(self, offset: int, value: int, release: bool) -> None:
        """Write a stamp; ``release`` orders every earlier store before it."""
        if release and _NEEDS_ORDERING_FENCES:
            full_fence()
        self._u64[(self.data_offset + offset) // 8] = value

    def load_tail(self) -> int:
        """The producer's write position (informational: a consumer never needs it)."""
        return self._u64[self._tail]

    def store_tail(self, value: int) -> None:
        """Record the write position for inspection (relaxed)."""
        self._u64[self._tail] = value

    def load_head(self) -> int:
        """The consumer's read position, with acquire ordering."""
        value = self._u64[self._head]
        if _NEEDS_ORDERING_FENCES:
            full_fence()
        return value

    def store_head(self, value: int) -> None:
        """Publish a new read position, with release ordering."""
        if _NEEDS_ORDERING_FENCES:
            full_fence()
        self._u64[self._head] = value

    def set_waiting_for_data(self, flag: int) -> None:
        """Set (1) or clear (0) this ring's ``data_waiters`` futex word."""
        self._u32[self._data_waiters] = flag

    def set_waiting_for_space(self, flag: int) -> None:
        """Set (1) or clear (0) this ring's ``space_waiters`` futex word."""
        self._u32[self._space_waiters] = flag

    def wake_data_waiter(self) -> None:
        """After a publish: wake the consumer if it flagged itself asleep."""
        if self._u32[self._data_waiters] != 0:
            self._u32[self._data_waiters] = 0
            futex_wake(self.data_waiters_address)

    def take_data_event(self) -> bool:
        """After a publish (and its fence): did the consumer ask for a wake-up byte (5.3)?

        Clears the request. Not an atomic exchange (Python has none on shared
        memory): a consumer re-arming between the load and the store is
        cleared too, but the caller sends a byte for it anyway, so no
        wake-up is lost; at worst one is spurious.
        """
        if self._u32[self._data_event] != 0:
            self._u32[self._data_event] = 0
            return True
        return False

    def wake_space_waiter(self) -> None:
        """After a release: wake the producer if it flagged itself asleep."""
        if self._u32[self._space_waiters] != 0:
            self._u32[self._space_waiters] = 0
            futex_wake(self.space_waiters_address)


class RingWriter:
    """The producer end of a ring: this process is its only writer of stamps and ``tail``.

    ``peer_sleeps`` (the consumer's ``sleeps`` word, read once after the
    handshake) says whether a publish must do the ``[WAKE]`` step.
    """

    def __init__(self, words: RingWords, peer_sleeps: bool = True):
        self.words = words
        self.peer_sleeps = peer_sleeps
        # Event-loop wake-ups (5.3), when both ends agreed on them: how to
        # send the byte, and how to look whether a spinning peer started
        # sleeping (its ``sleeps`` word).
        self.send_wake: Callable[[], None] | None = None
        self.peer_sleeps_now: Callable[[], bool] | None = None
        self.tail = words.load_tail()
        self.head_cache = words.load_head()
        self.record_bytes = 0  # lengths of the records written (not wrap-around padding)

    def try_write(self, data: bytes) -> bool:
        """Put one encoded frame (header + payload) in the ring; False if there is no room now.

        Raises :class:`RingFull` if the record can never fit, :class:`RingCorrupt`
        if the consumer's ``head`` is outside ``head_cache..=tail``.
        """
        words, capacity = self.words, self.words.capacity
        length = record_length(len(data) - HEADER_SIZE)
        if length > capacity - SLACK:
            raise RingFull(f"a frame of {len(data) - HEADER_SIZE} payload bytes needs a {length}-byte record; "
                           f"a {capacity}-byte ring holds records of at most {capacity - SLACK} bytes")
        while True:
            used = (self.tail - self.head_cache) & _U64
            offset = self.tail & words.mask
            contiguous = capacity - offset
            if length <= contiguous:
                if used + length + SLACK <= capacity:
                    break
            elif used + contiguous + SLACK <= capacity:
                self._publish(offset, contiguous, padding=True)
                continue
            head = words.load_head()  # [HEAD] acquire
            if ((head - self.head_cache) & _U64) > ((self.tail - self.head_cache) & _U64):
                raise RingCorrupt(f"ring head {head} is outside {self.head_cache}..={self.tail}")
            if head == self.head_cache:
                return False
            self.head_cache = head
        start = words.data_offset + offset + STAMP_SIZE
        words.region[start:start + len(data)] = data
        self._publish(offset, length, padding=False)
        self.record_bytes = (self.record_bytes + length) & _U64
        return True

    def _publish(self, offset: int, length: int, padding: bool) -> None:
        words = self.words
        following = (self.tail + length) & _U64
        words.store_stamp(offset, following | (_STAMP_PADDING if padding else 0), release=True)  # [STAMP]
        self.tail = following
        words.store_tail(following)
        if not self.peer_sleeps and self.peer_sleeps_now is not None and self.peer_sleeps_now():
            # A consumer that only spun now waits in an event loop (5.3):
            # from this publish on, do the fenced [WAKE] step.
            self.peer_sleeps = True
        if self.peer_sleeps:
            full_fence()  # [WAKE]
            words.wake_data_waiter()
            if self.send_wake is not None and words.take_data_event():
                self.send_wake()


class RingReader:
    """The consumer end of a ring: this process is its only writer of ``head``.

    ``peer_sleeps`` (the producer's ``sleeps`` word) says whether a release
    must do the ``[WAKE]`` step.
    """

    def __init__(self, words: RingWords, max_payload: int, peer_sleeps: bool = True):
        self.words = words
        self.max_payload = max_payload
        self.peer_sleeps = peer_sleeps
        self.head = words.load_head()
        self._broken: RingCorrupt | None = None

    def has_data(self) -> bool:
        """True if a record (or padding) is published at ``head`` and unread."""
        if self._broken:
            raise self._broken
        return self.words.load_stamp(self.head & self.words.mask) != 0

    def try_read(self) -> Frame | None:
        """Take the next frame out of the ring, or ``None`` if nothing is published.

        Raises :class:`RingCorrupt` (for good: the ring stays broken) or
        :class:`~utp.frame.FrameError` for a frame whose checksum fails or
        whose payload exceeds this side's limit (that frame is skipped, the
        link goes on) or whose header is invalid (the ring is broken).
        """
        if self._broken:
            raise self._broken
        try:
            return self._read()
        except RingCorrupt as corrupt:
            self._broken = corrupt
            raise
        except utp_frame.FrameError as error:
            if error.kind not in (utp_frame.CHECKSUM_MISMATCH, utp_frame.TOO_LARGE):
                self._broken = RingCorrupt(f"invalid frame header in the ring: {error}")
                raise self._broken from None
            raise

    def _read(self) -> Frame | None:
        words, capacity = self.words, self.words.capacity
        while True:
            offset = self.head & words.mask
            contiguous = capacity - offset
            stamp = words.load_stamp(offset)  # [STAMP] acquire, read once
            if stamp == 0:
                return None
            if stamp & _STAMP_RESERVED:
                raise RingCorrupt(f"bad stamp 0x{stamp:016x} at ring offset {offset}")
            length = ((stamp & ~_STAMP_PADDING) - self.head) & _U64
            if length < RECORD_ALIGN or length > contiguous:
                raise RingCorrupt(f"stamp 0x{stamp:016x} at ring offset {offset} gives a {length}-byte record; "
                                  f"records are 64..={contiguous} bytes here")
            if stamp & _STAMP_PADDING:
                if length != contiguous:
                    raise RingCorrupt(f"padding of {length} bytes at ring offset {offset}, expected {contiguous}")
                self._release(length)
                continue
            start = words.data_offset + offset + STAMP_SIZE
            head_bytes = bytes(words.region[start:start + HEADER_SIZE])  # the header, copied out once
            header = utp_frame.decode_header(head_bytes, _U64)  # the limit is checked below, after the length
            if record_length(header.payload_length) != length:
                raise RingCorrupt(f"a header declaring {header.payload_length} payload bytes in a "
                                  f"{length}-byte record at ring offset {offset}")
            if header.payload_length > self.max_payload:
                self._release(length)
                raise utp_frame.FrameError(utp_frame.TOO_LARGE,
                                           f"payload of {header.payload_length} bytes exceeds the limit of "
                                           f"{self.max_payload}; the frame was skipped")
            payload = bytes(words.region[start + HEADER_SIZE:start + HEADER_SIZE + header.payload_length])
            try:
                utp_frame.verify_checksum(head_bytes, header, payload)  # on the private copy
            finally:
                self._release(length)
            return Frame(header.message_type, payload, header.sequence, header.timestamp_us,
                         header.flags, header.checksum)

    def _release(self, length: int) -> None:
        words = self.words
        for line in range(0, length, RECORD_ALIGN):  # zero the line starts given back (4.1, 4.3)
            words.store_stamp((self.head + line) & words.mask, 0, release=False)
        self.head = (self.head + length) & _U64
        words.store_head(self.head)  # [HEAD] release: the zeroes are ordered before it
        if self.peer_sleeps:
            full_fence()  # [WAKE]
            self.words.wake_space_waiter()
