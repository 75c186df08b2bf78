"""Nearest-neighbour search over embeddings with FAISS, and its on-disk cache beside the database.

Embeddings are L2-normalised, so the inner product is the cosine similarity and the cosine distance is
`1 - ip`. Up to `EXACT_LIMIT` vectors the index is exact (a flat inner-product index); beyond, an inverted
file (IVF) whose lists are scanned `nprobe` at a time: building an HNSW graph of a million vectors takes
minutes on two cores, training an IVF quantizer on a sample takes seconds, and with nprobe 16 it finds
nearly all of the neighbours that matter for clustering (those within the clustering distance).

The cache (`<data_dir>/index/<name>.faiss` + `.json`) is only a cache: the stamp is the row count and the
largest row id of the embeddings it holds; when rows were only added the new ones are appended, any other
difference rebuilds it from the database.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from ..library.db import Database

EXACT_LIMIT = 200_000
NPROBE = 16
SEARCH_BATCH = 8192


class VectorIndex:
    """A FAISS inner-product index over int64 ids: exact up to `exact_limit` vectors, IVF beyond."""

    def __init__(self, index: faiss.Index, dim: int):
        self.index, self.dim = index, dim

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, exact_limit: int = EXACT_LIMIT,
              nprobe: int = NPROBE) -> VectorIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        dim = vectors.shape[1] if vectors.ndim == 2 else 0
        if len(ids) <= exact_limit:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        else:
            index = _trained_ivf(vectors, nprobe)
        if len(ids):
            index.add_with_ids(vectors, ids)
        return cls(index, dim)

    @property
    def size(self) -> int:
        return self.index.ntotal

    @property
    def exact(self) -> bool:
        return not isinstance(faiss.downcast_index(self.index), faiss.IndexIVF)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                    np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(cosine distances, ids), nearest first; id -1 (distance inf) where fewer than k exist."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, self.size)) if self.size else 1
        dist = np.full((len(queries), k), np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        if not self.size or not len(queries):
            return dist, ids
        for start in range(0, len(queries), SEARCH_BATCH):
            sims, found = self.index.search(queries[start:start + SEARCH_BATCH], k)
            part = slice(start, start + len(found))
            dist[part] = np.where(found >= 0, 1.0 - sims, np.inf)
            ids[part] = found
        return dist, ids

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        index = faiss.read_index(str(path))
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.nprobe = max(ivf.nprobe, 1)
        return cls(index, index.d)


def _trained_ivf(vectors: np.ndarray, nprobe: int) -> faiss.Index:
    """An IVF-Flat index trained on a sample: about 4 * sqrt(n) lists, at least 39 training points each."""
    n, dim = vectors.shape
    nlist = int(min(65536, max(64, 4 * math.sqrt(n))))
    sample = vectors
    if n > nlist * 64:
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(n, nlist * 64, replace=False)]
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    index.train(np.ascontiguousarray(sample))
    index.nprobe = nprobe
    return index  # faiss's Python wrapper keeps the quantizer alive with the index


# -- the cache beside the database ---------------------------------------------------------------------

def index_dir(db: Database) -> Path:
    return db.path.parent / "index"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class Source:
    """Where an index's vectors live: rows (id, embedding BLOB) of one table for one engine or embedder."""

    def __init__(self, name: str, table: str, id_col: str, engine_col: str, engine: str):
        self.name, self.engine = name, engine
        self._from = f"FROM {table} WHERE {engine_col} = ?"
        self._id = id_col

    def stamp(self, conn: sqlite3.Connection) -> dict:
        count, max_id = conn.execute(f"SELECT count(*), max({self._id}) {self._from}", (self.engine,)).fetchone()
        return {"count": int(count), "max_id": int(max_id or 0)}

    def count_upto(self, conn: sqlite3.Connection, max_id: int) -> int:
        sql = f"SELECT count(*) {self._from} AND {self._id} <= ?"
        return conn.execute(sql, (self.engine, max_id)).fetchone()[0]

    def rows(self, conn: sqlite3.Connection, after_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
        sql = f"SELECT {self._id}, embedding {self._from} AND {self._id} > ? ORDER BY {self._id}"
        return read_vectors(conn.execute(sql, (self.engine, after_id)))


def face_source(engine: str) -> Source:
    return Source(f"faces-{engine}", "faces", "id", "engine", engine)


def image_source(embedder: str) -> Source:
    return Source(f"images-{embedder}", "image_embeddings", "photo_id", "embedder", embedder)


def read_vectors(cursor) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64, vectors float32 n x d) from rows of (id, float32 BLOB)."""
    ids, blobs = [], []
    for row in cursor:
        ids.append(row[0])
        blobs.append(row[1])
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    dim = len(blobs[0]) // 4
    bad = [i for i, b in enumerate(blobs) if len(b) != dim * 4]
    if bad:
        raise ValueError(f"embeddings of different sizes in one index (id {ids[bad[0]]})")
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), dim)
    return np.asarray(ids, np.int64), vectors


def cached_index(db: Database, source: Source, exact_limit: int = EXACT_LIMIT,
                 progress: Callable[[str], None] | None = None) -> VectorIndex:
    """The source's index from the cache, appended to or rebuilt when the database moved on."""
    folder = index_dir(db)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_safe(source.name)}.faiss"
    stamp_path = path.with_suffix(".json")
    conn = db.read()
    stamp = source.stamp(conn)
    index, old = _load_cached(path, stamp_path)
    if index is not None and old == stamp:
        return index
    if index is not None and _only_added(old, stamp, source, conn):
        ids, vectors = source.rows(conn, old["max_id"])
        if len(ids) and vectors.shape[1] == index.dim:
            index.add(ids, vectors)
            if index.exact == (index.size <= exact_limit):
                _save(index, path, stamp_path, stamp)
                return index
    if progress:
        progress(f"building the {source.name} index")
    ids, vectors = source.rows(conn)
    index = VectorIndex.build(ids, vectors, exact_limit)
    _save(index, path, stamp_path, stamp)
    return index


