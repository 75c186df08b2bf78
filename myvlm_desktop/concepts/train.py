"""Train a concept's head from what the user named, save it, and retrain it when the concept changes.

A person concept gets a PersonHead over the embeddings of its confirmed faces; a pet or object concept
gets a LinearHead over image embeddings. Every change to a concept's examples bumps concepts.version;
a head saved from another version (or from vectors of another engine) is stale and trained again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from .. import config
from ..imaging import ImageError, load_array
from ..library.db import Database, from_blob, now
from ..library.store import Library, open_path
from ..models.errors import ModelUnavailable
from ..people.ops import concept_members as people_members
from ..vision import augment
from ..vision.boxes import iou
from ..vision.embed import subject_crops
from .engines import embedder_for, face_engine_for
from .linear import TrainConfig, TrainingError, fit_concept_head
from .person import PersonHead, representative_keys
from .store import ConceptFileError, Head, load_head, save_head

log = logging.getLogger(__name__)

HARD_NEGATIVES = 100     # the user's photos most like the concept: what the head must learn to tell apart
SPREAD_NEGATIVES = 50    # plus a spread over the rest, so ordinary photos are covered too (MyVLM used ~150)
MAX_NEGATIVE_KEYS = 256
HEAD_VIEWS = 8           # the photo and 7 augmented views (flip, rotation up to 30 degrees), embedded once
LOAD_SIDE = 768          # decode training photos at most this big: embedders look at a few hundred pixels
PERSON_KIND = "person"
SAME_FACE_IOU = 0.3      # two boxes overlapping this much are one face found twice, not two people
FACE_COLUMNS = "id, photo_id, engine, embedding, x1, y1, x2, y2"

Progress = Callable[[int, int, str], None]


class ConceptNotFound(LookupError):
    """No concept with that name or id."""


# -- which concept, which examples -------------------------------------------------------------------
def concept_row(db: Database, concept: int | str):
    """The concepts row for an id, a name (any case) or an identifier like <Alice>."""
    conn = db.read()
    if isinstance(concept, int) or str(concept).isdigit():
        row = conn.execute("SELECT * FROM concepts WHERE id = ?", (int(concept),)).fetchone()
    else:
        row = conn.execute("SELECT * FROM concepts WHERE name_key(name) = name_key(?) OR identifier = ?",
                           (concept, concept)).fetchone()
    if row is None:
        names = ", ".join(r[0] for r in conn.execute("SELECT name FROM concepts ORDER BY name LIMIT 8"))
        raise ConceptNotFound(f"no concept {concept!r} (known: {names or 'none yet: name a cluster first'})")
    return row


def concept_members(db: Database, concept_id: int) -> dict[str, set[int]]:
    """The concept's examples: face_ids, photo_ids, rejected_face_ids, rejected_photo_ids.

    What naming means is the people module's (people.ops.concept_members); a user's own "in this photo" /
    "not in this photo" marks (occurrences by the user) count as well.
    """
    members = {k: set(v) for k, v in people_members(db, concept_id).items()}
    for row in db.query("SELECT photo_id, face_id, present FROM occurrences WHERE concept_id = ? "
                        "AND source = 'user'", (concept_id,)):
        if row["present"]:
            members["photo_ids"].add(row["photo_id"])
            if row["face_id"] is not None:
                members["face_ids"].add(row["face_id"])
        else:
            members["rejected_photo_ids"].add(row["photo_id"])
    members["face_ids"] -= members["rejected_face_ids"]
    members["photo_ids"] -= members["rejected_photo_ids"]
    return members


# -- heads on disk ------------------------------------------------------------------------------------
def head_folder(library: Library, concept_id: int) -> Path:
    return config.concepts_dir(library.root) / f"{concept_id}"


def load_concept_head(library: Library, concept_id: int) -> Head | None:
    """The saved head (None if never trained); ConceptFileError if its files are damaged."""
    return load_head(head_folder(library, concept_id))


def _saved_head(library: Library, concept_id: int) -> Head | None:
    """The saved head; a damaged one is retrained (a head is derived from the library, nothing is lost)."""
    try:
        return load_concept_head(library, concept_id)
    except ConceptFileError as exc:
        log.warning("%s; training it again", exc)
        return None


def is_stale(concept, head: Head | None) -> bool:
    """A head is stale when missing or trained from another version of the concept's examples."""
    return head is None or head.meta.get("concept_version") != concept["version"]


