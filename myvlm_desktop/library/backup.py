"""Backups of the library database: consistent copies made with SQLite's online backup API.

A copy is taken before every schema migration and once a day while the app runs; the newest KEEP are
kept in `<data folder>/backups`. A database that fails SQLite's check on open is refused with a message
naming the newest backup; `restore` puts a backup back (the damaged file is kept aside, never deleted).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
from pathlib import Path

from .schema import MIGRATIONS

KEEP = 7
DAY = 24 * 3600.0
_NAME = re.compile(r"^library-(\d{8}-\d{6}-\d{6})-([a-z0-9-]+)\.sqlite3$")


class DatabaseDamaged(RuntimeError):
    """The database file failed SQLite's integrity check (or is not a database at all)."""


class BackupError(RuntimeError):
    """A backup could not be made or a file given to restore is not a usable backup."""


def backups_dir(database: Path) -> Path:
    return Path(database).parent / "backups"


def backups(database: Path) -> list[Path]:
    """The backups of `database`, newest first."""
    folder = backups_dir(database)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _NAME.match(p.name)]
    return sorted(found, key=lambda p: _NAME.match(p.name).group(1), reverse=True)


def newest_backup(database: Path) -> Path | None:
    found = backups(database)
    return found[0] if found else None


def take_backup(conn: sqlite3.Connection, database: Path, reason: str = "manual", keep: int = KEEP) -> Path:
    """Copy the database behind `conn` into the backups folder (written aside, then renamed); prune to `keep`."""
    folder = backups_dir(database)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    target = folder / f"library-{stamp}-{reason}.sqlite3"
    tmp = folder / f".{target.name}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _copy(conn, tmp)
        os.replace(tmp, target)
    except (OSError, sqlite3.Error) as exc:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"cannot write a backup in {folder}: {_reason(exc)}") from None
    for old in backups(database)[keep:]:
        old.unlink(missing_ok=True)
    return target


def backup_if_due(conn: sqlite3.Connection, database: Path, every: float = DAY, keep: int = KEEP) -> Path | None:
    """A daily backup: taken when the newest one is older than `every` seconds (or there is none)."""
    newest = newest_backup(database)
    if newest is not None and _age(newest) < every:
        return None
    return take_backup(conn, database, "daily", keep)


def check(conn: sqlite3.Connection, database: Path) -> None:
    """Raise DatabaseDamaged, naming the newest backup, when SQLite finds the file damaged."""
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
        problem = None if [r[0] for r in rows] == ["ok"] else "; ".join(str(r[0]) for r in rows[:3])
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    if problem:
        raise DatabaseDamaged(damaged_message(database, problem))


def damaged_message(database: Path, problem: str) -> str:
    newest = newest_backup(database)
    advice = (f"restore the newest backup with `myvlm restore {newest}` (or Settings > Library > Restore)"
              if newest else "no backup of it exists yet")
    return f"the library database {database} is damaged ({problem}); {advice}"


def verify(backup: Path) -> None:
    """Raise BackupError unless `backup` is a sound library database this app can open."""
    if not Path(backup).is_file():
        raise BackupError(f"not a file: {backup}")
    try:
        conn = sqlite3.connect(f"file:{Path(backup).resolve()}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            has_photos = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'photos'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{backup} is not a library backup ({exc})") from None
    if result != "ok":
        raise BackupError(f"{backup} is damaged too ({result})")
    if not has_photos or version < 1:
        raise BackupError(f"{backup} is not a MyVLM Desktop library")
    if version > len(MIGRATIONS):
        raise BackupError(f"{backup} was written by a newer MyVLM Desktop (schema {version})")


def restore_file(backup: Path, database: Path) -> Path | None:
    """Put `backup` in place of `database` while no one has it open. The current file (and its WAL) is moved
    into the backups folder as `damaged-...`, never deleted; returns where it went (None if there was none)."""
    verify(backup)
    database = Path(database)
    tmp = database.with_name(f".{database.name}.restore.tmp")
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{Path(backup).resolve()}?mode=ro", uri=True)
    try:
        _copy(source, tmp)
    except (OSError, sqlite3.Error) as exc:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"cannot restore {backup}: {_reason(exc)}") from None
    finally:
        source.close()
    kept = None
    if database.exists():
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        kept = backups_dir(database) / f"damaged-{stamp}.sqlite3"
        kept.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):  # the WAL goes with its file: kept aside, never replayed on the backup
            side = database.with_name(database.name + suffix)
            if side.exists():
                os.replace(side, kept.with_name(kept.name + suffix))
        os.replace(database, kept)
    os.replace(tmp, database)
    return kept


def restore_live(conn: sqlite3.Connection, backup: Path) -> None:
    """Copy `backup` over the open database behind `conn` (outside any transaction), page by page."""
    verify(backup)
    source = sqlite3.connect(f"file:{Path(backup).resolve()}?mode=ro", uri=True)
    try:
        source.backup(conn)
    finally:
        source.close()


def _copy(source: sqlite3.Connection, target: Path) -> None:
    dest = sqlite3.connect(str(target))
    try:
        source.backup(dest)
        dest.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        dest.close()
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())


def _age(path: Path) -> float:
    stamp = dt.datetime.strptime(_NAME.match(path.name).group(1), "%Y%m%d-%H%M%S-%f")
    return (dt.datetime.now() - stamp).total_seconds()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)