def _load_cached(path: Path, stamp_path: Path) -> tuple[VectorIndex | None, dict | None]:
    try:
        return VectorIndex.load(path), json.loads(stamp_path.read_text())
    except (OSError, RuntimeError, ValueError):
        return None, None  # missing or damaged: rebuilt from the database


def _only_added(old: dict, new: dict, source: Source, conn) -> bool:
    """True when the rows in the index are still all there and the rest have larger ids."""
    if new["max_id"] <= old["max_id"] or new["count"] <= old["count"]:
        return False
    return source.count_upto(conn, old["max_id"]) == old["count"]


def _save(index: VectorIndex, path: Path, stamp_path: Path, stamp: dict) -> None:
    try:
        index.save(path)
        stamp_path.write_text(json.dumps({**stamp, "dim": index.dim, "exact": index.exact}))
    except (OSError, RuntimeError):
        pass  # a cache that cannot be written is rebuilt next time


# -- many queries at once: the k-NN graph of a whole set ------------------------------------------------

# Above BULK_EXACT_LIMIT vectors a whole-set k-NN search goes through lists: at 10k, exact costs 1e8
# similarities to sort through (5 s on two shared cores) against 0.3 s for the lists. Lists probed per
# query: 8 up to 200k vectors (cheap there), 4 beyond (a million 128-D faces in about a minute of CPU).
BULK_EXACT_LIMIT = 5_000
BULK_NPROBE = 4
SMALL_NPROBE, SMALL_LIMIT = 8, 200_000


