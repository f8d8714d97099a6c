"""Serving on ``shm://NAME`` (docs/shm-layout.md sections 2, 3 and 7, layout version 2), in pure Python.

The listener binds ``DIR/shm.NAME`` in the per-user socket directory (the
private one, or the shared one when ``?allow_uid`` / ``?allow_gid`` admit
other users; see :mod:`utp.shm_socket_dir`). Each client is checked
(``SO_PEERCRED``) right after ``accept``: an untrusted one gets an ERROR
frame and nothing else. A trusted one gets a handshake - LINK_HELLO in, a
fresh memfd region (``fallocate``-d, then sealed against shrinking and
growing), LINK_ATTACH out with the memfd (``SCM_RIGHTS``), LINK_READY in,
within 2 seconds - and then answers frames from the link with the same
request/response rules as the stream server. At most
:data:`MAX_PENDING_HANDSHAKES` handshakes are pending at once (64 per client
uid); beyond that the oldest is cut off, so silent clients cannot keep an
honest one out.

No client can SIGBUS this server: it maps only memfds it created and
sealed, whose size nobody can change. A memfd has no name, so nothing is
left in /dev/shm, whatever happens to either process.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import itertools
import logging
import mmap
import os
import select
import socket
import struct
import threading
import time

from . import frame as utp_frame
from . import shm_layout as layout
from . import shm_socket_dir
from .endpoint import parse
from .errors import ConnectionClosed, ProtocolError, UtpError, UtpTimeout
from .frame import DEFAULT_MAX_PAYLOAD, ERROR, GOODBYE, FrameError
from .identity import PeerNotTrusted, peer_credentials
from .server import DEFAULT_MAX_CLIENTS, POLL_INTERVAL, Handler, answer, busy_reason
from .shm import peer_pid
from .shm_link import ShmLink
from .shm_ring import RingCorrupt
from .stream import UtpFraming

log = logging.getLogger("utp.shm_server")

DEFAULT_CAPACITY = 1 << 20
LARGEST_REQUESTABLE = 16 << 20  # a client may ask for up to max(our capacity, 16 MiB)
HANDSHAKE_DEADLINE = 2.0  # seconds from accept to LINK_READY
MAX_PENDING_HANDSHAKES = 256
MAX_PENDING_PER_UID = 64
REFUSED_LINGER = 0.5  # seconds a refused connection stays open (at most MAX_PENDING_HANDSHAKES of them)
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


class ShmServer:
    """Serve ``handler`` on ``shm://NAME``: one link (memfd region + two rings) and one thread per client."""

    def __init__(self, url: str, handler: Handler, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 capacity: int = DEFAULT_CAPACITY, frame_timeout: float = 10.0,
                 max_clients: int = DEFAULT_MAX_CLIENTS):
        self.endpoint = parse(url)
        if self.endpoint.scheme != "shm":
            raise UtpError(f"{url} is not an shm:// URL")
        capacity = self.endpoint.ring or capacity  # ?ring= on the URL wins
        if not layout.valid_capacity(capacity):
            raise ValueError(f"ring capacity {capacity} is not a power of two in 4096..=2^30")
        self.url = url
        self.name = str(self.endpoint.address)
        self.policy = self.endpoint.policy
        self.handler = handler
        self.max_payload = max_payload
        self.capacity = capacity
        self.frame_timeout = frame_timeout
        # Established links (a region and a thread each) at once: beyond, a
        # new client is refused ("server busy").
        self.max_clients = max(1, max_clients)
        self._stop = threading.Event()
        self._link_numbers = itertools.count(1)
        self._threads: set[threading.Thread] = set()
        # Handshakes in progress, oldest first: connection -> client uid (bounded, see _admit).
        self._pending: collections.OrderedDict[socket.socket, int] = collections.OrderedDict()
        # Refused connections stay open a moment, so a client's LINK_HELLO (sent before it reads)
        # does not fail with EPIPE before it can read why it was refused.
        self._refused: collections.deque[tuple[float, socket.socket]] = collections.deque()
        self._lock = threading.Lock()
        shared = bool(self.policy.uids or self.policy.gids)
        directory = shm_socket_dir.ensure_dir(shared)
        self.socket_path = shm_socket_dir.socket_path(directory, self.name)
        self._listener = shm_socket_dir.bind(url, self.socket_path, shared)
        self._bound = _file_id(self.socket_path)

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
                self._close_refused(time.monotonic() - REFUSED_LINGER)
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
                if not self._admit(conn):
                    continue
                thread = threading.Thread(target=self._run_client, args=(conn,), daemon=True)
                with self._lock:
                    self._threads.add(thread)
                thread.start()
        finally:
            log.info("shutting down %s", self.url)
            self._close_refused(float("inf"))
            self._listener.close()
            if _file_id(self.socket_path) == self._bound:
                os.unlink(self.socket_path)
            deadline = time.monotonic() + 2.0
            with self._lock:
                threads = list(self._threads)
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))

    def _admit(self, conn: socket.socket) -> bool:
        """Right after accept, before reading anything (section 2.3): identity, then the handshake bounds.

        At most :data:`MAX_PENDING_HANDSHAKES` handshakes are pending, and at most
        :data:`MAX_PENDING_PER_UID` per client uid: beyond that the oldest pending one (of that
        uid, or overall) is cut off, so clients that connect and stay silent cost at most that
        many threads for at most 2 s each and never keep an honest client out.
        """
        try:
            creds = peer_credentials(conn)
            self.policy.check_client(self.endpoint.base_url, creds)
        except PeerNotTrusted as refused:
            log.warning("%s", refused)
            self._refuse(conn, str(refused))
            return False
        except OSError as error:
            log.warning("refused a client on %s: SO_PEERCRED failed: %s", self.url, error.strerror or error)
            conn.close()
            return False
        with self._lock:
            # Established links only: pending handshakes have their own bound
            # below, which cuts the oldest off rather than refusing the new.
            busy = len(self._threads) - len(self._pending) >= self.max_clients
        if busy:
            log.warning("refused a client on %s: %d clients already served", self.url, self.max_clients)
            self._refuse(conn, busy_reason(self.max_clients))
            return False
        with self._lock:
            same_uid = [pending for pending, uid in self._pending.items() if uid == creds.uid]
            if len(same_uid) >= MAX_PENDING_PER_UID:
                self._cut_off(same_uid[0], f"uid {creds.uid} has {MAX_PENDING_PER_UID} handshakes pending")
            elif len(self._pending) >= MAX_PENDING_HANDSHAKES:
                self._cut_off(next(iter(self._pending)), f"{MAX_PENDING_HANDSHAKES} handshakes are pending")
            self._pending[conn] = creds.uid
        return True

    def _cut_off(self, conn: socket.socket, why: str) -> None:
        """End a pending handshake (its thread sees the socket shut down and exits). Holds ``_lock``."""
        del self._pending[conn]
        log.warning("cut off the oldest pending handshake on %s: %s", self.url, why)
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handshake_over(self, conn: socket.socket) -> None:
        with self._lock:
            self._pending.pop(conn, None)

    def _refuse(self, conn: socket.socket, reason: str) -> None:
        """One ERROR frame (best effort, no waiting); the socket is closed after a short linger."""
        try:
            conn.setblocking(False)
            conn.send(utp_frame.encode(ERROR, reason.encode(), sequence=1))
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._refused.append((time.monotonic(), conn))
        if len(self._refused) > MAX_PENDING_HANDSHAKES:
            self._refused.popleft()[1].close()

    def _close_refused(self, before: float) -> None:
        while self._refused and self._refused[0][0] <= before:
            self._refused.popleft()[1].close()

    def _run_client(self, conn: socket.socket) -> None:
        link = None
        try:
            try:
                link = self._handshake(conn)
            finally:
                self._handshake_over(conn)
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

    # -- the handshake (section 2.5) --------------------------------------------

    def _handshake(self, conn: socket.socket) -> ShmLink:
        deadline = time.monotonic() + HANDSHAKE_DEADLINE
        framing = UtpFraming(conn, max_payload=layout.HANDSHAKE_MAX_PAYLOAD)
        hello = framing.receive(_left(deadline))
        if hello is None:
            raise ConnectionClosed("the client left before LINK_HELLO")
        capacity = self._capacity_for(hello)
        link_id = next(self._link_numbers)
        attach = layout.Attach(layout.LAYOUT_VERSION, layout.KIND_MEMFD, layout.region_length(capacity),
                               capacity, -1, link_id, "")
        memfd, region = _create_region(self.name, attach)
        link = None
        try:
            link = ShmLink(self.endpoint, conn, attach, region, peer_pid(conn), self.max_payload, is_server=True)
            link.announce_ready()  # before LINK_ATTACH (2.5)
            message = utp_frame.encode(utp_frame.LINK_ATTACH, attach.encode(), sequence=1)
            _send_with_fd(conn, message, memfd, _left(deadline))
            os.close(memfd)
            memfd = -1
            ready = framing.receive(_left(deadline))
            if ready is None:
                raise ConnectionClosed("the client left before LINK_READY")
            if ready.message_type != utp_frame.LINK_READY:
                raise ProtocolError(f"expected LINK_READY (0x22), got 0x{ready.message_type:02x}")
            if link.peer_state() != layout.STATE_READY:
                raise ProtocolError("LINK_READY arrived but the client's status line is not READY")
            link.learn_peer()
            return link
        except BaseException:
            if memfd >= 0:
                os.close(memfd)
            if link is not None:
                link.release_mapping()
            else:
                region.close()
            raise

    def _capacity_for(self, hello: utp_frame.Frame) -> int:
        if hello.message_type != utp_frame.LINK_HELLO:
            raise ProtocolError(f"expected LINK_HELLO (0x20), got 0x{hello.message_type:02x}")
        if len(hello.payload) < layout.HELLO_SIZE:
            raise ProtocolError(f"LINK_HELLO payload of {len(hello.payload)} bytes, {layout.HELLO_SIZE} expected")
        version, _reserved, requested = struct.unpack_from("<IIQ", hello.payload)
        if version != layout.LAYOUT_VERSION:
            raise ProtocolError(f"this server speaks shm layout version {layout.LAYOUT_VERSION}, the client "
                                f"sent version {version}: upgrade the client")  # sent as ERROR by _run_client
        largest = max(self.capacity, LARGEST_REQUESTABLE)
        if layout.valid_capacity(requested) and requested <= largest:
            return requested
        return self.capacity


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise UtpTimeout(f"the handshake took more than {HANDSHAKE_DEADLINE:g} s")
    return left


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def _send_with_fd(conn: socket.socket, message: bytes, fd: int, timeout: float) -> None:
    """One ``sendmsg`` carrying the whole frame and exactly one descriptor (the rest, if any, after)."""
    conn.settimeout(timeout)
    sent = socket.send_fds(conn, [message], [fd])
    if sent < len(message):
        conn.sendall(message[sent:])


def _create_region(name: str, attach: layout.Attach) -> tuple[int, mmap.mmap]:
    """A sealed, fully allocated memfd with the control header written (section 7)."""
    fd = os.memfd_create(f"utp.{name}.{attach.link_id}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        try:
            os.posix_fallocate(fd, 0, attach.region_len)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.ENOMEM):
                raise UtpError(f"no space for a {attach.region_len / (1 << 20):.1f} MiB shm link "
                               f"({error.strerror})") from None
            raise
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, layout.REQUIRED_SEALS)
        region = mmap.mmap(fd, attach.region_len, mmap.MAP_SHARED | _MAP_POPULATE,
                           mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        os.close(fd)
        raise
    layout.write_control_header(region, attach)
    return fd, region


def _try_send(channel, message_type: int, payload: bytes) -> None:
    """Best effort: tell the client why it is being dropped (on the link, or the socket before it)."""
    try:
        channel.send(message_type, payload, 1.0)
    except (UtpError, OSError):
        pass
