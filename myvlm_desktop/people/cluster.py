"""Density clustering of embeddings in the manner of Immich, on a k-nearest-neighbour graph from FAISS.

The neighbour lists come from `index.VectorIndex` (exact, or IVF lists on large sets) in every run:
incremental, full, first, and `cluster_all`.

A *core* item has at least `min_faces` items (itself included) within `max_distance` (cosine distance).
Items are either *fixed* (already in a cluster the run must not change: user decisions, named or hidden
clusters, or in an incremental run every item already clustered) or *free* (the ones to place). Then:

- free core items within `max_distance` of each other are linked, and linked to the clusters of their
  fixed neighbours; every linked group that reaches a cluster joins the cluster nearest along the links
  (a multi-source shortest-path run, so a group that touches two clusters is split between them rather
  than merging them), and every group that reaches none becomes a new cluster;
- a free non-core item joins the cluster of its nearest neighbour within `max_distance` that is fixed or a
  placed core item, else it waits (stays unassigned) and is tried again in the next run;
- an item is never placed in a cluster the user rejected it from (`blocked`).

With no fixed items this is DBSCAN(eps=max_distance, min_samples=min_faces) on the `neighbours` nearest
neighbours of each item, border items going to their nearest core neighbour; the order of the items does
not change the result. Each free item costs one k-NN query; the graph work is scipy's C code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from .index import VectorIndex


@dataclass(frozen=True)
class ClusterParams:
    min_faces: int          # neighbours within max_distance, itself included, that make an item core
    max_distance: float     # cosine distance
    neighbours: int = 16    # k of the k-NN graph (>= min_faces)
    suggest_distance: float = 0.0  # "Is this Alice?": centroid distance under which a suggestion is likely


# Calibration: benchmarks/eval_clustering.py on ../shared/data/faces_jurassic, clean subset (113 photos of
# 6 people without the manifest's flags; the app's dlib engine, dlib-resnet_v1, finds a face in 89 of
# them, the largest is taken). Same-person pairs lie at cosine distance 0.055 (median; 95th pct 0.13),
# different people at 0.087 (1st pct) / 0.101 (5th pct). Sweep of max_distance (min_faces 2; 3 and 4
# score the same from 0.065 down, 4 loses a face at 0.06):
#   max_distance  0.039  0.0455  0.052  0.0585  0.060  0.065  0.068  0.0715  0.0845  0.117
#   pairwise F1   0.689  0.776   0.817  0.900   0.900  0.904  0.706  0.706   0.729   0.586
#   BCubed F1     0.693  0.778   0.834  0.917   0.917  0.928  0.817  0.817   0.836   0.597
#   precision     1.000  1.000   1.000  1.000   1.000  1.000  0.605  0.605   0.584   0.414
# At 0.068 two people chain into one. We take 0.06, a step below the best point (0.065): nearly the same
# score with a margin to that cliff, which a larger library (more faces to chain through) moves closer.
# min_faces 2: a person seen in two photos is worth naming (and a face must pair with its mirror image).
# With the flagged photos kept (statues, cosplayers, collages) pairwise precision is 0.94.
DLIB = ClusterParams(min_faces=2, max_distance=0.06, neighbours=16, suggest_distance=0.05)
# ArcFace (InsightFace buffalo_l, 512-D): its weights cannot be fetched here, so no sweep could be run.
# MyVLM's person head accepts a face at cosine distance <= 0.675: a recognition bound, one face against
# a concept's few keys. Clustering chains faces through neighbours, so it needs a tighter bound: 0.5, the
# value Immich ships for the same model (its min_faces is 3; ours is 2 as for dlib).
ARCFACE = ClusterParams(min_faces=2, max_distance=0.5, neighbours=16, suggest_distance=0.55)
# SSCD image descriptors (512-D, copy detection) for pet / object candidates, on pets_dreambooth (47
# photos of 9 animals), each photo described by the mean of its whole frame and 5 subject crops (what the
# index stores, vision.embed.photo_vector): pairwise F1 0.42 at 0.6, 0.58 at 0.65 (precision 1.0, 9
# groups); precision falls beyond. With whole-frame vectors it was 0.35 at 0.6 (eval_pet_groups.py).
SSCD = ClusterParams(min_faces=2, max_distance=0.65, neighbours=16, suggest_distance=0.7)
# CLIP image features (the "clip" embedder, OpenAI ViT-B/32): NOT calibrated, its weights cannot be fetched
# here. CLIP places photos of one subject in one scene at cosine similarity ~0.85-0.95; 0.15 keeps to that.
CLIP = ClusterParams(min_faces=2, max_distance=0.15, neighbours=16, suggest_distance=0.2)


def params_for(engine: str, dim: int | None = None) -> ClusterParams:
    """The clustering thresholds for an engine id (or embedder id) such as 'dlib-19.24' or 'arcface-r50'."""
    name = engine.lower()
    if "dlib" in name:
        return DLIB
    if any(word in name for word in ("arcface", "insightface", "buffalo", "antelope")):
        return ARCFACE
    if "clip" in name:
        return CLIP
    if any(word in name for word in ("sscd", "image")):
        return SSCD
    if dim == 128:
        return DLIB
    return ARCFACE


NEW = -1  # labels below zero name new clusters: -1 - number


def cluster_items(index: VectorIndex | None, free_ids: np.ndarray, free_vectors: np.ndarray | None,
                  params: ClusterParams, fixed_ids: np.ndarray | None = None, fixed_labels: np.ndarray | None = None,
                  blocked: dict[int, set[int]] | None = None,
                  neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Labels for the free items: a fixed cluster id (> 0), a new cluster (< 0), or 0 (waits).

    `index` holds the vectors of every item that counts as a neighbour (free and fixed; anything else it
    returns, such as hidden faces, is ignored); or `neighbours` gives the free items' k-NN lists already,
    as (cosine distances, item ids). `fixed_labels` are positive cluster ids. `blocked` maps a free item
    id to the cluster ids it must never join.
    """
    free_ids = np.asarray(free_ids, np.int64)
    if not len(free_ids):
        return np.zeros(0, np.int64)
    if neighbours is None:
        neighbours = index.search(free_vectors, max(params.neighbours, params.min_faces))
    graph = _Neighbours(neighbours, free_ids, params, fixed_ids, fixed_labels, blocked or {})
    core_labels = graph.place_core()
    return graph.place_border(core_labels)


