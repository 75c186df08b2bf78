"""The operation log: every people operation with the row images that undo and redo it.

While an operation runs, temporary triggers on the writer connection copy the old version of every row
it inserts, updates or deletes (cascades included) into shadow tables. At the end the first old version
of each row is its *before* image and the row as it now is its *after* image. Undo writes the before
images back, redo the after images: the tables come back exactly as they were (float values kept exact:
the images are read in Python, not through SQLite's JSON, which rounds to 15 digits).

One column is the exception, on purpose: `concepts.version` counts changes to a concept's examples so that
heads know when to retrain. Undo and redo change the examples again, so they set it past every value it
had, instead of back: a head trained for the undone state can never look current.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..library.db import now

# Parents before children: upserts go in this order, deletes in the reverse one.
TABLES = ("concepts", "clusters", "faces", "cluster_photos", "rejections", "occurrences")
KEYS = {"concepts": ("id",), "clusters": ("id",), "faces": ("id",), "cluster_photos": ("cluster_id", "photo_id"),
        "rejections": ("rowid",), "occurrences": ("photo_id", "concept_id", "source")}
# Operations only ever change a face's place, never its detection: only these columns are logged.
FACE_COLUMNS = ("cluster_id", "assigned_by", "hidden")
KEEP_OPERATIONS = 500


class UndoError(Exception):
    """Nothing to undo or redo, or the stored state can no longer be written back."""


def columns(conn: sqlite3.Connection, table: str) -> tuple[str, ...]:
    if table == "faces":
        return FACE_COLUMNS
    keys = KEYS[table]
    return tuple(r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] not in keys)


class Recorder:
    """Temporary triggers that log the old rows of every change made in this transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.cols = {t: columns(conn, t) for t in TABLES}
        for table in TABLES:
            self._install(table)

    def _install(self, table: str) -> None:
        keys, cols = KEYS[table], self.cols[table]
        shadow = f"_undo_{table}"  # a temp table: triggers may not name the schema
        names = [f"k{i}" for i in range(len(keys))] + [f"v_{c}" for c in cols]
        self.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS _undo_{table} "
                          f"(_seq INTEGER PRIMARY KEY, _new INTEGER, {', '.join(names)})")
        old = ", ".join([f"OLD.{k}" for k in keys] + [f"OLD.{c}" for c in cols])
        new_keys = ", ".join(f"NEW.{k}" for k in keys)
        key_names = ", ".join(names[:len(keys)])
        all_names = ", ".join(names)
        for event, body in (
            ("INSERT", f"INSERT INTO {shadow}(_new, {key_names}) VALUES (1, {new_keys});"),
            ("UPDATE", f"INSERT INTO {shadow}(_new, {all_names}) VALUES (0, {old});"),
            ("DELETE", f"INSERT INTO {shadow}(_new, {all_names}) VALUES (0, {old});"),
        ):
            self.conn.execute(f"CREATE TEMP TRIGGER _undo_{table}_{event.lower()} AFTER {event} ON main.{table} "
                              f"BEGIN {body} END")

    def images(self) -> tuple[dict, dict]:
        """(undo, redo): per table, [key, row or None] for every row the transaction touched."""
        undo: dict[str, list] = {}
        redo: dict[str, list] = {}
        for table in TABLES:
            before = self._befores(table)
            if not before:
                continue
            undo[table] = [[list(key), row] for key, row in before.items()]
            redo[table] = [[list(key), current_row(self.conn, table, key, self.cols[table])] for key in before]
        return undo, redo

    def _befores(self, table: str) -> dict[tuple, dict | None]:
        nkeys, cols = len(KEYS[table]), self.cols[table]
        first: dict[tuple, dict | None] = {}
        for row in self.conn.execute(f"SELECT * FROM temp._undo_{table} ORDER BY _seq"):
            key = tuple(row[2:2 + nkeys])
            if key not in first:
                first[key] = None if row[1] else dict(zip(cols, row[2 + nkeys:]))
        return first

    def close(self) -> None:
        for table in TABLES:
            for event in ("insert", "update", "delete"):
                self.conn.execute(f"DROP TRIGGER IF EXISTS temp._undo_{table}_{event}")
            self.conn.execute(f"DELETE FROM temp._undo_{table}")


