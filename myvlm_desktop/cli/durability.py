"""Backup commands: backup [--json], restore FILE."""

from __future__ import annotations

from ..library.backup import BackupError
from ..pipeline.restore import restore_library
from .common import CommandError, emit, library


def register(sub) -> None:
    p = sub.add_parser("backup", help="copy the library database into the backups folder now")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=backup)

    p = sub.add_parser("restore", help="put a backup in place of the library database (close the app first)")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=restore)


def backup(args) -> None:
    try:
        path = library(args).db.backup()
    except BackupError as exc:
        raise CommandError(str(exc), code=1) from None
    emit({"path": str(path)}, args.json, f"backed up to {path}")


def restore(args) -> None:
    try:
        result = restore_library(args.data_dir, args.file)
    except BackupError as exc:
        raise CommandError(str(exc)) from None
    text = f"restored {args.file}"
    if result["damaged_kept_at"]:
        text += f"; the previous database is kept at {result['damaged_kept_at']}"
    if result["retrain"]:
        text += f"; {len(result['retrain'])} concept(s) will be trained again"
    emit(result, args.json, text)
