"""Frames over a stream socket (unix or tcp), read incrementally.

Two framings exist on streams (docs/protocol.md):

* :class:`UtpFraming` - UTP frames back to back, the normal case;
* :class:`LengthFraming` - the tutorial's ``[u32 LE length][bytes]``,
  where every message is implicitly a REQUEST (client to server) or a
  RESPONSE (server to client).

Both offer the same two calls, ``send(message_type, payload, timeout)`` and
``receive(timeout) -> Frame | None`` (``None`` = the peer closed the
connection cleanly between messages), so clients and servers do not care
which one they hold. Every read and write has a timeout.
"""

from __future__ import annotations

import select
import socket
import struct
import time

from . import frame as utp_frame
from .errors import ConnectionClosed, UtpTimeout
from .frame import DEFAULT_MAX_PAYLOAD, ERROR, FLAG_CHECKSUM, GOODBYE, HEADER_SIZE, HEARTBEAT, Frame, FrameError

_LENGTH = struct.Struct("<I")


class SocketReader:
    """Exact-size reads from a stream socket, with a deadline and push-back.

    Short reads are normal on streams; :meth:`read_exact` keeps reading until
    it has all the bytes, the deadline passes, or the peer closes.
    """

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._pending = bytearray()

    def unread(self, data: bytes) -> None:
        """Put ``data`` back in front of the stream (used to sniff the framing)."""
        self._pending[:0] = data

    def wait_readable(self, timeout: float) -> bool:
        """Return True when a read would not block (data or EOF), within ``timeout`` seconds."""
        if self._pending:
            return True
        readable, _, _ = select.select([self._sock], [], [], max(timeout, 0.0))
        return bool(readable)

    def read_exact(self, size: int, deadline: float) -> bytes | None:
        """Read exactly ``size`` bytes before ``deadline`` (a ``time.monotonic()`` value).

        Returns ``None`` when the peer closed before sending any of them; raises
        :class:`ConnectionClosed` when it closed part-way, :class:`UtpTimeout`
        when the deadline passes (the bytes read so far are pushed back, so
        the next read starts where this one did).
        """
        buffer = bytearray(self._pending[:size])
        del self._pending[:size]
        while len(buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Kept for the next read: a timeout never loses stream bytes.
                self.unread(bytes(buffer))
                raise UtpTimeout(f"timed out after receiving {len(buffer)} of {size} bytes")
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(min(size - len(buffer), 1 << 20))
            except TimeoutError:
                self.unread(bytes(buffer))
                raise UtpTimeout(f"timed out after receiving {len(buffer)} of {size} bytes") from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                if not buffer:
                    return None
                raise ConnectionClosed(f"connection closed after {len(buffer)} of {size} bytes")
            buffer += chunk
        return bytes(buffer)


def send_all(sock: socket.socket, data: bytes, timeout: float) -> None:
    """Write all of ``data`` within ``timeout`` seconds, or raise."""
    sock.settimeout(timeout)
    try:
        sock.sendall(data)
    except TimeoutError:
        raise UtpTimeout(f"timed out sending {len(data)} bytes") from None
    except (BrokenPipeError, ConnectionResetError) as error:
        raise ConnectionClosed(f"the peer closed the connection ({error.strerror})") from None


class UtpFraming:
    """UTP frames on a stream socket; numbers its own frames 1, 2, 3, ..."""

    name = "utp"

    def __init__(self, sock: socket.socket, reader: SocketReader | None = None,
                 max_payload: int = DEFAULT_MAX_PAYLOAD):
        self.sock = sock
        self.reader = reader or SocketReader(sock)
        self.max_payload = max_payload
        self._next_sequence = 1

    def send(self, message_type: int, payload: bytes = b"", timeout: float = 5.0,
             flags: int = FLAG_CHECKSUM) -> None:
        """Encode and write one frame with the next sequence number."""
        data = utp_frame.encode(message_type, payload, sequence=self._next_sequence, flags=flags)
        self._next_sequence += 1
        send_all(self.sock, data, timeout)

    def reply(self, message_type: int, payload: bytes, answers: int, timeout: float = 5.0) -> None:
        """Send a reply naming request ``answers``: flag REPLY, that request's sequence
        (docs/protocol.md, "Correlation")."""
        data = utp_frame.encode(message_type, payload, sequence=answers,
                                flags=FLAG_CHECKSUM | utp_frame.FLAG_REPLY)
        send_all(self.sock, data, timeout)

    def receive(self, timeout: float) -> Frame | None:
        """Read one whole frame; ``None`` if the peer closed cleanly first.

        The length is checked against ``max_payload`` before the payload is
        read. Raises :class:`FrameError`, :class:`ConnectionClosed` (closed
        mid-frame) or :class:`UtpTimeout`.
        """
        deadline = time.monotonic() + timeout
        head = self.reader.read_exact(HEADER_SIZE, deadline)
        if head is None:
            return None
        header = utp_frame.decode_header(head, self.max_payload)
        payload = b""
        if header.payload_length:
            try:
                body = self.reader.read_exact(header.payload_length, deadline)
            except UtpTimeout:
                self.reader.unread(head)  # the whole frame is read by a later call
                raise
            if body is None:
                raise ConnectionClosed("connection closed after a frame header, before its payload")
            payload = body
        utp_frame.verify_checksum(head, header, payload)
        return Frame(header.message_type, payload, header.sequence, header.timestamp_us,
                     header.flags, header.checksum)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


class LengthFraming:
    """The tutorial framing: ``[u32 LE length][bytes]`` per message, both ways.

    ``inbound_type`` is the message type given to every received message
    (REQUEST on a server, RESPONSE on a client). An ERROR is written as the
    text ``ERR <reason>``; HEARTBEAT and GOODBYE have no place in this
    framing and are not sent at all.
    """

    name = "length"

    def __init__(self, sock: socket.socket, inbound_type: int, reader: SocketReader | None = None,
                 max_payload: int = DEFAULT_MAX_PAYLOAD):
        self.sock = sock
        self.reader = reader or SocketReader(sock)
        self.inbound_type = inbound_type
        self.max_payload = max_payload
        self._next_sequence = 1

    def send(self, message_type: int, payload: bytes = b"", timeout: float = 5.0,
             flags: int = FLAG_CHECKSUM) -> None:
        """Write ``payload`` with its length; HEARTBEAT and GOODBYE are dropped."""
        if message_type in (HEARTBEAT, GOODBYE):
            return
        if message_type == ERROR:
            payload = b"ERR " + bytes(payload)
        if len(payload) > 0xFFFFFFFF:
            raise ValueError(f"a message of {len(payload)} bytes does not fit a u32 length")
        send_all(self.sock, _LENGTH.pack(len(payload)) + bytes(payload), timeout)

    def reply(self, message_type: int, payload: bytes, answers: int, timeout: float = 5.0) -> None:
        """The tutorial's framing has no header to name the request in: a plain send."""
        self.send(message_type, payload, timeout)

    def receive(self, timeout: float) -> Frame | None:
        """Read one length-prefixed message; ``None`` if the peer closed cleanly first."""
        deadline = time.monotonic() + timeout
        prefix = self.reader.read_exact(_LENGTH.size, deadline)
        if prefix is None:
            return None
        (length,) = _LENGTH.unpack(prefix)
        if length > self.max_payload:
            raise FrameError(utp_frame.TOO_LARGE,
                             f"message length {length} exceeds the limit of {self.max_payload} bytes")
        payload = b""
        if length:
            body = self.reader.read_exact(length, deadline)
            if body is None:
                raise ConnectionClosed("connection closed after a length prefix, before the message")
            payload = body
        sequence = self._next_sequence
        self._next_sequence += 1
        return Frame(self.inbound_type, payload, sequence=sequence, flags=0)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def sniff_server_framing(sock: socket.socket, reader: SocketReader, deadline: float,
                         max_payload: int = DEFAULT_MAX_PAYLOAD) -> UtpFraming | LengthFraming | None:
    """Decide a new server connection's framing from its first four bytes.

    UTP magic -> :class:`UtpFraming`; a length within ``max_payload`` ->
    :class:`LengthFraming`; anything else raises ``bad_magic``. Returns
    ``None`` if the client closed without sending anything.
    """
    first = reader.read_exact(4, deadline)
    if first is None:
        return None
    reader.unread(first)
    if first == utp_frame.MAGIC_BYTES:
        return UtpFraming(sock, reader, max_payload)
    (length,) = _LENGTH.unpack(first)
    if length <= max_payload:
        return LengthFraming(sock, utp_frame.REQUEST, reader, max_payload)
    raise FrameError(utp_frame.BAD_MAGIC,
                     f"first bytes {first.hex(' ')} are neither the UTP magic nor a length "
                     f"within {max_payload} bytes")
