"""The review queue: "Is this Rex?" for the detections a head is least sure of, answered Yes / No / Skip.

A head's borderline verdicts (score within BAND of the 0.5 cut-off) and the second faces of a photo where
two faces matched one person (a person appears once in a photo: the better match is kept, the other is
asked about) are listed closest to the cut-off first: those answers move the head the most.

Each answer is a people operation (the operation log makes it undoable, as every user decision):
- a face, Yes: it joins the person's face cluster; No: "this face is not <Alice>".
- a photo (pets, objects), Yes: the photo joins the concept's photos; No: "<Rex> is not in this photo".
Skip leaves no trace. After answers, `retrain` trains the head again and rewrites its detections; the GUI
runs it off the interface thread, and other modules (retrain after naming) call the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..library.db import from_blob
from ..library.store import Library
from ..people import ops
from .person import one_per_photo
from .train import PERSON_KIND, concept_members, concept_row, ensure_heads

BAND = 0.2        # scores in [0.5 - BAND, 0.5 + BAND] are worth asking about
QUEUE_LIMIT = 50  # a review session is short; the next one sees the retrained head's doubts
ANSWERS = ("yes", "no", "skip")


@dataclass(frozen=True)
class ReviewItem:
    concept_id: int
    photo_id: int
    face_id: int | None      # None for pet and object concepts: the whole photo is asked about
    score: float             # the head's score, 0.5 at its cut-off
    reason: str              # "borderline" or "second face" (another face in the photo matched better)
    box: tuple[float, float, float, float] | None = None

    @property
    def doubt(self) -> float:
        """Distance from the cut-off: the queue asks the smallest first."""
        return abs(self.score - 0.5)


def review_queue(library: Library, concept: int | str, limit: int = QUEUE_LIMIT) -> list[ReviewItem]:
    """The detections of `concept` worth a user's answer, closest to the cut-off first.

    Trains the head first when it is stale; a concept that cannot have a head yet has an empty queue.
    """
    row = concept_row(library.db, concept)
    heads, _problems = ensure_heads(library, [row["id"]])
    head = heads.get(row["id"])
    if head is None:
        return []
    decided = _decided(library, row["id"])
    if head.kind == "person":
        items = _face_items(library, row["id"], head, decided)
    else:
        items = _photo_items(library, row["id"], head, decided)
    return sorted(items, key=lambda item: (item.doubt, item.photo_id, item.face_id or 0))[:limit]


def _decided(library: Library, concept_id: int) -> dict[str, set[int]]:
    """Faces and photos whose answer the user already gave (for this concept or by naming them otherwise)."""
    members = concept_members(library.db, concept_id)
    named_elsewhere = {r[0] for r in library.db.query(
        "SELECT f.id FROM faces f JOIN clusters c ON c.id = f.cluster_id WHERE f.assigned_by = 'user' "
        "AND c.concept_id IS NOT NULL AND c.concept_id != ?", (concept_id,))}
    return {"faces": members["face_ids"] | members["rejected_face_ids"] | named_elsewhere,
            "photos": members["photo_ids"] | members["rejected_photo_ids"]}


def _face_items(library: Library, concept_id: int, head, decided: dict[str, set[int]]) -> list[ReviewItem]:
    rows = [r for r in library.db.query(
        "SELECT f.id, f.photo_id, f.embedding, f.x1, f.y1, f.x2, f.y2 FROM faces f JOIN photos p ON p.id = f.photo_id "
        "WHERE f.engine = ? AND f.hidden = 0 AND p.status = 'ok' ORDER BY f.id", (head.meta["engine"],))
        if r["id"] not in decided["faces"] and r["photo_id"] not in decided["photos"]]
    if not rows:
        return []
    _distance, score, present = head.model.verdicts(np.stack([from_blob(r["embedding"]) for r in rows]))
    by_id = {r["id"]: r for r in rows}
    matched = [(r["photo_id"], r["id"], float(s)) for r, s, p in zip(rows, score, present) if p]
    _kept, second = one_per_photo(matched)
    items = [_face_item(concept_id, by_id[face_id], s, "second face") for _photo, face_id, s in second]
    asked = {item.face_id for item in items}
    items += [_face_item(concept_id, r, float(s), "borderline") for r, s in zip(rows, score)
              if abs(s - 0.5) <= BAND and r["id"] not in asked]
    return items


def _face_item(concept_id: int, row, score: float, reason: str) -> ReviewItem:
    return ReviewItem(concept_id, row["photo_id"], row["id"], round(score, 4), reason,
                      (row["x1"], row["y1"], row["x2"], row["y2"]))


def _photo_items(library: Library, concept_id: int, head, decided: dict[str, set[int]]) -> list[ReviewItem]:
    rows = [r for r in library.db.query(
        "SELECT e.photo_id, e.embedding FROM image_embeddings e JOIN photos p ON p.id = e.photo_id "
        "WHERE e.embedder = ? AND p.status = 'ok' ORDER BY e.photo_id", (head.meta["engine"],))
        if r["photo_id"] not in decided["photos"]]
    if not rows:
        return []
    scores = head.model.scores(np.stack([from_blob(r["embedding"]) for r in rows]))
    return [ReviewItem(concept_id, r["photo_id"], None, round(float(s), 4), "borderline")
            for r, s in zip(rows, scores) if abs(s - 0.5) <= BAND]


# -- answers -------------------------------------------------------------------------------------------
def answer(library: Library, item: ReviewItem, verdict: str) -> dict | None:
    """Record the user's answer as an undoable people operation; None for "skip" (nothing is recorded)."""
    if verdict not in ANSWERS:
        raise ValueError(f"an answer is one of {', '.join(ANSWERS)}, not {verdict!r}")
    if verdict == "skip":
        return None
    concept = concept_row(library.db, item.concept_id)
    if item.face_id is not None:
        if verdict == "no":
            return ops.reject_face(library, item.face_id, concept["id"])
        cluster = library.db.query("SELECT id FROM clusters WHERE concept_id = ? AND kind = 'face' ORDER BY id "
                                   "LIMIT 1", (concept["id"],))
        if cluster:
            return ops.move_face(library, item.face_id, cluster[0]["id"])
    elif verdict == "no":
        return ops.reject_photo(library, item.photo_id, concept["id"])
    # a pet's or object's photo, or a person known from picked photos only: the photo joins the concept
    return ops.create_concept_from_photos(library, concept["name"], concept["kind"], [item.photo_id])


