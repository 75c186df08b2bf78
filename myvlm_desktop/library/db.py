"""SQLite access: one writer thread that owns every write, and a connection per reading thread.

Writes are functions `fn(conn, *args)` run in one transaction on the writer thread (`db.write(fn)`), so
writes never contend and a crash loses at most the transaction in flight. Readers use `db.read()`, a
connection of their own thread; WAL lets them read while the writer writes.
"""

from __future__ import annotations

import concurrent.futures
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import numpy as np

from .names import name_key
from .schema import MIGRATIONS

T = TypeVar("T")


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.create_function("name_key", 1, name_key, deterministic=True)
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Run the migrations not yet applied; each one with its version bump in one transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"this database was written by a newer MyVLM Desktop (schema {version} > {len(MIGRATIONS)}); "
            "update the app or choose another data folder"
        )
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

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._listeners: list[Callable[[str, Any], None]] = []
        writer_conn = connect(self.path)
        migrate(writer_conn)
        self._writer = threading.Thread(target=self._run_writer, args=(writer_conn,), name="db-writer", daemon=True)
        self._writer.start()

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

    def _run_writer(self, conn: sqlite3.Connection) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                conn.close()
                return
            fn, args, kwargs, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                conn.execute("BEGIN IMMEDIATE")
                result = fn(conn, *args, **kwargs)
                conn.execute("COMMIT")
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                future.set_exception(exc)
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
