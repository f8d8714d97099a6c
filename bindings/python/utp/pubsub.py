"""A pub/sub subscriber for ``shm://NAME`` publishers, from docs/pubsub-layout.md.

Standard library only: the rendezvous socket (``socket.recv_fds`` for the
two descriptors), the data region mapped read-only with libc ``mmap``
through ctypes (so its address is known for futex waits and aligned 8-byte
loads), the control block through :mod:`mmap`.

>>> from utp.pubsub import Subscriber                  # doctest: +SKIP
>>> with Subscriber("shm://prices") as sub:             # doctest: +SKIP
...     message = sub.recv(timeout=5)
...     message.sequence, message.lost_before, message.payload

Field reads are single aligned 8- or 4-byte loads (atomic on x86-64 and
aarch64); a payload is copied and then the slot's stamp re-read, as the
layout's section 5.1 prescribes.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import socket
import stat
import struct
import time
from dataclasses import dataclass

from . import frame
from .errors import ConnectError, ConnectionClosed, ProtocolError, UtpTimeout
from .futex import full_fence, futex_wait, futex_wake
from typing import Any

LAYOUT_VERSION = 1
DATA_MAGIC = b"UTPB"
CONTROL_MAGIC = b"UTPC"
SUBSCRIBE, ACCEPT, INSPECT, REPORT = 0x30, 0x31, 0x32, 0x33
HEADER_LEN = 192
# data region header
D_SLOT_COUNT, D_SLOT_SIZE, D_REGION_LEN, D_PID, D_CLOSED, D_TAIL, D_WAKE = 8, 12, 16, 24, 28, 64, 128
# record
R_STAMP, R_FRAME, R_PAYLOAD = 0, 32, 64
# control block
C_MAGIC, C_STATE, C_CURSOR, C_RECEIVED, C_LOST, C_SLEEP, C_PUB_WAITING = 0, 32, 64, 72, 80, 128, 192
CONTROL_LEN = 4096
STATE_EVICTED, STATE_CLOSED = 1, 2
POLICIES = {"drop": 0, "block": 1}
WAITS = {"spin": 0, "block": 1, "adaptive": 2}
ADAPTIVE_SPIN = 50e-6
SLICE = 0.010
MAX_REGION = 1 << 30

F_GET_SEALS = 1034
F_SEAL_SHRINK, F_SEAL_GROW = 0x0002, 0x0004
PROT_READ, MAP_SHARED, MAP_POPULATE = 1, 1, 0x8000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


@dataclass
class Message:
    """One received message."""

    sequence: int
    lost_before: int
    message_type: int
    timestamp_us: int
    payload: bytes


def region_length(slot_count: int, slot_size: int) -> int | None:
    """Data region length for a geometry, or None if the geometry is invalid."""
    ok = (slot_count >= 2 and slot_count & (slot_count - 1) == 0
          and slot_size >= 128 and slot_size % 64 == 0)
    length = HEADER_LEN + slot_count * slot_size
    return length if ok and length <= MAX_REGION else None


def private_dir() -> str:
    """The per-user rendezvous directory (section 2.1), checked; not created."""
    uid = os.geteuid()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        try:
            st = os.lstat(runtime)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
                return _checked(os.path.join(runtime, "utp"), uid)
        except OSError:
            pass
    return _checked(f"/tmp/utp-{uid}", uid)


def _checked(path: str, uid: int) -> str:
    try:
        st = os.lstat(path)
    except OSError as error:
        raise ConnectError(f"no utp rendezvous directory {path}: {error}") from error
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise ConnectError(f"{path} is not a private directory owned by uid {uid}; refusing it")
    return path


def socket_path(name: str) -> str:
    """Where publisher ``shm://NAME`` listens."""
    return os.path.join(private_dir(), f"pubsub.{name}.sock")


def subscribe_payload(policy: int, wait: int, block_timeout_ns: int) -> bytes:
    """The 24-byte SUBSCRIBE payload."""
    return struct.pack("<IIIIQ", LAYOUT_VERSION, policy, wait, 0, block_timeout_ns)


