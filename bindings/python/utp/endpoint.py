"""Endpoint URLs: ``unix:///PATH``, ``unix://@NAME``, ``tcp://HOST:PORT``, ``shm://NAME``.

Any URL may end in ``?key=value&key=value`` options. Stream URLs know
``framing=utp|length`` (``length`` = the tutorial's 4-byte framing, see
docs/protocol.md); ``shm://`` knows ``wait=adaptive|spin|block`` (how a side
waits, docs/shm-layout.md section 5.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

SCHEMES = ("unix", "tcp", "shm")
_SHM_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_FRAMINGS = ("utp", "length")
_WAITS = ("adaptive", "spin", "block")
_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "unix": {"framing": _FRAMINGS},
    "tcp": {"framing": _FRAMINGS},
    "shm": {"wait": _WAITS},
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
    known: dict[str, tuple[str, ...]] = _OPTIONS[scheme]
    for key, value in options.items():
        if key not in known:
            raise _invalid(url, f"unknown option {key!r} for {scheme}:// (known: {', '.join(known)})")
        if value not in known[key]:
            raise _invalid(url, f"{key} must be one of {', '.join(known[key])}, not {value!r}")
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
        "(options: ?framing=length on unix/tcp, ?wait=adaptive|spin|block on shm)"
    )