class _Neighbours:
    """The k-NN lists of the free items, resolved to free positions and fixed cluster labels."""

    def __init__(self, neighbours, free_ids, params, fixed_ids, fixed_labels, blocked):
        self.params, self.blocked = params, blocked
        self.free_ids = free_ids
        self.dist, found = neighbours
        self.pos = lookup(free_ids, np.arange(len(free_ids)), found, -1)
        if fixed_ids is not None and len(fixed_ids):
            self.label = lookup(np.asarray(fixed_ids, np.int64), np.asarray(fixed_labels, np.int64), found, 0)
        else:
            self.label = np.zeros_like(found)
        self.label[self.pos >= 0] = 0
        self.valid = (found >= 0) & (self.dist <= params.max_distance) & ((self.pos >= 0) | (self.label > 0))
        self.core = self.valid.sum(axis=1) >= params.min_faces
        self._unblock_fixed()

    def _unblock_fixed(self) -> None:
        """Drop the links from an item to fixed faces of clusters it was rejected from."""
        for row in self._blocked_rows():
            banned = self.blocked[int(self.free_ids[row])]
            for col in range(self.label.shape[1]):
                if self.label[row, col] in banned:
                    self.valid[row, col] = False

    def _blocked_rows(self) -> list[int]:
        if not self.blocked:
            return []
        rows = np.flatnonzero(np.isin(self.free_ids, np.fromiter(self.blocked, np.int64)))
        return [int(r) for r in rows]

    def place_core(self) -> np.ndarray:
        """Cluster labels of the core items (0 for non-core)."""
        n = len(self.free_ids)
        core_rows = self.core[:, None] & self.valid
        rows, cols = np.nonzero(core_rows & (self.pos >= 0))
        targets = self.pos[rows, cols]
        keep = self.core[targets] & (targets != rows)
        a, b, w = rows[keep], targets[keep], self.dist[rows, cols][keep]
        rows, cols = np.nonzero(core_rows & (self.label > 0))
        clusters, node = np.unique(self.label[rows, cols], return_inverse=True)
        a = np.concatenate([a, rows])
        b = np.concatenate([b, n + node.ravel()])
        w = np.concatenate([w, self.dist[rows, cols]])
        total = n + len(clusters)
        graph = _undirected(a, b, w, total)
        labels = np.zeros(total, np.int64)
        if len(clusters):
            _, _, source = dijkstra(graph, directed=False, indices=np.arange(n, total), min_only=True,
                                    return_predecessors=True)
            reached = source >= n
            labels[reached] = clusters[source[reached] - n]
        _, component = connected_components(graph, directed=False)
        fresh = (labels == 0) & np.concatenate([self.core, np.zeros(len(clusters), bool)])
        labels[fresh] = NEW - component[fresh]
        labels = labels[:n]
        for row in self._blocked_rows():
            if labels[row] in self.blocked[int(self.free_ids[row])]:
                labels[row] = 0  # reached a rejected cluster through others: it waits
        return labels

    def place_border(self, core_labels: np.ndarray) -> np.ndarray:
        """Each non-core item takes the label of its nearest fixed or placed core neighbour."""
        labels = core_labels.copy()
        from_free = np.where(self.pos >= 0, core_labels[np.maximum(self.pos, 0)], 0)
        candidates = np.where(self.valid, np.where(self.label > 0, self.label, from_free), 0)
        border = np.flatnonzero(~self.core)
        if len(border):
            cand = candidates[border]
            first = np.argmax(cand != 0, axis=1)
            labels[border] = cand[np.arange(len(border)), first]
        for row in self._blocked_rows():
            if not self.core[row]:
                banned = self.blocked[int(self.free_ids[row])]
                labels[row] = next((int(c) for c in candidates[row] if c and c not in banned), 0)
        return _renumber_new(labels)


def lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray, missing: int) -> np.ndarray:
    """values[keys == q] for each q of `query`, else `missing` (vectorised with a sorted search)."""
    if not len(keys):
        return np.full(np.shape(query), missing, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    at = np.searchsorted(sorted_keys, query)
    at = np.minimum(at, len(sorted_keys) - 1)
    hit = sorted_keys[at] == query
    return np.where(hit, values[order][at], missing)


def _undirected(a: np.ndarray, b: np.ndarray, w: np.ndarray, n: int):
    """A symmetric sparse graph with one edge (the shortest) per pair; weights kept > 0 for scipy."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo.astype(np.int64) * n + hi
    order = np.lexsort((w, key))
    key, w = key[order], w[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    key, w = key[first], np.maximum(w[first], 0) + 1e-6
    lo, hi = key // n, key % n
    return coo_matrix((w, (lo, hi)), shape=(n, n)).tocsr()


def _renumber_new(labels: np.ndarray) -> np.ndarray:
    """New-cluster labels as -1, -2, ... in order of first appearance."""
    new = labels < 0
    if new.any():
        _, first, inverse = np.unique(labels[new], return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))
        labels = labels.copy()
        labels[new] = NEW - rank[inverse.ravel()]
    return labels


def cluster_all(vectors: np.ndarray, params: ClusterParams, index: VectorIndex | None = None) -> np.ndarray:
    """Cluster a plain set of vectors (no fixed items): labels 0..k-1, -1 for noise (sklearn's convention).

    The k-NN lists come from `index` (which holds `vectors` under ids 0..n-1), else from a VectorIndex
    built here by the same rule as the library's (exact up to `index.EXACT_LIMIT` vectors, IVF beyond).
    """
    ids = np.arange(len(vectors), dtype=np.int64)
    index = index if index is not None else VectorIndex.build(ids, vectors)
    labels = cluster_items(index, ids, vectors, params)
    return np.where(labels < 0, -labels - 1, -1)
