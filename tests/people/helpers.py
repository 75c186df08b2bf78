"""Synthetic faces for the people tests: well-separated identities as dlib-like 128-D unit vectors."""

from __future__ import annotations

import numpy as np

from myvlm_desktop.library.db import now, to_blob

ENGINE = "dlib-test"
DIM = 128


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def identities(count: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    return unit(np.random.default_rng(seed).normal(size=(count, dim)))


def faces_of(center: np.ndarray, count: int, seed: int, spread: float = 0.012) -> np.ndarray:
    """Faces of one person: cosine distance ~0.02 between two of them (dlib's clustering bound is 0.06)."""
    rng = np.random.default_rng(seed)
    return unit(center + spread * rng.normal(size=(count, len(center))))


def add_photo(db, name: str) -> int:
    return db.write(lambda c: c.execute(
        "INSERT INTO photos(path, status, width, height, added_at, updated_at) VALUES (?, 'ok', 640, 480, ?, ?)",
        (f"/photos/{name}.jpg", now(), now())).lastrowid)


def add_faces(db, vectors, engine: str = ENGINE, photo_ids=None, boxes=None) -> list[int]:
    """One photo per face unless photo_ids are given; returns the face ids in order."""
    ids = []
    for n, vec in enumerate(vectors):
        photo = photo_ids[n] if photo_ids is not None else add_photo(db, f"{engine}-{len(ids)}-{np.random.rand()}")
        box = boxes[n] if boxes is not None else (10.0, 20.0, 110.0, 140.0)
        ids.append(db.write(lambda c, p=photo, b=box, v=vec: c.execute(
            "INSERT INTO faces(photo_id, x1, y1, x2, y2, score, embedding, engine, created_at) "
            "VALUES (?, ?, ?, ?, ?, 0.99, ?, ?, ?)", (p, *b, to_blob(v), engine, now())).lastrowid))
    return ids


def add_people(db, sizes, seed: int = 0, engine: str = ENGINE, dim: int = DIM,
               spread: float = 0.012) -> list[list[int]]:
    """Faces of len(sizes) people (sizes[i] faces each, one photo per face): their face ids per person."""
    centers = identities(len(sizes), seed, dim)
    return [add_faces(db, faces_of(centers[i], n, seed * 100 + i, spread), engine) for i, n in enumerate(sizes)]


def clusters_of(db, face_ids) -> set:
    marks = ",".join("?" * len(face_ids))
    return {r[0] for r in db.query(f"SELECT cluster_id FROM faces WHERE id IN ({marks})", list(face_ids))}


def dump(db) -> dict:
    """The tables an operation may change, row for row (what undo must restore)."""
    tables = {
        "concepts": "SELECT * FROM concepts ORDER BY id",
        "clusters": "SELECT * FROM clusters ORDER BY id",
        "faces": "SELECT id, photo_id, cluster_id, assigned_by, hidden, engine FROM faces ORDER BY id",
        "cluster_photos": "SELECT * FROM cluster_photos ORDER BY cluster_id, photo_id",
        "rejections": "SELECT rowid, * FROM rejections ORDER BY rowid",
        "occurrences": "SELECT * FROM occurrences ORDER BY photo_id, concept_id, source",
    }
    return {name: [tuple(r) for r in db.query(sql)] for name, sql in tables.items()}
