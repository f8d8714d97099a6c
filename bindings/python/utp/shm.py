"""The ``shm://NAME`` client link (docs/shm-layout.md), in pure Python.

Rendezvous on the abstract socket ``@utp/shm/NAME``; LINK_HELLO, LINK_ATTACH,
LINK_READY over it; then frames through two rings in a per-link region
mapped from ``/dev/shm``. The socket stays open and silent as a death notice.

:class:`ShmClientLink` offers the same ``send``/``receive``/``close`` as the
stream framings, so :class:`utp.Client` works on it unchanged.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import select
import socket
import struct
import sys
import time

from . import frame as utp_frame
from . import shm_layout as layout
from .endpoint import Endpoint
from .errors import ConnectError, ConnectionClosed, ProtocolError, UtpError, UtpTimeout
from .frame import DEFAULT_MAX_PAYLOAD, FLAG_CHECKSUM, Frame
from .futex import full_fence, futex_wait, futex_wake
from .shm_region import map_region, remove_region_name
from .shm_ring import RingReader, RingWriter, RingWords
from .stream import UtpFraming

SLEEP_SLICE = 0.010  # every sleep is bounded by 10 ms (section 5.2)
SPIN_TIME = 50e-6  # "adaptive": spin 50 µs before sleeping
_PEERCRED = struct.Struct("3i")  # pid, uid, gid
_POLL_GONE = select.POLLIN | select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0x2000)


class PeerGone(ConnectionClosed):
    """The server side of the link died or closed its rendezvous socket."""


class ShmClientLink:
    """The client side of one shared-memory link: writes ring 1, reads ring 0.

    Use :meth:`connect`. Not thread-safe: one thread at a time per link.
    """

    def __init__(self, endpoint: Endpoint, sock: socket.socket, attach: layout.Attach, region: mmap.mmap,
                 peer_pid: int, max_payload: int):
        self.endpoint = endpoint
        self.attach = attach
        self.peer_pid = peer_pid
        self._sock = sock
        self._poller = select.poll()
        self._poller.register(sock, _POLL_GONE)
        self._region = region
        self._view = memoryview(region)
        self._u64 = self._view.cast("Q")
        self._u32 = self._view.cast("I")
        self._anchor = ctypes.c_char.from_buffer(region)  # pins the mapping; gives its address
        base = ctypes.addressof(self._anchor)
        capacity = attach.capacity
        self._from_server = RingReader(
            RingWords(self._view, self._u64, self._u32, base, layout.RING0_INDEX, layout.DATA_OFFSET, capacity),
            max_payload)
        self._to_server = RingWriter(
            RingWords(self._view, self._u64, self._u32, base, layout.RING1_INDEX,
                       layout.DATA_OFFSET + capacity, capacity))
        self._next_sequence = 1
        self._spin_time = {"spin": float("inf"), "adaptive": SPIN_TIME, "block": 0.0}[endpoint.wait]
        self._last_heartbeat = 0.0
        self._heartbeats = 0
        self._closed = False

    # -- setting up -------------------------------------------------------------

    @classmethod
    def connect(cls, endpoint: Endpoint, timeout: float,
                max_payload: int = DEFAULT_MAX_PAYLOAD) -> "ShmClientLink":
        """Rendezvous with the server of ``shm://NAME`` and attach a new link (section 2).

        Raises :class:`ConnectError` if no server answers or it refuses,
        :class:`ProtocolError` if its answer or region breaks the layout.
        """
        if sys.byteorder != "little":
            raise UtpError("the shm link layout is little-endian; this machine is not")
        deadline = time.monotonic() + timeout
        sock = _rendezvous(endpoint, timeout)
        region = link = None
        try:
            handshake = UtpFraming(sock, max_payload=layout.HANDSHAKE_MAX_PAYLOAD)
            handshake.send(utp_frame.LINK_HELLO, layout.hello_payload(0), _remaining(deadline, endpoint))
            attach = _receive_attach(handshake, endpoint, deadline)
            attach.check_named_after(endpoint.address)
            region = map_region(attach)
            layout.check_control_header(region, attach)
            peer_pid = _peer_pid(sock)
            link = cls(endpoint, sock, attach, region, peer_pid, max_payload)
            link._announce_ready()
            handshake.send(utp_frame.LINK_READY, b"", _remaining(deadline, endpoint))
            return link
        except BaseException:
            if link is not None:
                link._release_mapping()
            elif region is not None:
                region.close()
            sock.close()
            raise

    def _announce_ready(self) -> None:
        side = layout.CLIENT_SIDE
        self._u32[(side + layout.SIDE_PID) // 4] = os.getpid()
        self._u32[(side + layout.SIDE_STATE) // 4] = layout.STATE_READY

    # -- frames -----------------------------------------------------------------

    def send(self, message_type: int, payload: bytes = b"", timeout: float = 5.0,
             flags: int = FLAG_CHECKSUM) -> None:
        """Write one frame into ring 1, waiting (at most ``timeout`` s) for room."""
        self._check_open()
        if self._peer_state() == layout.STATE_CLOSED:
            raise PeerGone(f"the server of {self.endpoint.url} (pid {self.peer_pid}) closed the link")
        data = utp_frame.encode(message_type, payload, sequence=self._next_sequence, flags=flags)
        self._next_sequence += 1
        writer = self._to_server
        deadline = time.monotonic() + timeout
        spin_until = time.monotonic() + self._spin_time
        while not writer.try_write(data):
            if time.monotonic() < min(spin_until, deadline):
                self._spin_check()
                continue
            self._sleep_until(deadline, "room in the ring to the server",
                              writer.words.set_waiting_for_space, writer.words.space_waiters_address,
                              lambda: writer.words.load_head() != writer.head_cache)
        self._count_sent(writer)

    def receive(self, timeout: float) -> Frame | None:
        """Take the next frame from ring 0, waiting at most ``timeout`` seconds.

        Returns ``None`` when the server closed the link in an orderly way
        and everything it sent has been read; raises :class:`PeerGone` if it
        died, :class:`UtpTimeout`, or :class:`~utp.shm_ring.RingCorrupt`.
        """
        self._check_open()
        reader = self._from_server
        deadline = time.monotonic() + timeout
        spin_until = time.monotonic() + self._spin_time
        while True:
            received = reader.try_read()
            if received is not None:
                return received
            if self._peer_state() == layout.STATE_CLOSED and not reader.has_data():
                return None
            if time.monotonic() < min(spin_until, deadline):
                self._spin_check()
                continue
            self._sleep_until(deadline, "a frame from the server",
                              reader.words.set_waiting_for_data, reader.words.data_waiters_address,
                              reader.has_data)

    def _spin_check(self) -> None:
        """While spinning: a heartbeat and a liveness check every 10 ms (``wait=spin`` never sleeps)."""
        if time.monotonic() - self._last_heartbeat >= SLEEP_SLICE:
            self._heartbeat()
            self._check_peer_alive()

    def _sleep_until(self, deadline, what, set_flag, flag_address, condition) -> None:
        """One sleep slice of section 5.2: flag, fence, re-check, futex wait <= 10 ms, liveness."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UtpTimeout(f"timed out waiting for {what} on {self.endpoint.url}")
        set_flag(1)
        full_fence()  # [WAKE]
        if condition():
            set_flag(0)
            return
        futex_wait(flag_address, 1, min(SLEEP_SLICE, remaining))
        self._heartbeat()
        self._check_peer_alive()

    # -- liveness (section 6) ---------------------------------------------------

    def _peer_state(self) -> int:
        return self._u32[(layout.SERVER_SIDE + layout.SIDE_STATE) // 4]

    def _check_peer_alive(self) -> None:
        if self._poller.poll(0):
            raise PeerGone(f"the server of {self.endpoint.url} (pid {self.peer_pid}) "
                           "closed its rendezvous socket")
        try:
            os.kill(self.peer_pid, 0)
        except ProcessLookupError:
            raise PeerGone(f"the server of {self.endpoint.url} (pid {self.peer_pid}) is gone") from None
        except PermissionError:
            pass  # exists, owned by someone else

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat < SLEEP_SLICE:
            return
        self._last_heartbeat = now
        self._heartbeats = (self._heartbeats + 1) & (2**64 - 1)
        side = layout.CLIENT_SIDE
        self._u64[(side + layout.SIDE_HEARTBEATS) // 8] = self._heartbeats
        self._u64[(side + layout.SIDE_HEARTBEAT_TIME) // 8] = utp_frame.now_us()

    def _count_sent(self, writer: RingWriter) -> None:
        side = layout.CLIENT_SIDE
        self._u64[(side + layout.SIDE_FRAMES_SENT) // 8] = (self._next_sequence - 1) & (2**64 - 1)
        self._u64[(side + layout.SIDE_BYTES_SENT) // 8] = writer.bytes_published & (2**64 - 1)
        self._heartbeat()

    # -- closing (section 6, orderly close) ------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosed(f"the link to {self.endpoint.url} is closed")

    def close(self) -> None:
        """Orderly close: state CLOSED, wake the peer, close the socket, remove the name, unmap."""
        if self._closed:
            return
        self._closed = True
        self._u32[(layout.CLIENT_SIDE + layout.SIDE_STATE) // 4] = layout.STATE_CLOSED
        full_fence()
        futex_wake(self._to_server.words.data_waiters_address)
        futex_wake(self._from_server.words.space_waiters_address)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        remove_region_name(self.attach)
        self._release_mapping()

    def _release_mapping(self) -> None:
        """Drop every view of the region, then unmap it."""
        self._closed = True
        self._from_server = self._to_server = None
        self._u64.release()
        self._u32.release()
        self._view.release()
        self._anchor = None
        self._region.close()


def _remaining(deadline: float, endpoint: Endpoint) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ConnectError(f"the handshake with {endpoint.url} did not finish in time")
    return remaining


def _rendezvous(endpoint: Endpoint, timeout: float) -> socket.socket:
    address = layout.socket_name(endpoint.address)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except (ConnectionRefusedError, FileNotFoundError):
        sock.close()
        raise ConnectError(f"no server at {endpoint.url}: nothing listens on abstract socket "
                           f"@{address[1:].decode()} (is the server running?)") from None
    except socket.timeout:
        sock.close()
        raise ConnectError(f"no answer from {endpoint.url} within {timeout:g}s") from None
    except OSError as error:
        sock.close()
        raise ConnectError(f"cannot connect to {endpoint.url}: {error.strerror or error}") from None
    return sock


def _receive_attach(handshake: UtpFraming, endpoint: Endpoint, deadline: float) -> layout.Attach:
    try:
        answer = handshake.receive(_remaining(deadline, endpoint))
    except UtpTimeout:
        raise ConnectError(f"{endpoint.url} did not answer LINK_HELLO in time") from None
    if answer is None:
        raise ConnectError(f"{endpoint.url} closed the connection during the handshake")
    if answer.message_type == utp_frame.ERROR:
        raise ConnectError(f"{endpoint.url} refused the link: {answer.payload.decode('utf-8', 'replace')}")
    if answer.message_type != utp_frame.LINK_ATTACH:
        raise ProtocolError(f"expected LINK_ATTACH (0x21) from {endpoint.url}, got 0x{answer.message_type:02x}")
    return layout.Attach.decode(answer.payload)


def _peer_pid(sock: socket.socket) -> int:
    pid, _uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return pid