def self_knn(vectors: np.ndarray, rows: np.ndarray, k: int, exact_limit: int = BULK_EXACT_LIMIT,
             nprobe: int | None = None, max_distance: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest of vectors[rows] among all `vectors`: (cosine distances, positions), nearest first.

    Missing entries have position -1 (distance inf); with `max_distance`, neighbours farther than that
    are left out (all the clustering looks at), which saves most of the sorting.

    Exact (every query against every vector, by blocks of matrix products) up to `exact_limit` vectors.
    Beyond, the idea of an IVF index computed
    differently: spherical k-means lists, trained and assigned in a 64-D PCA projection (cheap), and for
    each list ONE matrix product of all the queries probing it against its members, at full dimension
    (exact similarities). FAISS's own IVF search scans list by list per query: 8x slower than BLAS on
    two cores in our measurements; sharing one BLAS call per list is what lets a million faces be
    re-clustered in minutes.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    rows = np.asarray(rows, np.int64)
    n = len(vectors)
    k = max(1, min(k, n))
    if n <= exact_limit:  # one list holding everything: exact
        lists = ([np.arange(n)], [np.arange(len(rows))], np.arange(len(rows)))
    else:
        nprobe = nprobe or (SMALL_NPROBE if n <= SMALL_LIMIT else BULK_NPROBE)
        probes, nlist = _coarse_lists(vectors, nprobe)
        lists = (_groups(probes[:, 0], nlist), _groups(probes[rows].ravel(), nlist),
                 np.repeat(np.arange(len(rows)), nprobe))
    floor = -np.inf if max_distance is None else 1.0 - max_distance
    best_s = np.full((len(rows), k), -np.inf, np.float32)
    best_i = np.full((len(rows), k), -1, np.int64)
    queries = vectors if len(rows) == n and (rows == np.arange(n)).all() else vectors[rows]
    with threadpool_limits(1 if len(lists[0]) > 1 else None, user_api="blas"):  # small products: no threads
        _scan_lists(vectors, queries, *lists, best_s, best_i, k, floor)
    order = np.argsort(-best_s, axis=1)
    best_s = np.take_along_axis(best_s, order, 1)
    best_i = np.take_along_axis(best_i, order, 1)
    return np.where(best_i >= 0, 1.0 - best_s, np.inf).astype(np.float32), best_i


COARSE_DIM = 64


def _coarse_lists(vectors: np.ndarray, nprobe: int) -> tuple[np.ndarray, int]:
    """For every vector its `nprobe` nearest lists (the first is its own), from k-means in a PCA projection.

    Plain numpy matrix products: FAISS's flat search keeps a heap per query, which on two shared cores
    ran at a quarter of the speed of one BLAS product followed by a partial sort.
    """
    n, dim = vectors.shape
    rng = np.random.default_rng(0)
    reduced = vectors
    if dim > COARSE_DIM:  # the main axes of a sample (uncentred: the k-means is on the sphere)
        sample = vectors[rng.choice(n, min(n, 20_000), replace=False)]
        _, axes = np.linalg.eigh(sample.T @ sample)
        reduced = vectors @ np.ascontiguousarray(axes[:, -COARSE_DIM:])
        reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
    nlist = int(np.clip(np.sqrt(nprobe * n * dim / reduced.shape[1]), 16, 65536))
    sample = reduced[rng.choice(n, min(n, 16 * nlist), replace=False)]
    centroids = _spherical_kmeans(sample, min(nlist, len(sample)), rng)
    return _nearest(reduced, centroids, nprobe), len(centroids)


def _spherical_kmeans(x: np.ndarray, k: int, rng, iterations: int = 6) -> np.ndarray:
    centroids = x[rng.choice(len(x), k, replace=False)].copy()
    for _ in range(iterations):
        own = _nearest(x, centroids, 1)[:, 0]
        sums = csr_matrix((np.ones(len(x), np.float32), (own, np.arange(len(x)))), shape=(k, len(x))) @ x
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        filled = norms[:, 0] > 0
        centroids[filled] = sums[filled] / norms[filled]  # an emptied list keeps its old centre
    return centroids


def _nearest(x: np.ndarray, centroids: np.ndarray, count: int, chunk: int = 8192) -> np.ndarray:
    """The `count` most similar centroids of each row of x, most similar first."""
    out = np.empty((len(x), count), np.int64)
    for start in range(0, len(x), chunk):
        sims = x[start:start + chunk] @ centroids.T
        if count == 1:
            out[start:start + chunk, 0] = sims.argmax(axis=1)
            continue
        top = np.argpartition(sims, sims.shape[1] - count, axis=1)[:, -count:]
        order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1)
        out[start:start + chunk] = np.take_along_axis(top, order, 1)
    return out


