"""Endpoint URLs: ``unix:///PATH``, ``unix://@NAME``, ``tcp://HOST:PORT``, ``shm://NAME``.

Any URL may end in ``?key=value&key=value`` options. Stream URLs know
``framing=utp|length`` (``length`` = the tutorial's 4-byte framing, see
docs/protocol.md); ``shm://`` knows ``wait=adaptive|spin|block`` (how a side
waits, docs/shm-layout.md section 5.2); ``unix://`` and ``shm://`` know
``allow_uid=U1,U2`` and ``allow_gid=G1`` (whom to trust besides your own uid
and root, see :mod:`utp.identity`). Any other option is an error listing the
valid ones: a misspelt ``allow_uids`` must not silently do nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from .identity import IDENTITY_OPTIONS, PeerPolicy, parse_ids

SCHEMES = ("unix", "tcp", "shm")
_SHM_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_FRAMINGS = ("utp", "length")
_WAITS = ("adaptive", "spin", "block")
_IDS = None  # a comma-separated list of numeric ids, checked by identity.parse_ids
_SIZE = ()  # a ring size such as 4096, 64k, 1M: checked by parse_size
_OPTIONS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "unix": {"framing": _FRAMINGS, "allow_uid": _IDS, "allow_gid": _IDS},
    "tcp": {"framing": _FRAMINGS},
    "shm": {"wait": _WAITS, "ring": _SIZE, "allow_uid": _IDS, "allow_gid": _IDS},
}


class EndpointError(ValueError):
    """A URL that does not name an endpoint this package can use."""


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint URL.

    ``address`` is what the socket layer wants: a filesystem path or an
    abstract name starting with ``\\0`` for unix, a ``(host, port)`` tuple
    for tcp, the link name for shm.
    """

    url: str
    scheme: str
    address: Any  # str for unix and shm, (host, port) for tcp
    options: dict[str, str] = field(default_factory=dict)

    @property
    def framing(self) -> str:
        """``"utp"`` (the default) or ``"length"`` (the tutorial framing)."""
        return self.options.get("framing", "utp")

    @property
    def wait(self) -> str:
        """shm waiting strategy: ``"adaptive"`` (default), ``"spin"`` or ``"block"``."""
        return self.options.get("wait", "adaptive")

    @property
    def ring(self) -> int | None:
        """shm ring capacity from ``?ring=`` (bytes per direction), or ``None`` for the server's choice."""
        raw = self.options.get("ring")
        return None if raw is None else parse_size(raw)

    @property
    def base_url(self) -> str:
        """The URL without its ``?options`` (how refusals name the endpoint)."""
        return self.url.partition("?")[0]

    @property
    def policy(self) -> PeerPolicy:
        """Whom this endpoint trusts: own uid and root, widened by ``allow_uid`` / ``allow_gid``."""
        return PeerPolicy.from_options(self.options)

    @property
    def is_abstract(self) -> bool:
        """True for a Linux abstract-namespace unix socket (``unix://@NAME``)."""
        return self.scheme == "unix" and isinstance(self.address, str) and self.address.startswith("\0")


def parse(url: str) -> Endpoint:
    """Parse an endpoint URL; raises :class:`EndpointError` with the accepted forms."""
    base, _, query = url.partition("?")
    options: dict[str, str] = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    scheme, sep, rest = base.partition("://")
    if not sep:
        raise _invalid(url, "missing '://'")
    if scheme not in SCHEMES:
        raise _invalid(url, f"unsupported scheme {scheme!r}")
    known: dict[str, tuple[str, ...] | None] = _OPTIONS[scheme]
    for key, value in options.items():
        if key not in known:
            hint = (f"; the {scheme} transport cannot tell who the peer is, so it cannot restrict "
                    "peers by id") if key in IDENTITY_OPTIONS else ""
            raise _invalid(url, f"unknown option \"{key}\" for {scheme}://; valid options: "
                                f"{', '.join(known)}{hint}")
        choices = known[key]
        if choices == _SIZE:
            if parse_size(value) is None:
                raise _invalid(url, f"{key}={value!r} is not a size (bytes, or with a k, M or G suffix)")
        elif choices is None:
            try:
                parse_ids(key, value)
            except ValueError as error:
                raise _invalid(url, str(error)) from None
        elif value not in choices:
            raise _invalid(url, f"{key} must be one of {', '.join(choices)}, not {value!r}")
    address: Any
    if scheme == "unix":
        address = _unix_address(url, rest)
    elif scheme == "tcp":
        address = _tcp_address(url, rest)
    else:
        if not _SHM_NAME.match(rest):
            raise _invalid(url, "an shm NAME is letters, digits, '.', '_' and '-'")
        address = rest
    return Endpoint(url=url, scheme=scheme, address=address, options=options)


def parse_size(text: str) -> int | None:
    """``4096``, ``64k``, ``1M``, ``1G`` or ``0x1000`` in bytes (powers of 1024), as the Rust library reads them."""
    text = text.strip()
    if text[:2] in ("0x", "0X"):
        try:
            return int(text[2:], 16)
        except ValueError:
            return None
    shift = {"k": 10, "m": 20, "g": 30}.get(text[-1:].lower(), 0)
    digits = text[:-1] if shift else text
    return int(digits) << shift if digits.isdigit() else None


def _unix_address(url: str, rest: str) -> str:
    if rest.startswith("@"):
        if len(rest) < 2:
            raise _invalid(url, "an abstract socket needs a name after '@'")
        return "\0" + rest[1:]
    if not rest.startswith("/"):
        raise _invalid(url, "a unix socket path must be absolute (unix:///PATH)")
    if len(rest.encode()) > 107:
        raise _invalid(url, "a unix socket path is limited to 107 bytes")
    return rest


def _tcp_address(url: str, rest: str) -> tuple[str, int]:
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:/\[\]]+):(\d+)", rest)
    if not match:
        raise _invalid(url, "expected tcp://HOST:PORT")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise _invalid(url, f"port {port} is outside 0..65535")
    return host, port


def _invalid(url: str, reason: str) -> EndpointError:
    return EndpointError(
        f"invalid endpoint URL {url!r}: {reason}\n"
        "accepted forms: unix:///PATH, unix://@NAME, tcp://HOST:PORT, shm://NAME "
        "(options: ?framing=length on unix/tcp, ?wait=adaptive|spin|block&ring=SIZE on shm, "
        "?allow_uid=U1,U2&allow_gid=G1 on unix/shm)"
    )
