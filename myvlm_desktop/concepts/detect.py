"""Run concept heads on one image, in the library or not: which concepts are in it, and which face is whom."""

from __future__ import annotations

import numpy as np

from ..library.store import Library
from ..models.errors import ModelUnavailable
from .engines import embedder_for, face_engine_for
from .linear import PRESENT_AT
from .store import Head
from .train import ensure_heads


def detect_image(library: Library, rgb: np.ndarray, heads: dict[int, Head] | None = None,
                 face_engine=None, embedder=None) -> list[dict]:
    """[{"concept", "score", "face"}] for every concept whose head fires on `rgb` (HxWx3 uint8), best first.

    "face" is {"index", "box": [x1, y1, x2, y2], "score"} of the face the person head picked, None for
    pet and object heads. Stale heads are trained first. A head whose model is not installed is skipped.
    """
    if heads is None:
        heads, _ = ensure_heads(library, face_engine=face_engine, embedder=embedder)
    faces_by_engine: dict[str, list] = {}
    vectors_by_embedder: dict[str, np.ndarray] = {}
    found = []
    for head in heads.values():
        engine_id = head.meta.get("engine", "")
        try:
            if head.kind == "person":
                if engine_id not in faces_by_engine:
                    engine = _same(face_engine, engine_id) or face_engine_for(engine_id)
                    faces_by_engine[engine_id] = engine.analyze(rgb)
                hit = _person_hit(head, faces_by_engine[engine_id])
            else:
                if engine_id not in vectors_by_embedder:
                    model = _same(embedder, engine_id) or embedder_for(engine_id)
                    vectors_by_embedder[engine_id] = model.describe(rgb)[None]
                hit = _linear_hit(head, vectors_by_embedder[engine_id])
        except ModelUnavailable:
            continue
        if hit is not None:
            found.append(hit)
    return sorted(found, key=lambda d: -d["score"])


def _person_hit(head: Head, faces: list) -> dict | None:
    if not faces:
        return None
    best = head.model.best(np.stack([f.embedding for f in faces]))
    if best is None:
        return None
    face = faces[best.index]
    return {"concept": head.meta["concept"], "score": round(best.score, 4),
            "face": {"index": best.index, "box": [round(float(v), 1) for v in face.box],
                     "score": round(float(face.score), 4)}}


def _linear_hit(head: Head, vectors: np.ndarray) -> dict | None:
    p = float(head.model.scores(vectors)[0])
    if p < PRESENT_AT:
        return None
    return {"concept": head.meta["concept"], "score": round(p, 4), "face": None}


def _same(engine, engine_id: str):
    return engine if engine is not None and engine.engine_id == engine_id else None