def _engine_moved(db: Database, concept, head: Head) -> bool:
    """The examples now mostly have vectors of another engine (the library was indexed again with it)."""
    engine = examples_engine(db, concept, concept_members(db, concept["id"]))
    return engine is not None and engine != head.meta.get("engine")


def examples_engine(db: Database, concept, members: dict[str, set[int]]) -> str | None:
    """The face engine / image embedder most of the concept's examples have vectors from (after a model
    change both may be stored: the head uses one engine's vectors only)."""
    if concept["kind"] == PERSON_KIND:
        engines = [r["engine"] for r in _face_rows(db, members["face_ids"]) + _faces_in_picked_photos(db, members)]
    else:
        engines = [r["embedder"] for r in _rows_by_id(
            db, "SELECT embedder FROM image_embeddings WHERE photo_id IN ({})", _example_photos(db, members))]
    return Counter(engines).most_common(1)[0][0] if engines else None


# -- training -----------------------------------------------------------------------------------------
def train_concept_head(library: Library, concept: int | str, seed: int = 0, face_engine=None,
                       embedder=None) -> Head:
    """Train and save the concept's head; `face_engine` / `embedder` reuse already loaded models."""
    row = concept_row(library.db, concept)
    members = concept_members(library.db, row["id"])
    if row["kind"] == PERSON_KIND:
        model, meta = _person_head(library.db, row, members, face_engine)
    else:
        model, meta = _linear_head(library, row, members, embedder, seed)
    meta.update(concept_id=row["id"], concept=row["name"], concept_kind=row["kind"],
                concept_version=row["version"], trained_at=now())
    head = save_head(head_folder(library, row["id"]), Head(model, meta))
    log.info("trained the %s head of %s (%s)", head.kind, row["name"], head.version)
    return head


def ensure_heads(library: Library, concepts: Iterable[int | str] | None = None, force: bool = False,
                 seed: int = 0, progress: Progress | None = None, face_engine=None,
                 embedder=None) -> tuple[dict[int, Head], dict[int, str]]:
    """Fresh heads for the given concepts (default: all), training the stale ones.

    Returns (heads by concept id, problems by concept id): a concept that cannot have a head yet (no
    examples, a model missing) is reported, not raised, so one concept never blocks the others.
    """
    rows = ([concept_row(library.db, c) for c in concepts] if concepts is not None
            else library.db.query("SELECT * FROM concepts ORDER BY id"))
    heads: dict[int, Head] = {}
    problems: dict[int, str] = {}
    for done, row in enumerate(rows):
        if progress:
            progress(done, len(rows), f"head of {row['name']}")
        try:
            head = None if force else _saved_head(library, row["id"])
            if is_stale(row, head) or _engine_moved(library.db, row, head):
                head = train_concept_head(library, row["id"], seed, face_engine, embedder)
            heads[row["id"]] = head
        except (TrainingError, ModelUnavailable) as exc:
            problems[row["id"]] = str(exc)
    if progress:
        progress(len(rows), len(rows), "heads ready")
    return heads, problems


