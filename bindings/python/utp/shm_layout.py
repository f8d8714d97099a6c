"""Byte layout of the shared-memory link, layout version 1 (docs/shm-layout.md).

Pure data: offsets, the LINK_HELLO / LINK_ATTACH payloads, and the checks a
client makes on a region before trusting it. Nothing here maps memory.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from .errors import ProtocolError

LAYOUT_VERSION = 1
CONTROL_MAGIC = 0x4B4E4C55  # "ULNK"
PADDING_MAGIC = 0x44415055  # "UPAD"
DATA_OFFSET = 4096
MIN_CAPACITY = 4096
MAX_CAPACITY = 1 << 30
HANDSHAKE_MAX_PAYLOAD = 4096
RECORD_ALIGN = 64  # records (and padding) are whole cache lines

# Region kinds announced in LINK_ATTACH.
KIND_POSIX = 1
KIND_SYSV = 2
KIND_FILE = 3

# Control header (offset 0).
CONTROL_OFFSET = 0
_CONTROL = struct.Struct("<IIQQQI")  # magic, version, region_len, capacity, data_offset, link_id

# Side blocks: 0 = server, 1 = client. Field offsets within a block.
SERVER_SIDE = 64
CLIENT_SIDE = 128
SIDE_STATE = 0
SIDE_PID = 4
SIDE_HEARTBEATS = 8
SIDE_HEARTBEAT_TIME = 16
SIDE_FRAMES_SENT = 24
SIDE_BYTES_SENT = 32
STATE_EMPTY = 0
STATE_READY = 1
STATE_CLOSED = 2

# Ring index blocks: ring 0 = server -> client, ring 1 = client -> server.
RING0_INDEX = 256
RING1_INDEX = 512
INDEX_TAIL = 0
INDEX_HEAD = 64
INDEX_DATA_WAITERS = 128
INDEX_SPACE_WAITERS = 192

_HELLO = struct.Struct("<IIQ")
_ATTACH = struct.Struct("<IIQQiIHH")


def socket_name(link_name: str) -> bytes:
    """The abstract socket address of ``shm://NAME``: NUL + ``utp/shm/NAME``."""
    name = b"\0utp/shm/" + link_name.encode()
    if len(name) - 1 > 107:
        raise ValueError(f"shm link name {link_name!r} is too long for an abstract socket")
    return name


def hello_payload(capacity: int = 0) -> bytes:
    """LINK_HELLO payload: layout version, reserved zero, requested capacity (0 = server's choice)."""
    return _HELLO.pack(LAYOUT_VERSION, 0, capacity)


def record_length(payload_length: int) -> int:
    """Bytes one frame takes in a ring: header + payload, rounded up to 64."""
    return (32 + payload_length + RECORD_ALIGN - 1) & ~(RECORD_ALIGN - 1)


def region_length(capacity: int) -> int:
    """Bytes in a region with rings of ``capacity`` bytes: 4096 + 2 * C."""
    return DATA_OFFSET + 2 * capacity


def valid_capacity(capacity: int) -> bool:
    """A ring capacity is a power of two from 4096 to 2^30."""
    return MIN_CAPACITY <= capacity <= MAX_CAPACITY and capacity & (capacity - 1) == 0


@dataclass(frozen=True)
class Attach:
    """The decoded LINK_ATTACH payload: where the link's region is."""

    version: int
    kind: int
    region_len: int
    capacity: int
    shmid: int
    link_id: int
    name: str

    @classmethod
    def decode(cls, payload: bytes) -> Attach:
        """Parse and check a LINK_ATTACH payload; raises :class:`ProtocolError`."""
        if len(payload) < _ATTACH.size:
            raise ProtocolError(f"LINK_ATTACH payload of {len(payload)} bytes, at least {_ATTACH.size} needed")
        version, kind, region_len, capacity, shmid, link_id, name_len, _zero = _ATTACH.unpack_from(payload)
        if len(payload) < _ATTACH.size + name_len:
            raise ProtocolError(f"LINK_ATTACH name of {name_len} bytes overruns the {len(payload)}-byte payload")
        try:
            name = payload[_ATTACH.size:_ATTACH.size + name_len].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("LINK_ATTACH region name is not UTF-8") from None
        attach = cls(version, kind, region_len, capacity, shmid, link_id, name)
        attach._check()
        return attach

    def _check(self) -> None:
        if self.version != LAYOUT_VERSION:
            raise ProtocolError(f"shm layout version {self.version}, this client speaks {LAYOUT_VERSION}")
        if not valid_capacity(self.capacity):
            raise ProtocolError(f"ring capacity {self.capacity} is not a power of two in 4096..=2^30")
        if self.region_len != region_length(self.capacity):
            raise ProtocolError(f"region length {self.region_len} is not 4096 + 2 * {self.capacity}")
        if self.kind not in (KIND_POSIX, KIND_SYSV, KIND_FILE):
            raise ProtocolError(f"unknown region kind {self.kind}")

    def check_named_after(self, link_name: str) -> None:
        """Section 2.2 step 1: an ``shm://NAME`` link must be a POSIX region ``/utp.NAME.<...>``.

        Refuses any other kind or name, so a confused server cannot make the
        client map another object. Raises :class:`ProtocolError`.
        """
        if self.kind != KIND_POSIX:
            raise ProtocolError(f"shm://{link_name} offered a region of kind {self.kind}; "
                                f"an shm:// link is a POSIX region (kind {KIND_POSIX})")
        prefix = f"/utp.{link_name}."
        if not re.fullmatch(re.escape(prefix) + r"[0-9]+\.[0-9]+", self.name):
            raise ProtocolError(f"the region {self.name!r} is not named after shm://{link_name} "
                                f"(expected {prefix}<pid>.<n>)")


def check_control_header(region, attach: Attach) -> None:
    """Validate the control header of a mapped region against LINK_ATTACH (section 2.2, step 2)."""
    magic, version, region_len, capacity, data_offset, _link_id = _CONTROL.unpack_from(region, CONTROL_OFFSET)
    problems = []
    if magic != CONTROL_MAGIC:
        problems.append(f"magic 0x{magic:08x}, expected 0x{CONTROL_MAGIC:08x}")
    if version != LAYOUT_VERSION:
        problems.append(f"layout version {version}, expected {LAYOUT_VERSION}")
    if region_len != attach.region_len:
        problems.append(f"region length {region_len}, LINK_ATTACH said {attach.region_len}")
    if capacity != attach.capacity:
        problems.append(f"capacity {capacity}, LINK_ATTACH said {attach.capacity}")
    if data_offset != DATA_OFFSET:
        problems.append(f"data offset {data_offset}, expected {DATA_OFFSET}")
    if region_len != region_length(capacity):
        problems.append(f"region length {region_len} is not 4096 + 2 * {capacity}")
    if problems:
        raise ProtocolError("the link region's control header is invalid: " + "; ".join(problems))
