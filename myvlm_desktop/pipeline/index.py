"""The index stage: faces and an image embedding for every photo the current models have not processed.

Each photo is decoded once (longest side DECODE_SIDE, EXIF orientation applied) for both stages. Work runs
on `workers` threads when the engines release the GIL (onnxruntime), and on as many worker processes for
dlib, whose Python bindings hold the GIL (measured: two threads run no faster than one). Results are
written by the library's writer in batches; `index_state` records what each photo was processed with
(errors included), so a photo is never redone by the same engine, and a cancelled or crashed run resumes
where it stopped.

When the face engine changes, or a photo's content does, its faces are recomputed and every user decision
attached to an old face (a named or user-chosen cluster, hidden, "not X" rejections, occurrences, cluster
covers) moves to the new face that overlaps it with IoU > 0.5. An old face carrying a decision that no new
face overlaps is kept, so nothing the user named is lost. A photo keeps one image embedding: the current
embedder's replaces another's.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np

from .. import config
from ..imaging import ImageError, load_array
from ..library.db import now, to_blob
from ..library.store import Library, open_path
from ..models.errors import ModelUnavailable
from ..vision.boxes import match_boxes
from ..vision.embed import get_image_embedder
from ..vision.faces import Face, get_face_engine

log = logging.getLogger(__name__)

DECODE_SIDE = 2048   # detection scales down further; alignment and the embedder get this much detail
BATCH = 16           # photos per write transaction
PROCESS_MIN = 8      # fewer photos than this are not worth starting worker processes for


@dataclass
class Task:
    photo_id: int
    path: str | bytes
    label: str
    width: int | None
    faces: bool
    embedding: bool


@dataclass
class Outcome:
    task: Task
    faces: list[Face] | None = None
    embedding: np.ndarray | None = None
    error: str | None = None


@dataclass
class PhotoWorker:
    """Decode one photo and run the engines on it; the same object serves threads and worker processes."""

    face_engine: object | None
    embedder: object | None

    def __call__(self, task: Task) -> Outcome:
        try:
            rgb = load_array(task.path, DECODE_SIDE)
        except ImageError as exc:
            return Outcome(task, error=exc.reason)
        try:
            faces = self.face_engine.analyze(rgb) if task.faces and self.face_engine else None
            vector = self.embedder.describe(rgb) if task.embedding and self.embedder else None
        except Exception as exc:  # noqa: BLE001 - one odd photo must not stop the library's index
            return Outcome(task, error=f"{type(exc).__name__}: {exc}")
        scale = task.width / rgb.shape[1] if task.width else 1.0
        return Outcome(task, [_scaled(f, scale) for f in faces] if faces is not None else None, vector)


def _scaled(face: Face, scale: float) -> Face:
    """The face in the photo's full-size (oriented) pixels, the frame the faces table stores."""
    if scale == 1.0:
        return face
    return Face(tuple(v * scale for v in face.box), face.landmarks * scale, face.score, face.embedding)


# -- the stage ----------------------------------------------------------------------------------------------
def index_library(library: Library, control=None, face_engine: str = "auto", embedder: str = "sscd",
                  workers: int = 2) -> dict:
    """Index every photo not yet processed by the current engines; returns counts and the engine ids.

    `control` (a JobControl or a stage control) gets `progress(done, total, message)` after each photo;
    that call pauses and cancels. A model that cannot be loaded skips its half of the stage (the reason
    is in the result); when neither can be loaded, ModelUnavailable is raised.
    """
    workers = max(1, int(workers))
    models_dir = config.models_dir(library.root)
    engine, engine_note = _load_face_engine(face_engine, models_dir)
    image_embedder, embedder_note = _load_embedder(embedder, models_dir)
    if engine is None and image_embedder is None:
        raise ModelUnavailable("index", "neither a face engine nor an image embedder can be loaded",
                               f"{engine_note} {embedder_note}")
    engine_id = engine.engine_id if engine else None
    embedder_id = image_embedder.engine_id if image_embedder else None
    run = _Run(library, engine_id, embedder_id, pending(library, engine_id, embedder_id),
               control.progress if control is not None else None)
    pool = _executor(engine, image_embedder, models_dir, workers, len(run.tasks))
    try:
        work = _run_in_process if isinstance(pool, ProcessPoolExecutor) else PhotoWorker(engine, image_embedder)
        run.consume(pool, work, run.tasks, 2 * workers)
    except BrokenProcessPool:  # worker processes could not start (a script without a __main__ guard)
        log.warning("index: worker processes failed to start; going on in threads")
        rest = [t for t in run.tasks if t.photo_id not in run.done]
        run.consume(ThreadPoolExecutor(workers, thread_name_prefix="index"), PhotoWorker(engine, image_embedder),
                    rest, 2 * workers)
    counts = run.counts
    if counts["indexed"] or counts["errors"]:
        library.db.notify("faces", dict(counts))
    skipped = {k: v for k, v in (("faces", engine_note), ("embedding", embedder_note)) if v}
    return {**{k: counts[k] for k in ("photos", "indexed", "faces", "embeddings", "errors",
                                      "decisions_moved", "old_faces_kept")},
            "face_engine": engine_id, "embedder": embedder_id, "skipped": skipped}