def _person_head(db: Database, concept, members: dict[str, set[int]], face_engine) -> tuple[PersonHead, dict]:
    named = _face_rows(db, members["face_ids"])
    picked = _faces_in_picked_photos(db, members)
    if not named and not picked:
        raise TrainingError(f"{concept['name']} has no confirmed faces yet: name a face cluster")
    engine_id = examples_engine(db, concept, members)
    threshold = _face_threshold(engine_id, face_engine)
    positives = [r for r in named if r["engine"] == engine_id]
    positives += _faces_of_the_person(positives, [r for r in picked if r["engine"] == engine_id], threshold)
    if not positives:
        raise TrainingError(f"no face of {concept['name']} is known yet: pick a photo where they are alone")
    keys = np.stack([from_blob(r["embedding"]) for r in positives])
    chosen = representative_keys(keys)
    negatives = [r for r in _negative_faces(db, members, positives, concept["id"]) if r["engine"] == engine_id]
    neg = np.stack([from_blob(r["embedding"]) for r in negatives]) if negatives else np.zeros((0, keys.shape[1]))
    neg_chosen = representative_keys(neg, MAX_NEGATIVE_KEYS) if len(neg) else np.arange(0)
    meta = {"engine": engine_id, "threshold": threshold,
            "training": {"positive_face_ids": [positives[i]["id"] for i in chosen],
                         "positive_faces": len(positives),
                         "negative_face_ids": [negatives[i]["id"] for i in neg_chosen]}}
    return PersonHead(keys[chosen], threshold, neg[neg_chosen]), meta


def _faces_in_picked_photos(db: Database, members: dict[str, set[int]]) -> list:
    """Faces of photos the user picked for a person (not faces they named, hid or rejected)."""
    rows = _rows_by_id(db, f"SELECT {FACE_COLUMNS} FROM faces WHERE hidden = 0 AND photo_id IN ({{}})",
                       members["photo_ids"])
    named_photos = {r["photo_id"] for r in _face_rows(db, members["face_ids"])}
    return [r for r in rows if r["photo_id"] not in named_photos and r["id"] not in members["rejected_face_ids"]]


def _faces_of_the_person(known: list, picked: list, threshold: float) -> list:
    """Which face of each picked photo is the person (MyVLM: compare with photos where they are alone).

    A photo with one face gives that face; in a group photo, the face nearest the faces known so far,
    if it is within the threshold; a group photo with nothing to compare with is left out.
    """
    by_photo: dict[int, list] = {}
    for r in picked:
        by_photo.setdefault(r["photo_id"], []).append(r)
    found = list(known) + [faces[0] for faces in by_photo.values() if len(faces) == 1]
    chosen = [faces[0] for faces in by_photo.values() if len(faces) == 1]
    if not found:
        return chosen
    head = PersonHead(np.stack([from_blob(r["embedding"]) for r in found]), threshold)
    for faces in (f for f in by_photo.values() if len(f) > 1):
        best = head.best(np.stack([from_blob(r["embedding"]) for r in faces]))
        if best is not None:
            chosen.append(faces[best.index])
    return chosen


def _face_rows(db: Database, face_ids: Iterable[int]) -> list:
    return _rows_by_id(db, f"SELECT {FACE_COLUMNS} FROM faces WHERE id IN ({{}})", face_ids)


def _negative_faces(db: Database, members: dict[str, set[int]], positives: list, concept_id: int) -> list:
    """Faces that are not the concept: those the user rejected, every face of photos the user said it is
    not in, the other faces of the concept's own photos (a person appears once in a photo), and the faces
    of the other people the user named."""
    rows = _face_rows(db, members["rejected_face_ids"])
    rows += _rows_by_id(db, f"SELECT {FACE_COLUMNS} FROM faces WHERE photo_id IN ({{}})", members["rejected_photo_ids"])
    rows += _companions(db, positives)
    rows += _other_people(db, concept_id)
    seen, unique = {r["id"] for r in positives} | set(members["face_ids"]), []
    for r in rows:
        if r["id"] not in seen:
            seen.add(r["id"])
            unique.append(r)
    return unique