def retrain(library: Library, concepts: list[int | str] | None = None) -> dict:
    """Train the heads of `concepts` (default: all) whose examples changed and rewrite their detections.

    Cheap when nothing changed (fresh heads are kept). Returns detect_library's summary.
    """
    from ..pipeline.detect import detect_library  # the detection pass lives with the other jobs

    return detect_library(library, concepts)


class ReviewSession:
    """One "Review <Rex>" sitting: a queue, a position, and the answers given (Y / N / arrows in the GUI)."""

    def __init__(self, library: Library, concept: int | str, limit: int = QUEUE_LIMIT):
        self.library = library
        self.concept = concept_row(library.db, concept)
        self.items = review_queue(library, self.concept["id"], limit)
        self.position = 0
        self.answers: dict[int, str] = {}   # item index -> the answer given
        self.operations: list[int] = []     # item indexes answered by an operation, newest last

    @property
    def is_person(self) -> bool:
        return self.concept["kind"] == PERSON_KIND

    def current(self) -> ReviewItem | None:
        return self.items[self.position] if 0 <= self.position < len(self.items) else None

    def move(self, step: int) -> ReviewItem | None:
        self.position = min(max(0, self.position + step), len(self.items))
        return self.current()

    def answer(self, verdict: str) -> ReviewItem | None:
        """Answer the current item and go to the next; returns the next item (None at the end)."""
        item = self.current()
        if item is None:
            return None
        if self.answers.get(self.position, "skip") != "skip":
            raise ValueError("this one is answered already: undo to change the answer")
        if answer(self.library, item, verdict) is not None:
            self.operations.append(self.position)
        self.answers[self.position] = verdict
        return self.move(1)

    def undo(self) -> ReviewItem | None:
        """Take back the newest answer (through the operation log) and show that item again."""
        if not self.operations:
            raise ValueError("no answer to undo")
        ops.undo(self.library)
        self.position = self.operations.pop()
        self.answers.pop(self.position, None)
        return self.current()

    @property
    def changed(self) -> bool:
        """Some answer changed the concept's examples: the head should be retrained."""
        return bool(self.operations)
