"""Personalized captions and answers for photos, stored with their model and concept versions, and searchable.

A photo's caption is made from the concepts in it (the concept_photos view: heads and the user's marks), each
as its learned concept embedding for the VLM in use (`<concepts dir>/<concept id>/<backend>.safetensors`).
The caption job gives a new caption to every photo whose newest caption was made by another model or with
other concept versions (a concept's version, or its embedding file, changed), so re-running does nothing and
retraining one concept re-captions only its photos. Old captions are kept; the newest is shown.

Each photo is stored in its own transaction with its FTS row (library/text.py), so a kill loses at most the
photo in flight, and a resumed job starts from what the database says is missing: no checkpoint needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from .. import config, imaging
from ..library.db import now
from ..library.store import Library, display_path, open_path
from ..library.text import update_photo_text
from ..models.errors import ModelUnavailable
from . import shared_vlm
from .jobs import JobControl
from .settings import load_settings, vlm_options

log = logging.getLogger(__name__)

MAX_SIDE = 1024  # every backend looks at 512 px or less: decoding more is wasted time
BATCH = 8  # photos per generate call in the caption job (bench_caption.py: 1.85x one at a time; 16: 1.94x)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# -- concept versions -----------------------------------------------------------------------------------------
@dataclass
class ConceptState:
    id: int
    name: str
    version: int
    vector_file: str | None  # its embedding for this backend, when trained
    digest: str | None

    @property
    def key(self) -> str:
        """What a caption records for this concept: a new version or a retrained embedding changes it."""
        return f"v{self.version}:{self.digest or 'untrained'}"


def vector_path(root, concept_id: int, backend: str):
    return config.concepts_dir(root) / str(concept_id) / f"{backend}.safetensors"


def concept_states(library: Library, backend: str) -> dict[int, ConceptState]:
    states = {}
    for row in library.db.query("SELECT id, name, version FROM concepts"):
        path = vector_path(library.root, row["id"], backend)
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        except OSError:  # not trained for this backend (yet)
            digest = None
        states[row["id"]] = ConceptState(row["id"], row["name"], row["version"], str(path) if digest else None,
                                         digest)
    return states


def concept_versions(concept_ids, states: dict[int, ConceptState]) -> dict[str, str]:
    return {str(cid): states[cid].key for cid in sorted(concept_ids) if cid in states}


class _Vectors:
    """Concept embeddings loaded once per run; a damaged file means captions without that concept."""

    def __init__(self, states: dict[int, ConceptState], dim: int):
        self.states, self.dim, self._loaded = states, dim, {}

    def for_concepts(self, concept_ids) -> list:
        from ..vlm.concept import ConceptFileError, load_concept_vector

        vectors = []
        for cid in sorted(concept_ids):
            state = self.states.get(cid)
            if state is None or state.vector_file is None:
                continue
            if cid not in self._loaded:
                self._loaded[cid] = self._load(state, load_concept_vector, ConceptFileError)
            if self._loaded[cid] is not None:
                vectors.append(self._loaded[cid])
        return vectors

    def _load(self, state: ConceptState, load, error):
        try:
            vector = load(state.vector_file)
        except error as exc:
            log.warning("%s", exc)
            return None
        if vector.vector.numel() != self.dim:  # trained for another size of model: retraining fixes it
            log.warning("%s: its embedding has %d values, this VLM takes %d; retrain it", state.name,
                        vector.vector.numel(), self.dim)
            return None
        return vector


# -- which photos need a caption ----------------------------------------------------------------------------
def photo_concepts(library: Library) -> dict[int, set[int]]:
    found: dict[int, set[int]] = {}
    for concept_id, photo_id in library.db.query("SELECT concept_id, photo_id FROM concept_photos"):
        found.setdefault(photo_id, set()).add(concept_id)
    return found


def newest_captions(library: Library) -> dict[int, tuple]:
    """photo id -> (backend, model, concept_versions dict) of its newest caption."""
    rows = library.db.query(
        "SELECT c.photo_id, c.backend, c.model, c.concept_versions FROM captions c WHERE c.id = "
        "(SELECT n.id FROM captions n WHERE n.photo_id = c.photo_id ORDER BY n.created_at DESC, n.id DESC LIMIT 1)")
    return {r[0]: (r[1], r[2], _json(r[3], {})) for r in rows}


def stale_photos(library: Library, backend, states: dict[int, ConceptState],
                 concepts: list[int] | None = None, photo_ids: list[int] | None = None) -> tuple[list[int], int]:
    """(photos whose newest caption is missing or from another model or concept versions, photos looked at)."""
    in_photo = photo_concepts(library)
    newest = newest_captions(library)
    ids = [r[0] for r in library.db.query("SELECT id FROM photos WHERE status = 'ok' ORDER BY date DESC, id DESC")]
    if photo_ids is not None:
        wanted = set(photo_ids)
        ids = [i for i in ids if i in wanted]
    if concepts is not None:
        ids = [i for i in ids if in_photo.get(i, set()) & set(concepts)]
    stale = []
    for photo_id in ids:
        want = (backend.name, backend.model_id, concept_versions(in_photo.get(photo_id, ()), states))
        if newest.get(photo_id) != want:
            stale.append(photo_id)
    return stale, len(ids)


# -- the caption job ------------------------------------------------------------------------------------------
def caption_library(library: Library, backend, control: JobControl | None = None, concepts: list[int] | None = None,
                    photo_ids: list[int] | None = None, batch: int = BATCH) -> dict:
    """Caption every photo that needs it; {"captioned", "up_to_date", "errors"}. Cancel raises jobs.Cancelled.

    Photos go `batch` at a time through the VLM (the same greedy captions as one by one); each is still
    stored in its own transaction, so a kill loses at most one batch of work.
    """
    from ..vlm.generate import caption_batch

    states = concept_states(library, backend.name)
    todo, considered = stale_photos(library, backend, states, concepts, photo_ids)
    vectors = _Vectors(states, backend.concept_dim)
    counts = {"captioned": 0, "up_to_date": considered - len(todo), "errors": 0}
    done = 0  # photos stored or given up on: what progress reports (and a cancel stops before the next)
    for start in range(0, len(todo), max(1, batch)):
        if control is not None:
            control.progress(done, len(todo), f"captioning {done + 1} of {len(todo)}")
        ready = []  # (photo id, pixels, concept ids)
        for photo_id in todo[start:start + max(1, batch)]:
            try:
                ready.append((photo_id, _photo_image(library, photo_id), photo_concepts_of(library, photo_id)))
            except imaging.ImageError as exc:  # vanished or damaged since the scan: the next scan records it
                log.info("photo %s not captioned: %s", photo_id, exc.reason)
                counts["errors"] += 1
                done += 1
        with shared_vlm.lane():  # one batch at a time on the shared model
            results = caption_batch(backend, [r[1] for r in ready], [vectors.for_concepts(r[2]) for r in ready])
        for (photo_id, _, in_photo), result in zip(ready, results, strict=True):
            if control is not None:
                control.progress(done, len(todo), f"captioning {done + 1} of {len(todo)}")
            library.db.write(store_caption, photo_id, result, concept_versions(in_photo, states))
            counts["captioned"] += 1
            done += 1
    if control is not None:
        control.progress(len(todo), len(todo), "captions up to date")
    if counts["captioned"]:
        library.db.notify("captions", None)
    return counts


def caption_job(library: Library) -> Callable:
    """The job function for JobQueue kinds: `fn(control, concepts=None, photo_ids=None)`.

    The VLM comes from the settings (vlm_backend, vlm_model, device); without its weights the job raises
    ModelUnavailable, which the app shows as it is. After training a concept, submit it with
    concepts=[that id]: only that concept's photos are looked at, and only changed ones re-captioned.
    """

    def run(control: JobControl, concepts: list[int] | None = None, photo_ids: list[int] | None = None) -> dict:
        from ..vlm.threads import torch_threads

        backend = shared_backend(**library_vlm_options(library))
        with torch_threads(job_threads()):
            return caption_library(library, backend, control, concepts, photo_ids)

    return run


def job_threads() -> int:
    """Torch threads for the caption job: one core is left free, because in the app the job runs in a thread of
    the window's process, and with every core computing the event loop waits for one (benchmarks/bench_ui.py)."""
    return max(1, (os.cpu_count() or 1) - 1)


