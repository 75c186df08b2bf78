"""The training job: learn a concept's embedding for one VLM backend from its photos in the library.

`train_job(library)` gives the job function `fn(control, concept, backend=None, model=None, ...)` that the
app's job queue runs (kind "train"). It reads the concept and up to four training photos from the database,
captions them with the frozen VLM to make targets, then trains with progress, cancel and a checkpoint every
25 steps. A cancelled, crashed or restarted run resumes from its last checkpoint (the job queue hands it back
in `control.saved`; the CLI finds the checkpoint file). The result is
    concepts/<concept id>/<backend>.safetensors + .json (model id, steps, concept version, loss history)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from .. import config, imaging
from ..library.store import Library, open_path
from ..storage import atomic_write_bytes
from . import shared_vlm

KIND = "train"
TRAINING_PHOTOS = 4  # MyVLM trains on 4 photos of the concept
MAX_SIDE = 1024  # photos are shrunk on decoding; the VLMs see 224-512 px


class TrainError(Exception):
    """A concept that cannot be trained (unknown, no usable photos); the message is for the user."""


# -- what the job reads from the library ---------------------------------------------------------------------
def find_concept(library: Library, concept: int | str):
    """The concept row by id, name (any case) or identifier; TrainError when there is none."""
    text = str(concept).strip()
    row = None
    if text.isdigit():
        row = library.db.read().execute("SELECT * FROM concepts WHERE id = ?", (int(text),)).fetchone()
    if row is None:
        row = library.db.read().execute("SELECT * FROM concepts WHERE name = ? OR identifier = ? "
                                        "ORDER BY name = ? DESC LIMIT 1", (text, text, text)).fetchone()
    if row is None:
        raise TrainError(f"no concept named {text!r}; name a person, pet or object first")
    return row


def training_photo_ids(library: Library, concept_id: int) -> list[int]:
    """The concept's photos, those where it is alone (fewest faces) first, as MyVLM picks clean examples."""
    from ..people.ops import concept_members

    members = concept_members(library.db, concept_id)
    face_ids = members.get("face_ids", [])
    photo_ids = set(members.get("photo_ids", []))
    for start in range(0, len(face_ids), 500):
        chunk = face_ids[start:start + 500]
        rows = library.db.query(f"SELECT photo_id FROM faces WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        photo_ids.update(r[0] for r in rows)
    if not photo_ids:
        return []
    ids = sorted(photo_ids)
    rows = library.db.query(
        f"SELECT p.id, (SELECT count(*) FROM faces f WHERE f.photo_id = p.id AND f.hidden = 0) AS faces "
        f"FROM photos p WHERE p.status = 'ok' AND p.id IN ({','.join('?' * len(ids))})", ids)
    return [r["id"] for r in sorted(rows, key=lambda r: (r["faces"], r["id"]))]


def load_photos(library: Library, photo_ids: list[int], limit: int = TRAINING_PHOTOS):
    """Up to `limit` decoded photos (and their ids); unreadable files are skipped."""
    images, used = [], []
    for photo_id in photo_ids:
        row = library.photo(photo_id)
        try:
            images.append(imaging.load_rgb(open_path(row), max_side=MAX_SIDE))
        except imaging.ImageError:
            continue
        used.append(photo_id)
        if len(images) == limit:
            break
    return images, used


def setting(library: Library, key: str, default=None):
    value = library.db.scalar("SELECT value FROM settings WHERE key = ?", (key,))
    try:
        return json.loads(value) if value is not None else default
    except ValueError:
        return default


# -- where the files go ------------------------------------------------------------------------------------------
def vector_path(library: Library, concept_id: int, backend: str) -> Path:
    return config.concepts_dir(library.root) / str(concept_id) / f"{backend}.safetensors"


def checkpoint_path(library: Library, concept_id: int, backend: str) -> Path:
    """In a subfolder, so that a half-trained checkpoint is never taken for a trained embedding."""
    return config.concepts_dir(library.root) / str(concept_id) / "training" / f"{backend}.safetensors"


# -- the job ---------------------------------------------------------------------------------------------------
def train_job(library: Library, loaded=None):
    """The job function for the queue; `loaded` is an already loaded backend to use (the CLI loads it first)."""

    def run(control, concept, backend: str | None = None, model: str | None = None, device: str | None = None,
            steps: int = 100, force: bool = False, noun: str | None = None, photos: int = TRAINING_PHOTOS,
            heads_first: bool = False) -> dict:
        if heads_first:  # the window's Train: a stale head is retrained (and its photos found) first
            refresh_head(library, control, concept)
        return train_concept(library, control, concept, backend, model, device, steps, force, noun, photos, loaded)

    return run


def refresh_head(library: Library, control, concept) -> None:
    """Retrain the concept's head when it is stale and mark its photos, so training sees the user's latest picks."""
    from .detect import detect_library

    control.progress(0, 1, "updating the recognition head")
    detect_library(library, [find_concept(library, concept)["id"]])


def train_concept(library: Library, control, concept, backend: str | None = None, model: str | None = None,
                  device: str | None = None, steps: int = 100, force: bool = False, noun: str | None = None,
                  photos: int = TRAINING_PHOTOS, loaded=None) -> dict:
    from ..vlm.loader import DEFAULT_MODELS
    from ..vlm.train import TrainSettings

    row = find_concept(library, concept)
    name = loaded.name if loaded is not None else (backend or setting(library, "vlm_backend", "smolvlm"))
    model = loaded.model_id if loaded is not None else (model or setting(library, "vlm_model") or DEFAULT_MODELS[name])
    target = vector_path(library, row["id"], name)
    if not force and _up_to_date(target, row, model, steps):
        control.progress(steps, steps, "already trained")
        return {"concept": row["name"], "path": str(target), "skipped": "up to date"}
    images, photo_ids = load_photos(library, training_photo_ids(library, row["id"]), photos)
    if not images:
        raise TrainError(f"{row['name']} has no readable photos to train on")
    if loaded is None:  # the process's one VLM, shared with captions and questions
        loaded = shared_vlm.backend(name, model, device or setting(library, "device", "auto"),
                                    config.models_dir(library.root))
    settings = TrainSettings(steps=steps)
    key = {"concept_id": row["id"], "concept_version": row["version"], "backend": loaded.name,
           "model": loaded.model_id, "photos": photo_ids, "settings": asdict(settings)}
    return _train(library, control, row, loaded, images, key, settings, noun, target)


def _train(library, control, row, backend, images, key, settings, noun, target) -> dict:
    from ..vlm.concept import ConceptVector, save_concept_vector
    from ..vlm.train import ConceptTrainer, Sample, build_bank, make_targets

    started = time.monotonic()
    ckpt = checkpoint_path(library, row["id"], backend.name)
    resumed = _read_checkpoint(ckpt, key)
    control.progress(resumed[1]["step"] if resumed else 0, settings.steps, "computing the vision bank")
    with shared_vlm.lane():
        bank = build_bank(backend, images, settings.views, settings.seed, on_batch=control.check)
    if resumed is None:
        control.progress(0, settings.steps, f"captioning {len(images)} training photos")
        with shared_vlm.lane():
            samples = make_targets(backend, images, row["identifier"], row["kind"], noun, settings,
                                   on_photo=lambda done: control.check(), features=bank[:, 0])
        resumed = ({}, {"step": 0, "samples": [asdict(s) for s in samples]})
    samples = [Sample(**s) for s in resumed[1]["samples"]]
    trainer = ConceptTrainer(backend, images, samples, settings, bank=bank)
    if resumed[0]:
        trainer.load_state(*resumed)

    def save(t: ConceptTrainer) -> None:
        tensors, info = t.state()
        _write_checkpoint(ckpt, tensors, {**info, "key": key, "samples": [asdict(s) for s in samples]})
        control.checkpoint({"checkpoint": str(ckpt), "step": t.step})

    if not resumed[0]:
        save(trainer)  # step 0: the targets survive a restart, so the photos are not captioned twice
    trainer.run(on_step=lambda step, loss: control.progress(step, settings.steps, f"step {step}: loss {loss:.3f}"),
                on_checkpoint=save, lane=shared_vlm.lane)
    vector = ConceptVector(row["name"], row["identifier"], row["kind"], trainer.vector.detach(), backend.name,
                           backend.model_id)
    save_concept_vector(target, vector, steps=trainer.step, concept_version=row["version"], concept_id=row["id"],
                        loss_history=trainer.losses, photos=key["photos"],
                        targets=[{"kind": s.kind, "photo": s.photo, "text": s.target} for s in samples],
                        seconds=round(time.monotonic() - started, 1), trained_at=time.time())
    ckpt.unlink(missing_ok=True)
    library.db.notify("concept_embeddings", row["id"])
    control.progress(settings.steps, settings.steps, f"trained {row['name']}")
    return {"concept": row["name"], "path": str(target), "loss": trainer.losses[-1] if trainer.losses else None}


def _up_to_date(target: Path, row, model: str, steps: int) -> bool:
    try:
        meta = json.loads(target.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return False
    return (target.exists() and meta.get("concept_version") == row["version"] and meta.get("steps") == steps
            and meta.get("model") == model)


def _write_checkpoint(path: Path, tensors: dict, info: dict) -> None:
    """One file, written atomically: the tensors, with the facts in its metadata (never half of each)."""
    from safetensors.torch import save

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save(tensors, metadata={"info": json.dumps(info)}))  # DiskFull: the last one stays


def _read_checkpoint(path: Path, key: dict):
    """(tensors, info) of a checkpoint made by the same run (same concept version, model, photos), else None."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), "pt") as f:
            info = json.loads((f.metadata() or {}).get("info", "null"))
        tensors = load_file(str(path))
    except (OSError, ValueError, SafetensorError):
        return None
    if not isinstance(info, dict) or info.get("key") != key or not _sound_checkpoint(tensors, info):
        return None  # not this run's, or damaged: training starts again (nothing of the user's is in it)
    return tensors, info


def _sound_checkpoint(tensors: dict, info: dict) -> bool:
    import torch

    from ..vlm.train import Sample

    try:
        [Sample(**s) for s in info["samples"]]
    except (KeyError, TypeError):
        return False
    vector = tensors.get("vector")
    return (isinstance(info.get("step"), int) and vector is not None and vector.is_floating_point()
            and all(bool(torch.isfinite(t).all()) for t in tensors.values()))
