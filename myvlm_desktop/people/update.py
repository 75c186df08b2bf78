"""Clustering the library: faces into face clusters, photos into image clusters (pet / object candidates).

An incremental run places the items not yet in a cluster and leaves every clustered one where it is. A
full run (`full=True`) places again every item whose place nobody decided: faces assigned by the user,
and every face of a named or hidden cluster, stay put; the other clusters are rebuilt (keeping their ids
where they overlap the new ones, so the GUI does not flicker). A face is never put in a cluster of a
concept that rejected it. The computation reads the database without blocking the writer; the write
then checks each face is still as it was read, so a user's operation meanwhile always wins.

Items that stay unassigned ("waiting") are tried again only when new items come near them: a run queries
the new items (ids above the last run's watermark) and, transitively, the waiting items within
`max_distance` of them. When the number of waiting items changed behind its back (an operation released
faces) the run queries all of them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby

import numpy as np

from ..library.db import Database, now
from ..vision.boxes import match_boxes
from .cluster import ClusterParams, cluster_items, lookup, params_for
from .index import (
    EXACT_LIMIT,
    Source,
    VectorIndex,
    cached_index,
    face_source,
    image_source,
    read_vectors,
)

Progress = Callable[[int, int, str], None]
BULK_MIN = 5000  # a run querying more items than this reads them in one scan of the table, not by id


@dataclass
class Items:
    """The items of one engine as read: ids, current cluster (0: none), fixed or free, waiting."""
    ids: np.ndarray
    cluster: np.ndarray
    protected: np.ndarray   # user-assigned, or in a named or hidden cluster
    blocked: dict[int, set[int]]


class FaceKind:
    kind = "face"
    # (face, cluster) pairs a face must never join: the clusters of concepts that rejected it
    rejected_sql = ("SELECT r.face_id, c.id FROM rejections r JOIN clusters c ON c.concept_id = r.concept_id "
                    "AND c.kind = 'face' WHERE r.face_id IS NOT NULL")

    def __init__(self, engine: str):
        self.engine = engine
        self.source: Source = face_source(engine)

    def load(self, conn) -> Items:
        rows = conn.execute(
            "SELECT f.id, coalesce(f.cluster_id, 0), f.assigned_by = 'user' OR c.concept_id IS NOT NULL "
            "OR coalesce(c.hidden, 0) FROM faces f LEFT JOIN clusters c ON c.id = f.cluster_id "
            "WHERE f.engine = ? AND f.hidden = 0 ORDER BY f.id", (self.engine,)).fetchall()
        return _items(rows, _blocked(conn, self.rejected_sql))

    def vectors(self, conn, ids: np.ndarray) -> np.ndarray:
        return _vectors(conn, "SELECT id, embedding FROM faces WHERE id IN ({})", ids)

    def write(self, conn, moves: list[tuple[int, int, int]]) -> set[int]:
        """Apply (face, old cluster, new cluster) where the face is still as read; the clusters touched."""
        conn.executemany("UPDATE faces SET cluster_id = ? WHERE id = ? AND assigned_by = 'auto' AND hidden = 0 "
                         "AND coalesce(cluster_id, 0) = ?", [(new or None, face, old) for face, old, new in moves])
        return {c for _, old, new in moves for c in (old, new) if c}


class ImageKind:
    kind = "image"
    rejected_sql = ("SELECT r.photo_id, c.id FROM rejections r JOIN clusters c ON c.concept_id = r.concept_id "
                    "AND c.kind = 'image' WHERE r.face_id IS NULL AND r.photo_id IS NOT NULL")

    def __init__(self, embedder: str):
        self.engine = embedder
        self.source = image_source(embedder)

    def load(self, conn) -> Items:
        rows = conn.execute(
            "SELECT e.photo_id, coalesce(min(CASE WHEN cp.assigned_by = 'user' OR c.concept_id IS NOT NULL "
            "OR c.hidden THEN cp.cluster_id END), min(cp.cluster_id), 0), "
            "coalesce(max(cp.assigned_by = 'user' OR c.concept_id IS NOT NULL OR c.hidden), 0) "
            "FROM image_embeddings e LEFT JOIN cluster_photos cp ON cp.photo_id = e.photo_id "
            "LEFT JOIN clusters c ON c.id = cp.cluster_id AND c.kind = 'image' "
            "WHERE e.embedder = ? GROUP BY e.photo_id ORDER BY e.photo_id", (self.engine,)).fetchall()
        return _items(rows, _blocked(conn, self.rejected_sql))

    def vectors(self, conn, ids: np.ndarray) -> np.ndarray:
        return _vectors(conn, "SELECT photo_id, embedding FROM image_embeddings WHERE embedder = ? "
                              "AND photo_id IN ({})", ids, (self.engine,))

    def write(self, conn, moves: list[tuple[int, int, int]]) -> set[int]:
        touched = set()
        for photo, old, new in moves:
            if old:
                gone = conn.execute("DELETE FROM cluster_photos WHERE cluster_id = ? AND photo_id = ? "
                                    "AND assigned_by = 'auto'", (old, photo)).rowcount
                if not gone:
                    continue  # the user took it in hand meanwhile
                touched.add(old)
            if new:
                conn.execute("INSERT OR IGNORE INTO cluster_photos(cluster_id, photo_id, assigned_by) "
                             "VALUES (?, ?, 'auto')", (new, photo))
                touched.add(new)
        return touched


def _items(rows, blocked) -> Items:
    data = np.array([tuple(r) for r in rows], dtype=np.int64).reshape(-1, 3)
    return Items(data[:, 0].copy(), data[:, 1].copy(), data[:, 2].astype(bool), blocked)


def _blocked(conn, sql: str) -> dict[int, set[int]]:
    blocked: dict[int, set[int]] = {}
    for item, cluster in conn.execute(sql):
        blocked.setdefault(item, set()).add(cluster)
    return blocked


def _vectors(conn, sql: str, ids: np.ndarray, params: tuple = ()) -> np.ndarray:
    parts, order = [], []
    for start in range(0, len(ids), 5000):
        chunk = [int(i) for i in ids[start:start + 5000]]
        got_ids, vecs = read_vectors(conn.execute(sql.format(",".join("?" * len(chunk))), (*params, *chunk)))
        parts.append(vecs)
        order.append(got_ids)
    got = np.concatenate(order) if order else np.zeros(0, np.int64)
    vectors = np.concatenate([p for p in parts if p.size]) if any(p.size for p in parts) else np.zeros((0, 0))
    where = {int(i): n for n, i in enumerate(got)}
    return np.ascontiguousarray(vectors[[where[int(i)] for i in ids]], dtype=np.float32)


# -- the run ----------------------------------------------------------------------------------------------

def face_engines(db: Database) -> list[str]:
    """Engines that produced faces, the newest first (the first is the one the app uses now)."""
    rows = db.query("SELECT engine, max(id) AS last FROM faces GROUP BY engine ORDER BY last DESC")
    return [r["engine"] for r in rows]


def image_embedders(db: Database) -> list[str]:
    rows = db.query("SELECT embedder, max(created_at) AS last FROM image_embeddings GROUP BY embedder "
                    "ORDER BY last DESC")
    return [r["embedder"] for r in rows]


def cluster_faces(db: Database, engine: str | None = None, full: bool = False,
                  params: ClusterParams | None = None, progress: Progress | None = None,
                  exact_limit: int = EXACT_LIMIT) -> dict:
    """Place the faces of `engine` (default: the newest engine) into face clusters."""
    engines = face_engines(db)
    engine = engine or (engines[0] if engines else None)
    if engine is None:
        return {"kind": "face", "engine": None, "placed": 0, "new_clusters": 0, "waiting": 0}
    carried = carry_over(db, engine) if len(engines) > 1 else 0
    result = _run(db, FaceKind(engine), full, params, progress, exact_limit)
    return {**result, "carried_over": carried}


def cluster_images(db: Database, embedder: str | None = None, full: bool = False,
                   params: ClusterParams | None = None, progress: Progress | None = None,
                   exact_limit: int = EXACT_LIMIT) -> dict:
    """Group photos by their image embedding: candidates for pets and objects."""
    embedders = image_embedders(db)
    embedder = embedder or (embedders[0] if embedders else None)
    if embedder is None:
        return {"kind": "image", "engine": None, "placed": 0, "new_clusters": 0, "waiting": 0}
    return _run(db, ImageKind(embedder), full, params, progress, exact_limit)


def _run(db: Database, kind, full: bool, params: ClusterParams | None, progress: Progress | None,
         exact_limit: int) -> dict:
    say = progress or (lambda done, total, message="": None)
    say(0, 4, f"reading {kind.kind}s")
    conn = db.read()
    items = kind.load(conn)
    mark_key = f"people.watermark.{kind.source.name}"
    mark = read_setting(conn, mark_key, {})
    mark = mark if isinstance(mark, dict) else {}
    fixed = (items.protected if full else True) & (items.cluster > 0)
    free = ~fixed
    # One index for every run, so a full or first run sees the same neighbours as an incremental one.
    index = cached_index(db, kind.source, exact_limit)
    params = params or params_for(kind.engine, index.dim)
    if not full and mark.get("waiting") == \
            int(((items.cluster == 0) & (items.ids <= mark.get("max_id", 0))).sum()):
        free &= _near_new(index, kind, conn, items, params, mark.get("max_id", 0))
    free_ids = items.ids[free]
    say(1, 4, f"finding neighbours of {len(free_ids)} {kind.kind}s")
    neighbours = index.search(_free_vectors(kind, conn, free_ids, index.dim), max(params.neighbours, params.min_faces))
    say(2, 4, "clustering")
    labels = cluster_items(None, free_ids, None, params, items.ids[fixed], items.cluster[fixed],
                           items.blocked, neighbours=neighbours)
    say(3, 4, "saving")
    old = items.cluster[free]
    result = db.write(_save, kind, free_ids, old, labels, full, items)
    waiting = int((labels == 0).sum()) + int(((items.cluster == 0) & ~free).sum())
    max_id = int(items.ids.max()) if len(items.ids) else 0
    db.write(write_setting, mark_key, {"max_id": max_id, "waiting": waiting})
    say(4, 4, "done")
    db.notify("people", {"clustered": kind.kind})
    return {"kind": kind.kind, "engine": kind.engine, "params": params.__dict__, "waiting": waiting,
            "search": "exact" if index.exact else "ivf", **result}


def _free_vectors(kind, conn, free_ids: np.ndarray, dim: int) -> np.ndarray:
    """The vectors to query: by id for a few, in one scan of the table when many (a first or full run)."""
    if not len(free_ids):
        return np.zeros((0, max(dim, 1)), np.float32)
    if len(free_ids) <= BULK_MIN:
        return kind.vectors(conn, free_ids)
    ids, vectors = kind.source.rows(conn)
    at = lookup(ids, np.arange(len(ids)), free_ids, -1)
    return vectors[at] if (at >= 0).all() else kind.vectors(conn, free_ids)


def _near_new(index: VectorIndex, kind, conn, items: Items, params: ClusterParams, max_id: int) -> np.ndarray:
    """The unclustered items that can change: new ones and the waiting ones linked to them."""
    waiting = items.cluster == 0
    chosen = waiting & (items.ids > max_id)
    if not (waiting & ~chosen).any() or chosen.sum() > BULK_MIN:
        return chosen | waiting  # nothing else to reach, or so many new ones that querying all costs the same
    frontier = items.ids[chosen]
    k = max(params.neighbours, params.min_faces)
    while len(frontier):
        dist, found = index.search(kind.vectors(conn, frontier), k)
        near = np.unique(found[(dist <= params.max_distance) & (found >= 0)])
        at = lookup(items.ids, np.arange(len(items.ids)), near, -1)
        at = at[at >= 0]
        at = at[waiting[at] & ~chosen[at]]
        chosen[at] = True
        frontier = items.ids[at]
    return chosen


def _save(conn, kind, free_ids, old, labels, full: bool, items: Items) -> dict:
    """Create the new clusters, move the free items, drop emptied clusters, fix covers, bump versions."""
    existing = {r[0] for r in conn.execute("SELECT id FROM clusters WHERE kind = ?", (kind.kind,))}
    targets = _new_cluster_ids(conn, kind.kind, old, labels, full, items, existing)
    moves = []
    for item, was, label in zip(free_ids.tolist(), old.tolist(), labels.tolist()):
        new = targets.get(label, 0) if label < 0 else (label if label in existing else 0)
        if new != was:
            moves.append((item, was, new))
    moves = _drop_rejected(conn, kind, moves)
    touched = kind.write(conn, moves)
    removed = _drop_empty(conn, kind)
    for cluster in touched - removed:
        fix_cover(conn, cluster)
    _bump_versions(conn, touched)
    fresh = len({targets[label] for label in set(labels.tolist()) if label < 0} - existing)
    return {"placed": sum(1 for m in moves if m[2]), "new_clusters": fresh, "removed_clusters": len(removed)}


def _new_cluster_ids(conn, kind: str, old, labels, full, items: Items, existing: set[int]) -> dict[int, int]:
    """A cluster id for each new label: in a full run the old unprotected cluster it overlaps most."""
    reuse: dict[int, int] = {}
    if full:
        protected = set(items.cluster[items.protected].tolist())
        overlap = Counter((label, was) for label, was in zip(labels.tolist(), old.tolist())
                          if label < 0 and was and was not in protected and was in existing)
        used: set[int] = set()
        for (label, was), _ in overlap.most_common():
            if label not in reuse and was not in used:
                reuse[label] = was
                used.add(was)
    for label in sorted(set(labels.tolist()), reverse=True):
        if label < 0 and label not in reuse:
            reuse[label] = conn.execute("INSERT INTO clusters(kind, created_at) VALUES (?, ?)",
                                        (kind, now())).lastrowid
    return reuse


def _drop_rejected(conn, kind, moves: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Re-check rejections at write time: one added while the run computed still wins."""
    banned = _blocked(conn, kind.rejected_sql)
    return [(item, was, 0 if new in banned.get(item, ()) else new) for item, was, new in moves
            if not (was == 0 and new in banned.get(item, ()))]


