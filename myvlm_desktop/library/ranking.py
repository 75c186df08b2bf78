"""A ranking index for search: FTS5's postings held as arrays, so BM25 top-k need not score every match in SQL.

SQLite stays the source of truth. The index is built from the FTS5 table itself (its `fts5vocab` instances,
so tokens are exactly FTS5's) and stamped with FTS5's own structure and averages records, which change on
every write to the text. A stale index is never used: `current()` answers None and a rebuild starts in the
background, and search falls back to plain SQL meanwhile. Photos' status and dates are always read from
SQLite at query time, so a deleted or missing photo is never returned.

Scores are FTS5's bm25 (k1 1.2, b 0.75, equal column weights), computed with the same floating-point
operations in the same order, so ties break exactly as they do in SQL.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from .db import Database

K1, B = 1.2, 0.75
STAMP_SQL = "SELECT group_concat(hex(block), '.') FROM (SELECT block FROM photo_text_data WHERE id IN (1, 10) ORDER BY id)"


def stamp(conn: sqlite3.Connection) -> str:
    """FTS5's averages record (row and token counts) and structure record (segments and a write counter)."""
    return conn.execute(STAMP_SQL).fetchone()[0] or ""


@dataclass
class Postings:
    docs: np.ndarray  # sorted rowids
    freq: np.ndarray  # hits in the row, all columns (float64, as FTS5's bm25 sums them)


class RankingIndex:
    """Every FTS5 term with the rows it is in and how often; row lengths; the table's row count."""

    def __init__(self, stamp_value: str, terms: np.ndarray, starts: np.ndarray, docs: np.ndarray,
                 freq: np.ndarray, rowids: np.ndarray, lengths: np.ndarray, rows: int):
        self.stamp = stamp_value
        self.terms, self.starts, self.docs, self.freq = terms, starts, docs, freq
        self.rows = rows
        self.avgdl = float(lengths.sum()) / float(rows) if rows else 1.0
        self.length = np.zeros(int(rowids.max()) + 1 if len(rowids) else 0)  # by rowid
        self.length[rowids] = lengths

    @classmethod
    def build(cls, path) -> RankingIndex:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.execute("BEGIN")  # one snapshot for the stamp and the postings
            stamp_value = stamp(conn)
            conn.execute("CREATE VIRTUAL TABLE temp.ranking_instances USING fts5vocab(main, photo_text, instance)")
            rows = conn.execute("SELECT count(*) FROM photo_text_docsize").fetchone()[0]
            found = conn.execute("SELECT term, doc, count(*) FROM temp.ranking_instances GROUP BY term, doc "
                                 "ORDER BY term, doc").fetchall()
            conn.execute("COMMIT")
        finally:
            conn.close()
        if found:
            term_col, doc_col, hit_col = zip(*found, strict=True)
        else:
            term_col, doc_col, hit_col = (), (), ()
        docs = np.asarray(doc_col, dtype=np.int64)
        freq = np.asarray(hit_col, dtype=np.float64)
        terms, starts = np.unique(np.asarray(term_col, dtype=str), return_index=True)
        rowids, inverse = np.unique(docs, return_inverse=True)
        lengths = np.bincount(inverse, weights=freq, minlength=len(rowids)) if len(docs) else np.zeros(0)
        return cls(stamp_value, terms, np.append(starts, len(docs)), docs, freq, rowids, lengths, rows)

    def postings(self, token: str, prefix: bool) -> Postings:
        """One token's rows; a prefix sums the hits of every token it starts (one FTS5 phrase)."""
        lo = int(np.searchsorted(self.terms, token, side="left"))
        if not prefix:
            if lo < len(self.terms) and self.terms[lo] == token:
                a, b = self.starts[lo], self.starts[lo + 1]
                return Postings(self.docs[a:b], self.freq[a:b])
            return Postings(np.zeros(0, np.int64), np.zeros(0))
        hi = int(np.searchsorted(self.terms, token + "\U0010ffff", side="left"))
        a, b = self.starts[lo], self.starts[hi]
        docs, inverse = np.unique(self.docs[a:b], return_inverse=True)
        return Postings(docs, np.bincount(inverse, weights=self.freq[a:b], minlength=len(docs)))

    def contribution(self, postings: Postings) -> np.ndarray:
        """One phrase's share of bm25 for each of its rows, as fts5_aux.c computes it."""
        hits = len(postings.docs)
        idf = math.log((self.rows - hits + 0.5) / (hits + 0.5))
        if idf <= 0.0:
            idf = 1e-6
        length = self.length[postings.docs]
        f = postings.freq
        return idf * ((f * (K1 + 1.0)) / (f + K1 * (1 - B + B * length / self.avgdl)))


class _Keeper:
    """The library's index: built on demand in a background thread, replaced when the text changes."""

    def __init__(self, db: Database):
        self.path = db.path
        self.index: RankingIndex | None = None
        self.building = False
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.local = threading.local()  # per reading connection: concept photo sets

    def current(self, conn: sqlite3.Connection) -> RankingIndex | None:
        index = self.index
        if index is not None and index.stamp == stamp(conn):
            return index
        self.refresh()
        return None

    def photo_sets(self, conn: sqlite3.Connection) -> dict:
        """A cache for this thread's connection, emptied whenever anyone else committed since it was filled."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if getattr(self.local, "conn", None) is not conn or self.local.version != version:
            self.local.conn, self.local.version, self.local.sets = conn, version, {}
        return self.local.sets

    def refresh(self, wait: bool = False) -> None:
        with self.lock:
            if not self.building:
                self.building = True
                self.thread = threading.Thread(target=self._build, name="search-ranking", daemon=True)
                self.thread.start()
            thread = self.thread
        if wait:
            thread.join()

    def _build(self) -> None:
        try:
            self.index = RankingIndex.build(self.path)
        except sqlite3.Error:
            self.index = None  # the library is busy or closed; the next search asks again
        finally:
            with self.lock:
                self.building = False


_keepers: weakref.WeakKeyDictionary[Database, _Keeper] = weakref.WeakKeyDictionary()


def keep_index(db: Database, wait: bool = False) -> None:
    """Let searches on this library use a ranking index (kept in memory, rebuilt when the text changes).

    Worth it for a long-lived app with a large library; a one-shot command is better served by plain SQL.
    """
    if db not in _keepers:
        _keepers[db] = _Keeper(db)
    _keepers[db].refresh(wait=wait)


def current_index(db: Database, conn: sqlite3.Connection) -> tuple[RankingIndex, dict] | None:
    """The fresh index and a cache of photo sets valid for this connection's snapshot, or None."""
    keeper = _keepers.get(db)
    index = None if keeper is None else keeper.current(conn)
    return None if index is None else (index, keeper.photo_sets(conn))
