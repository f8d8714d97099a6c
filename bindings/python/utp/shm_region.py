"""Opening, checking and removing the region of one shm link (docs/shm-layout.md sections 2.2, 7)."""

from __future__ import annotations

import errno
import mmap
import os
import stat

from . import shm_layout as layout
from .errors import ProtocolError


def region_path(attach: layout.Attach) -> str:
    """Where a POSIX region announced by LINK_ATTACH lives (what glibc's ``shm_open`` opens)."""
    if attach.kind != layout.KIND_POSIX:
        raise ProtocolError(f"region kind {attach.kind}: this client maps POSIX shared memory only")
    return "/dev/shm" + attach.name


def map_region(attach: layout.Attach) -> mmap.mmap:
    """Open and map a link region read-write after the checks of section 2.2 step 1.

    The object must be a regular file of exactly the announced length that
    grants nothing to group or others. Raises :class:`ProtocolError`.
    """
    path = region_path(attach)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as error:
        raise ProtocolError(f"cannot open the link region {path}: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ProtocolError(f"the link region {path} is not a regular file")
        if info.st_size != attach.region_len:
            raise ProtocolError(f"the link region {path} is {info.st_size} bytes, LINK_ATTACH said {attach.region_len}")
        if info.st_mode & 0o077:
            raise ProtocolError(f"the link region {path} has mode {info.st_mode & 0o777:o}: "
                                "group or others have access")
        return mmap.mmap(fd, attach.region_len, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)


def remove_region_name(attach: layout.Attach) -> None:
    """Remove the region's name (``shm_unlink`` / ``unlink``); a missing name is fine."""
    try:
        os.unlink(region_path(attach))
    except (FileNotFoundError, ProtocolError):
        pass
    except OSError as error:
        if error.errno != errno.ENOENT:
            raise
