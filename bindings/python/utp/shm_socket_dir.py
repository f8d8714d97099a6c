"""Where the rendezvous socket of ``shm://NAME`` lives (docs/shm-layout.md section 2.2).

Not in the abstract namespace (first come, first served for every user) but
in a directory only its user can write:

- the *private* directory ``P(uid)``: ``$XDG_RUNTIME_DIR/utp`` when that
  variable names an absolute directory owned by the process's euid (not a
  symlink), else ``/tmp/utp-UID``; mode 0700;
- the *shared* directory ``S(uid)`` = ``/tmp/utp-UID.shared``, mode 0711
  (others may reach a socket by its exact name, not list or create), used
  only by listeners that admit other users.

Every directory is checked with ``lstat`` before use (a directory, not a
symlink, owned by the expected uid, granting nothing more than its mode) and
is never removed or repaired by utp.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

from .errors import UtpError
from .shm_layout import socket_file_name

PRIVATE_MODE = 0o700
SHARED_MODE = 0o711
SUN_PATH_MAX = 107


class SocketDirError(UtpError):
    """A socket directory exists but is not safe to use (symlink, wrong owner, too open)."""


def private_dir(uid: int | None = None) -> str:
    """``P(uid)`` for this process's euid (the only uid it can be computed for)."""
    own = os.geteuid() if uid is None else uid
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime.startswith("/") and own == os.geteuid():
        try:
            info = os.lstat(runtime)
        except OSError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode) and info.st_uid == own:
            return os.path.join(runtime, "utp")
    return f"/tmp/utp-{own}"


def shared_dir(uid: int) -> str:
    """``S(uid)``: ``/tmp/utp-UID.shared``."""
    return f"/tmp/utp-{uid}.shared"


def check_dir(path: str, uid: int, shared: bool) -> None:
    """Raise :class:`SocketDirError` unless ``path`` is a safe socket directory of ``uid``.

    Raises ``FileNotFoundError`` if it does not exist.
    """
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise SocketDirError(f"refusing {path}: a symlink, not a directory (remove it yourself)")
    if not stat.S_ISDIR(info.st_mode):
        raise SocketDirError(f"refusing {path}: not a directory (remove it yourself)")
    if info.st_uid != uid:
        raise SocketDirError(f"refusing {path}: owned by uid {info.st_uid}, not {uid} "
                             "(someone else created it; remove it yourself if you trust it)")
    too_open = 0o066 if shared else 0o077
    if info.st_mode & too_open:
        raise SocketDirError(f"refusing {path}: mode {stat.S_IMODE(info.st_mode):o} lets other users in "
                             f"(expected {SHARED_MODE if shared else PRIVATE_MODE:o})")


def ensure_dir(shared: bool) -> str:
    """The server's directory, ``S(own)`` if ``shared`` else ``P(own)``, created if missing and checked."""
    uid = os.geteuid()
    path = shared_dir(uid) if shared else private_dir()
    mode = SHARED_MODE if shared else PRIVATE_MODE
    try:
        os.mkdir(path, mode)
        os.chmod(path, mode)  # exactly, whatever the umask; we just created it and nobody else can write here
    except FileExistsError:
        pass
    check_dir(path, uid, shared)
    return path


def socket_path(directory: str, link_name: str) -> str:
    """``DIR/shm.NAME``; raises :class:`UtpError` if it does not fit ``sun_path``."""
    path = os.path.join(directory, socket_file_name(link_name))
    if len(path.encode()) > SUN_PATH_MAX:
        raise UtpError(f"the socket path {path} is {len(path.encode())} bytes, more than the {SUN_PATH_MAX} "
                       "a Unix socket allows: use a shorter name (or a shorter XDG_RUNTIME_DIR)")
    return path


def client_candidates(link_name: str, allowed_uids: tuple[int, ...]) -> list[str]:
    """The socket paths a client tries, in order (section 2.2), skipping unsafe or missing directories."""
    own = os.geteuid()
    dirs = [(private_dir(), own, False), (shared_dir(own), own, True)]
    dirs += [(shared_dir(uid), uid, True) for uid in allowed_uids if uid != own]
    if own != 0:
        dirs.append((shared_dir(0), 0, True))
    paths = []
    for directory, uid, shared in dirs:
        try:
            check_dir(directory, uid, shared)
        except (FileNotFoundError, SocketDirError):
            continue
        paths.append(socket_path(directory, link_name))
    return paths


def bind(url: str, path: str, shared: bool) -> socket.socket:
    """Bind and listen on ``path`` (in a directory checked by :func:`ensure_dir`), replacing a stale socket."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None:
        if not stat.S_ISSOCK(info.st_mode):
            raise UtpError(f"cannot listen on {url}: {path} exists and is not a socket (remove it yourself)")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
            raise UtpError(f"cannot listen on {url}: another server is already listening there ({path})")
        except ConnectionRefusedError:
            os.unlink(path)  # stale: its server died; nobody else can write in this directory
        except FileNotFoundError:
            pass
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.fchmod(sock.fileno(), 0o600)
        sock.bind(path)
        os.chmod(path, 0o666 if shared else 0o600)  # safe by path: nobody else can write in the directory
        sock.listen(128)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise UtpError(f"cannot listen on {url}: another server is already listening there") from None
        raise UtpError(f"cannot listen on {url}: {error.strerror or error}") from None
    return sock
