"""Byte layout of the shared-memory link, layout version 2 (docs/shm-layout.md).

Pure data: offsets, the LINK_HELLO / LINK_ATTACH payloads, and the checks a
client makes on a region before trusting it. Nothing here maps memory.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

from .errors import ProtocolError

LAYOUT_VERSION = 2
CONTROL_MAGIC = 0x4B4E4C55  # "ULNK"
DATA_OFFSET = 4096
MIN_CAPACITY = 4096
MAX_CAPACITY = 1 << 30
HANDSHAKE_MAX_PAYLOAD = 4096
RECORD_ALIGN = 64  # records (and padding) are whole cache lines
STAMP_SIZE = 8  # each record starts with its stamp (section 4.1)
RECORD_OVERHEAD = STAMP_SIZE + 32  # stamp + UTP header
SLACK = RECORD_ALIGN  # the line after what a producer publishes stays free

# Region kinds announced in LINK_ATTACH.
KIND_SYSV = 2
KIND_FILE = 3
KIND_MEMFD = 4

# Control header (offset 0).
CONTROL_OFFSET = 0
_CONTROL = struct.Struct("<IIQQQI")  # magic, version, region_len, capacity, data_offset, link_id

# Side status lines (polled; written at attach and close): 0 = server, 1 = client.
SERVER_SIDE = 64
CLIENT_SIDE = 128
SIDE_STATE = 0
SIDE_PID = 4
SIDE_SLEEPS = 8
STATE_EMPTY = 0
STATE_READY = 1
STATE_CLOSED = 2

# Side counters lines (written per message).
SERVER_COUNTERS = 192
CLIENT_COUNTERS = 256
COUNTER_HEARTBEATS = 0
COUNTER_HEARTBEAT_TIME = 8
COUNTER_FRAMES_SENT = 16
COUNTER_BYTES_SENT = 24

# Ring index blocks: ring 0 = server -> client, ring 1 = client -> server.
RING0_INDEX = 512
RING1_INDEX = 768
INDEX_TAIL = 0
INDEX_HEAD = 64
INDEX_DATA_WAITERS = 128
INDEX_DATA_EVENT = 132  # non-zero: the consumer waits in an event loop, wants a wake-up byte (5.3)
INDEX_SPACE_WAITERS = 192

# memfd seals (fcntl F_ADD_SEALS / F_GET_SEALS).
F_SEAL_SEAL = 0x1
F_SEAL_SHRINK = 0x2
F_SEAL_GROW = 0x4
F_SEAL_WRITE = 0x8
F_SEAL_FUTURE_WRITE = 0x10
REQUIRED_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW
FORBIDDEN_SEALS = F_SEAL_WRITE | F_SEAL_FUTURE_WRITE

_HELLO = struct.Struct("<IIQ")
_ATTACH = struct.Struct("<IIQQiIHH")
HELLO_SIZE = _HELLO.size


def socket_file_name(link_name: str) -> str:
    """The rendezvous socket's file name for ``shm://NAME`` in a socket directory (section 2.2)."""
    return "shm." + link_name


FEATURE_WAKE_BYTES = 1  # LINK_HELLO +4 / LINK_ATTACH +34 bit 0: event-loop wake-up bytes (5.3)


def hello_payload(capacity: int = 0, version: int = LAYOUT_VERSION, features: int = 0) -> bytes:
    """LINK_HELLO payload: layout version, features the client supports, requested capacity (0 = server's choice)."""
    return _HELLO.pack(version, features, capacity)


def record_length(payload_length: int) -> int:
    """Bytes one frame takes in a ring: stamp + header + payload, rounded up to 64."""
    return (RECORD_OVERHEAD + payload_length + RECORD_ALIGN - 1) & ~(RECORD_ALIGN - 1)


def max_payload_for(capacity: int) -> int:
    """The largest payload a ring of ``capacity`` bytes carries: ``C - 104``."""
    return capacity - SLACK - RECORD_OVERHEAD


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
    features: int = 0  # the HELLO features both ends use (FEATURE_WAKE_BYTES)

    @classmethod
    def decode(cls, payload: bytes) -> Attach:
        """Parse and check a LINK_ATTACH payload; raises :class:`ProtocolError`."""
        if len(payload) < _ATTACH.size:
            raise ProtocolError(f"LINK_ATTACH payload of {len(payload)} bytes, at least {_ATTACH.size} needed")
        version, kind, region_len, capacity, shmid, link_id, name_len, features = _ATTACH.unpack_from(payload)
        if len(payload) < _ATTACH.size + name_len:
            raise ProtocolError(f"LINK_ATTACH name of {name_len} bytes overruns the {len(payload)}-byte payload")
        try:
            name = payload[_ATTACH.size:_ATTACH.size + name_len].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("LINK_ATTACH region name is not UTF-8") from None
        attach = cls(version, kind, region_len, capacity, shmid, link_id, name, features)
        attach._check()
        return attach

    def _check(self) -> None:
        if self.version != LAYOUT_VERSION:
            raise ProtocolError(f"shm layout version {self.version}, this client speaks {LAYOUT_VERSION}")
        if not valid_capacity(self.capacity):
            raise ProtocolError(f"ring capacity {self.capacity} is not a power of two in 4096..=2^30")
        if self.region_len != region_length(self.capacity):
            raise ProtocolError(f"region length {self.region_len} is not 4096 + 2 * {self.capacity}")
        if self.kind not in (KIND_SYSV, KIND_FILE, KIND_MEMFD):
            raise ProtocolError(f"unknown region kind {self.kind}")

    def check_memfd(self, link_name: str) -> None:
        """Section 2.6 step 1: an ``shm://NAME`` link is a memfd (kind 4) with no name.

        Refuses any other kind, so a confused server cannot make the client
        map another object. Raises :class:`ProtocolError`.
        """
        if self.kind != KIND_MEMFD:
            raise ProtocolError(f"shm://{link_name} offered a region of kind {self.kind}; "
                                f"an shm:// link is a memfd (kind {KIND_MEMFD})")
        if self.name:
            raise ProtocolError(f"shm://{link_name} offered a memfd with a name ({self.name!r}); it has none")
        if self.shmid != -1:
            raise ProtocolError(f"shm://{link_name} offered a memfd with shmid {self.shmid}; expected -1")

    def encode(self) -> bytes:
        """The LINK_ATTACH payload for this region."""
        name = self.name.encode()
        return _ATTACH.pack(self.version, self.kind, self.region_len, self.capacity, self.shmid,
                            self.link_id, len(name), self.features) + name


def write_control_header(region: mmap.mmap | memoryview | bytearray, attach: Attach) -> None:
    """The creator's part (section 3.1): every field, then the magic last."""
    _CONTROL.pack_into(region, CONTROL_OFFSET, 0, attach.version, attach.region_len, attach.capacity,
                       DATA_OFFSET, attach.link_id)
    with memoryview(region) as raw, raw.cast("I") as words:
        words[CONTROL_OFFSET // 4] = CONTROL_MAGIC  # one aligned store, last


def check_control_header(region: mmap.mmap | memoryview | bytes | bytearray, attach: Attach) -> None:
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