def _drop_empty(conn, kind) -> set[int]:
    """Unnamed, visible clusters left with no member are removed."""
    rows = conn.execute(
        "SELECT id FROM clusters WHERE kind = ? AND concept_id IS NULL AND hidden = 0 "
        "AND NOT EXISTS (SELECT 1 FROM faces WHERE cluster_id = clusters.id) "
        "AND NOT EXISTS (SELECT 1 FROM cluster_photos WHERE cluster_id = clusters.id)", (kind.kind,)).fetchall()
    gone = {r[0] for r in rows}
    conn.executemany("DELETE FROM clusters WHERE id = ?", [(c,) for c in gone])
    return gone


def fix_cover(conn, cluster: int) -> None:
    """Keep the cover while it is a member (the user may have picked it), else take the largest face."""
    row = conn.execute("SELECT kind, cover_face_id, cover_photo_id FROM clusters WHERE id = ?", (cluster,)).fetchone()
    if row is None:
        return
    if row["kind"] == "face":
        if row["cover_face_id"] and conn.execute("SELECT 1 FROM faces WHERE id = ? AND cluster_id = ? AND hidden = 0",
                                                 (row["cover_face_id"], cluster)).fetchone():
            return
        best = conn.execute("SELECT id, photo_id FROM faces WHERE cluster_id = ? AND hidden = 0 "
                            "ORDER BY (x2 - x1) * (y2 - y1) * coalesce(score, 1) DESC, id LIMIT 1",
                            (cluster,)).fetchone()
        conn.execute("UPDATE clusters SET cover_face_id = ?, cover_photo_id = ? WHERE id = ?",
                     (best[0] if best else None, best[1] if best else None, cluster))
    else:
        if row["cover_photo_id"] and conn.execute("SELECT 1 FROM cluster_photos WHERE cluster_id = ? AND photo_id = ?",
                                                  (cluster, row["cover_photo_id"])).fetchone():
            return
        best = conn.execute("SELECT photo_id FROM cluster_photos WHERE cluster_id = ? ORDER BY photo_id LIMIT 1",
                            (cluster,)).fetchone()
        conn.execute("UPDATE clusters SET cover_photo_id = ? WHERE id = ?", (best[0] if best else None, cluster))


