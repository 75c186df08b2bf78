"""Library set-ups for the head tests: real photos (pip-shipped), real engines, rows as indexing writes them."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from myvlm_desktop.imaging import load_array
from myvlm_desktop.library.db import now, to_blob
from myvlm_desktop.library.scan import scan_library
from myvlm_desktop.people import ops
from tests.conftest import insightface_image, make_jpeg


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


# -- a person with borderline faces (synthetic vectors of dlib's size), for the review queue -----------
DIM = 128
ENGINE = "dlib-resnet_v1"  # dlib's threshold (0.085) applies: scores are 1 - distance / 0.17


def _at(distance: float, axis: int) -> np.ndarray:
    """A unit vector at `distance` (cosine) from Alice's, turned towards `axis`."""
    v = np.zeros(DIM, np.float32)
    v[0], v[axis] = 1.0 - distance, np.sqrt(1.0 - (1.0 - distance) ** 2)
    return v


def _face(vector: np.ndarray, x: float = 10.0):
    return SimpleNamespace(box=(x, 10.0, x + 50.0, 60.0), landmarks=None, score=1.0, embedding=vector)


def make_alice(library, photo_dir):
    """Alice named from one photo; a group photo with her (A) and a look-alike (B); two borderline faces."""
    for i, name in enumerate(("named", "group", "doubt", "likely", "stranger")):
        make_jpeg(photo_dir / f"{name}.jpg", seed=i)
    photos = add_photos(library, photo_dir)
    faces = {
        "named": add_faces(library, photos["named.jpg"], [_face(_at(0.0, 1))], ENGINE)[0],
        "A": add_faces(library, photos["group.jpg"], [_face(_at(0.01, 2))], ENGINE)[0],
        "B": add_faces(library, photos["group.jpg"], [_face(_at(0.04, 3), x=100.0)], ENGINE)[0],
        "doubt": add_faces(library, photos["doubt.jpg"], [_face(_at(0.08, 4))], ENGINE)[0],    # 0.53
        "likely": add_faces(library, photos["likely.jpg"], [_face(_at(0.06, 5))], ENGINE)[0],  # 0.65
        "stranger": add_faces(library, photos["stranger.jpg"], [_face(_at(0.6, 6))], ENGINE)[0],
    }
    concept = ops.name_cluster(library, face_cluster(library, [faces["named"]]), "Alice")["id"]
    return SimpleNamespace(library=library, photos=photos, faces=faces, concept=concept)