def _other_people(db: Database, concept_id: int) -> list:
    """The faces of the other people the user named: a face nearer one of them than this person is theirs.
    (A later change to them does not retrain this head; its negatives are still true negatives.)"""
    columns = ", ".join(f"f.{c.strip()}" for c in FACE_COLUMNS.split(","))
    return db.query(f"SELECT {columns} FROM faces f JOIN clusters c ON c.id = f.cluster_id "
                    "JOIN concepts k ON k.id = c.concept_id WHERE k.kind = ? AND k.id != ? AND f.hidden = 0 "
                    "ORDER BY f.id", (PERSON_KIND, concept_id))


def _companions(db: Database, positives: list) -> list:
    """The other people in the concept's photos; a second box on the concept's own face is not one."""
    boxes: dict[int, list] = {}
    for r in positives:
        boxes.setdefault(r["photo_id"], []).append(_box(r))
    rows = _rows_by_id(db, f"SELECT {FACE_COLUMNS} FROM faces WHERE photo_id IN ({{}})", boxes)
    return [r for r in rows if max(iou(_box(r), b) for b in boxes[r["photo_id"]]) < SAME_FACE_IOU]


def _box(row) -> tuple[float, float, float, float]:
    return row["x1"], row["y1"], row["x2"], row["y2"]


def _face_threshold(engine_id: str, face_engine) -> float:
    engine = face_engine if face_engine is not None and face_engine.engine_id == engine_id else None
    engine = engine or face_engine_for(engine_id)
    return float(engine.threshold)


def _linear_head(library: Library, concept, members: dict[str, set[int]], embedder, seed: int):
    db = library.db
    photo_ids = _example_photos(db, members)
    if not photo_ids:
        raise TrainingError(f"{concept['name']} has no photos yet: name an image cluster or mark a photo")
    embedder_id = examples_engine(db, concept, members) or getattr(embedder, "engine_id", None)
    if embedder_id is None:
        raise TrainingError("the concept's photos have no image embeddings yet: index the library first")
    if embedder is None or embedder.engine_id != embedder_id:
        embedder = _optional_embedder(embedder_id)
    pos, groups = _positive_views(library, photo_ids, embedder, embedder_id)
    # photos this concept's head already found are likely the concept, unnamed: never teach them as "not"
    found = {r[0] for r in db.query("SELECT photo_id FROM occurrences WHERE concept_id = ? AND source = 'head' "
                                    "AND present = 1", (concept["id"],))}
    neg, negative_ids = _hard_negatives(db, embedder_id, pos[_originals(groups)], set(photo_ids) | found,
                                        members["rejected_photo_ids"])
    cfg = TrainConfig(seed=seed)
    head = fit_concept_head(pos, neg, groups, cfg)
    meta = {"engine": embedder_id, "mode": "prototypes" if head.prototypes is not None else "linear",
            "training": {"positive_photo_ids": sorted(set(groups.tolist())), "positive_views": len(pos),
                         "augmented": embedder is not None, "negative_photo_ids": negative_ids,
                         **cfg.as_dict()}}
    return head, meta


def _example_photos(db: Database, members: dict[str, set[int]]) -> list[int]:
    """A pet's or object's photos: its image clusters' and marked photos (and a face cluster's, if named so)."""
    face_photos = {r["photo_id"] for r in _face_rows(db, members["face_ids"])}
    return sorted((members["photo_ids"] | face_photos) - members["rejected_photo_ids"])


def _optional_embedder(embedder_id: str):
    try:
        return embedder_for(embedder_id)
    except ModelUnavailable as exc:  # the stored vectors still train a head, just without augmented views
        log.warning("training without augmentation: %s", exc)
        return None


def _positive_views(library: Library, photo_ids: list[int], embedder, embedder_id: str):
    """Embeddings of each positive photo's augmented views (stored vector only if it cannot be read)."""
    stored = _stored_embeddings(library.db, embedder_id, photo_ids)
    rows, groups = [], []
    for photo_id in photo_ids:
        views = _embedded_views(library, photo_id, embedder)
        if views is None and photo_id in stored:
            views = stored[photo_id][None, :]
        if views is not None:
            rows.append(views)
            groups += [photo_id] * len(views)
    if not rows:
        raise TrainingError("none of the concept's photos can be read or has an image embedding")
    return np.concatenate(rows).astype(np.float32), np.array(groups)


