"""What every CLI area shares: opening the library once, errors with exit codes, JSON output."""

from __future__ import annotations

import json
import sys

from ..library.store import Library, LibraryError

_open: list[Library] = []


class CommandError(Exception):
    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def library(args) -> Library:
    """The library of --data-dir, opened once per command."""
    if not _open:
        try:
            _open.append(Library(args.data_dir))
        except (LibraryError, RuntimeError, OSError) as exc:
            raise CommandError(f"cannot open the library: {exc}") from None
    return _open[0]


def close_open_library() -> None:
    while _open:
        _open.pop().close()


def emit(value, as_json: bool, text: str | None = None) -> None:
    """JSON on stdout with --json, else a short human text."""
    if as_json:
        json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
    else:
        print(text if text is not None else value)


def stderr_progress(done: int, total: int, message: str = "") -> None:
    if sys.stderr.isatty() or done == total or done % 100 == 0:
        print(f"\r{done}/{total} {message[:60]:<60}", end="" if done < total else "\n", file=sys.stderr)