def _bump_versions(conn, clusters: set[int]) -> None:
    """A concept whose clusters gained or lost members has new examples: its heads retrain."""
    if clusters:
        marks = ",".join("?" * len(clusters))
        conn.execute(f"UPDATE concepts SET version = version + 1 WHERE id IN "
                     f"(SELECT concept_id FROM clusters WHERE id IN ({marks}))", list(clusters))


def read_setting(conn, key: str, default=None):
    """A JSON value of the settings table (`default` when missing or unreadable)."""
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    try:
        return json.loads(row[0]) if row else default
    except ValueError:
        return default


def write_setting(conn, key: str, value) -> None:
    conn.execute("INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, json.dumps(value)))


# -- decisions follow faces across re-detection ---------------------------------------------------------

def carry_over(db: Database, engine: str) -> int:
    """Give each unassigned face of `engine` the decisions of another engine's face on the same photo.

    Re-detection with a new engine (or a rescan that re-detected a photo while keeping the old rows)
    makes new face rows; where a new face overlaps an old one (IoU > 0.5, as Immich does; paired one to one,
    best overlaps first) it takes the old face's cluster when that cluster carries a decision (named,
    hidden or user-assigned), its hidden flag and its rejections.
    """
    return db.write(carry_over_in, engine)


def carry_over_in(conn, engine: str, photo_id: int | None = None) -> int:
    where = "AND n.photo_id = ?" if photo_id is not None else ""
    pairs = conn.execute(
        "SELECT n.photo_id, n.id AS new, o.id AS old, o.cluster_id, o.assigned_by, o.hidden, "
        "n.x1, n.y1, n.x2, n.y2, o.x1 AS ox1, o.y1 AS oy1, o.x2 AS ox2, o.y2 AS oy2 "
        "FROM faces n JOIN faces o ON o.photo_id = n.photo_id AND o.id != n.id AND o.engine != n.engine "
        "LEFT JOIN clusters c ON c.id = o.cluster_id "
        f"WHERE n.engine = ? AND n.cluster_id IS NULL AND n.hidden = 0 {where} AND (o.hidden = 1 "
        "OR o.assigned_by = 'user' OR c.concept_id IS NOT NULL OR c.hidden = 1 OR EXISTS "
        "(SELECT 1 FROM rejections r WHERE r.face_id = o.id)) ORDER BY n.photo_id, n.id, o.id",
        (engine, photo_id) if photo_id is not None else (engine,)).fetchall()
    carried = []
    for _, group in groupby(pairs, key=lambda p: p["photo_id"]):
        rows = list(group)
        news = {r["new"]: (r["x1"], r["y1"], r["x2"], r["y2"]) for r in rows}
        olds = {r["old"]: r for r in rows}
        matched = match_boxes(list(news.values()), [(r["ox1"], r["oy1"], r["ox2"], r["oy2"]) for r in olds.values()])
        carried += [(list(news)[i], list(olds.values())[j]) for i, j in matched.items()]
    for new, old in carried:
        conn.execute("UPDATE faces SET cluster_id = ?, assigned_by = ?, hidden = ? WHERE id = ?",
                     (old["cluster_id"], old["assigned_by"], old["hidden"], new))
        conn.execute("INSERT INTO rejections(concept_id, face_id, photo_id, created_at) SELECT concept_id, ?, "
                     "photo_id, created_at FROM rejections WHERE face_id = ?", (new, old["old"]))
    _bump_versions(conn, {old["cluster_id"] for _, old in carried if old["cluster_id"]})
    return len(carried)
