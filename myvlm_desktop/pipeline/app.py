"""The app session both faces use: one library, one job queue with every job kind, and `process_all`.

`AppSession(data_dir)` opens the library, registers the job kinds whose modules are installed (scan,
index, cluster, detect, train, caption and the `process` chain), resumes the jobs that were running when
the app last stopped, and offers the small reads the GUI shows (photo pages, a photo's faces and caption,
concepts, chat history). No Qt here: the GUI adapts the callbacks to signals.

Stages whose module is not there yet (or whose model is not installed) are skipped by the chain with a
note, so the app works with what it has.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import config
from ..library.db import Database, connect, now
from ..library.store import Library, open_path
from ..models.errors import ModelUnavailable
from .jobs import ACTIVE_STATES, Cancelled, Job, JobControl, JobQueue

log = logging.getLogger(__name__)

STAGES = ("scan", "index", "cluster", "detect", "caption")
STAGE_MODULES = {"scan": "library.scan", "index": "pipeline.index", "cluster": "pipeline.cluster",
                 "detect": "pipeline.detect", "caption": "pipeline.captions", "train": "pipeline.train"}
GPU_LANE = "gpu"  # training and captioning share the accelerator: one at a time

DEFAULT_SETTINGS: dict[str, Any] = {
    "face_engine": "auto",      # auto | dlib | insightface
    "embedder": "sscd",         # sscd | clip
    "vlm_backend": "smolvlm",   # smolvlm | blip2 | llava
    "vlm_model": "",            # a model name or folder; empty: the backend's default
    "device": "auto",           # auto | cuda | mps | cpu
    "watch": True,              # follow the folders for new, changed and deleted files
}
CHOICES = {
    "face_engine": ("auto", "dlib", "insightface"),
    "embedder": ("sscd", "clip"),
    "vlm_backend": ("smolvlm", "blip2", "llava"),
    "device": ("auto", "cuda", "mps", "cpu"),
}


class StageUnavailable(RuntimeError):
    """A stage whose code is not part of this build: the chain skips it."""


def module_exists(name: str) -> bool:
    """Whether `myvlm_desktop.<name>` is there, without importing it (and its heavy imports)."""
    try:
        return importlib.util.find_spec(f"myvlm_desktop.{name}") is not None
    except ModuleNotFoundError:
        return False


def optional_module(name: str):
    """`myvlm_desktop.<name>` when it exists, else None (a stage that is not built or not installed)."""
    full = f"myvlm_desktop.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name and (full == exc.name or full.startswith(exc.name + ".")):
            return None
        raise


def library_has_folders(data_dir) -> bool:
    """Whether a library with at least one photo folder exists in `data_dir` (else: the first run)."""
    database = config.database_path(config.data_dir(data_dir))
    if not database.exists():
        return False
    conn = connect(database)
    try:
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'folders'").fetchone()[0]
        return bool(tables) and conn.execute("SELECT count(*) FROM folders").fetchone()[0] > 0
    finally:
        conn.close()


# -- settings -------------------------------------------------------------------------------------------
def load_settings(db: Database) -> dict[str, Any]:
    values = dict(DEFAULT_SETTINGS)
    for row in db.query("SELECT key, value FROM settings"):
        try:
            values[row["key"]] = json.loads(row["value"])
        except ValueError:  # a hand-edited value that is not JSON: keep the default
            continue
    return values


def save_settings(db: Database, changes: dict[str, Any]) -> dict[str, Any]:
    """Write the changed settings (checked against CHOICES) and return them all."""
    for key, value in changes.items():
        if key in CHOICES and value not in CHOICES[key]:
            raise ValueError(f"{key} must be one of {', '.join(CHOICES[key])}, not {value!r}")

    def write(conn):
        conn.executemany("INSERT INTO settings(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         [(k, json.dumps(v)) for k, v in changes.items()])

    db.write(write)
    db.notify("settings", sorted(changes))
    return load_settings(db)


# -- the process chain ----------------------------------------------------------------------------------
class StageControl:
    """What one stage of the chain sees: its progress maps onto its slice of the whole chain's bar."""

    SCALE = 1000

    def __init__(self, parent: JobControl, index: int, count: int, label: str):
        self.parent, self.index, self.count, self.label = parent, index, count, label
        self.saved = (parent.saved or {}).get("stage_state") if (parent.saved or {}).get("stage") == label else None

    def progress(self, done: int, total: int, message: str = "") -> None:
        part = done / total if total else 0.0
        overall = int((self.index + min(part, 1.0)) * self.SCALE)
        text = f"{self.label}: {message}" if message else self.label
        self.parent.progress(overall, self.count * self.SCALE, text)

    def check(self) -> None:
        self.parent.check()

    def checkpoint(self, state: dict) -> None:
        self.saved = state
        self.parent.checkpoint({"stage": self.label, "stage_state": state})

    @property
    def cancelled(self) -> bool:
        return self.parent.cancelled


