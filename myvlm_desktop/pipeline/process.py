"""The job kinds of the app and the `process` chain that runs the stages one after the other.

`job_kinds(library, settings)` maps each kind (scan, index, names, cluster, detect, caption, write_back, train,
process) to its job function. A stage whose model is not installed is skipped by the chain with a note, so the app
works with what it has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import config
from ..library.store import Library
from ..models.errors import ModelUnavailable
from .jobs import JobControl
from .settings import vlm_options

log = logging.getLogger(__name__)

STAGES = ("scan", "index", "names", "cluster", "detect", "caption", "write_back")
GPU_LANE = "gpu"  # training and captioning share the accelerator: one at a time


def lane(kind: str) -> str:
    return GPU_LANE if kind in ("train", "caption") else "default"


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


def job_kinds(library: Library, settings: dict[str, Any]) -> dict[str, Callable]:
    """Job functions by kind. `settings` is read when a job runs, so a changed engine applies to the next job.

    The stage modules are imported inside the job functions, when a job runs: they pull in torch, dlib and
    onnxruntime, and the window must open without waiting for them.
    """

    def scan(control, **params):
        from ..library.scan import scan_library

        return scan_library(library, progress=control.progress, **params)

    def index(control, **params):
        from .index import index_library

        return index_library(library, control=control, face_engine=settings["face_engine"],
                             embedder=settings["embedder"], **params)

    def names(control, **params):  # names other apps wrote in the photos' XMP, once faces are found
        from .names import names_job

        return names_job(library, settings["face_engine"])(control, **params)

    def write_back(control, **params):  # names and captions to XMP, where the user turned it on
        from .writeback import write_back_job

        return write_back_job(library)(control, **params)

    def cluster(control, **params):
        from .cluster import cluster_job

        return cluster_job(library)(control, **params)

    def detect(control, **params):
        from .detect import detect_job

        return detect_job(library)(control, **params)

    def caption(control, **params):
        from .captions import caption_job

        vlm_weights(vlm_options(settings), config.models_dir(library.root))  # seconds cheaper than loading transformers to learn the weights are absent
        return caption_job(library)(control, **params)

    def train(control, **params):
        from .train import train_job

        return train_job(library)(control, **params)

    kinds: dict[str, Callable] = {"scan": scan, "index": index, "cluster": cluster, "detect": detect,
                                  "caption": caption, "train": train, "names": names, "write_back": write_back}
    kinds["process"] = lambda control, stages=None: process(kinds, control, stages)
    return kinds


def process(kinds: dict[str, Callable], control: JobControl, stages: list[str] | None = None) -> list[dict]:
    """Run the stages in order; a resumed chain starts again at the stage it was in."""
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
        results.append(run_stage(kinds[stage], stage, sub).__dict__)
    control.progress(len(wanted), len(wanted), "done")
    return results


def run_stage(fn: Callable, stage: str, control: StageControl) -> StageResult:
    try:
        return StageResult(stage, fn(control))
    except ModelUnavailable as exc:  # the chain goes on with what the app has
        log.warning("%s skipped: %s", stage, exc)
        control.progress(1, 1, "skipped: " + str(exc).split(". ")[0])
        return StageResult(stage, skipped=str(exc))


def vlm_weights(options: dict[str, Any], models_dir=None):
    """The folder of the VLM's weights (`options` as settings.vlm_options gives them), looked up in the library's
    models folder and the HF cache; ModelUnavailable, with what to do, when they are not on disk."""
    from ..vlm.loader import DEFAULT_MODELS, find_weights

    return find_weights(options["model"] or DEFAULT_MODELS[options["backend"]], options.get("models_dir") or models_dir)
