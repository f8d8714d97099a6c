"""Linux futex wait/wake and a full memory fence, through ctypes (no compiled code).

The shared-memory link (docs/shm-layout.md section 5) sleeps on *shared*
futex words in the mapped region (``FUTEX_WAIT`` / ``FUTEX_WAKE`` without
``FUTEX_PRIVATE_FLAG``) and needs a full fence between a store and a later
load on each side.
"""

from __future__ import annotations

import ctypes
import errno
import platform

FUTEX_WAIT = 0
FUTEX_WAKE = 1
INT_MAX = 2**31 - 1

_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_spin_lock = _libc.pthread_spin_lock
_spin_unlock = _libc.pthread_spin_unlock
_fence_lock = (ctypes.c_int * 4)()  # a private pthread spinlock; its unlocked value is libc's business
if _libc.pthread_spin_init(ctypes.byref(_fence_lock), 0) != 0:
    raise OSError("pthread_spin_init failed: cannot build a memory fence")


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def futex_syscall_number() -> int:
    """``SYS_futex`` for this machine; raises ``OSError`` on an unknown architecture."""
    machine = platform.machine().lower()
    if machine not in _SYS_FUTEX:
        raise OSError(errno.ENOSYS, f"no futex syscall number known for {machine}")
    return _SYS_FUTEX[machine]


def full_fence() -> None:
    """A sequentially consistent fence: locking a spinlock is a locked (fencing) instruction.

    The foreign calls themselves also release and retake the GIL, which are
    atomic read-modify-write operations; either way no store before this
    call is reordered with a load after it.
    """
    _spin_lock(ctypes.byref(_fence_lock))
    _spin_unlock(ctypes.byref(_fence_lock))


def futex_wait(address: int, expected: int, timeout: float) -> None:
    """Sleep while the u32 at ``address`` equals ``expected``, at most ``timeout`` seconds.

    Returns on a wake-up, a timeout, a signal, or at once if the word
    already differs (``EAGAIN``); the caller re-checks its condition.
    """
    seconds = max(0.0, timeout)
    spec = _Timespec(int(seconds), int((seconds - int(seconds)) * 1e9))
    result = _libc.syscall(futex_syscall_number(), ctypes.c_void_p(address), FUTEX_WAIT,
                           ctypes.c_uint32(expected), ctypes.byref(spec), None, 0)
    if result == -1:
        code = ctypes.get_errno()
        if code not in (errno.EAGAIN, errno.ETIMEDOUT, errno.EINTR):
            raise OSError(code, f"futex wait failed: {errno.errorcode.get(code, code)}")


def futex_wake(address: int, count: int = INT_MAX) -> None:
    """Wake up to ``count`` processes sleeping on the u32 at ``address``."""
    result = _libc.syscall(futex_syscall_number(), ctypes.c_void_p(address), FUTEX_WAKE,
                           ctypes.c_int(count), None, None, 0)
    if result == -1:
        code = ctypes.get_errno()
        raise OSError(code, f"futex wake failed: {errno.errorcode.get(code, code)}")