def current_row(conn, table: str, key, cols) -> dict | None:
    where = " AND ".join(f"{k} = ?" for k in KEYS[table])
    row = conn.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE {where}", list(key)).fetchone()
    return None if row is None else dict(zip(cols, row))


def record(conn, kind: str, summary: str, undo: dict, redo: dict) -> int:
    """Log a finished operation; it ends the redo history, as in every editor."""
    conn.execute("DELETE FROM operations WHERE state = 'undone'")
    op = conn.execute("INSERT INTO operations(kind, summary, redo, undo, state, created_at) "
                      "VALUES (?, ?, ?, ?, 'done', ?)",
                      (kind, summary, json.dumps(redo), json.dumps(undo), now())).lastrowid
    conn.execute("DELETE FROM operations WHERE id <= ?", (op - KEEP_OPERATIONS,))
    return op


def step(conn, direction: str) -> dict[str, Any]:
    """Undo the newest done operation, or redo the oldest undone one."""
    if direction == "undo":
        op = conn.execute("SELECT * FROM operations WHERE state = 'done' ORDER BY id DESC LIMIT 1").fetchone()
    else:
        op = conn.execute("SELECT * FROM operations WHERE state = 'undone' ORDER BY id LIMIT 1").fetchone()
    if op is None:
        raise UndoError(f"nothing to {direction}")
    images, other = json.loads(op[direction]), json.loads(op["redo" if direction == "undo" else "undo"])
    versions = _versions(conn, images, other)
    apply_images(conn, images)
    for concept, version in versions.items():
        conn.execute("UPDATE concepts SET version = ? WHERE id = ?", (version, concept))
    conn.execute("UPDATE operations SET state = ? WHERE id = ?",
                 ("undone" if direction == "undo" else "done", op["id"]))
    return {"id": op["id"], "kind": op["kind"], "summary": op["summary"], "direction": direction,
            "clusters": [k[0] for k, _ in images.get("clusters", [])],
            "concepts": [k[0] for k, _ in images.get("concepts", [])]}


def _versions(conn, images: dict, other: dict) -> dict[int, int]:
    """New versions for the concepts whose examples the step changes: past every value seen."""
    seen: dict[int, list[int]] = {}
    for side in (images, other):
        for key, row in side.get("concepts", []):
            if row is not None:
                seen.setdefault(key[0], []).append(row["version"])
    out = {}
    for concept, values in seen.items():
        if len(set(values)) > 1:
            now = conn.execute("SELECT version FROM concepts WHERE id = ?", (concept,)).fetchone()
            out[concept] = max(values + ([now[0]] if now else [])) + 1
    return out


def apply_images(conn, images: dict) -> None:
    """Write row images back: deletes children first, then upserts parents first."""
    for table in reversed(TABLES):
        for key, row in images.get(table, []):
            if row is None and table != "faces":
                where = " AND ".join(f"{k} = ?" for k in KEYS[table])
                conn.execute(f"DELETE FROM {table} WHERE {where}", key)
    for table in TABLES:
        for key, row in images.get(table, []):
            if row is not None:
                _upsert(conn, table, key, row)


def _upsert(conn, table: str, key: list, row: dict) -> None:
    keys = KEYS[table]
    where = " AND ".join(f"{k} = ?" for k in keys)
    sets = ", ".join(f"{c} = ?" for c in row)
    try:
        if conn.execute(f"UPDATE {table} SET {sets} WHERE {where}", [*row.values(), *key]).rowcount:
            return
        if table == "faces":
            return  # the face is gone (its photo was removed): nothing to put back
        names = [*keys, *row]
        conn.execute(f"INSERT INTO {table}({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                     [*key, *row.values()])
    except sqlite3.IntegrityError as exc:
        if "FOREIGN KEY" in str(exc):
            return  # it pointed at a face or photo removed since: the rest still goes back
        raise UndoError(f"cannot restore {table} {key}: {exc}") from None
