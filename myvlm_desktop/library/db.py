"""SQLite access: one writer thread that owns every write, and a connection per reading thread.

Writes are functions `fn(conn, *args)` run in one transaction on the writer thread (`db.write(fn)`), so
writes never contend and a crash loses at most the transaction in flight. Readers use `db.read()`, a
connection of their own thread; WAL lets them read while the writer writes.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import numpy as np

from ..storage import DiskFull, is_disk_full
from . import backup
from .names import name_key
from .schema import MIGRATIONS

T = TypeVar("T")
log = logging.getLogger(__name__)


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.create_function("name_key", 1, name_key, deterministic=True)
    return conn


def migrate(conn: sqlite3.Connection, database: Path | None = None) -> int:
    """Run the migrations not yet applied; each one with its version bump in one transaction. With
    `database`, a library that has data gets a backup first."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"this database was written by a newer MyVLM Desktop (schema {version} > {len(MIGRATIONS)}); "
            "update the app or choose another data folder"
        )
    if database is not None and 0 < version < len(MIGRATIONS):
        backup.take_backup(conn, database, f"before-schema-{version + 1}")
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def open_checked(path: Path) -> sqlite3.Connection:
    """The writer's connection to a sound, migrated database; DatabaseDamaged (naming the newest backup) when
    SQLite finds the file damaged, so nothing is ever written into a broken file."""
    try:
        conn = connect(path)
    except sqlite3.DatabaseError as exc:
        if not isinstance(exc, sqlite3.OperationalError) or "not a database" in str(exc) or "malformed" in str(exc):
            raise backup.DatabaseDamaged(backup.damaged_message(path, str(exc))) from None
        raise RuntimeError(f"cannot open {path}: {exc}") from None
    try:
        backup.check(conn, path)
        migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3's executescript would commit on its own)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return [s for s in statements if s]


class Database:
    """The library's database: `write` runs on the one writer thread, `read` gives this thread's connection."""

    def __init__(self, path: Path | str, backup_every: float | None = backup.DAY):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._stopped = threading.Event()
        self._listeners: list[Callable[[str, Any], None]] = []
        writer_conn = open_checked(self.path)
        self._writer = threading.Thread(target=self._run_writer, args=(writer_conn,), name="db-writer", daemon=True)
        self._writer.start()
        if backup_every:  # daily while the app runs: checked at open, then every hour
            threading.Thread(target=self._backup_daily, args=(backup_every,), name="db-backup", daemon=True).start()

    # -- writing -----------------------------------------------------------------------------------
    def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(conn, *args, **kwargs)` in one transaction on the writer thread and return its result."""
        return self.submit(fn, *args, **kwargs).result()

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        if self._closed:
            raise RuntimeError("the database is closed")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((fn, args, kwargs, future))
        return future

    def backup(self, reason: str = "manual") -> Path:
        """A consistent copy in the backups folder (SQLite's online backup API, on the writer thread)."""
        return self.maintain(backup.take_backup, self.path, reason)

    def restore(self, backup_file: Path | str) -> None:
        """Replace the whole library with `backup_file`, in place, while the app keeps running."""
        self.maintain(backup.restore_live, Path(backup_file))
        self.notify("restored", str(backup_file))

    def maintain(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the writer thread outside a transaction (backups, restores)."""
        return self.submit(fn, *args, transaction=False).result()

    def _backup_daily(self, every: float) -> None:
        while not self._closed:
            try:
                self.maintain(backup.backup_if_due, self.path, every)
            except (backup.BackupError, RuntimeError, sqlite3.Error) as exc:  # a full disk: try again later
                log.warning("daily backup failed: %s", exc)
            if self._stopped.wait(3600):
                return

    def _run_writer(self, conn: sqlite3.Connection) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                conn.close()
                return
            fn, args, kwargs, future = item
            if not future.set_running_or_notify_cancel():
                continue
            plain = kwargs.pop("transaction", True) is False
            try:
                if plain:
                    future.set_result(fn(conn, *args))
                    continue
                conn.execute("BEGIN IMMEDIATE")
                result = fn(conn, *args, **kwargs)
                conn.execute("COMMIT")
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                future.set_exception(DiskFull(self.path.parent) if is_disk_full(exc) else exc)
            else:
                future.set_result(result)

    # -- reading -----------------------------------------------------------------------------------
    def read(self) -> sqlite3.Connection:
        """This thread's reading connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
        return conn

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        return self.read().execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Any = ()) -> Any:
        row = self.read().execute(sql, params).fetchone()
        return None if row is None else row[0]

    # -- change notices (Anki-style: views refresh only what an operation changed) -------------------
    def subscribe(self, listener: Callable[[str, Any], None]) -> None:
        self._listeners.append(listener)

    def notify(self, what: str, detail: Any = None) -> None:
        for listener in list(self._listeners):
            listener(what, detail)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopped.set()
        self._queue.put(None)
        self._writer.join(timeout=30)
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def now() -> float:
    return time.time()


def to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)