def photo_concepts_of(library: Library, photo_id: int) -> set[int]:
    return {r[0] for r in library.db.query("SELECT concept_id FROM concept_photos WHERE photo_id = ?", (photo_id,))}


def _photo_image(library: Library, photo_id: int):
    row = library.photo(photo_id)
    return imaging.load_rgb(open_path(row), max_side=MAX_SIDE)


def readable(text: str) -> str:
    """Control characters out (an untrained or damaged model can emit them); line breaks and tabs stay."""
    return _CONTROL.sub("", text).strip()


def store_caption(conn, photo_id: int, result, versions: dict[str, str]) -> int:
    caption_id = conn.execute(
        "INSERT INTO captions(photo_id, text, backend, model, concepts, concept_versions, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (photo_id, readable(result.text), result.backend, result.model or "", json.dumps(result.concepts),
         json.dumps(versions, sort_keys=True), now())).lastrowid
    update_photo_text(conn, photo_id)
    return caption_id


def store_answer(conn, photo_id: int, question: str, result) -> int:
    answer_id = conn.execute(
        "INSERT INTO answers(photo_id, question, answer, backend, model, concepts, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (photo_id, question, readable(result.text), result.backend, result.model or "", json.dumps(result.concepts),
         now())).lastrowid
    update_photo_text(conn, photo_id)
    return answer_id