@dataclass
class Accept:
    """The ACCEPT payload."""

    id: int
    slot_count: int
    slot_size: int
    region_len: int
    start: int
    publisher_pid: int

    @classmethod
    def decode(cls, payload: bytes) -> Accept:
        if len(payload) != 40:
            raise ProtocolError(f"ACCEPT of {len(payload)} bytes, expected 40")
        version, ident, count, size, length, start, pid, _ = struct.unpack("<IIIIQQII", payload)
        if version != LAYOUT_VERSION:
            raise ProtocolError(f"publisher speaks pub/sub layout {version}, not {LAYOUT_VERSION}")
        if region_length(count, size) != length:
            raise ProtocolError(f"ACCEPT with a bad geometry: {count} x {size}, {length} bytes")
        return cls(ident, count, size, length, start, pid)


def subscribe_options(url: str) -> tuple[dict[str, str], int, int]:
    """A subscriber URL's options, its policy code and block timeout (ns)."""
    query = url.partition("?")[2]
    params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
    policy = POLICIES.get(params.get("policy", "drop"))
    if policy is None:
        raise ConnectError(f"bad policy option in {url!r}")
    return params, policy, int(params.get("block_timeout_ms", "1000")) * 1_000_000


def _send_frame(sock: socket.socket, message_type: int, payload: bytes) -> None:
    sock.sendall(frame.encode(message_type, payload, sequence=1))


def _recv_frame(sock: socket.socket) -> tuple[int, bytes, list[int]]:
    head, fds, _, _ = socket.recv_fds(sock, frame.HEADER_SIZE, 2)
    if not head:
        raise ConnectionClosed("the publisher hung up during the handshake")
    while len(head) < frame.HEADER_SIZE:
        more = sock.recv(frame.HEADER_SIZE - len(head))
        if not more:
            raise ConnectionClosed("the publisher hung up during the handshake")
        head += more
    header = frame.decode_header(head, 65536)
    body = b""
    while len(body) < header.payload_length:
        more = sock.recv(header.payload_length - len(body))
        if not more:
            raise ConnectionClosed("the publisher hung up during the handshake")
        body += more
    decoded = frame.decode(head + body, 65536)
    return decoded.message_type, decoded.payload, list(fds)


def _check_fd(fd: int, required_seals: int, length: int, what: str) -> None:
    import fcntl
    seals = fcntl.fcntl(fd, F_GET_SEALS)
    if seals & required_seals != required_seals:
        raise ProtocolError(f"the {what} is not sealed against resizing (seals {seals:#x})")
    if os.fstat(fd).st_size != length:
        raise ProtocolError(f"the {what} is {os.fstat(fd).st_size} bytes, expected {length}")


