"""One established shared-memory link (docs/shm-layout.md sections 4-6), either side.

Frames go out through one ring and come in through the other; waiting
follows section 5.2 (spin, then futex sleeps of at most 10 ms); the peer is
watched as in section 6 (its side-block state, the rendezvous socket, its
pid from ``SO_PEERCRED``); :meth:`ShmLink.close` is the orderly close.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import select
import socket
import time

from . import frame as utp_frame
from . import shm_layout as layout
from .endpoint import Endpoint
from .errors import ConnectionClosed, UtpTimeout
from .frame import FLAG_CHECKSUM, Frame
from .futex import full_fence, futex_wait, futex_wake
from .shm_ring import RingReader, RingWords, RingWriter

SLEEP_SLICE = 0.010  # every sleep is bounded by 10 ms (section 5.2)
SPIN_TIME = 50e-6  # "adaptive": spin 50 µs before sleeping
_POLL_GONE = select.POLLIN | select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0x2000)


class PeerGone(ConnectionClosed):
    """The other side of the link died or closed its rendezvous socket."""


class ShmLink:
    """One side of an established shared-memory link (after the handshake).

    The client writes ring 1 and reads ring 0; the server the reverse.
    Offers ``send``/``receive``/``close`` like the stream framings. Not
    thread-safe: one thread at a time per link.
    """

    def __init__(self, endpoint: Endpoint, sock: socket.socket, attach: layout.Attach, region: mmap.mmap,
                 peer_pid: int, max_payload: int, is_server: bool = False):
        self.endpoint = endpoint
        self.attach = attach
        self.peer_pid = peer_pid
        self.is_server = is_server
        self._my_side, self._peer_side = ((layout.SERVER_SIDE, layout.CLIENT_SIDE) if is_server
                                          else (layout.CLIENT_SIDE, layout.SERVER_SIDE))
        self._my_counters = layout.SERVER_COUNTERS if is_server else layout.CLIENT_COUNTERS
        self._peer_name = "client" if is_server else "server"
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
        ring0 = RingWords(self._view, self._u64, self._u32, base, layout.RING0_INDEX, layout.DATA_OFFSET, capacity)
        ring1 = RingWords(self._view, self._u64, self._u32, base, layout.RING1_INDEX,
                          layout.DATA_OFFSET + capacity, capacity)
        inbound, outbound = (ring1, ring0) if is_server else (ring0, ring1)
        self._inbound = RingReader(inbound, max_payload)
        self._outbound = RingWriter(outbound)
        # A non-blocking handle on the same socket for wake-up bytes, when
        # both ends agreed on them (its presence says so): the handshake's
        # socket object has a timeout, and Python waits up to that long
        # before a send or receive on such a socket.
        self._wake_sock: socket.socket | None = None
        if attach.features & layout.FEATURE_WAKE_BYTES:
            self._wake_sock = sock.dup()
            self._wake_sock.setblocking(False)
            # Section 5.3: a Rust peer in an event loop (a server serving
            # many clients from one thread) asks for a byte on the socket.
            self._outbound.send_wake = self._send_wake
            peer_sleeps = (self._peer_side + layout.SIDE_SLEEPS) // 4
            self._outbound.peer_sleeps_now = lambda: self._u32[peer_sleeps] != 0
        self._next_sequence = 1
        self._spin_time = {"spin": float("inf"), "adaptive": SPIN_TIME, "block": 0.0}[endpoint.wait]
        self.sleeps = endpoint.wait != "spin"  # ?wait=spin never sleeps on a futex (section 5.2)
        self._last_heartbeat = 0.0
        self._heartbeats = 0
        self._sending = False
        self._closed = False

    # -- setting up -------------------------------------------------------------

    def announce_ready(self) -> None:
        """Write this side's status line: pid, ``sleeps``, then state READY last (section 2.6 step 5)."""
        self._u32[(self._my_side + layout.SIDE_PID) // 4] = os.getpid()
        self._u32[(self._my_side + layout.SIDE_SLEEPS) // 4] = 1 if self.sleeps else 0
        full_fence()  # release: pid and sleeps before state
        self._u32[(self._my_side + layout.SIDE_STATE) // 4] = layout.STATE_READY

    def peer_state(self) -> int:
        """The peer's ``state`` word (``STATE_EMPTY``, ``STATE_READY`` or ``STATE_CLOSED``)."""
        return self._peer_state()

    def learn_peer(self) -> None:
        """Once the peer is READY: read its ``sleeps`` word once (any non-zero value means 1).

        A peer that only spins is never woken, so publishing and releasing
        skip the ``[WAKE]`` fence for it.
        """
        full_fence()  # acquire: state READY was read before
        sleeps = self._u32[(self._peer_side + layout.SIDE_SLEEPS) // 4] != 0
        assert self._inbound is not None and self._outbound is not None
        self._inbound.peer_sleeps = sleeps
        self._outbound.peer_sleeps = sleeps

    # -- frames -----------------------------------------------------------------

    def send(self, message_type: int, payload: bytes = b"", timeout: float = 5.0,
             flags: int = FLAG_CHECKSUM) -> None:
        """Write one frame into the outbound ring, waiting (at most ``timeout`` s) for room."""
        self._check_open()
        if self._peer_state() == layout.STATE_CLOSED:
            raise PeerGone(f"the {self._peer_name} of {self.endpoint.url} (pid {self.peer_pid}) closed the link")
        data = utp_frame.encode(message_type, payload, sequence=self._next_sequence, flags=flags)
        self._next_sequence += 1
        writer = self._outbound
        deadline = time.monotonic() + timeout
        spin_until = time.monotonic() + self._spin_time
        self._sending = True
        try:
            while not writer.try_write(data):
                if time.monotonic() < min(spin_until, deadline):
                    self._spin_check()
                    continue
                self._sleep_until(deadline, f"room in the ring to the {self._peer_name}",
                                  writer.words.set_waiting_for_space, writer.words.space_waiters_address,
                                  lambda: writer.words.load_head() != writer.head_cache)
        finally:
            self._sending = False
        self._count_sent(writer)

    def receive(self, timeout: float) -> Frame | None:
        """Take the next frame from the inbound ring, waiting at most ``timeout`` seconds.

        Returns ``None`` when the peer closed the link in an orderly way and
        everything it sent has been read; raises :class:`PeerGone` if it
        died, :class:`UtpTimeout`, or :class:`~utp.shm_ring.RingCorrupt`.
        """
        self._check_open()
        reader = self._inbound
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
            self._sleep_until(deadline, f"a frame from the {self._peer_name}",
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
        return self._u32[(self._peer_side + layout.SIDE_STATE) // 4]

    def _check_peer_alive(self) -> None:
        """Raise :class:`PeerGone` if the peer died or left (section 6).

        A peer that closed in an orderly way (state CLOSED) is not "gone" yet
        for a reader: what it published before closing is still delivered,
        and :meth:`receive` reports the close once the ring is drained. A
        writer gets :class:`PeerGone` at once: nobody will read.
        """
        if self._peer_state() == layout.STATE_CLOSED:
            if self._sending:
                raise PeerGone(f"the {self._peer_name} of {self.endpoint.url} (pid {self.peer_pid}) "
                               "closed the link")
            return
        if self._socket_hung_up():
            raise PeerGone(f"the {self._peer_name} of {self.endpoint.url} (pid {self.peer_pid}) "
                           "closed its rendezvous socket")
        try:
            os.kill(self.peer_pid, 0)
        except ProcessLookupError:
            raise PeerGone(f"the {self._peer_name} of {self.endpoint.url} (pid {self.peer_pid}) is gone") from None
        except PermissionError:
            pass  # exists, owned by someone else

    def _socket_hung_up(self) -> bool:
        """Whether the rendezvous socket says the peer is gone (section 6).

        Without wake-up bytes nothing is ever sent on it, so any input
        means gone. With them (5.3) bytes may come: they are read and
        dropped (at most a few reads: a flooding peer cannot keep us here),
        and only end of file or a hang-up counts.
        """
        for _ in range(4):
            events = self._poller.poll(0)
            if not events:
                return False
            if self._wake_sock is None or events[0][1] & ~select.POLLIN:
                return True
            try:
                if not self._wake_sock.recv(256):
                    return True  # end of file
            except BlockingIOError:
                return False
            except OSError:
                return True
        return False

    def _send_wake(self) -> None:
        """The wake-up byte the peer asked for; never blocks (a full socket: one is pending)."""
        if self._wake_sock is None:
            return
        try:
            self._wake_sock.send(b"\x01", socket.MSG_NOSIGNAL)
        except OSError:
            pass  # EAGAIN: a byte is already pending; a gone peer is noticed by liveness

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat < SLEEP_SLICE:
            return
        self._last_heartbeat = now
        self._heartbeats = (self._heartbeats + 1) & (2**64 - 1)
        counters = self._my_counters
        self._u64[(counters + layout.COUNTER_HEARTBEATS) // 8] = self._heartbeats
        self._u64[(counters + layout.COUNTER_HEARTBEAT_TIME) // 8] = utp_frame.now_us()

    def _count_sent(self, writer: RingWriter) -> None:
        counters = self._my_counters
        self._u64[(counters + layout.COUNTER_FRAMES_SENT) // 8] = (self._next_sequence - 1) & (2**64 - 1)
        self._u64[(counters + layout.COUNTER_BYTES_SENT) // 8] = writer.record_bytes
        self._heartbeat()

    # -- closing (section 6, orderly close) ------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosed(f"the link to {self.endpoint.url} is closed")

    def close(self) -> None:
        """Orderly close: state CLOSED, wake the peer, close the socket, unmap (a memfd has no name)."""
        if self._closed:
            return
        self._closed = True
        self._u32[(self._my_side + layout.SIDE_STATE) // 4] = layout.STATE_CLOSED
        full_fence()
        futex_wake(self._outbound.words.data_waiters_address)
        futex_wake(self._inbound.words.space_waiters_address)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self.release_mapping()

    def release_mapping(self) -> None:
        """Drop every view of the region, then unmap it (and the wake-up handle on the socket)."""
        self._closed = True
        if self._wake_sock is not None:
            self._wake_sock.close()
        self._inbound = self._outbound = None  # type: ignore[assignment]  # closed: no ring is used again
        self._u64.release()
        self._u32.release()
        self._view.release()
        self._anchor = None  # type: ignore[assignment]  # unpins the mapping before close
        self._region.close()
