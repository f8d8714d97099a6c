"""Opening stream sockets for ``unix://`` and ``tcp://`` endpoints.

Unix socket files are 0600 from their first instant: the socket is
``fchmod``-ed *before* ``bind`` (Linux creates the file with the socket's
mode, minus the umask), so no path is ever ``chmod``-ed. A symlink at the
socket path is refused, never followed or removed. Both ends check who the
peer is (``SO_PEERCRED``) against the endpoint's :class:`~utp.identity.PeerPolicy`.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

from .endpoint import Endpoint
from .errors import ConnectError, UtpError
from .identity import PeerNotTrusted, PeerPolicy, peer_credentials


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
    try:
        check_server(endpoint, sock)
    except BaseException:
        sock.close()
        raise
    return sock


def check_server(endpoint: Endpoint, sock: socket.socket, what: str = "the socket") -> None:
    """A client's check that the server at the other end of ``sock`` is trusted (SO_PEERCRED)."""
    try:
        creds = peer_credentials(sock)
    except OSError as error:
        raise PeerNotTrusted(f"{endpoint.base_url}: the kernel did not say who the server is "
                             f"(SO_PEERCRED failed: {error.strerror or error})") from None
    endpoint.policy.check_server(endpoint.base_url, what, creds.uid, creds.gid)


def check_client(endpoint: Endpoint, conn: socket.socket, policy: PeerPolicy | None = None) -> None:
    """A server's check that the client at the other end of ``conn`` is trusted (SO_PEERCRED)."""
    try:
        creds = peer_credentials(conn)
    except OSError as error:
        raise PeerNotTrusted(f"refused a client on {endpoint.base_url}: the kernel did not say who it is "
                             f"(SO_PEERCRED failed: {error.strerror or error})") from None
    (policy or endpoint.policy).check_client(endpoint.base_url, creds)


def listen(endpoint: Endpoint, backlog: int = 128) -> socket.socket:
    """Bind and listen on ``endpoint``.

    A unix socket file left by a dead server is replaced; one that a live
    server still answers on is an error, as is a symlink or any other kind of
    file. The socket file is owner-only (mode 0600) from its first instant;
    with ``allow_uid`` / ``allow_gid`` it is then opened to every user (0666)
    and the check at accept decides who is served.
    """
    if endpoint.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if not endpoint.is_abstract:
                _remove_stale_socket(endpoint)
                os.fchmod(sock.fileno(), 0o600)  # bind creates the file with this mode
            sock.bind(endpoint.address)
            policy = endpoint.policy
            if not endpoint.is_abstract and (policy.uids or policy.gids):
                _open_to_other_users(endpoint)
        except UtpError:
            sock.close()
            raise
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


def _open_to_other_users(endpoint: Endpoint) -> None:
    """Make the just-bound socket file 0666 for a server that admits other users (checked at accept).

    Through an ``O_PATH | O_NOFOLLOW`` descriptor of that very socket, never a
    path ``chmod`` that a swapped-in symlink could redirect.
    """
    path = str(endpoint.address)
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise UtpError(f"cannot listen on {endpoint.url}: {path} is no longer the socket just bound")
        os.chmod(f"/proc/self/fd/{fd}", 0o666)
    finally:
        os.close(fd)


def bound_url(endpoint: Endpoint, sock: socket.socket) -> str:
    """The URL a listener is reachable at (a tcp port 0 becomes the real port)."""
    if endpoint.scheme != "tcp":
        return endpoint.url
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"tcp://{shown}:{port}"


def socket_file_id(endpoint: Endpoint) -> tuple[int, int] | None:
    """Device and inode of the socket file of a path-based unix endpoint (``lstat``), if it is a socket."""
    if endpoint.scheme != "unix" or endpoint.is_abstract:
        return None
    try:
        info = os.lstat(str(endpoint.address))
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISSOCK(info.st_mode) else None


def remove_socket_file(endpoint: Endpoint, bound: tuple[int, int] | None = None) -> None:
    """Delete a path-based unix socket's file if it is still a socket (and, given ``bound``, that very one)."""
    found = socket_file_id(endpoint)
    if found is None or (bound is not None and found != bound):
        return
    try:
        os.unlink(str(endpoint.address))
    except FileNotFoundError:
        pass


def _remove_stale_socket(endpoint: Endpoint) -> None:
    path = str(endpoint.address)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise PeerNotTrusted(f"cannot listen on {endpoint.base_url}: {path} is a symbolic link; utp neither "
                             "follows nor removes a symlink at a socket path (remove it yourself if it is yours)")
    if not stat.S_ISSOCK(info.st_mode):
        raise UtpError(f"cannot listen on {endpoint.url}: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as error:
        if error.errno in (errno.ECONNREFUSED, errno.ENOENT):
            # Only the dead socket we examined, not whatever replaced it meanwhile.
            remove_socket_file(endpoint, (info.st_dev, info.st_ino))
            return
        raise UtpError(f"cannot listen on {endpoint.url}: {error.strerror or error}") from None
    finally:
        probe.close()
    raise UtpError(f"cannot listen on {endpoint.url}: another server is already listening there")
