"""Connecting to ``shm://NAME`` (docs/shm-layout.md section 2), in pure Python.

Rendezvous on the abstract socket ``@utp/shm/NAME``; LINK_HELLO, LINK_ATTACH,
LINK_READY over it; then frames flow through the two rings of a per-link
region mapped from ``/dev/shm``, handled by :class:`~utp.shm_link.ShmLink`,
which offers the same ``send``/``receive``/``close`` as the stream framings
so :class:`utp.Client` works on it unchanged. The socket stays open and
silent as a death notice.
"""

from __future__ import annotations

import socket
import struct
import sys
import time

from . import frame as utp_frame
from . import shm_layout as layout
from .endpoint import Endpoint
from .errors import ConnectError, ProtocolError, UtpError, UtpTimeout
from .frame import DEFAULT_MAX_PAYLOAD
from .shm_link import PeerGone, ShmLink
from .shm_region import map_region
from .stream import UtpFraming

_PEERCRED = struct.Struct("3i")  # pid, uid, gid

__all__ = ["PeerGone", "ShmLink", "connect", "peer_pid"]


def connect(endpoint: Endpoint, timeout: float, max_payload: int = DEFAULT_MAX_PAYLOAD) -> ShmLink:
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
        pid = peer_pid(sock)
        link = ShmLink(endpoint, sock, attach, region, pid, max_payload)
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
    except TimeoutError:
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


def peer_pid(sock: socket.socket) -> int:
    """The pid of the process at the other end of a unix socket (``SO_PEERCRED``)."""
    pid, _uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return pid
