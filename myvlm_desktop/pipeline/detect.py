"""The detection job: train the heads whose concept changed, then run every head over every photo.

Each head's verdicts replace its previous ones in `occurrences` (source 'head'), so a retrained head
never leaves stale marks behind. The user always wins: a face or photo the user rejected for the concept,
a photo the user said it is not in, and a face the user put under another name are never marked.
Heads run on the vectors already stored by indexing (faces, image_embeddings), so a pass over the whole
library is a few matrix products, not a pass over the pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..concepts.detect import detect_image
from ..concepts.linear import PRESENT_AT
from ..concepts.person import one_per_photo
from ..concepts.store import Head
from ..concepts.train import concept_members, ensure_heads
from ..library.db import Database, from_blob, now
from ..library.store import Library
from ..library.text import update_photo_text
from .jobs import JobControl

__all__ = ["detect_image", "detect_job", "detect_library"]

CHUNK = 20000  # vectors scored at a time: bounds memory on libraries with hundreds of thousands of faces

Progress = Callable[[int, int, str], None]


def detect_library(library: Library, concepts: Iterable[int | str] | None = None, force: bool = False,
                   progress: Progress | None = None, face_engine=None, embedder=None) -> dict:
    """Train stale heads and write their occurrences; returns {"marked": {name: photos}, "problems": {...}}."""
    # one progress bar for both halves: training the stale heads, then finding each concept
    half = (lambda done, total, message: progress(done, 2 * total, message)) if progress else None
    heads, problems = ensure_heads(library, concepts, force=force, progress=half,
                                   face_engine=face_engine, embedder=embedder)
    total = len(heads) + len(problems)
    marked, cache = {}, {}
    for done, (concept_id, head) in enumerate(heads.items()):
        if progress:
            progress(total + done, 2 * total, f"finding {head.meta.get('concept')}")
        rows = occurrences_for(library.db, concept_id, head, cache)
        library.db.write(_replace_head_rows, concept_id, rows, head.version)
        marked[head.meta.get("concept")] = len(rows)
    if progress:
        progress(2 * total, 2 * total, "detection done")
    library.db.notify("occurrences", sorted(heads))
    names = {r["id"]: r["name"] for r in library.db.query("SELECT id, name FROM concepts")}
    return {"marked": marked, "problems": {names.get(k, str(k)): v for k, v in problems.items()}}


def detect_job(library: Library) -> Callable:
    """The job function for JobQueue kinds: `fn(control, concepts=None, force=False)`."""

    def run(control: JobControl, concepts: list | None = None, force: bool = False) -> dict:
        return detect_library(library, concepts, force, progress=control.progress)

    return run


@dataclass
class Vectors:
    """One engine's stored vectors over the library (photos with status ok), read once per detection pass."""

    ids: np.ndarray        # face ids for faces, photo ids for image embeddings
    photo_ids: np.ndarray
    matrix: np.ndarray     # (n, dim) float32


def occurrences_for(db: Database, concept_id: int, head: Head, cache: dict | None = None) -> list[tuple]:
    """(photo_id, face_id, score) for every photo the head marks, the user's decisions applied.

    `cache` keeps the vectors read for one head for the next heads of the same engine.
    """
    cache = {} if cache is None else cache
    key = (head.kind, head.meta["engine"])
    if key not in cache:
        cache[key] = _face_vectors(db, key[1]) if head.kind == "person" else _photo_vectors(db, key[1])
    vectors, blocked = cache[key], _user_blocks(db, concept_id)
    keep = ~np.isin(vectors.photo_ids, list(blocked["photos"]))
    if head.kind == "person":
        keep &= ~np.isin(vectors.ids, list(blocked["faces"]))
    rows = []
    for start in range(0, len(keep), CHUNK):
        part = np.flatnonzero(keep[start:start + CHUNK]) + start
        if head.kind == "person":
            _, score, present = head.model.verdicts(vectors.matrix[part])
        else:
            score = head.model.scores(vectors.matrix[part])
            present = score >= PRESENT_AT
        rows += [(int(vectors.photo_ids[i]), int(vectors.ids[i]) if head.kind == "person" else None, float(s))
                 for i, s in zip(part[present], score[present])]
    # one person per photo: the best face is marked, the others wait in the review queue
    return one_per_photo(rows)[0]


def _face_vectors(db: Database, engine: str) -> Vectors:
    rows = db.query("SELECT f.id, f.photo_id, f.embedding FROM faces f JOIN photos p ON p.id = f.photo_id "
                    "WHERE f.engine = ? AND f.hidden = 0 AND p.status = 'ok' ORDER BY f.id", (engine,))
    return _vectors([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def _photo_vectors(db: Database, embedder: str) -> Vectors:
    rows = db.query("SELECT e.photo_id, e.embedding FROM image_embeddings e JOIN photos p ON p.id = e.photo_id "
                    "WHERE e.embedder = ? AND p.status = 'ok' ORDER BY e.photo_id", (embedder,))
    return _vectors([r[0] for r in rows], [r[0] for r in rows], [r[1] for r in rows])


def _vectors(ids: list, photo_ids: list, blobs: list) -> Vectors:
    matrix = np.stack([from_blob(b) for b in blobs]) if blobs else np.zeros((0, 1), np.float32)
    return Vectors(np.array(ids, np.int64), np.array(photo_ids, np.int64), matrix)


def _user_blocks(db: Database, concept_id: int) -> dict[str, set[int]]:
    """Faces and photos the head must leave alone because the user decided otherwise."""
    members = concept_members(db, concept_id)
    other_names = {r[0] for r in db.query(
        "SELECT f.id FROM faces f JOIN clusters c ON c.id = f.cluster_id WHERE f.assigned_by = 'user' "
        "AND c.concept_id IS NOT NULL AND c.concept_id != ?", (concept_id,))}
    return {"faces": members["rejected_face_ids"] | other_names, "photos": members["rejected_photo_ids"]}


def _replace_head_rows(conn, concept_id: int, rows: list[tuple], head_version: str) -> None:
    before = {r[0] for r in conn.execute(
        "SELECT photo_id FROM occurrences WHERE concept_id = ? AND source = 'head'", (concept_id,))}
    conn.execute("DELETE FROM occurrences WHERE concept_id = ? AND source = 'head'", (concept_id,))
    conn.executemany(
        "INSERT INTO occurrences(photo_id, concept_id, face_id, score, source, present, head_version, created_at) "
        "VALUES (?, ?, ?, ?, 'head', 1, ?, ?)",
        [(photo_id, concept_id, face_id, score, head_version, now()) for photo_id, face_id, score in rows])
    for photo_id in before.symmetric_difference(r[0] for r in rows):  # word search knows who is in it too
        update_photo_text(conn, photo_id)