def _embedded_views(library: Library, photo_id: int, embedder) -> np.ndarray | None:
    if embedder is None:
        return None
    photo = library.photo(photo_id)
    try:
        rgb = load_array(open_path(photo), max_side=LOAD_SIDE)
    except ImageError as exc:
        log.warning("photo %s left out of augmentation: %s", photo_id, exc)
        return None
    return np.asarray(embedder.embed(training_views(rgb, seed=photo_id)), np.float32)


def training_views(rgb: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """What a pet or object head learns from one photo: its augmented views (the original first), then
    crops around the likely subject, which is rarely the whole frame: the centre and four corners."""
    return augment.array_views(rgb, HEAD_VIEWS, seed=seed) + subject_crops(rgb)


def _originals(groups: np.ndarray) -> np.ndarray:
    """Row index of each photo's first view (the unaugmented one)."""
    _, first = np.unique(groups, return_index=True)
    return np.sort(first)


def _hard_negatives(db: Database, embedder_id: str, positives: np.ndarray, concept_photos: set[int],
                    rejected_photos: set[int]):
    """The user's other photos nearest the concept first, a spread of the rest, and every rejected photo."""
    rows = db.query("SELECT e.photo_id, e.embedding FROM image_embeddings e JOIN photos p ON p.id = e.photo_id "
                    "WHERE e.embedder = ? AND p.status = 'ok' ORDER BY e.photo_id", (embedder_id,))
    excluded = concept_photos | rejected_photos
    candidates = [r for r in rows if r["photo_id"] not in excluded]
    chosen = select_negatives(
        np.stack([from_blob(r["embedding"]) for r in candidates]) if candidates else np.zeros((0, 1)), positives)
    ids = [candidates[i]["photo_id"] for i in chosen]
    rejected = _stored_embeddings(db, embedder_id, rejected_photos)
    ids += sorted(rejected)
    if not ids:
        raise TrainingError("a pet or object head needs photos that are not the concept: add more photos")
    by_id = {r["photo_id"]: from_blob(r["embedding"]) for r in candidates} | rejected
    return np.stack([by_id[i] for i in ids]), ids


def select_negatives(candidates: np.ndarray, positives: np.ndarray, hard: int = HARD_NEGATIVES,
                     spread: int = SPREAD_NEGATIVES) -> list[int]:
    """Indices of the `hard` candidates nearest any positive, then `spread` evenly spaced over the rest."""
    if len(candidates) == 0:
        return []
    similarity = (candidates @ positives.T).max(axis=1)
    order = np.argsort(-similarity, kind="stable")
    rest = order[hard:]
    picks = rest[np.linspace(0, len(rest) - 1, min(spread, len(rest))).round().astype(int)] if len(rest) else rest
    return sorted(set(order[:hard].tolist()) | set(picks.tolist()))


def _stored_embeddings(db: Database, embedder_id: str, photo_ids: Iterable[int]) -> dict[int, np.ndarray]:
    rows = _rows_by_id(db, "SELECT photo_id, embedding FROM image_embeddings WHERE embedder = ? "
                       "AND photo_id IN ({})", photo_ids, prefix=(embedder_id,))
    return {r["photo_id"]: from_blob(r["embedding"]) for r in rows}


def _rows_by_id(db: Database, sql: str, ids: Iterable[int], prefix: tuple = ()) -> list:
    """Run `sql` with its IN ({}) list filled in chunks (SQLite caps the number of parameters)."""
    ids = sorted(ids)
    rows = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows += db.query(sql.format(",".join("?" * len(chunk))), (*prefix, *chunk))
    return rows
