"""Nearest-neighbour search over embeddings with FAISS, and its on-disk cache beside the database.

Every neighbour search of the app goes through `VectorIndex`: the incremental clustering run (a few new
faces), a full re-cluster and a first run (every face) query the same index, so they see the same
neighbours.

Embeddings are L2-normalised, so the inner product is the cosine similarity and the cosine distance is
`1 - ip`. Up to `EXACT_LIMIT` vectors the index is exact (`IndexFlatIP`); beyond, an inverted file
(`IndexIVFFlat` over k-means lists trained on a sample) scanned `NPROBE` lists at a time. The limit is set
by the whole-set search a full run makes: exact costs n^2 similarities (3 s at 20k on two shared cores),
the lists a few percent of that; building an HNSW graph of a million vectors takes minutes on two cores,
training the lists seconds. Above `REDUCED_DIM` dimensions (ArcFace, SSCD, CLIP: 512) the lists hold a
PCA projection to 128-D and `IndexRefineFlat` re-ranks twice k candidates on the full vectors: scanning
lists costs in proportion to the dimension, and this keeps a 512-D set near the cost of a 128-D one, with
exact distances in the answer.

benchmarks/bench_cluster.py, a million synthetic faces, in CPU seconds (two cores, shared with other work
at the load average given; wall time follows the load, CPU time much less):
- 128-D: 118 CPU-s, 61 s wall at load 2, pairwise F1 1.0. The hand-written numpy list search this replaced
  (one BLAS product per list for all the queries probing it) took 82 CPU-s at the same F1: 1.5x faster,
  not the 2x that would justify a second engine whose neighbours differ from those of the incremental runs.
- 512-D, lists on the full vectors: 348 CPU-s, 184 s wall at load 2, F1 0.9997. With the PCA-128 lists and
  exact re-ranking: 152 CPU-s, 84 s wall at load 1.7, F1 0.9996 (128-D in the same run: 110 CPU-s, 62 s).
  The hand-written search did 68 s wall (F1 0.9999): 1.2x faster, under the 2x rule.

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

from ..library.db import Database

EXACT_LIMIT = 20_000
# Lists probed per query: 8 up to NPROBE_LIMIT vectors, 4 beyond. At a million 128-D faces, 4 lists find
# 99.2% of the neighbours within the clustering distance (8: 99.8%, at twice the search time), and the
# clusters come out the same (bench_cluster.py: F1 1.0).
NPROBE, NPROBE_LARGE, NPROBE_LIMIT = 8, 4, 200_000
# Above REDUCED_DIM dimensions the lists are searched in a PCA projection and the candidates (K_FACTOR x k)
# re-ranked on the full vectors; see _trained_ivf.
REDUCED_DIM, K_FACTOR = 128, 2.0
# k-means of the lists: (sample points a list, iterations), for the vectors themselves and for a projection.
# At 1M x 512-D, 20 points and 6 iterations cost 14 CPU-s instead of 37 at the same F1 (0.99964 / 0.99965);
# at 1M x 128-D they saved 10 CPU-s but F1 fell from 1.0 to 0.99998, so full vectors keep 40 and 8.
KMEANS = {"full": (40, 8), "reduced": (20, 6)}
SEARCH_BATCH = 8192


class VectorIndex:
    """A FAISS inner-product index over int64 ids: exact up to `exact_limit` vectors, IVF beyond."""

    def __init__(self, index: faiss.Index, dim: int):
        self.index, self.dim = index, dim

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, exact_limit: int = EXACT_LIMIT,
              nprobe: int | None = None) -> VectorIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        dim = vectors.shape[1] if vectors.ndim == 2 else 0
        if len(ids) <= exact_limit:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        else:
            index = _trained_ivf(vectors, nprobe or (NPROBE if len(ids) <= NPROBE_LIMIT else NPROBE_LARGE))
        if len(ids):
            index.add_with_ids(vectors, ids)
        return cls(index, dim)

    @property
    def size(self) -> int:
        return self.index.ntotal

    @property
    def exact(self) -> bool:
        return faiss.try_extract_index_ivf(self.index) is None

    def fits(self, exact_limit: int = EXACT_LIMIT) -> bool:
        """Whether the kind of index still suits its size: exact up to `exact_limit`, and lists that were
        trained for at least a quarter of the vectors they now hold (else they have grown too long)."""
        lists = faiss.try_extract_index_ivf(self.index)
        if lists is None:
            return self.size <= exact_limit
        return self.size > exact_limit and lists.nlist >= list_count(self.size) // 2

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
        l2 = self.index.metric_type == faiss.METRIC_L2
        for start in range(0, len(queries), SEARCH_BATCH):
            sims, found = self.index.search(queries[start:start + SEARCH_BATCH], k)
            part = slice(start, start + len(found))
            cosine = sims / 2 if l2 else 1.0 - sims  # |a - b|^2 = 2 - 2 cos for unit vectors
            dist[part] = np.where(found >= 0, cosine, np.inf)
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


def list_count(n: int) -> int:
    return int(min(65536, max(64, 4 * math.sqrt(n))))


def _trained_ivf(vectors: np.ndarray, nprobe: int) -> faiss.Index:
    """An IVF-Flat index: about 4 * sqrt(n) lists from k-means on a sample (`KMEANS`: points a list).

    Up to `REDUCED_DIM` dimensions the lists hold the vectors themselves (inner product, spherical
    k-means). Above, they hold a PCA projection to `REDUCED_DIM` (L2, which for unit vectors ranks as the
    cosine does) and `IndexRefineFlat` re-ranks `K_FACTOR` x k candidates exactly on the full vectors, so
    a 512-D set costs about what a 128-D one does; the distances it returns are exact.
    """
    n, dim = vectors.shape
    nlist = list_count(n)
    points, iterations = KMEANS["full" if dim <= REDUCED_DIM else "reduced"]
    sample = vectors
    if n > nlist * points:  # training costs nlist^2 x points a list: a small sample keeps it to seconds
        rng = np.random.default_rng(0)
        sample = vectors[np.sort(rng.choice(n, nlist * points, replace=False))]
    sample = np.ascontiguousarray(sample)
    if dim <= REDUCED_DIM:
        kmeans = faiss.Kmeans(dim, nlist, niter=iterations, spherical=True, seed=1, max_points_per_centroid=points)
        kmeans.train(sample)
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(kmeans.centroids)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)  # trained: it has the lists
        index.nprobe = nprobe
        return index  # faiss's Python wrapper keeps the quantizer alive with the index
    pca = faiss.PCAMatrix(dim, REDUCED_DIM)
    pca.train(sample)
    kmeans = faiss.Kmeans(REDUCED_DIM, nlist, niter=iterations, seed=1, max_points_per_centroid=points)
    kmeans.train(pca.apply(sample))
    quantizer = faiss.IndexFlatL2(REDUCED_DIM)
    quantizer.add(kmeans.centroids)
    lists = faiss.IndexIVFFlat(quantizer, REDUCED_DIM, nlist, faiss.METRIC_L2)
    lists.nprobe = nprobe
    refined = faiss.IndexRefineFlat(faiss.IndexPreTransform(pca, lists))
    refined.k_factor = K_FACTOR
    return faiss.IndexIDMap2(refined)  # the refine step numbers vectors 0..n-1; the map gives our ids


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
    if index is not None and all(old.get(key) == value for key, value in stamp.items()):
        return index  # the stored stamp also says the dimension and kind of the index
    if index is not None and _only_added(old, stamp, source, conn):
        ids, vectors = source.rows(conn, old["max_id"])
        if len(ids) and vectors.shape[1] == index.dim:
            index.add(ids, vectors)
            if index.fits(exact_limit):
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
        index, stamp = VectorIndex.load(path), json.loads(stamp_path.read_text())
    except (OSError, RuntimeError, ValueError):
        return None, None  # missing or damaged: rebuilt from the database
    return (index, stamp) if isinstance(stamp, dict) else (None, None)


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