class Subscriber:
    """Subscribes to ``shm://NAME[?policy=drop|block&block_timeout_ms=N&wait=spin|block|adaptive]``."""

    def __init__(self, url: str, timeout: float = 5.0):
        if not url.startswith("shm://"):
            raise ConnectError(f"the Python subscriber reads shm:// publishers, not {url!r}")
        name = url[len("shm://"):].partition("?")[0]
        params, policy, block_timeout_ns = subscribe_options(url)
        wait = WAITS.get(params.get("wait", "adaptive"))
        if wait is None:
            raise ConnectError(f"bad wait option in {url!r}")
        self.policy: int = policy
        self.wait: int = wait
        self.url = url
        # The data region's address (a raw mapping through libc) and the
        # control block's mmap; None until mapped, and again once closed.
        self._addr: Any = None
        self._control: Any = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._connect(socket_path(name), timeout, block_timeout_ns)
        except BaseException:
            self.close()
            raise

    def _connect(self, path: str, timeout: float, block_timeout_ns: int) -> None:
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError as error:
            raise ConnectError(f"no publisher at {path}: {error}") from error
        creds = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        if uid != os.geteuid():
            raise ConnectError(f"the publisher runs as uid {uid}, not as us")
        _send_frame(self._sock, SUBSCRIBE, subscribe_payload(self.policy, self.wait, block_timeout_ns))
        message_type, payload, fds = _recv_frame(self._sock)
        try:
            if message_type == frame.ERROR:
                raise ConnectError(f"the publisher refused: {payload.decode(errors='replace')}")
            if message_type != ACCEPT or len(fds) != 2:
                raise ProtocolError(f"expected ACCEPT with 2 fds, got type {message_type:#x}, {len(fds)} fds")
            accept = Accept.decode(payload)
            _check_fd(fds[0], F_SEAL_SHRINK | F_SEAL_GROW, accept.region_len, "data region")
            _check_fd(fds[1], F_SEAL_SHRINK | F_SEAL_GROW, CONTROL_LEN, "control block")
            addr = _libc.mmap(None, accept.region_len, PROT_READ, MAP_SHARED | MAP_POPULATE, fds[0], 0)
            if addr in (None, ctypes.c_void_p(-1).value):
                raise OSError(ctypes.get_errno(), "mmap of the pub/sub data region failed")
            self._addr, self._len = addr, accept.region_len
            self._control = mmap.mmap(fds[1], CONTROL_LEN, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            for fd in fds:
                os.close(fd)
        self._control_addr = ctypes.addressof(ctypes.c_char.from_buffer(self._control))
        header = ctypes.string_at(self._addr, 24)
        if (header[:4] != DATA_MAGIC
                or struct.unpack_from("<IIIQ", header, 4) != (LAYOUT_VERSION, accept.slot_count,
                                                              accept.slot_size, accept.region_len)):
            raise ProtocolError("the data region header does not match ACCEPT")
        if self._control[:4] != CONTROL_MAGIC:
            raise ProtocolError("the control block has no UTPC magic")
        self.slot_count, self.slot_size = accept.slot_count, accept.slot_size
        self.max_payload = accept.slot_size - R_PAYLOAD
        self.publisher_pid = accept.publisher_pid
        self.id = accept.id
        self.position = accept.start
        self.received = 0
        self.lost = 0
        self._sock.setblocking(False)
        self._last_check = 0.0

    # ---- shared-memory access ----
    def _u64(self, offset: int) -> int:
        return ctypes.c_uint64.from_address(self._addr + offset).value

    def _u32(self, offset: int) -> int:
        return ctypes.c_uint32.from_address(self._addr + offset).value

    def _store_control(self, offset: int, value: int) -> None:
        ctypes.c_uint64.from_address(self._control_addr + offset).value = value

    def _slot(self, n: int) -> int:
        return HEADER_LEN + (n % self.slot_count) * self.slot_size

    # ---- receiving ----
    def recv(self, timeout: float | None = None) -> Message:
        """The next message (section 5.1); raises UtpTimeout or ConnectionClosed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        started = time.monotonic()
        lost_before = 0
        while True:
            n = self.position
            slot = self._slot(n)
            stamp = self._u64(slot + R_STAMP)
            if stamp == 2 * n + 2:
                head = ctypes.string_at(self._addr + slot + R_FRAME, frame.HEADER_SIZE)
                _, _, mtype, _, length, _, ts, _ = struct.unpack("<IBBHIQQI", head)
                length = min(length, self.max_payload)
                payload = ctypes.string_at(self._addr + slot + R_PAYLOAD, length)
                intact = self._u64(slot + R_STAMP) == 2 * n + 2
                self._advance(intact)
                if intact:
                    return Message(n, lost_before, mtype, ts, payload)
                lost_before += 1
                continue
            if stamp > 2 * n + 2:
                lost_before += self._skip()
                continue
            self._wait(deadline, started)

    def _skip(self) -> int:
        tail = self._u64(D_TAIL)
        resume = max(self.position + 1, tail - (self.slot_count - self.slot_count // 4))
        skipped = resume - self.position
        self.lost += skipped
        self.position = resume
        self._store_control(C_LOST, self.lost)
        self._store_control(C_CURSOR, self.position)
        return skipped

    def _advance(self, intact: bool) -> None:
        if intact:
            self.received += 1
            self._store_control(C_RECEIVED, self.received)
        else:
            self.lost += 1
            self._store_control(C_LOST, self.lost)
        self.position += 1
        self._store_control(C_CURSOR, self.position)
        if self.policy == 1:
            full_fence()
            if struct.unpack_from("<I", self._control, C_PUB_WAITING)[0]:
                futex_wake(self._control_addr + C_CURSOR)

    def _wait(self, deadline, started) -> None:
        self._check(deadline)
        now = time.monotonic()
        if self.wait == 0 or (self.wait == 2 and now - started < ADAPTIVE_SPIN):
            return
        wake = self._u32(D_WAKE)
        self._store_control(C_SLEEP, 1 << 32 | wake)
        full_fence()
        n = self.position
        if self._u64(self._slot(n) + R_STAMP) < 2 * n + 2 and not self._u32(D_CLOSED):
            span = SLICE if deadline is None else max(0.0, min(SLICE, deadline - now))
            futex_wait(self._addr + D_WAKE, wake, span)
        self._store_control(C_SLEEP, 0)

    def _check(self, deadline) -> None:
        if self._u32(D_CLOSED):
            raise ConnectionClosed(f"{self.url}: the publisher closed")
        if struct.unpack_from("<I", self._control, C_STATE)[0] == STATE_EVICTED:
            raise ConnectionClosed(f"{self.url}: the publisher evicted this subscriber")
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise UtpTimeout(f"{self.url}: no message in time")
        if now - self._last_check < 0.001:
            return
        self._last_check = now
        try:
            if self._sock.recv(64) == b"":
                raise ConnectionClosed(f"{self.url}: the publisher hung up")
        except (BlockingIOError, InterruptedError):
            pass
        try:
            os.kill(self.publisher_pid, 0)
        except ProcessLookupError as error:
            raise ConnectionClosed(f"{self.url}: the publisher (pid {self.publisher_pid}) is gone") from error
        except PermissionError:
            pass

    def close(self) -> None:
        """Leaves: state = closed, then unmaps and hangs up."""
        if self._control is not None:
            struct.pack_into("<I", self._control, C_STATE, STATE_CLOSED)
            self._control_addr = 0  # no longer mapped
            self._control.close()
            self._control = None
        if self._addr is not None:
            _libc.munmap(self._addr, self._len)
            self._addr = None
        self._sock.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def decode_region(region: bytes) -> dict:
    """Reads a data region image (for the test vectors): geometry, tail and
    every slot's complete message as (sequence, type, timestamp, payload)."""
    if region[:4] != DATA_MAGIC:
        raise ProtocolError("not a pub/sub data region")
    version, count, size, length = struct.unpack_from("<IIIQ", region, 4)
    if version != LAYOUT_VERSION or region_length(count, size) != length or len(region) != length:
        raise ProtocolError("bad pub/sub region header")
    tail = struct.unpack_from("<Q", region, D_TAIL)[0]
    messages = []
    for slot in range(count):
        at = HEADER_LEN + slot * size
        stamp = struct.unpack_from("<Q", region, at)[0]
        if stamp == 0 or stamp % 2:
            continue
        n = stamp // 2 - 1
        _, _, mtype, _, plen, seq, ts, _ = struct.unpack_from("<IBBHIQQI", region, at + R_FRAME)
        if seq != n or plen > size - R_PAYLOAD:
            raise ProtocolError(f"slot {slot}: frame header disagrees with its stamp")
        messages.append((n, mtype, ts, bytes(region[at + R_PAYLOAD:at + R_PAYLOAD + plen])))
    return {"slot_count": count, "slot_size": size, "tail": tail, "messages": sorted(messages)}


MESSAGE = 0x34
STREAM_MAX_PAYLOAD = (1 << 20) + 9


def stream_accepted(reply: frame.Frame | None) -> tuple[int, int, int]:
    """A stream publisher's answer to SUBSCRIBE: (subscriber id, first message number, publisher pid)."""
    if reply is None:
        raise ConnectionClosed("the publisher hung up during the handshake")
    if reply.message_type == frame.ERROR:
        raise ConnectError(f"the publisher refused: {reply.payload.decode(errors='replace')}")
    if reply.message_type != ACCEPT or len(reply.payload) != 40:
        raise ProtocolError(f"expected a 40-byte ACCEPT, got type {reply.message_type:#x}")
    version, ident, _, _, _, start, pid, _ = struct.unpack("<IIIIQQII", reply.payload)
    if version != LAYOUT_VERSION:
        raise ProtocolError(f"publisher speaks pub/sub layout {version}, not {LAYOUT_VERSION}")
    return ident, start, pid


def stream_message(got: frame.Frame | None, position: int) -> Message:
    """The message in a frame from a stream publisher, expected at number ``position`` or later."""
    if got is None or got.message_type == frame.GOODBYE:
        raise ConnectionClosed("the publisher closed")
    if got.message_type == frame.ERROR:
        raise ConnectionClosed(got.payload.decode(errors="replace"))
    if got.message_type != MESSAGE or len(got.payload) < 9:
        raise ProtocolError(f"unexpected frame type {got.message_type:#x} of {len(got.payload)} bytes")
    number, message_type = struct.unpack_from("<QB", got.payload)
    if number < position:
        raise ProtocolError(f"message {number} after {position}: the publisher went backwards")
    return Message(number, number - position, message_type, got.timestamp_us, got.payload[9:])


class StreamSubscriber:
    """Subscribes to a ``unix:///PATH``, ``unix://@NAME`` or ``tcp://HOST:PORT``
    publisher (docs/pubsub-layout.md, "Pub/sub over streams"): SUBSCRIBE,
    ACCEPT, then MESSAGE frames whose u64 message numbers give the exact loss.

    ``policy=drop|block`` and ``block_timeout_ms=N`` are URL options as for
    shm; the publisher keeps a bounded queue for each subscriber.
    """

    def __init__(self, url: str, timeout: float = 5.0):
        from .client import open_channel
        from .endpoint import parse

        if not url.startswith(("unix://", "tcp://")):
            raise ConnectError(f"the stream subscriber reads unix:// and tcp:// publishers, not {url!r}")
        endpoint = parse(url.split("?", 1)[0])
        _, policy, block_timeout_ns = subscribe_options(url)
        self.url = url
        channel = open_channel(endpoint, timeout, STREAM_MAX_PAYLOAD)
        self._channel: Any = channel
        try:
            self._channel.send(SUBSCRIBE, subscribe_payload(policy, WAITS["block"], block_timeout_ns),
                               timeout=timeout)
            self.id, self.position, self.publisher_pid = stream_accepted(self._channel.receive(timeout))
        except BaseException:
            self._channel.close()
            raise
        self.received = 0
        self.lost = 0

    def recv(self, timeout: float | None = None) -> Message:
        """The next message; raises UtpTimeout or ConnectionClosed (the publisher left)."""
        if self._channel is None:
            raise ConnectionClosed(f"the subscriber of {self.url} is closed")
        message = stream_message(self._channel.receive(1e9 if timeout is None else timeout), self.position)
        self.lost += message.lost_before
        self.received += 1
        self.position = message.sequence + 1
        return message

    def close(self) -> None:
        """Leave (the publisher forgets this subscriber)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __enter__(self) -> StreamSubscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def subscribe(url: str, timeout: float = 5.0) -> Subscriber | StreamSubscriber:
    """A subscriber for ``url``: :class:`Subscriber` for ``shm://``,
    :class:`StreamSubscriber` for ``unix://`` and ``tcp://``."""
    if url.startswith("shm://"):
        return Subscriber(url, timeout)
    return StreamSubscriber(url, timeout)
