"""A small disk that can be filled and freed: a real tmpfs when the tests may mount one (root), else a full
disk put in the one place the app opens files for writing (storage.open_for_write)."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest


class SmallDisk:
    def __init__(self, path: Path, real: bool):
        self.path, self.real, self.full = path, real, False

    def fill(self) -> None:
        self.full = True
        if self.real:
            with open(self.path / "ballast", "wb", buffering=0) as handle:
                for chunk in (65536, 4096, 1):  # to the last byte
                    try:
                        while True:
                            handle.write(b"\0" * chunk)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC

    def free(self) -> None:
        self.full = False
        if self.real:
            (self.path / "ballast").unlink(missing_ok=True)


def _mount(path: Path) -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)],
                          capture_output=True, check=False).returncode == 0


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    path = tmp_path / "small-disk"
    path.mkdir()
    disk = SmallDisk(path, _mount(path))
    if not disk.real:
        from myvlm_desktop import storage

        real_open = storage.open_for_write

        def open_on_small_disk(target, mode="wb"):
            if disk.full and str(os.path.realpath(target)).startswith(str(path)):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
            return real_open(target, mode)

        monkeypatch.setattr(storage, "open_for_write", open_on_small_disk)
    yield disk
    if disk.real:
        subprocess.run(["umount", "-l", str(path)], check=False)