class _Run:
    """One pass of the stage: feeds the pool, writes results in batches, reports progress."""

    def __init__(self, library: Library, engine_id, embedder_id, tasks: list[Task], report):
        self.library, self.engine_id, self.embedder_id = library, engine_id, embedder_id
        self.tasks, self.report = tasks, report
        self.counts: Counter = Counter({"photos": len(tasks)})
        self.done: set[int] = set()
        self.batch: list[Outcome] = []
        if report:
            report(0, len(tasks), "finding faces")

    def consume(self, pool: Executor, work, todo: list[Task], window: int) -> None:
        try:
            for outcome in _completed(pool, work, todo, window):
                self.batch.append(outcome)
                self.done.add(outcome.task.photo_id)
                if len(self.batch) >= BATCH:
                    self.flush()
                if self.report:
                    self.report(len(self.done), len(self.tasks), outcome.task.label)
        finally:  # keep what is done, even when cancelled; drop what has not started
            self.flush()
            pool.shutdown(wait=True, cancel_futures=True)

    def flush(self) -> None:
        if self.batch:
            self.counts.update(self.library.db.write(store_outcomes, self.batch, self.engine_id, self.embedder_id))
            self.batch = []


def _load_face_engine(name: str, models_dir) -> tuple[object | None, str | None]:
    try:  # "auto" falls back to dlib by itself when insightface is missing or broken
        return get_face_engine(name, models_dir=models_dir), None
    except ModelUnavailable as exc:
        return None, str(exc)


def _load_embedder(name: str, models_dir) -> tuple[object | None, str | None]:
    try:
        return get_image_embedder(name, models_dir=models_dir), None
    except ModelUnavailable as exc:
        return None, str(exc)


def pending(library: Library, engine_id: str | None, embedder_id: str | None) -> list[Task]:
    """Photos whose faces or embedding the current engines have not produced (or tried: errors count)."""
    rows = library.db.query(
        """SELECT p.id, p.path, p.path_raw, p.width,
                  ? IS NOT NULL AND NOT EXISTS (SELECT 1 FROM index_state s WHERE s.photo_id = p.id
                      AND s.stage = 'faces' AND s.engine = ?) AS need_faces,
                  ? IS NOT NULL AND NOT EXISTS (SELECT 1 FROM index_state s WHERE s.photo_id = p.id
                      AND s.stage = 'embedding' AND s.engine = ?) AS need_embedding
           FROM photos p WHERE p.status = 'ok' AND (need_faces OR need_embedding) ORDER BY p.id""",
        (engine_id, engine_id, embedder_id, embedder_id))
    return [Task(r["id"], open_path(r), r["path"], r["width"], bool(r["need_faces"]), bool(r["need_embedding"]))
            for r in rows]


# -- running the work ---------------------------------------------------------------------------------------
def _executor(engine, image_embedder, models_dir, workers: int, count: int) -> Executor:
    """Threads, or worker processes (spawned: safe beside the GUI's threads) when dlib would hold the GIL."""
    if engine is not None and not engine.releases_gil and workers > 1 and count >= PROCESS_MIN:
        names = (engine.setting, image_embedder.name if image_embedder else None)
        return ProcessPoolExecutor(min(workers, count), mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_process, initargs=(*names, str(models_dir)))
    return ThreadPoolExecutor(workers, thread_name_prefix="index")


def _completed(pool: Executor, fn, tasks: list[Task], window: int) -> Iterator[Outcome]:
    """Results as they finish, with at most `window` photos in flight (a paused job stops feeding them)."""
    queue = iter(tasks)
    running = set()
    while True:
        for task in queue:
            running.add(pool.submit(fn, task))
            if len(running) >= window:
                break
        if not running:
            return
        finished, running = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            yield future.result()


_process_worker: PhotoWorker | None = None


def _start_process(face_name: str | None, embedder_name: str | None, models_dir: str) -> None:
    global _process_worker
    engine = get_face_engine(face_name, models_dir=models_dir) if face_name else None
    embedder = get_image_embedder(embedder_name, models_dir=models_dir) if embedder_name else None
    _process_worker = PhotoWorker(engine, embedder)


def _run_in_process(task: Task) -> Outcome:
    return _process_worker(task)


