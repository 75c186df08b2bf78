"""Concept-embedding commands: train CONCEPT [--backend B].

Training runs as a recorded job (the same one the app runs) with progress on stderr. Ctrl+C stops it; running
the command again resumes from the last checkpoint (every 25 steps).
"""

from __future__ import annotations

import sys

from .common import CommandError, emit, library

BACKENDS = ("smolvlm", "blip2", "llava")


def register(sub) -> None:
    p = sub.add_parser("train", help="learn how the VLM says a concept (its concept embedding); resumable")
    p.add_argument("concept", help="a concept name, <identifier> or id")
    p.add_argument("--backend", choices=BACKENDS, help="the VLM (default: the app's setting, else smolvlm)")
    p.add_argument("--model", help="a model name, hub id or local model folder (default: the backend's)")
    p.add_argument("--device", default=None, help="auto, cuda, mps or cpu (default: the app's setting)")
    p.add_argument("--steps", type=int, default=100, help="training steps (MyVLM: 100)")
    p.add_argument("--noun", help="the class noun captions use for it (mug, bike, ...): replaced by its identifier")
    p.add_argument("--force", action="store_true", help="retrain even when an up-to-date embedding exists")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=train)


def train(args) -> int | None:
    from .. import config
    from ..pipeline import train as job
    from ..pipeline.jobs import JobQueue

    lib = library(args)
    if args.steps < 1:
        raise CommandError("--steps must be at least 1")
    try:
        row = job.find_concept(lib, args.concept)
        if not job.training_photo_ids(lib, row["id"]):
            raise job.TrainError(f"{row['name']} has no photos yet: name a cluster of them first")
    except job.TrainError as exc:
        raise CommandError(str(exc)) from None
    from ..pipeline import shared_vlm  # torch and transformers: only now

    name = args.backend or job.setting(lib, "vlm_backend", "smolvlm")
    backend = shared_vlm.backend(name, args.model or job.setting(lib, "vlm_model") or None,
                                 args.device or job.setting(lib, "device", "auto"),
                                 config.models_dir(lib.root))  # ModelUnavailable: exit 1, its message
    queue = JobQueue(lib.db)
    queue.subscribe(_print_progress)
    params = {"concept": row["id"], "backend": backend.name, "model": backend.model_id, "steps": args.steps,
              "force": args.force, "noun": args.noun}
    running = queue.submit(job.KIND, params, fn=job.train_job(lib, loaded=backend))
    try:
        status = running.wait()
    except KeyboardInterrupt:
        running.cancel()
        running.wait(60)
        print("\nstopped; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130
    if status.state != "done":
        raise CommandError(f"training failed: {status.error or status.state}", code=1)
    emit(status.result, args.json, _text(status.result))
    return None


def _text(result: dict) -> str:
    if result.get("skipped"):
        return f"{result['concept']}: already trained ({result['path']}); --force trains again"
    return f"{result['concept']}: trained, final loss {result['loss']:.3f} -> {result['path']}"


def _print_progress(status) -> None:
    if status.state != "running" or not status.total:
        return
    end = "\n" if status.done >= status.total else ""
    print(f"\r{status.done}/{status.total} {status.message[:70]:<70}", end=end, file=sys.stderr, flush=True)
