"""The UTP frame, version 1 (``docs/frame.md``).

A frame is a packed 32-byte little-endian header followed by
``payload_length`` bytes of payload::

    offset size field
    0      4    magic           0x55545042 ("UTPB", wire bytes 42 50 54 55)
    4      1    version         1
    5      1    message_type
    6      2    flags           bit 0 = CHECKSUM
    8      4    payload_length
    12     8    sequence
    20     8    timestamp       microseconds since the Unix epoch
    28     4    checksum        CRC-32C of header[0:28] + payload, if CHECKSUM

:func:`decode` applies the six decoding rules of the spec in order and raises
:class:`FrameError` with the ``kind`` of the first rule that fails.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from .crc32c import crc32c, crc32c_update
from .errors import UtpError

MAGIC = 0x55545042
MAGIC_BYTES = b"\x42\x50\x54\x55"
VERSION = 1
HEADER_SIZE = 32
DEFAULT_MAX_PAYLOAD = 1_048_576

FLAG_CHECKSUM = 0x0001
#: The frame answers a request; its sequence is that request's (docs/protocol.md, "Correlation").
FLAG_REPLY = 0x0002

# Message types (docs/frame.md and docs/protocol.md).
DATA = 0x01
HEARTBEAT = 0x02
ACK = 0x03
TIME = 0x04
TEXT = 0x05
REQUEST = 0x10
RESPONSE = 0x11
ERROR = 0x12
GOODBYE = 0x13
LINK_HELLO = 0x20
LINK_ATTACH = 0x21
LINK_READY = 0x22

_HEADER = struct.Struct("<IBBHIQQI")
_U64_MAX = (1 << 64) - 1

# Error kinds, named as in the spec.
TRUNCATED = "truncated"
BAD_MAGIC = "bad_magic"
UNSUPPORTED_VERSION = "unsupported_version"
TOO_LARGE = "too_large"
CHECKSUM_MISMATCH = "checksum_mismatch"
ERROR_KINDS = (TRUNCATED, BAD_MAGIC, UNSUPPORTED_VERSION, TOO_LARGE, CHECKSUM_MISMATCH)


class FrameError(UtpError, ValueError):
    """A byte string is not a valid UTP frame; ``kind`` names the failed rule."""

    def __init__(self, kind: str, detail: str):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown frame error kind {kind!r}")
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Header:
    """The fields of a 32-byte frame header, as read from the wire."""

    message_type: int
    flags: int
    payload_length: int
    sequence: int
    timestamp_us: int
    checksum: int

    @property
    def has_checksum(self) -> bool:
        """True when the CHECKSUM flag (bit 0) is set."""
        return bool(self.flags & FLAG_CHECKSUM)


@dataclass(frozen=True)
class Frame:
    """One decoded (or to-be-encoded) UTP frame."""

    message_type: int
    payload: bytes = b""
    sequence: int = 1
    timestamp_us: int = 0
    flags: int = FLAG_CHECKSUM
    checksum: int = 0

    def encode(self) -> bytes:
        """Serialise this frame; the checksum is computed when CHECKSUM is set."""
        return encode(
            self.message_type,
            self.payload,
            sequence=self.sequence,
            timestamp_us=self.timestamp_us,
            flags=self.flags,
        )


def now_us() -> int:
    """Microseconds since the Unix epoch, for the timestamp field."""
    return time.time_ns() // 1000


def encode(
    message_type: int,
    payload: bytes = b"",
    *,
    sequence: int,
    timestamp_us: int | None = None,
    flags: int = FLAG_CHECKSUM,
) -> bytes:
    """Build the bytes of one frame.

    ``timestamp_us`` defaults to now. The checksum field is the CRC-32C of
    header bytes 0..28 followed by the payload when ``flags`` has CHECKSUM,
    otherwise 0. Raises ``ValueError`` for a field out of its range.
    """
    payload = bytes(payload)
    if timestamp_us is None:
        timestamp_us = now_us()
    _check_range("message_type", message_type, 0xFF)
    _check_range("flags", flags, 0xFFFF)
    _check_range("payload length", len(payload), 0xFFFFFFFF)
    _check_range("sequence", sequence, _U64_MAX)
    _check_range("timestamp_us", timestamp_us, _U64_MAX)
    head = _HEADER.pack(
        MAGIC, VERSION, message_type, flags, len(payload), sequence, timestamp_us, 0
    )
    checksum = 0
    if flags & FLAG_CHECKSUM:
        checksum = crc32c_update(crc32c(head[:28]), payload)
    return head[:28] + struct.pack("<I", checksum) + payload


def decode_header(data: bytes | bytearray | memoryview, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Header:
    """Check rules 1-4 of the spec on the first 32 bytes of ``data``.

    Used by stream readers to learn ``payload_length`` before reading (and
    allocating) the payload. Raises :class:`FrameError`.
    """
    if len(data) < HEADER_SIZE:
        raise FrameError(TRUNCATED, f"{len(data)} bytes, a header needs {HEADER_SIZE}")
    magic, version, message_type, flags, length, sequence, timestamp, checksum = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise FrameError(BAD_MAGIC, f"magic 0x{magic:08x}, expected 0x{MAGIC:08x}")
    if version != VERSION:
        raise FrameError(UNSUPPORTED_VERSION, f"version {version}, expected {VERSION}")
    if length > max_payload:
        raise FrameError(TOO_LARGE, f"payload_length {length} exceeds the limit of {max_payload} bytes")
    return Header(message_type, flags, length, sequence, timestamp, checksum)


def verify_checksum(header_bytes: bytes | bytearray | memoryview, header: Header, payload: bytes) -> None:
    """Apply rule 6: raise ``checksum_mismatch`` if CHECKSUM is set and the CRC differs."""
    if not header.has_checksum:
        return
    actual = crc32c_update(crc32c(bytes(header_bytes[:28])), payload)
    if actual != header.checksum:
        raise FrameError(
            CHECKSUM_MISMATCH,
            f"checksum field 0x{header.checksum:08x}, computed 0x{actual:08x}",
        )


def decode(data: bytes | bytearray | memoryview, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Frame:
    """Decode one frame from the start of ``data`` (trailing bytes are ignored).

    Applies, in order: truncated header, bad magic, unsupported version,
    too large, truncated payload, checksum mismatch. Never reads past
    ``data``. Raises :class:`FrameError`.
    """
    header = decode_header(data, max_payload)
    end = HEADER_SIZE + header.payload_length
    if len(data) < end:
        raise FrameError(
            TRUNCATED,
            f"{len(data)} bytes, the frame needs {end} (payload_length {header.payload_length})",
        )
    payload = bytes(data[HEADER_SIZE:end])
    verify_checksum(data, header, payload)
    return Frame(
        message_type=header.message_type,
        payload=payload,
        sequence=header.sequence,
        timestamp_us=header.timestamp_us,
        flags=header.flags,
        checksum=header.checksum,
    )


def _check_range(name: str, value: int, maximum: int) -> None:
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} {value} is outside 0..{maximum}")
