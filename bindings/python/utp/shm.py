"""Connecting to ``shm://NAME`` (docs/shm-layout.md sections 2 and 3, layout version 2), in pure Python.

Rendezvous on the socket ``DIR/shm.NAME`` in a per-user directory (see
:mod:`utp.shm_socket_dir`); the server's uid is checked (``SO_PEERCRED``)
before anything is sent; LINK_HELLO out, LINK_ATTACH in with the link's
memfd (``SCM_RIGHTS``), whose owner, size and seals are checked before it is
mapped; then the client's status line and LINK_READY. Frames then flow
through the two rings of the region, handled by :class:`~utp.shm_link.ShmLink`,
which offers the same ``send``/``receive``/``close`` as the stream framings
so :class:`utp.Client` works on it unchanged. The socket stays open and
silent as a death notice.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import socket
import stat
import sys
import time

from . import frame as utp_frame
from . import shm_layout as layout
from .endpoint import Endpoint
from .errors import ConnectError, ConnectionClosed, ProtocolError, UtpError, UtpTimeout
from .frame import DEFAULT_MAX_PAYLOAD, HEADER_SIZE, Frame
from .identity import peer_credentials
from .shm_link import PeerGone, ShmLink
from .shm_socket_dir import client_candidates
from .sockets import check_server
from .stream import UtpFraming

__all__ = ["PeerGone", "ShmLink", "connect", "peer_pid", "receive_frame_with_fds"]

_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def connect(endpoint: Endpoint, timeout: float, max_payload: int = DEFAULT_MAX_PAYLOAD) -> ShmLink:
    """Rendezvous with the server of ``shm://NAME`` and attach a new link (section 2.6).

    Raises :class:`ConnectError` if no server answers, it refuses, or it is
    not trusted (:class:`~utp.identity.PeerNotTrusted`); :class:`ProtocolError`
    if its answer or region breaks the layout.
    """
    if sys.byteorder != "little":
        raise UtpError("the shm link layout is little-endian; this machine is not")
    deadline = time.monotonic() + timeout
    sock = _rendezvous(endpoint, timeout)
    region = link = None
    try:
        check_server(endpoint, sock, "the rendezvous socket")  # before LINK_HELLO (2.3)
        handshake = UtpFraming(sock, max_payload=layout.HANDSHAKE_MAX_PAYLOAD)
        try:
            hello = layout.hello_payload(_requested_ring(endpoint), features=layout.FEATURE_WAKE_BYTES)
            handshake.send(utp_frame.LINK_HELLO, hello, _remaining(deadline, endpoint))
        except (BrokenPipeError, ConnectionResetError, ConnectionClosed):
            # A server that refuses us sends its ERROR at once and closes: read why.
            _raise_refusal(sock, endpoint)
            raise
        attach, memfd = _receive_attach(sock, endpoint, deadline)
        try:
            _check_memfd(endpoint, memfd, attach)
            region = mmap.mmap(memfd, attach.region_len, mmap.MAP_SHARED | _MAP_POPULATE,
                               mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(memfd)
        layout.check_control_header(region, attach)
        link = ShmLink(endpoint, sock, attach, region, peer_pid(sock), max_payload)
        link.learn_peer()  # the server wrote its status line before LINK_ATTACH
        link.announce_ready()
        handshake.send(utp_frame.LINK_READY, b"", _remaining(deadline, endpoint))
        return link
    except BaseException:
        if link is not None:
            link.release_mapping()
        elif region is not None:
            region.close()
        sock.close()
        raise


def _requested_ring(endpoint: Endpoint) -> int:
    """The capacity asked for in LINK_HELLO: ``?ring=`` or 0 (the server's choice)."""
    ring = endpoint.ring
    if ring is None:
        return 0
    if not layout.valid_capacity(ring):
        raise ConnectError(f"{endpoint.url}: ring={ring} is not a power of two from 4096 to 2^30")
    return ring


def _remaining(deadline: float, endpoint: Endpoint) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ConnectError(f"the handshake with {endpoint.url} did not finish in time")
    return remaining


def _rendezvous(endpoint: Endpoint, timeout: float) -> socket.socket:
    """Connect to the first candidate socket that accepts (section 2.2, "Connecting")."""
    name = str(endpoint.address)
    candidates = client_candidates(name, endpoint.policy.uids)
    deadline = time.monotonic() + timeout
    for path in candidates:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            while True:
                try:
                    sock.connect(path)
                    return sock
                except BlockingIOError:  # the server's accept queue is full for now: retry in time
                    if time.monotonic() >= deadline:
                        raise ConnectError(f"{endpoint.url}: the server's accept queue stayed full for "
                                           f"{timeout:g}s") from None
                    time.sleep(0.005)
        except (ConnectionRefusedError, FileNotFoundError):
            sock.close()
        except ConnectError:
            sock.close()
            raise
        except TimeoutError:
            sock.close()
            raise ConnectError(f"no answer from {endpoint.url} within {timeout:g}s") from None
        except OSError as error:
            sock.close()
            raise ConnectError(f"cannot connect to {endpoint.url} at {path}: {error.strerror or error}") from None
    tried = ", ".join(candidates) if candidates else "no safe socket directory exists"
    raise ConnectError(f"no server at {endpoint.url}: nothing listens (tried {tried}); is the server running?")


def receive_frame_with_fds(sock: socket.socket, timeout: float, max_payload: int,
                           max_fds: int = 1) -> tuple[Frame | None, list[int]]:
    """Read one UTP frame whose first byte may carry descriptors (``SCM_RIGHTS``).

    Returns ``(None, [])`` if the peer closed the socket first. The caller
    owns (and must close) the returned descriptors.
    """
    sock.settimeout(timeout)
    data, fds, msg_flags, _ = socket.recv_fds(sock, max_payload + HEADER_SIZE, max_fds)
    try:
        if msg_flags & socket.MSG_CTRUNC:
            raise ProtocolError(f"the peer sent more than {max_fds} file descriptor(s) with a frame")
        if not data:
            return None, fds
        buffer = bytearray(data)
        while len(buffer) < HEADER_SIZE:
            buffer += _recv_some(sock, HEADER_SIZE - len(buffer))
        header = utp_frame.decode_header(bytes(buffer[:HEADER_SIZE]), max_payload)
        total = HEADER_SIZE + header.payload_length
        while len(buffer) < total:
            buffer += _recv_some(sock, total - len(buffer))
        if len(buffer) > total:
            raise ProtocolError(f"{len(buffer) - total} unexpected bytes after a handshake frame")
        return utp_frame.decode(bytes(buffer), max_payload), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _raise_refusal(sock: socket.socket, endpoint: Endpoint) -> None:
    """If the server left an ERROR frame before closing, raise it as :class:`ConnectError`."""
    try:
        answer, fds = receive_frame_with_fds(sock, 0.5, layout.HANDSHAKE_MAX_PAYLOAD, max_fds=0)
    except (OSError, UtpError):
        return
    for fd in fds:
        os.close(fd)
    if answer is not None and answer.message_type == utp_frame.ERROR:
        raise ConnectError(f"{endpoint.url} refused the link: {answer.payload.decode('utf-8', 'replace')}")


def _recv_some(sock: socket.socket, count: int) -> bytes:
    chunk = sock.recv(count)
    if not chunk:
        raise ConnectError("the peer closed the connection in the middle of a handshake frame")
    return chunk


def _receive_attach(sock: socket.socket, endpoint: Endpoint, deadline: float) -> tuple[layout.Attach, int]:
    try:
        answer, fds = receive_frame_with_fds(sock, _remaining(deadline, endpoint), layout.HANDSHAKE_MAX_PAYLOAD)
    except (TimeoutError, UtpTimeout):
        raise ConnectError(f"{endpoint.url} did not answer LINK_HELLO in time") from None
    try:
        if answer is None:
            raise ConnectError(f"{endpoint.url} closed the connection during the handshake")
        if answer.message_type == utp_frame.ERROR:
            raise ConnectError(f"{endpoint.url} refused the link: {answer.payload.decode('utf-8', 'replace')}")
        if answer.message_type != utp_frame.LINK_ATTACH:
            raise ProtocolError(f"expected LINK_ATTACH (0x21) from {endpoint.url}, "
                                f"got 0x{answer.message_type:02x}")
        attach = layout.Attach.decode(answer.payload)
        attach.check_memfd(str(endpoint.address))
        if len(fds) != 1:
            raise ProtocolError(f"LINK_ATTACH of a memfd link came with {len(fds)} descriptors, expected 1")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return attach, fds[0]


def _check_memfd(endpoint: Endpoint, fd: int, attach: layout.Attach) -> None:
    """Section 2.6 step 2, before mapping: a regular file of the exact size, a trusted owner, sealed."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ProtocolError(f"the region {endpoint.url} sent is not a regular file (a memfd)")
    if info.st_size != attach.region_len:
        raise ProtocolError(f"the region is {info.st_size} bytes, LINK_ATTACH said {attach.region_len}")
    endpoint.policy.check_server(endpoint.base_url, "the link region", info.st_uid, info.st_gid)
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError as error:
        raise ProtocolError(f"cannot read the region's seals: {error.strerror or error}") from None
    if seals & layout.REQUIRED_SEALS != layout.REQUIRED_SEALS or seals & layout.FORBIDDEN_SEALS:
        raise ProtocolError(f"the region's seals are 0x{seals:x}: it must be sealed against shrinking, "
                            "growing and resealing (0x7) and writable (no 0x8 / 0x10)")


def peer_pid(sock: socket.socket) -> int:
    """The pid of the process at the other end of a unix socket (``SO_PEERCRED``)."""
    return peer_credentials(sock).pid
