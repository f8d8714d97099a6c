"""Serving on ``shm://NAME`` (docs/shm-layout.md sections 2, 3 and 7), in pure Python.

The listener binds the abstract socket ``@utp/shm/NAME`` (binding it is the
"name in use" check). For each client it runs the handshake in its own
thread - LINK_HELLO in, a fresh region ``/dev/shm/utp.NAME.PID.N`` (0600,
created exclusively, control header written magic last), LINK_ATTACH out,
LINK_READY in, two seconds per step - and then answers frames from the
link with the same request/response rules as the stream server. On start it
removes region names left by servers that died without cleaning up.
"""

from __future__ import annotations

import errno
import itertools
import logging
import mmap
import os
import re
import select
import socket
import struct
import threading
import time

from . import frame as utp_frame
from . import shm_layout as layout
from .endpoint import parse
from .errors import ConnectionClosed, ProtocolError, UtpError, UtpTimeout
from .frame import DEFAULT_MAX_PAYLOAD, ERROR, GOODBYE, FrameError
from .server import POLL_INTERVAL, Handler, answer
from .shm import peer_pid
from .shm_link import ShmLink
from .shm_region import remove_region_name
from .shm_ring import RingCorrupt
from .stream import UtpFraming

log = logging.getLogger("utp.shm_server")

DEFAULT_CAPACITY = 1 << 20
LARGEST_REQUESTABLE = 16 << 20  # a client may ask for up to max(our capacity, 16 MiB)
HANDSHAKE_STEP = 2.0  # seconds a client gets per handshake step
SHM_DIR = "/dev/shm"
_CONTROL_FIELDS = struct.Struct("<IQQQI")  # version, region_len, capacity, data_offset, link_id (at +4)


