"""Who may talk to whom: the peer-identity policy of the Rust library, in Python.

By default a server accepts only clients of its own effective uid (and
root), and a client talks only to a server of its own effective uid (or
root): a root process can read any process's memory anyway. The URL options
``?allow_uid=U1,U2`` and ``?allow_gid=G1`` widen that. On a unix socket the
kernel tells each side who the other is (``SO_PEERCRED``); tcp cannot tell,
so these options are an error there.

The refusal texts are the Rust library's, word for word.

>>> policy = PeerPolicy(own_uid=1000, uids=(65534,))
>>> policy.allows(65534, 65534), policy.allows(0, 0), policy.allows(4242, 4242)
(True, True, False)
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

from .errors import ConnectError

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

IDENTITY_OPTIONS = ("allow_uid", "allow_gid")


class PeerNotTrusted(ConnectError):
    """The peer runs as a user the policy does not trust (``?allow_uid=`` / ``?allow_gid=`` widen it)."""


@dataclass(frozen=True)
class Credentials:
    """What the kernel says about the process at the other end of a unix socket."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> Credentials:
    """``SO_PEERCRED`` of a connected unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return Credentials(pid, uid, gid)


def parse_ids(key: str, text: str) -> tuple[int, ...]:
    """``"1,2"`` -> ``(1, 2)``; raises ``ValueError`` naming the option otherwise."""
    try:
        ids = tuple(int(part.strip(), 10) for part in text.split(","))
    except ValueError:
        raise ValueError(f"{key}={text!r} is not a comma-separated list of numeric ids") from None
    if any(not 0 <= i <= 0xFFFF_FFFF for i in ids):
        raise ValueError(f"{key}={text!r} is not a comma-separated list of numeric ids")
    return ids


@dataclass(frozen=True)
class PeerPolicy:
    """The set of peers a client or server trusts: its own euid, root, and the listed ids."""

    own_uid: int
    uids: tuple[int, ...] = ()
    gids: tuple[int, ...] = ()

    @classmethod
    def from_options(cls, options: dict[str, str]) -> PeerPolicy:
        """The default policy widened by the ``allow_uid`` / ``allow_gid`` URL options."""
        uids = parse_ids("allow_uid", options["allow_uid"]) if "allow_uid" in options else ()
        gids = parse_ids("allow_gid", options["allow_gid"]) if "allow_gid" in options else ()
        return cls(os.geteuid(), uids, gids)

    def allows(self, uid: int, gid: int) -> bool:
        """Whether a peer of this uid and gid is trusted."""
        return uid in (self.own_uid, 0) or uid in self.uids or gid in self.gids

    def check_server(self, endpoint: str, what: str, uid: int, gid: int) -> None:
        """A client's check of the server it reached; raises :class:`PeerNotTrusted`."""
        if self.allows(uid, gid):
            return
        raise PeerNotTrusted(
            f"{endpoint} is served by uid {uid}, not by you (uid {self.own_uid}): {what} belongs "
            f"to another user, who could read or forge your messages; pass ?allow_uid={uid} to trust it")

    def check_client(self, endpoint: str, creds: Credentials) -> None:
        """A server's check of a connecting client; raises :class:`PeerNotTrusted`."""
        if self.allows(creds.uid, creds.gid):
            return
        raise PeerNotTrusted(
            f"refused a client of uid {creds.uid} (pid {creds.pid}) on {endpoint}: this server runs "
            f"as uid {self.own_uid}; add ?allow_uid={creds.uid} to the server's URL to admit it")
