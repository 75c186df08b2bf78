"""What every CLI area shares: opening the library once, errors with exit codes, JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from .. import config
from ..library.store import Library, LibraryError, usable_data_dir

_open: list[Library] = []


class CommandError(Exception):
    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def check_data_dir(explicit: str | None) -> None:
    """A data folder that is a file is bad input, said before anything tries to create a folder there."""
    chosen = explicit or os.environ.get(config.ENV_DATA_DIR)
    if chosen and Path(chosen).expanduser().is_file():
        where = "--data-dir" if explicit else f"${config.ENV_DATA_DIR}"
        raise CommandError(f"{where} {chosen} is a file, not a folder")


def library(args) -> Library:
    """The library of --data-dir, opened once per command; a new one is announced (a mistyped path shows)."""
    if not _open:
        try:
            root = usable_data_dir(args.data_dir)  # gone or read-only: said here, once
            if not config.database_path(root).exists():
                print(f"myvlm: no library at {root}: creating a new one", file=sys.stderr)
            _open.append(Library(root))
        except (LibraryError, RuntimeError, OSError) as exc:
            raise CommandError(f"cannot open the library: {exc}") from None
    return _open[0]


def close_open_library() -> None:
    while _open:
        _open.pop().close()


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a count, a limit)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text}")
    return value


def emit(value, as_json: bool, text: str | None = None) -> None:
    """JSON on stdout with --json, else a short human text."""
    if as_json:
        json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
    else:
        print(text if text is not None else value)


class StderrProgress:
    """A job's progress as a bar on stderr when it is a terminal. Call it as `progress(done, total, message)`
    (scan, heads, detection) or hand it as a job's control (index, captions): Ctrl+C stops the job."""

    def __init__(self, unit: str = "it"):
        self.unit = unit
        self.bar: tqdm | None = None

    def __call__(self, done: int, total: int, message: str = "") -> None:
        if self.bar is None or self.bar.total != (total or None):
            self.close()
            self.bar = tqdm(total=total or None, unit=self.unit, unit_scale=self.unit == "B", file=sys.stderr,
                            disable=None, dynamic_ncols=True)
        self.bar.set_description_str(message[:40], refresh=False)
        self.bar.update(done - self.bar.n)
        if total and done >= total:
            self.close()

    progress = __call__

    def close(self) -> None:
        bar, self.bar = self.bar, None
        if bar is not None:
            bar.close()
