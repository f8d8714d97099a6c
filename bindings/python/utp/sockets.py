"""Opening stream sockets for ``unix://`` and ``tcp://`` endpoints."""

from __future__ import annotations

import errno
import os
import socket
import stat

from .endpoint import Endpoint
from .errors import ConnectError, UtpError


def connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    """Connect a stream socket to ``endpoint`` within ``timeout`` seconds.

    Raises :class:`ConnectError` with a message that says what to check.
    """
    if endpoint.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = endpoint.address
    elif endpoint.scheme == "tcp":
        host, port = endpoint.address
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError:
            raise ConnectError(f"no answer from {endpoint.url} within {timeout:g}s") from None
        except ConnectionRefusedError:
            raise ConnectError(f"no server at {endpoint.url}: connection refused (is the server running?)") from None
        except OSError as error:
            raise ConnectError(f"cannot connect to {endpoint.url}: {error.strerror or error}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    else:
        raise UtpError(f"{endpoint.scheme}:// is not a stream transport")
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except FileNotFoundError:
        sock.close()
        raise ConnectError(f"no server at {endpoint.url}: the socket does not exist (is the server running?)") from None
    except ConnectionRefusedError:
        sock.close()
        raise ConnectError(f"no server at {endpoint.url}: connection refused (is the server running?)") from None
    except TimeoutError:
        sock.close()
        raise ConnectError(f"no answer from {endpoint.url} within {timeout:g}s") from None
    except OSError as error:
        sock.close()
        raise ConnectError(f"cannot connect to {endpoint.url}: {error.strerror or error}") from None
    return sock


def listen(endpoint: Endpoint, backlog: int = 128) -> socket.socket:
    """Bind and listen on ``endpoint``.

    A unix socket file left by a dead server is replaced; one that a live
    server still answers on is an error, as is any other kind of file. The
    socket file is made owner-only (mode 0600).
    """
    if endpoint.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if not endpoint.is_abstract:
            _remove_stale_socket(endpoint)
        try:
            sock.bind(endpoint.address)
            if not endpoint.is_abstract:
                os.chmod(endpoint.address, 0o600)
        except OSError as error:
            sock.close()
            raise UtpError(f"cannot listen on {endpoint.url}: {error.strerror or error}") from None
    elif endpoint.scheme == "tcp":
        host, port = endpoint.address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            sock.close()
            raise UtpError(f"cannot listen on {endpoint.url}: {error.strerror or error}") from None
    else:
        raise UtpError(f"{endpoint.scheme}:// is not a stream transport")
    sock.listen(backlog)
    return sock


def bound_url(endpoint: Endpoint, sock: socket.socket) -> str:
    """The URL a listener is reachable at (a tcp port 0 becomes the real port)."""
    if endpoint.scheme != "tcp":
        return endpoint.url
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"tcp://{shown}:{port}"


def remove_socket_file(endpoint: Endpoint) -> None:
    """Delete a path-based unix socket's file, if it is still a socket."""
    if endpoint.scheme != "unix" or endpoint.is_abstract:
        return
    try:
        if stat.S_ISSOCK(os.lstat(endpoint.address).st_mode):
            os.unlink(endpoint.address)
    except FileNotFoundError:
        pass


def _remove_stale_socket(endpoint: Endpoint) -> None:
    path = endpoint.address
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise UtpError(f"cannot listen on {endpoint.url}: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as error:
        if error.errno in (errno.ECONNREFUSED, errno.ENOENT):
            remove_socket_file(endpoint)
            return
        raise UtpError(f"cannot listen on {endpoint.url}: {error.strerror or error}") from None
    finally:
        probe.close()
    raise UtpError(f"cannot listen on {endpoint.url}: another server is already listening there")
