"""Frames over an asyncio stream (unix or tcp): what :mod:`utp.aio` sends and receives through.

A receive may be cancelled (a timeout around it, a task cancelled) at any
await without losing or splitting a frame: ``readexactly`` takes bytes
only once all it asked for are there, and a header read before a
cancelled wait for its payload is kept for the next receive.
"""

from __future__ import annotations

import asyncio
import socket
import struct

from . import sockets
from .endpoint import Endpoint
from .errors import ConnectionClosed
from .frame import (
    FLAG_CHECKSUM,
    GOODBYE,
    HEADER_SIZE,
    RESPONSE,
    TOO_LARGE,
    Frame,
    FrameError,
    Header,
    decode_header,
    encode,
    verify_checksum,
)

_LENGTH = struct.Struct("<I")


class FrameStream:
    """UTP frames (or, with ``length_framing``, the tutorial's ``[u32 LE length][bytes]``,
    every message a RESPONSE) over an asyncio stream; numbers its own frames 1, 2, 3, ..."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_payload: int,
                 length_framing: bool = False):
        self._reader = reader
        self._writer = writer
        self._length_framing = length_framing
        self.max_payload = max_payload
        self._next_sequence = 1
        # A header (or length prefix) read by a receive cancelled while it
        # waited for the payload: the next receive goes on from it.
        self._head: tuple[bytes, Header | None] | None = None

    @classmethod
    async def connect(cls, endpoint: Endpoint, timeout: float, max_payload: int) -> FrameStream:
        """Connect to ``endpoint`` (unix or tcp) within ``timeout`` seconds.

        Connecting, with its check of who the server is, runs in a worker
        thread; a server of a user the URL does not trust raises
        :class:`~utp.identity.PeerNotTrusted`.
        """
        sock: socket.socket = await asyncio.to_thread(sockets.connect, endpoint, timeout)
        try:
            reader, writer = await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        return cls(reader, writer, max_payload, endpoint.framing == "length")

    @property
    def sent_sequence(self) -> int | None:
        """The sequence number of the last frame sent (None: the framing has none)."""
        return None if self._length_framing else (self._next_sequence - 1) & (2**64 - 1)

    async def send(self, message_type: int, payload: bytes) -> None:
        """Write one frame and wait until the transport has taken it."""
        if self._length_framing:
            if message_type == GOODBYE:
                return  # no place for it in the tutorial's framing
            data = _LENGTH.pack(len(payload)) + payload
        else:
            data = encode(message_type, payload, sequence=self._next_sequence, flags=FLAG_CHECKSUM)
            self._next_sequence += 1
        self._writer.write(data)
        await self._writer.drain()

    async def receive(self) -> Frame | None:
        """One whole frame; None if the peer closed between frames.

        The announced length is checked before the payload is awaited, and
        the payload's buffer grows only as its bytes arrive. Raises
        :class:`~utp.frame.FrameError` and :class:`~utp.errors.ConnectionClosed`
        (closed mid-frame).
        """
        if self._head is None:
            size = _LENGTH.size if self._length_framing else HEADER_SIZE
            head = await self._read(size, at_start=True)
            if head is None:
                return None
            self._head = (head, self._decode_head(head))
        head, header = self._head
        length = _LENGTH.unpack(head)[0] if header is None else header.payload_length
        payload = await self._read(length) if length else b""
        self._head = None
        assert payload is not None
        if header is None:
            return Frame(RESPONSE, payload, sequence=0, flags=0)
        verify_checksum(head, header, payload)
        return Frame(header.message_type, payload, header.sequence, header.timestamp_us, header.flags,
                     header.checksum)

    def _decode_head(self, head: bytes) -> Header | None:
        """The header of a UTP frame (None for a length prefix), its length checked."""
        if not self._length_framing:
            return decode_header(head, self.max_payload)
        (length,) = _LENGTH.unpack(head)
        if length > self.max_payload:
            raise FrameError(TOO_LARGE, f"message length {length} exceeds the limit of {self.max_payload} bytes")
        return None

    async def _read(self, size: int, at_start: bool = False) -> bytes | None:
        try:
            return await self._reader.readexactly(size)
        except asyncio.IncompleteReadError as error:
            if at_start and not error.partial:
                return None
            raise ConnectionClosed(f"connection closed after {len(error.partial)} of {size} bytes") from None

    def close(self) -> None:
        """Close the connection."""
        self._writer.close()