@dataclass
class StageResult:
    stage: str
    result: Any = None
    skipped: str | None = None  # why the stage did not run


class AppSession:
    """One open library with its jobs. Close it to stop the jobs; unfinished ones resume at the next open."""

    def __init__(self, data_dir=None, library: Library | None = None, watch: bool | None = None):
        self.library = library or Library(data_dir)
        self.db = self.library.db
        self.settings = load_settings(self.db)
        self.jobs = JobQueue(self.db, kinds=self._kinds())
        self.watcher = None
        self._closed = False
        self._want_watch = self.settings["watch"] if watch is None else watch

    # -- life ----------------------------------------------------------------------------------------
    def start(self) -> list[Job]:
        """Resume unfinished jobs and start watching the folders."""
        resumed = self.jobs.resume_unfinished()
        if self._want_watch:
            self.start_watching()
        return resumed

    def start_watching(self) -> None:
        """Follow every library folder (again, when one was added: a watcher covers the folders it started with)."""
        watch = optional_module("library.watch")
        if watch is None or self._closed:
            return
        self.stop_watching()
        if self.library.folders():
            self.watcher = watch.Watcher(self.library, on_scanned=self._scanned)
            self.watcher.start()

    def stop_watching(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.stop()

    def _scanned(self, counts: dict) -> None:
        """Files changed on disk: the new photos go through the rest of the chain."""
        if self._closed or not (counts.get("indexed") or counts.get("moved")):
            return
        if not any(j.status.kind == "process" for j in self.jobs.active()):
            self.process_all(stages=STAGES[1:])

    def close(self, wait: float = 5.0) -> None:
        """Stop everything; jobs stopped here are put back in the queue so the next start resumes them."""
        if self._closed:
            return
        self._closed = True
        self.stop_watching()
        interrupted = [j.status.id for j in self.jobs.active()]
        self.jobs.cancel_all(wait)
        if interrupted:
            self.db.write(_requeue, interrupted)
        self.library.close()

    # -- jobs ----------------------------------------------------------------------------------------
    def available_stages(self) -> list[str]:
        return [s for s in STAGES if s in self.jobs.kinds]

    def submit(self, kind: str, params: dict | None = None) -> Job:
        lane = GPU_LANE if kind in ("train", "caption") else "default"
        return self.jobs.submit(kind, params, lane=lane)

    def process_all(self, stages: tuple[str, ...] | list[str] = STAGES) -> Job:
        return self.submit("process", {"stages": list(stages)})

    def scan(self) -> Job:
        return self.submit("scan")

    def _kinds(self) -> dict[str, Callable]:
        """Job kinds by name. Stage modules are found now but imported when a job runs: the window opens
        without waiting for torch and friends."""
        kinds: dict[str, Callable] = {"process": self._process_job}
        for stage, module in STAGE_MODULES.items():
            if module_exists(module):
                kinds[stage] = functools.partial(self._run_stage_module, stage)
        return kinds

    def _process_job(self, control: JobControl, stages: list[str] | None = None) -> list[dict]:
        wanted = [s for s in (stages or STAGES) if s in STAGES]
        start = 0
        if control.saved and control.saved.get("stage") in wanted:  # resumed: stages before it are done
            start = wanted.index(control.saved["stage"])
        results = []
        for i, stage in enumerate(wanted):
            if i < start:
                continue
            sub = StageControl(control, i, len(wanted), stage)
            control.checkpoint({"stage": stage, "stage_state": sub.saved})
            results.append(self._run_stage(stage, sub).__dict__)
        control.progress(len(wanted), len(wanted), "done")
        return results

    def _run_stage(self, stage: str, sub: StageControl) -> StageResult:
        if stage not in self.jobs.kinds:
            sub.progress(1, 1, "not available")
            return StageResult(stage, skipped="not installed")
        try:
            if stage == "caption":
                self.vlm_weights()  # seconds cheaper than loading transformers to learn the weights are absent
            return StageResult(stage, self.jobs.kinds[stage](sub))
        except (ModelUnavailable, StageUnavailable) as exc:  # the chain goes on with what the app has
            log.warning("%s skipped: %s", stage, exc)
            sub.progress(1, 1, "skipped: " + str(exc).split(". ")[0])
            return StageResult(stage, skipped=str(exc))

    def _run_stage_module(self, stage: str, control, **params) -> Any:
        """Import the stage's module and run it: a `<stage>_job(library)` factory, or the stage's function."""
        module = optional_module(STAGE_MODULES[stage])
        factory = getattr(module, f"{stage}_job", None) if module is not None else None
        if factory is not None:
            return factory(self.library)(control, **params)
        if stage == "scan":
            return module.scan_library(self.library, progress=control.progress)
        if stage == "index" and hasattr(module, "index_library"):
            return module.index_library(self.library, control=control, face_engine=self.settings["face_engine"],
                                        embedder=self.settings["embedder"])
        raise StageUnavailable(f"{STAGE_MODULES[stage]} has no job function yet")

    # -- reads the views show -------------------------------------------------------------------------
    def photo_count(self) -> int:
        return self.db.scalar("SELECT count(*) FROM photos WHERE status = 'ok'")

    def photo_page(self, offset: int, limit: int) -> list[tuple[int, str | None, str]]:
        """(id, hash, path) of photos, newest first; what the grid fetches a page at a time."""
        rows = self.db.query("SELECT id, hash, path FROM photos WHERE status = 'ok' ORDER BY date DESC, id DESC "
                             "LIMIT ? OFFSET ?", (limit, offset))
        return [(r["id"], r["hash"], r["path"]) for r in rows]

    def photo_thumbnails(self, photo_ids: list[int]) -> list[tuple[int, str | None, str]]:
        """(id, hash, path) for the given photos, in the given order (search results, a concept's photos)."""
        found: dict[int, tuple] = {}
        for start in range(0, len(photo_ids), 500):
            chunk = photo_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.db.query(f"SELECT id, hash, path FROM photos WHERE id IN ({marks})", chunk):
                found[r["id"]] = (r["id"], r["hash"], r["path"])
        return [found[i] for i in photo_ids if i in found]

    def photo_detail(self, photo_id: int) -> dict | None:
        """A photo with its faces (box, name if any) and its newest caption."""
        photo = self.library.photo(photo_id)
        if photo is None:
            return None
        faces = self.db.query(
            "SELECT f.id, f.x1, f.y1, f.x2, f.y2, f.cluster_id, "
            "coalesce(cn.name, hn.name) AS name, coalesce(cn.kind, hn.kind) AS kind "
            "FROM faces f LEFT JOIN clusters c ON c.id = f.cluster_id "
            "LEFT JOIN concepts cn ON cn.id = c.concept_id "
            "LEFT JOIN occurrences o ON o.face_id = f.id AND o.present = 1 "
            "LEFT JOIN concepts hn ON hn.id = o.concept_id "
            "WHERE f.photo_id = ? AND f.hidden = 0 GROUP BY f.id ORDER BY f.x1", (photo_id,))
        caption = self.db.read().execute(
            "SELECT text, backend, model FROM captions WHERE photo_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
            (photo_id,)).fetchone()
        concepts = [r["name"] for r in self.db.query(
            "SELECT c.name FROM concept_photos cp JOIN concepts c ON c.id = cp.concept_id WHERE cp.photo_id = ? "
            "ORDER BY c.name", (photo_id,))]
        return {
            "id": photo_id, "path": photo["path"], "open_path": open_path(photo), "hash": photo["hash"], "width": photo["width"],
            "height": photo["height"], "date": photo["date"], "camera": photo["camera"],
            "faces": [{"id": f["id"], "box": (f["x1"], f["y1"], f["x2"], f["y2"]), "cluster_id": f["cluster_id"],
                       "name": f["name"], "kind": f["kind"]} for f in faces],
            "caption": dict(caption) if caption else None,
            "concepts": concepts,
        }

    def chat_history(self, photo_id: int | None, limit: int = 50) -> list[dict]:
        """Questions asked about a photo (or about the library when photo_id is None), oldest first."""
        where = "photo_id = ?" if photo_id is not None else "photo_id IS NULL"
        rows = self.db.query(f"SELECT question, answer, backend, created_at FROM answers WHERE {where} "
                             "ORDER BY created_at DESC, id DESC LIMIT ?",
                             ((photo_id, limit) if photo_id is not None else (limit,)))
        return [dict(r) for r in reversed(rows)]

    def concepts(self) -> list[dict]:
        """Every concept with its photo count and what has been trained for it."""
        rows = self.db.query(
            "SELECT c.id, c.name, c.kind, c.identifier, c.version, "
            "(SELECT count(*) FROM concept_photos cp WHERE cp.concept_id = c.id) AS photos "
            "FROM concepts c ORDER BY c.name COLLATE NOCASE")
        return [dict(r, head=self._head_status(r["id"], r["version"])) for r in rows]

    def concept_photo_ids(self, concept_id: int, limit: int = 5000) -> list[int]:
        rows = self.db.query(
            "SELECT p.id FROM concept_photos cp JOIN photos p ON p.id = cp.photo_id "
            "WHERE cp.concept_id = ? AND p.status = 'ok' ORDER BY p.date DESC, p.id DESC LIMIT ?",
            (concept_id, limit))
        return [r["id"] for r in rows]

    def concept_captions(self, concept_id: int, limit: int = 5) -> list[dict]:
        """The newest personalized captions that mention the concept: samples for its page."""
        name = self.db.scalar("SELECT name FROM concepts WHERE id = ?", (concept_id,))
        if name is None:
            return []
        rows = self.db.query(
            "SELECT c.photo_id, c.text, c.created_at FROM captions c JOIN concept_photos cp "
            "ON cp.photo_id = c.photo_id AND cp.concept_id = ? ORDER BY c.created_at DESC LIMIT ?",
            (concept_id, limit))
        return [dict(r) for r in rows]

    def concept_embeddings(self, concept_id: int) -> list[dict]:
        """The concept embeddings trained for it, one per VLM backend: [{"backend", "model", "file", ...}]."""
        folder = config.concepts_dir(self.library.root) / str(concept_id)
        found = []
        for meta_file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if meta_file.name == "head.json" or not meta_file.with_suffix(".safetensors").exists():
                continue
            try:
                meta = json.loads(meta_file.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(meta, dict) and meta.get("backend"):
                found.append({**meta, "file": str(meta_file.with_suffix(".safetensors"))})
        return found

    def _head_status(self, concept_id: int, version: int) -> str:
        meta_file = config.concepts_dir(self.library.root) / str(concept_id) / "head.json"
        if not meta_file.exists():
            return "not trained"
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            return "unreadable: will retrain"
        trained = meta.get("concept_version")
        return "up to date" if trained in (None, version) else "out of date: retrains on the next detection"

    # -- questions -------------------------------------------------------------------------------------
    def vlm_options(self) -> dict:
        return {"backend": self.settings["vlm_backend"], "model": self.settings["vlm_model"] or None,
                "device": self.settings["device"], "models_dir": config.models_dir(self.library.root)}

    def vlm_weights(self):
        """The folder of the configured VLM's weights; ModelUnavailable (with what to do) when absent."""
        loader = importlib.import_module("myvlm_desktop.vlm.loader")
        options = self.vlm_options()
        return loader.find_weights(options["model"] or loader.DEFAULT_MODELS[options["backend"]], options["models_dir"])

    def ask_photo(self, photo_id: int, question: str, on_token: Callable[[str], None] | None = None) -> dict:
        """Answer a question about one photo with the VLM, the photo's concepts included; the answer is stored.

        Raises ModelUnavailable when no VLM is installed: the caller shows the message as it is.
        """
        captions = optional_module("pipeline.captions")
        if captions is None:
            raise ModelUnavailable("vision-language model", "answers about photos are not part of this build",
                                   "Install the full app.")
        self.vlm_weights()  # says at once when the weights are absent, before loading transformers
        backend = captions.shared_backend(**self.vlm_options())
        return captions.answer_photo(self.library, photo_id, question, backend, on_token=on_token)

    def ask_library(self, question: str, on_token: Callable[[str], None] | None = None) -> dict:
        """Answer a question about the whole library from the database (phrased by a small LM); stored."""
        ask = optional_module("pipeline.ask")
        if ask is None:
            raise StageUnavailable("library questions are not part of this build yet")
        streams = "on_token" in inspect.signature(ask.ask_library).parameters
        result = ask.ask_library(self.library, question, **({"on_token": on_token} if streams else {}))
        if not streams and on_token is not None:
            on_token(result["answer"])  # phrased in one piece: shown at once
        return {**result, "backend": result.get("backend") or result.get("phrased_by", "")}

    # -- people & pets ---------------------------------------------------------------------------------
    def clusters(self, hidden: bool = False) -> list[dict]:
        """Face and image clusters with a member count, name and a cover (a face box, or a photo)."""
        rows = self.db.query(
            "SELECT c.id, c.kind, c.hidden, c.cover_face_id, c.cover_photo_id, n.id AS concept_id, n.name, "
            "n.kind AS concept_kind, CASE c.kind WHEN 'face' THEN "
            "(SELECT count(*) FROM faces f JOIN photos p ON p.id = f.photo_id WHERE f.cluster_id = c.id "
            " AND f.hidden = 0 AND p.status = 'ok') ELSE "
            "(SELECT count(*) FROM cluster_photos cp JOIN photos p ON p.id = cp.photo_id WHERE cp.cluster_id = c.id "
            " AND p.status = 'ok') END AS size "
            "FROM clusters c LEFT JOIN concepts n ON n.id = c.concept_id WHERE c.hidden = ? "
            "ORDER BY n.name IS NULL, size DESC, c.id", (1 if hidden else 0,))
        clusters = []
        for r in rows:
            if not r["size"]:
                continue
            clusters.append({"id": r["id"], "kind": r["kind"], "size": r["size"], "concept_id": r["concept_id"],
                             "name": r["name"], "concept_kind": r["concept_kind"], "cover": self._cover(r)})
        return clusters

    def _cover(self, cluster) -> dict | None:
        if cluster["kind"] == "face":
            face = self.db.read().execute(
                "SELECT f.id, f.x1, f.y1, f.x2, f.y2, p.path, p.path_raw, p.width, p.height, p.hash FROM faces f "
                "JOIN photos p ON p.id = f.photo_id WHERE f.cluster_id = ? AND f.hidden = 0 AND p.status = 'ok' "
                "ORDER BY f.id = ? DESC, (f.x2 - f.x1) * (f.y2 - f.y1) DESC LIMIT 1",
                (cluster["id"], cluster["cover_face_id"] or -1)).fetchone()
            return None if face is None else dict(_face_dict(face), face_id=face["id"])
        photo = self.db.read().execute(
            "SELECT p.id, p.path, p.path_raw, p.width, p.height, p.hash FROM cluster_photos cp "
            "JOIN photos p ON p.id = cp.photo_id WHERE cp.cluster_id = ? AND p.status = 'ok' "
            "ORDER BY p.id = ? DESC, p.id LIMIT 1", (cluster["id"], cluster["cover_photo_id"] or -1)).fetchone()
        if photo is None:
            return None
        return {"photo_id": photo["id"], "path": open_path(photo), "hash": photo["hash"], "whole": True,
                "box": (0.0, 0.0, float(photo["width"] or 0), float(photo["height"] or 0)),
                "size": (photo["width"] or 0, photo["height"] or 0)}

    def cluster_members(self, cluster_id: int) -> list[dict]:
        """The faces of a face cluster (or the photos of an image cluster), biggest faces first."""
        kind = self.db.scalar("SELECT kind FROM clusters WHERE id = ?", (cluster_id,))
        if kind == "face":
            rows = self.db.query(
                "SELECT f.id, f.photo_id, f.x1, f.y1, f.x2, f.y2, f.assigned_by, p.path, p.path_raw, p.width, "
                "p.height, p.hash FROM faces f JOIN photos p ON p.id = f.photo_id WHERE f.cluster_id = ? "
                "AND f.hidden = 0 AND p.status = 'ok' ORDER BY (f.x2 - f.x1) * (f.y2 - f.y1) DESC", (cluster_id,))
            return [dict(_face_dict(r), photo_id=r["photo_id"], assigned_by=r["assigned_by"]) for r in rows]
        rows = self.db.query(
            "SELECT p.id, p.path, p.path_raw, p.width, p.height, p.hash FROM cluster_photos cp "
            "JOIN photos p ON p.id = cp.photo_id WHERE cp.cluster_id = ? AND p.status = 'ok' ORDER BY p.date DESC",
            (cluster_id,))
        return [{"id": r["id"], "photo_id": r["id"], "path": open_path(r), "hash": r["hash"], "whole": True,
                 "box": (0.0, 0.0, float(r["width"] or 0), float(r["height"] or 0)),
                 "size": (r["width"] or 0, r["height"] or 0)} for r in rows]

    def concept_names(self) -> list[str]:
        return [r[0] for r in self.db.query("SELECT name FROM concepts ORDER BY name COLLATE NOCASE")]

    def people_available(self) -> bool:
        return module_exists("people.ops")

    def people_op(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run a naming operation of people.ops (name_cluster, merge, split, move_face, reject_face,
        hide_cluster, set_cover, rename_concept, undo, redo...).

        Runs on a worker thread (it writes); the operation announces what it changed through the database.
        """
        ops = optional_module("people.ops")
        if ops is None:
            raise StageUnavailable("naming people and pets is not part of this build yet")
        return getattr(ops, name)(self.db, *args, **kwargs)

    def merge_clusters(self, survivor: int, others: list[int]) -> dict | None:
        """Merge several clusters into the one the user picked (one undoable step per merged cluster)."""
        result = None
        for other in others:
            result = self.people_op("merge", survivor, other, keep=survivor)
        return result

    def decline_suggestion(self, suggestion: dict) -> dict:
        """"No, this is not Alice": the cluster's cover face (or photo) is rejected for that concept,
        so the suggestion does not come back and the face is never put in Alice's cluster."""
        cover = suggestion.get("cover") or {}
        if cover.get("whole"):
            return self.people_op("reject_photo", cover["photo_id"], suggestion["concept_id"])
        return self.people_op("reject_face", cover["face_id"], suggestion["concept_id"])

    def suggestions(self) -> list[dict]:
        """"Is this Alice?" for unnamed clusters likely to be a named concept:
        [{"cluster_id", "concept_id", "name", "kind", "distance", "cover"}]."""
        ops = optional_module("people.ops")
        if ops is None or not hasattr(ops, "suggestions"):
            return []
        kinds = {r["id"]: r["kind"] for r in self.db.query("SELECT id, kind FROM concepts")}
        found = []
        for s in ops.suggestions(self.db).get("clusters", []):
            cluster = self.db.read().execute("SELECT * FROM clusters WHERE id = ?", (s["cluster"],)).fetchone()
            if not s.get("likely") or cluster is None:
                continue
            found.append({"cluster_id": s["cluster"], "concept_id": s["concept_id"], "name": s["concept"],
                          "kind": kinds.get(s["concept_id"], "person"), "distance": s["distance"],
                          "cover": self._cover(cluster)})
        return found

    def unfinished_jobs(self) -> list[dict]:
        marks = ",".join("?" * len(ACTIVE_STATES))
        return [dict(r) for r in self.db.query(f"SELECT id, kind, state, progress, message FROM jobs "
                                                f"WHERE state IN ({marks}) ORDER BY id", ACTIVE_STATES)]


def _requeue(conn, job_ids: list[int]) -> None:
    marks = ",".join("?" * len(job_ids))
    conn.execute(f"UPDATE jobs SET state = 'queued', updated_at = ? WHERE id IN ({marks}) "
                  "AND state IN ('cancelled', 'running', 'paused', 'queued')", [now(), *job_ids])


__all__ = [
    "CHOICES",
    "DEFAULT_SETTINGS",
    "STAGES",
    "AppSession",
    "Cancelled",
    "load_settings",
    "optional_module",
    "save_settings",
]


def _face_dict(row) -> dict:
    return {"id": row["id"], "path": open_path(row), "hash": row["hash"],
            "box": (row["x1"], row["y1"], row["x2"], row["y2"]), "size": (row["width"] or 0, row["height"] or 0)}
