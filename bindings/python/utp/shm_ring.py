"""One single-producer single-consumer ring of the shm link (docs/shm-layout.md section 4).

A ring is an index block (``tail``, ``head``, two futex words, each on its
own cache line) plus a data area of C bytes holding records: a UTP frame
padded to a multiple of 64, never wrapping; a ``UPAD`` marker fills the end
of the area when a record does not fit there.

Index and futex words are read and written through ``memoryview.cast``
views in native byte order: CPython copies such an item with one fixed-size
``memcpy`` (a single aligned load or store), whereas ``struct`` with ``<Q``
assembles it byte by byte and could tear. On x86-64 an aligned load is an
acquire and an aligned store a release, so keeping program order is enough
for ``[TAIL]`` and ``[HEAD]``; on weakly ordered machines (aarch64) a full
fence follows each index load and precedes each index store. The ``[WAKE]``
fence is :func:`full_fence`.

Everything read from the region comes from another process: each index and
length is checked before use, each header is copied out once, and any
violation makes the ring raise :class:`RingCorrupt` from then on.
"""

from __future__ import annotations

import platform
import struct

from . import frame as utp_frame
from .errors import UtpError
from .frame import HEADER_SIZE, Frame
from .futex import full_fence, futex_wake
from .shm_layout import (INDEX_DATA_WAITERS, INDEX_HEAD, INDEX_SPACE_WAITERS, INDEX_TAIL, PADDING_MAGIC,
                         RECORD_ALIGN, record_length)

_U64 = (1 << 64) - 1
# x86-64 (TSO): aligned loads are acquires and aligned stores releases.
_NEEDS_ORDERING_FENCES = platform.machine().lower() not in ("x86_64", "amd64")
_PADDING = struct.Struct("<II")


class RingCorrupt(UtpError):
    """The peer (or a stranger) wrote indices or records that break the ring's rules."""


class RingFull(UtpError):
    """A record larger than the ring can ever hold."""


class RingWords:
    """The index block of one ring inside a mapped region, plus where its data area is.

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
        self._space_waiters = (index_offset + INDEX_SPACE_WAITERS) // 4
        self.data_waiters_address = base_address + index_offset + INDEX_DATA_WAITERS
        self.space_waiters_address = base_address + index_offset + INDEX_SPACE_WAITERS
        self.data_offset = data_offset
        self.capacity = capacity
        self.mask = capacity - 1

    def load_tail(self) -> int:
        """The producer's write position, with acquire ordering."""
        value = self._u64[self._tail]
        if _NEEDS_ORDERING_FENCES:
            full_fence()
        return value

    def store_tail(self, value: int) -> None:
        """Publish a new write position, with release ordering."""
        if _NEEDS_ORDERING_FENCES:
            full_fence()
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

    def wake_space_waiter(self) -> None:
        """After a release: wake the producer if it flagged itself asleep."""
        if self._u32[self._space_waiters] != 0:
            self._u32[self._space_waiters] = 0
            futex_wake(self.space_waiters_address)


class RingWriter:
    """The producer end of a ring: this process is its only writer of ``tail``."""

    def __init__(self, words: RingWords):
        self.words = words
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
        if length > capacity:
            raise RingFull(f"a {len(data)}-byte frame needs a {length}-byte record; the ring holds {capacity}")
        while True:
            used = (self.tail - self.head_cache) & _U64
            offset = self.tail & words.mask
            contiguous = capacity - offset
            if length <= contiguous:
                if length <= capacity - used:
                    break
            elif contiguous <= capacity - used:
                start = words.data_offset + offset
                _PADDING.pack_into(words.region, start, PADDING_MAGIC, contiguous)
                self._publish(self.tail + contiguous)
                continue
            head = words.load_head()  # [HEAD] acquire
            if ((head - self.head_cache) & _U64) > ((self.tail - self.head_cache) & _U64):
                raise RingCorrupt(f"ring head {head} is outside {self.head_cache}..={self.tail}")
            if head == self.head_cache:
                return False
            self.head_cache = head
        start = words.data_offset + offset
        words.region[start + HEADER_SIZE:start + len(data)] = data[HEADER_SIZE:]
        words.region[start:start + HEADER_SIZE] = data[:HEADER_SIZE]
        self._publish(self.tail + length)
        self.record_bytes = (self.record_bytes + length) & _U64
        return True

    def _publish(self, new_tail: int) -> None:
        self.tail = new_tail & _U64
        self.words.store_tail(self.tail)  # [TAIL] release
        full_fence()  # [WAKE]
        self.words.wake_data_waiter()


