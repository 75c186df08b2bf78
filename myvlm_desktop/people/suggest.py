"""Suggestions: "Is this Alice?" for unnamed clusters, and "the same person?" for pairs of named concepts.

A cluster is summed up by its centroid (the normalised mean of its members' embeddings); distances are
cosine distances between centroids. Every unnamed cluster gets its nearest named concept of the same
cluster kind (never one that rejected any of its members) with the distance, and `likely` when the
distance is under the engine's `suggest_distance` (dlib: 0.05 — on faces_jurassic, a 1-to-half-size
cluster of the same person lies within 0.046 of the rest in 95% of draws, another person beyond 0.050 in
99%). Named concepts closer than that to each other are offered as merges.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..library.db import Database
from .cluster import params_for
from .index import read_vectors
from .update import face_engines, image_embedders


def suggest(db: Database, limit: int = 50) -> dict:
    names = {r["id"]: r["name"] for r in db.query("SELECT id, name FROM concepts")}
    out = {"clusters": [], "merges": []}
    engines = face_engines(db)
    if engines:
        sql = ("SELECT f.id, f.embedding, f.cluster_id FROM faces f JOIN clusters c ON c.id = f.cluster_id "
               "WHERE f.engine = ? AND f.hidden = 0 AND c.hidden = 0")
        _add(out, db, "face", sql, engines[0], names,
             "SELECT r.concept_id, f.cluster_id FROM rejections r JOIN faces f ON f.id = r.face_id")
    embedders = image_embedders(db)
    if embedders:
        sql = ("SELECT e.photo_id, e.embedding, cp.cluster_id FROM image_embeddings e "
               "JOIN cluster_photos cp ON cp.photo_id = e.photo_id JOIN clusters c ON c.id = cp.cluster_id "
               "WHERE e.embedder = ? AND c.hidden = 0")
        _add(out, db, "image", sql, embedders[0], names,
             "SELECT r.concept_id, cp.cluster_id FROM rejections r JOIN cluster_photos cp "
             "ON cp.photo_id = r.photo_id WHERE r.face_id IS NULL")
    out["clusters"].sort(key=lambda s: (not s["likely"], s["distance"]))
    out["merges"].sort(key=lambda s: s["distance"])
    out["clusters"], out["merges"] = out["clusters"][:limit], out["merges"][:limit]
    return out


def _add(out: dict, db: Database, kind: str, sql: str, engine: str, names: dict, rejected_sql: str) -> None:
    conn = db.read()
    rows = conn.execute(sql, (engine,)).fetchall()
    if not rows:
        return
    _, vectors = read_vectors((r[0], r[1]) for r in rows)
    cluster_of = np.array([r[2] for r in rows])
    concept_of = dict(conn.execute("SELECT id, concept_id FROM clusters WHERE kind = ?", (kind,)).fetchall())
    params = params_for(engine, vectors.shape[1])
    unnamed, named = _centroids(vectors, cluster_of, concept_of)
    if not named:
        return
    rejected = defaultdict(set)
    for concept, cluster in conn.execute(rejected_sql):
        rejected[cluster].add(concept)
    concept_ids = list(named)
    concept_matrix = np.stack([named[c][0] for c in concept_ids])
    for cluster, (centroid, size) in unnamed.items():
        dist = 1.0 - concept_matrix @ centroid
        for at in np.argsort(dist):
            concept = concept_ids[at]
            if concept not in rejected[cluster]:
                out["clusters"].append({"cluster": int(cluster), "cluster_kind": kind, "size": size,
                                        "concept": names[concept], "concept_id": concept,
                                        "distance": round(float(dist[at]), 4),
                                        "likely": bool(dist[at] <= params.suggest_distance)})
                break
    dist = 1.0 - concept_matrix @ concept_matrix.T
    for i, j in zip(*np.nonzero(np.triu(dist <= params.suggest_distance, 1))):
        a, b = concept_ids[i], concept_ids[j]
        out["merges"].append({"a": names[a], "b": names[b], "a_id": a, "b_id": b, "cluster_kind": kind,
                              "distance": round(float(dist[i, j]), 4)})


def _centroids(vectors, cluster_of, concept_of) -> tuple[dict, dict]:
    """{cluster: (centroid, size)} of unnamed clusters and {concept: (centroid, size)} of named ones."""
    unnamed, named = {}, {}
    groups: dict = defaultdict(list)
    for row, cluster in enumerate(cluster_of.tolist()):
        concept = concept_of.get(cluster)
        groups[("concept", concept) if concept else ("cluster", cluster)].append(row)
    for (what, key), rows in groups.items():
        mean = vectors[rows].mean(axis=0)
        norm = np.linalg.norm(mean)
        if norm > 0:
            (named if what == "concept" else unnamed)[key] = (mean / norm, len(rows))
    return unnamed, named
