"""Library set-ups for the head tests: real photos (pip-shipped), real engines, rows as indexing writes them."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from myvlm_desktop.imaging import load_array
from myvlm_desktop.library.db import now, to_blob
from myvlm_desktop.library.scan import scan_library
from tests.conftest import insightface_image


@cache
def face_engine():
    from myvlm_desktop.vision.faces import get_face_engine

    return get_face_engine("dlib")


@cache
def embedder():
    from myvlm_desktop.vision.embed import get_image_embedder

    return get_image_embedder("sscd")


@cache
def t1_faces(mirrored: bool) -> tuple:
    """dlib's faces of insightface's 6-person t1.jpg (or its mirror), left to right, computed once."""
    rgb = load_array(insightface_image("t1.jpg"))
    faces = face_engine().analyze(np.ascontiguousarray(rgb[:, ::-1] if mirrored else rgb))
    return tuple(sorted(faces, key=lambda f: f.box[0]))


def save_t1(folder: Path) -> dict[str, Path]:
    rgb = load_array(insightface_image("t1.jpg"))
    paths = {"t1": folder / "t1.jpg", "mirror": folder / "t1_mirror.jpg"}
    Image.fromarray(rgb).save(paths["t1"], quality=95)
    Image.fromarray(np.ascontiguousarray(rgb[:, ::-1])).save(paths["mirror"], quality=95)
    return paths


def add_photos(library, folder: Path) -> dict[str, int]:
    """Scan `folder` into the library; photo ids by file name."""
    library.add_folder(folder)
    scan_library(library)
    return {Path(r["path"]).name: r["id"] for r in library.db.query("SELECT id, path FROM photos")}


def add_faces(library, photo_id: int, faces, engine_id: str | None = None) -> list[int]:
    """Face rows as the indexer stores them; ids in the order given."""
    engine_id = engine_id or face_engine().engine_id

    def write(conn):
        return [conn.execute(
            "INSERT INTO faces(photo_id, x1, y1, x2, y2, landmarks, score, embedding, engine, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (photo_id, *[float(v) for v in f.box], json.dumps(np.asarray(f.landmarks).tolist()
                                                               if f.landmarks is not None else None),
             float(f.score), to_blob(f.embedding), engine_id, now())).lastrowid for f in faces]

    return library.db.write(write)


def add_embeddings(library, vectors: dict[int, np.ndarray], embedder_id: str) -> None:
    library.db.write(lambda conn: conn.executemany(
        "INSERT OR REPLACE INTO image_embeddings(photo_id, embedder, embedding, created_at) VALUES (?, ?, ?, ?)",
        [(pid, embedder_id, to_blob(v), now()) for pid, v in vectors.items()]))


def face_cluster(library, face_ids: list[int]) -> int:
    """A cluster of faces, as clustering would leave it (unnamed)."""
    def write(conn):
        cid = conn.execute("INSERT INTO clusters(kind, created_at) VALUES ('face', ?)", (now(),)).lastrowid
        conn.executemany("UPDATE faces SET cluster_id = ? WHERE id = ?", [(cid, f) for f in face_ids])
        return cid

    return library.db.write(write)


def head_rows(library, concept_id: int) -> dict[int, int | None]:
    """{photo_id: face_id} the heads marked for the concept."""
    return {r["photo_id"]: r["face_id"] for r in library.db.query(
        "SELECT photo_id, face_id FROM occurrences WHERE concept_id = ? AND source = 'head' AND present = 1",
        (concept_id,))}