class RingReader:
    """The consumer end of a ring: this process is its only writer of ``head``."""

    def __init__(self, words: RingWords, max_payload: int):
        self.words = words
        self.max_payload = max_payload
        self.head = words.load_head()
        self.tail_cache = self.head
        self._broken: RingCorrupt | None = None

    def has_data(self) -> bool:
        """True if a record (or padding) is published and unread."""
        if self._broken:
            raise self._broken
        return self.words.load_tail() != self.head

    def try_read(self) -> Frame | None:
        """Take the next frame out of the ring, or ``None`` if nothing is published.

        Raises :class:`RingCorrupt` (for good: the ring stays broken) or
        :class:`~utp.frame.FrameError` for a frame whose checksum fails (that
        frame is skipped) or whose header is invalid (the ring is broken).
        """
        if self._broken:
            raise self._broken
        try:
            return self._read()
        except RingCorrupt as corrupt:
            self._broken = corrupt
            raise
        except utp_frame.FrameError as error:
            if error.kind != utp_frame.CHECKSUM_MISMATCH:
                self._broken = RingCorrupt(f"invalid frame header in the ring: {error}")
                raise self._broken from None
            raise

    def _read(self) -> Frame | None:
        words, capacity = self.words, self.words.capacity
        while True:
            if self.tail_cache == self.head:
                tail = words.load_tail()  # [TAIL] acquire
                if ((tail - self.head) & _U64) > capacity:
                    raise RingCorrupt(f"ring tail {tail} is more than {capacity} bytes ahead of head {self.head}")
                if ((tail - self.head) & _U64) < ((self.tail_cache - self.head) & _U64):
                    raise RingCorrupt(f"ring tail moved back from {self.tail_cache} to {tail}")
                self.tail_cache = tail
                if tail == self.head:
                    return None
            available = (self.tail_cache - self.head) & _U64
            offset = self.head & words.mask
            contiguous = capacity - offset
            start = words.data_offset + offset
            if available < RECORD_ALIGN:
                raise RingCorrupt(f"only {available} bytes published, a record takes at least {RECORD_ALIGN}")
            marker, padding = _PADDING.unpack_from(words.region, start)
            if marker == PADDING_MAGIC:
                if padding != contiguous or padding > available:
                    raise RingCorrupt(f"padding of {padding} bytes at offset {offset}, expected {contiguous}")
                self._release(padding)
                continue
            if contiguous < HEADER_SIZE or available < HEADER_SIZE:
                raise RingCorrupt(f"a record at offset {offset} has no room for a 32-byte header")
            head_bytes = bytes(words.region[start:start + HEADER_SIZE])  # read the header once
            header = utp_frame.decode_header(head_bytes, self.max_payload)
            length = record_length(header.payload_length)
            if length > contiguous or length > available:
                raise RingCorrupt(f"a {length}-byte record at offset {offset} overruns the published data")
            payload = bytes(words.region[start + HEADER_SIZE:start + HEADER_SIZE + header.payload_length])
            try:
                utp_frame.verify_checksum(head_bytes, header, payload)
            finally:
                self._release(length)
            return Frame(header.message_type, payload, header.sequence, header.timestamp_us,
                         header.flags, header.checksum)

    def _release(self, length: int) -> None:
        self.head = (self.head + length) & _U64
        self.words.store_head(self.head)  # [HEAD] release
        full_fence()  # [WAKE]
        self.words.wake_space_waiter()