# -- one photo: caption it or answer a question about it ------------------------------------------------------
def caption_photo(library: Library, photo: int | str | os.PathLike, backend,
                  on_token: Callable[[str], None] | None = None) -> dict:
    """{"caption", "concepts", "backend"} for a library photo (stored) or any image file (not stored)."""
    photo_id, image, concept_ids = _open_photo(library, photo)
    states = concept_states(library, backend.name)
    with shared_vlm.lane():
        result = backend.caption(image, _Vectors(states, backend.concept_dim).for_concepts(concept_ids),
                                 on_token=on_token)
    if photo_id is not None:
        library.db.write(store_caption, photo_id, result, concept_versions(concept_ids, states))
        library.db.notify("captions", photo_id)
    return {"caption": readable(result.text), "concepts": result.concepts, "backend": result.backend, "photo_id": photo_id}


def answer_photo(library: Library, photo: int | str | os.PathLike, question: str, backend,
                 on_token: Callable[[str], None] | None = None) -> dict:
    """{"answer", "concepts", "backend"} for a question about one photo; stored when it is a library photo."""
    if not question or not question.strip():
        raise ValueError("ask a question, like: What is <Alice> doing?")
    photo_id, image, concept_ids = _open_photo(library, photo)
    states = concept_states(library, backend.name)
    with shared_vlm.lane():
        result = backend.answer(image, question.strip(), _Vectors(states, backend.concept_dim).for_concepts(concept_ids),
                                on_token=on_token)
    if photo_id is not None:
        library.db.write(store_answer, photo_id, question.strip(), result)
        library.db.notify("answers", photo_id)
    return {"answer": readable(result.text), "concepts": result.concepts, "backend": result.backend, "photo_id": photo_id}


def _open_photo(library: Library, photo) -> tuple[int | None, object, set[int]]:
    """(photo id or None, pixels, concept ids): a library photo's concepts are known, a new file's are detected."""
    if isinstance(photo, int):
        row = library.photo(photo)
        if row is None:
            raise ValueError(f"there is no photo {photo} in the library")
        return photo, imaging.load_rgb(open_path(row), max_side=MAX_SIDE), photo_concepts_of(library, photo)
    path = os.path.abspath(os.fsdecode(photo))
    row = library.photo_by_path(path)
    if row is not None and row["status"] == "ok":
        return row["id"], imaging.load_rgb(open_path(row), max_side=MAX_SIDE), photo_concepts_of(library, row["id"])
    image = imaging.load_rgb(path, max_side=MAX_SIDE)
    return None, image, _detected(library, image, display_path(path))


def _detected(library: Library, image, path: str) -> set[int]:
    """Run the concept heads on a photo that is not in the library (yet)."""
    import numpy as np

    from ..concepts.detect import detect_image

    try:
        hits = detect_image(library, np.asarray(image))
    except ModelUnavailable as exc:  # no face engine or embedder: a caption without concepts
        log.info("no concepts for %s: %s", path, exc)
        return set()
    names = {h["concept"] for h in hits}
    return {r["id"] for r in library.db.query("SELECT id, name FROM concepts") if r["name"] in names}


# -- the VLM, loaded once per process (shared_vlm) ------------------------------------------------------------
def library_vlm_options(library: Library) -> dict:
    """backend, model, device and caption detail from the settings, and the library's own models folder."""
    return {**vlm_options(load_settings(library.db)), "models_dir": config.models_dir(library.root)}


def shared_backend(backend: str = "smolvlm", model: str | None = None, device: str = "auto", models_dir=None,
                   detail: str | None = None):
    """The process's VLM for these options (shared with training); ModelUnavailable when it is not on disk."""
    return shared_vlm.backend(backend, model, device, models_dir, detail)


def _json(text: str | None, default):
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default