def _scan_lists(vectors, queries, members_of, queries_of, query_row, best_s, best_i, k, floor,
                block: int = 1 << 22) -> None:
    """For each list, the queries probing it against its members: one matrix product per block."""
    for members, probing in zip(members_of, queries_of):
        if not len(members) or not len(probing):
            continue
        base = vectors[members]
        qs = query_row[probing]
        step = max(1, block // len(members))
        for start in range(0, len(qs), step):
            part = qs[start:start + step]
            _merge_top(best_s, best_i, part, queries[part] @ base.T, members, k, floor)


def _groups(labels: np.ndarray, count: int) -> list[np.ndarray]:
    """Positions of each label 0..count-1."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(count + 1))
    return [order[bounds[i]:bounds[i + 1]] for i in range(count)]


def _merge_top(best_s, best_i, part, sims, members, k, floor) -> None:
    """Keep, for each query row in `part`, the k largest similarities >= floor seen so far."""
    if floor > -np.inf:
        hit = sims >= floor
        has = hit.any(axis=1)
        count = int(np.count_nonzero(hit))
        if not count:
            return
        part = part[has]
        if count <= 2 * k * len(part):  # few entries over the floor: sort only those
            cand_s, cand_i = _hits(hit[has], sims[has], members, k)
        else:  # many (a big group in this list): a partial sort of the rows, over the columns hit
            cols = np.flatnonzero(hit[has].any(axis=0))  # (raw values: argpartition crawls on ties)
            cand_s, cand_i = _top(sims[has][:, cols], members[cols], k)
            below = cand_s < floor
            cand_s, cand_i = np.where(below, -np.inf, cand_s), np.where(below, -1, cand_i)
    else:
        cand_s, cand_i = _top(sims, members, k)
    both_s = np.concatenate([best_s[part], cand_s], axis=1)
    both_i = np.concatenate([best_i[part], cand_i], axis=1)
    keep = np.argpartition(both_s, both_s.shape[1] - k, axis=1)[:, both_s.shape[1] - k:]
    best_s[part] = np.take_along_axis(both_s, keep, 1)
    best_i[part] = np.take_along_axis(both_i, keep, 1)


def _top(sims, members, k):
    """The k largest entries of each row and their member ids (unordered)."""
    width = sims.shape[1]
    if width > k:
        top = np.argpartition(sims, width - k, axis=1)[:, width - k:]
        return np.take_along_axis(sims, top, 1), members[top]
    return sims, np.broadcast_to(members, sims.shape)


def _hits(hit, sims, members, k):
    """The best k entries over the floor of each row (every row has one), sorting only those entries."""
    rows, cols = np.nonzero(hit)
    values = sims[rows, cols]
    order = np.lexsort((-values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    first = np.ones(len(rows), bool)
    first[1:] = rows[1:] != rows[:-1]
    starts = np.flatnonzero(first)
    rank = np.arange(len(rows)) - starts[np.cumsum(first) - 1]
    keep = rank < k
    cand_s = np.full((len(starts), k), -np.inf, np.float32)
    cand_i = np.full((len(starts), k), -1, np.int64)
    cand_s[rows[keep], rank[keep]] = values[keep]
    cand_i[rows[keep], rank[keep]] = members[cols[keep]]
    return cand_s, cand_i