# -- storing (on the writer thread) -------------------------------------------------------------------------
def store_outcomes(conn, outcomes: list[Outcome], engine_id: str | None, embedder_id: str | None) -> Counter:
    counts: Counter = Counter()
    stamp = now()
    for o in outcomes:
        task = o.task
        if conn.execute("SELECT 1 FROM photos WHERE id = ?", (task.photo_id,)).fetchone() is None:
            continue  # deleted while it was being indexed
        if o.error is not None:
            for stage, engine, wanted in (("faces", engine_id, task.faces), ("embedding", embedder_id, task.embedding)):
                if wanted:
                    _mark(conn, task.photo_id, stage, engine, o.error, stamp)
            counts["errors"] += 1
            continue
        if task.faces and o.faces is not None:
            moved, kept = replace_faces(conn, task.photo_id, o.faces, engine_id, stamp)
            _mark(conn, task.photo_id, "faces", engine_id, None, stamp)
            counts.update(faces=len(o.faces), decisions_moved=moved, old_faces_kept=kept)
        if task.embedding and o.embedding is not None:
            conn.execute("DELETE FROM image_embeddings WHERE photo_id = ? AND embedder != ?", (task.photo_id, embedder_id))
            conn.execute("INSERT OR REPLACE INTO image_embeddings(photo_id, embedder, embedding, created_at) "
                         "VALUES (?, ?, ?, ?)", (task.photo_id, embedder_id, to_blob(o.embedding), stamp))
            _mark(conn, task.photo_id, "embedding", embedder_id, None, stamp)
            counts["embeddings"] += 1
        counts["indexed"] += 1
    return counts


def _mark(conn, photo_id: int, stage: str, engine: str, error: str | None, stamp: float) -> None:
    conn.execute("INSERT INTO index_state(photo_id, stage, engine, error, done_at) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT(photo_id, stage) DO UPDATE SET engine = excluded.engine, error = excluded.error, "
                 "done_at = excluded.done_at", (photo_id, stage, engine, error, stamp))


def replace_faces(conn, photo_id: int, faces: list[Face], engine_id: str, stamp: float) -> tuple[int, int]:
    """Store the photo's new faces and retire its old ones; returns (decisions moved, old faces kept)."""
    old = conn.execute("SELECT f.id, f.x1, f.y1, f.x2, f.y2, f.cluster_id, f.assigned_by, f.hidden, c.concept_id "
                       "FROM faces f LEFT JOIN clusters c ON c.id = f.cluster_id WHERE f.photo_id = ?",
                       (photo_id,)).fetchall()
    new_ids = [_insert_face(conn, photo_id, face, engine_id, stamp) for face in faces]
    matches = match_boxes([(r["x1"], r["y1"], r["x2"], r["y2"]) for r in old], [f.box for f in faces])
    moved = kept = 0
    for i, row in enumerate(old):
        if i in matches:
            moved += _move_decisions(conn, row, new_ids[matches[i]])
        elif _has_decision(conn, row):
            kept += 1  # nothing overlaps it now: keep it rather than lose what the user said about it
            continue
        else:
            conn.execute("UPDATE clusters SET cover_face_id = NULL WHERE cover_face_id = ?", (row["id"],))
        conn.execute("DELETE FROM faces WHERE id = ?", (row["id"],))
    return moved, kept


def _insert_face(conn, photo_id: int, face: Face, engine_id: str, stamp: float) -> int:
    landmarks = json.dumps([[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks])
    return conn.execute(
        "INSERT INTO faces(photo_id, x1, y1, x2, y2, landmarks, score, embedding, engine, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (photo_id, *(float(v) for v in face.box), landmarks, float(face.score), to_blob(face.embedding),
         engine_id, stamp)).lastrowid


def _move_decisions(conn, row, new_id: int) -> int:
    """Give the new face what the user decided about the old one; returns how many decisions moved."""
    named = row["cluster_id"] is not None and (row["concept_id"] is not None or row["assigned_by"] == "user")
    conn.execute("UPDATE faces SET cluster_id = ?, assigned_by = ?, hidden = ? WHERE id = ?",
                 (row["cluster_id"] if named else None, row["assigned_by"] if named else "auto", row["hidden"], new_id))
    moved = int(named) + int(bool(row["hidden"]))
    for sql in ("UPDATE rejections SET face_id = ? WHERE face_id = ?",
                "UPDATE occurrences SET face_id = ? WHERE face_id = ?",
                "UPDATE clusters SET cover_face_id = ? WHERE cover_face_id = ?"):
        moved += conn.execute(sql, (new_id, row["id"])).rowcount
    return moved


def _has_decision(conn, row) -> bool:
    if row["concept_id"] is not None or row["assigned_by"] == "user" or row["hidden"]:
        return True
    return conn.execute("SELECT EXISTS (SELECT 1 FROM rejections WHERE face_id = ?) "
                        "OR EXISTS (SELECT 1 FROM occurrences WHERE face_id = ?)", (row["id"], row["id"])).fetchone()[0]
