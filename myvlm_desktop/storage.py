"""Writing files so that a full disk or a crash never leaves half a file: write aside, fsync, rename.

Every file the app derives (thumbnails, heads, concept embeddings, checkpoints, downloads) is opened for
writing through `open_for_write`, and a full disk (ENOSPC, a quota, SQLite's "database or disk is full")
becomes `DiskFull`: one clear sentence, the old file untouched, the job free to run again once there is room.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
SQLITE_FULL = 13


class DiskFull(OSError):
    """The disk (or quota) holding `where` is full; nothing was half-written."""

    def __init__(self, where: str | os.PathLike):
        self.where = str(where)
        super().__init__(errno.ENOSPC, f"the disk holding {self.where} is full: free some space and run it again "
                                       "(it continues where it stopped)")

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in FULL_ERRNOS
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "disk is full" in str(exc)
    return False


def open_for_write(path: str | os.PathLike, mode: str = "wb") -> BinaryIO:
    """The one place files are opened for writing (tests put a full disk here when they cannot mount one)."""
    return open(path, mode)  # the caller closes it


def atomic_write(target: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write `target` through `write(handle)` into a file beside it, fsync, then rename over `target`."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open_for_write(tmp) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(target.parent) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    atomic_write(target, lambda handle: handle.write(data))


def sha256_of(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """A file's SHA-256, read in blocks (hashlib lets go of the GIL, so a thread can hash while another works)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()
