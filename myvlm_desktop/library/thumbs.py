"""The thumbnail cache heals itself: an entry that is not an image (a crash of another program, a disk
error, a hand edit) is made again from its photo, when the photo still has the content it was named after."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from PIL import Image

from .. import imaging
from .scan import read_file
from .store import thumbnail_file


def usable(target: Path) -> bool:
    try:
        with Image.open(target) as img:
            img.verify()
        return True
    except Exception:  # noqa: BLE001 - PIL raises anything on a file that is not an image
        return False


def rebuild(thumbs: Path, content_hash: str, photo: str | bytes | os.PathLike) -> Path | None:
    """The thumbnail of `content_hash`, made again from `photo` if the cached one is damaged; None when it
    cannot be (the photo is offline, or changed since: the next scan makes the new one)."""
    target = thumbnail_file(thumbs, content_hash)
    if usable(target):
        return target
    target.unlink(missing_ok=True)
    try:
        data = read_file(photo)
    except OSError:
        return None
    if hashlib.blake2b(data, digest_size=16).hexdigest() != content_hash:
        return None
    try:
        imaging.read_photo(io.BytesIO(data), target)
    except (imaging.ImageError, OSError):
        return None
    return target