class ShmServer:
    """Serve ``handler`` on ``shm://NAME``: one link (region + two rings) and one thread per client."""

    def __init__(self, url: str, handler: Handler, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 capacity: int = DEFAULT_CAPACITY, frame_timeout: float = 10.0):
        self.endpoint = parse(url)
        if self.endpoint.scheme != "shm":
            raise UtpError(f"{url} is not an shm:// URL")
        if not layout.valid_capacity(capacity):
            raise ValueError(f"ring capacity {capacity} is not a power of two in 4096..=2^30")
        self.url = url
        self.name = self.endpoint.address
        self.handler = handler
        self.max_payload = max_payload
        self.capacity = capacity
        self.frame_timeout = frame_timeout
        self._stop = threading.Event()
        self._link_numbers = itertools.count(1)
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._listener = _bind(self.endpoint.url, layout.socket_name(self.name))
        reclaim_stale_regions(self.name)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` has been called."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask :meth:`serve_forever` to return; safe from signal handlers and other threads."""
        self._stop.set()

    def serve_forever(self) -> None:
        """Accept clients until :meth:`stop`, then close every link (removing its name) and return."""
        log.info("serving on %s", self.url)
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([self._listener], [], [], POLL_INTERVAL)
                if not readable:
                    continue
                try:
                    conn, _ = self._listener.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue
                except OSError as error:
                    log.error("cannot accept on %s: %s", self.url, error.strerror or error)
                    self._stop.wait(POLL_INTERVAL)
                    continue
                thread = threading.Thread(target=self._run_client, args=(conn,), daemon=True)
                with self._lock:
                    self._threads.add(thread)
                thread.start()
        finally:
            log.info("shutting down %s", self.url)
            self._listener.close()
            deadline = time.monotonic() + 2.0
            with self._lock:
                threads = list(self._threads)
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))

    def _run_client(self, conn: socket.socket) -> None:
        link = None
        try:
            link = self._handshake(conn)
            self._serve_link(link)
        except (ConnectionClosed, UtpTimeout) as error:
            log.info("closing a link on %s: %s", self.url, error)
        except (FrameError, RingCorrupt, ProtocolError) as error:
            log.warning("closing a link on %s: %s", self.url, error)
            _try_send(link or UtpFraming(conn), ERROR, str(error).encode())
        except OSError as error:
            log.warning("closing a link on %s: %s", self.url, error.strerror or error)
        finally:
            if link is not None:
                link.close()
            else:
                conn.close()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _serve_link(self, link: ShmLink) -> None:
        while not self._stop.is_set():
            try:
                frame = link.receive(POLL_INTERVAL)
            except UtpTimeout:
                continue
            if frame is None or frame.message_type == GOODBYE:
                return
            reply = answer(frame, self.handler, self.url)
            if reply is not None:
                link.send(*reply, self.frame_timeout)

    # -- the handshake (section 2.2) --------------------------------------------

    def _handshake(self, conn: socket.socket) -> ShmLink:
        framing = UtpFraming(conn, max_payload=layout.HANDSHAKE_MAX_PAYLOAD)
        hello = framing.receive(HANDSHAKE_STEP)
        if hello is None:
            raise ConnectionClosed("the client left before LINK_HELLO")
        capacity = self._capacity_for(hello)
        link_id = next(self._link_numbers)
        region_name = f"/utp.{self.name}.{os.getpid()}.{link_id}"
        attach = layout.Attach(layout.LAYOUT_VERSION, layout.KIND_POSIX, layout.region_length(capacity),
                               capacity, -1, link_id, region_name)
        region = _create_region(attach)
        link = None
        try:
            link = ShmLink(self.endpoint, conn, attach, region, peer_pid(conn), self.max_payload, is_server=True)
            link.announce_ready()
            framing.send(utp_frame.LINK_ATTACH, _attach_payload(attach), HANDSHAKE_STEP)
            ready = framing.receive(HANDSHAKE_STEP)
            if ready is None:
                raise ConnectionClosed("the client left before LINK_READY")
            if ready.message_type != utp_frame.LINK_READY:
                raise ProtocolError(f"expected LINK_READY (0x22), got 0x{ready.message_type:02x}")
            if struct.unpack_from("<I", region, layout.CLIENT_SIDE + layout.SIDE_STATE)[0] != layout.STATE_READY:
                raise ProtocolError("LINK_READY arrived but the client's side block is not READY")
            return link
        except BaseException:
            if link is not None:
                link.release_mapping()
            else:
                region.close()
            remove_region_name(attach)
            raise

    def _capacity_for(self, hello) -> int:
        if hello.message_type != utp_frame.LINK_HELLO:
            raise ProtocolError(f"expected LINK_HELLO (0x20), got 0x{hello.message_type:02x}")
        if len(hello.payload) < 16:
            raise ProtocolError(f"LINK_HELLO payload of {len(hello.payload)} bytes, 16 expected")
        version, _reserved, requested = struct.unpack_from("<IIQ", hello.payload)
        if version != layout.LAYOUT_VERSION:
            raise ProtocolError(f"client speaks shm layout version {version}, this server {layout.LAYOUT_VERSION}")
        largest = max(self.capacity, LARGEST_REQUESTABLE)
        if layout.valid_capacity(requested) and requested <= largest:
            return requested
        return self.capacity


def reclaim_stale_regions(name: str) -> list[str]:
    """Remove ``/dev/shm/utp.NAME.PID.N`` regions whose server PID no longer exists (section 7)."""
    pattern = re.compile(rf"^utp\.{re.escape(name)}\.(\d+)\.(\d+)$")
    removed: list[str] = []
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return removed
    for entry in entries:
        match = pattern.match(entry)
        if not match or _process_exists(int(match.group(1))):
            continue
        try:
            os.unlink(os.path.join(SHM_DIR, entry))
            removed.append(entry)
        except FileNotFoundError:
            pass
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _bind(url: str, address: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise UtpError(f"cannot listen on {url}: another server is already listening there") from None
        raise UtpError(f"cannot listen on {url}: {error.strerror or error}") from None
    return sock


def _create_region(attach: layout.Attach) -> mmap.mmap:
    """Create the zero-filled region exclusively with mode 0600 and write its control header."""
    path = SHM_DIR + attach.name
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, attach.region_len)
        region = mmap.mmap(fd, attach.region_len, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)
    _CONTROL_FIELDS.pack_into(region, 4, attach.version, attach.region_len, attach.capacity,
                              layout.DATA_OFFSET, attach.link_id)
    struct.pack_into("<I", region, 0, layout.CONTROL_MAGIC)  # magic last
    return region


def _attach_payload(attach: layout.Attach) -> bytes:
    name = attach.name.encode()
    return struct.pack("<IIQQiIHH", attach.version, attach.kind, attach.region_len, attach.capacity,
                       attach.shmid, attach.link_id, len(name), 0) + name


def _try_send(channel, message_type: int, payload: bytes) -> None:
    """Best effort: tell the client why it is being dropped (on the link, or the socket before it)."""
    try:
        channel.send(message_type, payload, 1.0)
    except (UtpError, OSError):
        pass
