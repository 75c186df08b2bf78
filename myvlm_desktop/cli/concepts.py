"""Concept head commands: heads train [CONCEPT], heads list, detect PATH."""

from __future__ import annotations

import os
import sys

from .common import CommandError, StderrProgress, emit, library

# The heads need torch and the vision engines; they are imported inside the commands so that `myvlm`
# starts at once for every other command.


def register(sub) -> None:
    heads = sub.add_parser("heads", help="concept heads: is <Alice> in this photo?")
    heads_sub = heads.add_subparsers(dest="heads_command", required=True, metavar="ACTION")

    p = heads_sub.add_parser("train", help="train stale heads (or CONCEPT's) and mark concepts in every photo")
    p.add_argument("concept", nargs="?", help="a concept name, <identifier> or id (default: every concept)")
    p.add_argument("--force", action="store_true", help="retrain even heads that are up to date")
    p.add_argument("--no-detect", action="store_true", help="only train; do not run the heads over the library")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=train)

    p = heads_sub.add_parser("list", help="each concept's head: fresh, stale, missing or damaged")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=list_heads)

    p = sub.add_parser("detect", help="which concepts are in an image (any image file, in the library or not)")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=detect)


def train(args) -> None:
    from ..concepts.train import ensure_heads
    from ..pipeline.detect import detect_library

    lib = library(args)
    concepts = None
    if args.concept is not None:
        concepts = [_row(lib, args.concept)["id"]]
    force = args.force or concepts is not None  # naming a concept means "train it now"
    if args.no_detect:
        heads, problems = ensure_heads(lib, concepts, force=force, progress=StderrProgress())
        names = {r["id"]: r["name"] for r in lib.db.query("SELECT id, name FROM concepts")}
        result = {"trained": sorted(h.meta["concept"] for h in heads.values()),
                  "problems": {names[k]: v for k, v in problems.items()}}
    else:
        result = detect_library(lib, concepts, force=force, progress=StderrProgress())
    emit(result, args.json, _train_text(result))
    if result["problems"] and not (result.get("marked") or result.get("trained")):
        raise CommandError("no head could be trained", code=1)


def _train_text(result: dict) -> str:
    lines = [f"{name}: in {n} photos" for name, n in result.get("marked", {}).items()]
    lines += [f"{name}: trained" for name in result.get("trained", [])]
    lines += [f"{name}: not trained: {why}" for name, why in result["problems"].items()]
    return "\n".join(lines) or "no concepts yet: name a cluster first (myvlm people ...)"


def list_heads(args) -> None:
    from ..concepts.store import ConceptFileError
    from ..concepts.train import is_stale, load_concept_head

    lib = library(args)
    rows = []
    for concept in lib.db.query("SELECT * FROM concepts ORDER BY name COLLATE NOCASE"):
        entry = {"concept": concept["name"], "kind": concept["kind"], "version": concept["version"]}
        try:
            head = load_concept_head(lib, concept["id"])
        except ConceptFileError as exc:
            rows.append(entry | {"state": "damaged", "problem": str(exc)})
            continue
        state = "missing" if head is None else "stale" if is_stale(concept, head) else "fresh"
        if head is not None:
            entry |= {"engine": head.meta.get("engine"), "head_version": head.version}
        rows.append(entry | {"state": state})
    emit(rows, args.json, "\n".join(f"{r['concept']} ({r['kind']}): {r['state']}" for r in rows)
         or "no concepts yet")


def detect(args) -> None:
    from ..imaging import ImageError, load_array
    from ..pipeline.detect import detect_image

    if not os.path.exists(args.path):
        raise CommandError(f"no such file: {args.path}")
    try:
        rgb = load_array(args.path)  # full size: face boxes come back in the photo's own pixels
    except ImageError as exc:
        raise CommandError(f"cannot use {args.path}: {exc}") from None
    lib = library(args)
    if not lib.db.scalar("SELECT count(*) FROM concepts"):
        print("myvlm: no concepts yet: name a cluster first", file=sys.stderr)
    found = detect_image(lib, rgb)
    emit(found, args.json, "\n".join(f"{d['concept']} {d['score']:.2f}" for d in found) or "no known concept")


def _row(lib, concept: str):
    from ..concepts.train import ConceptNotFound, concept_row

    try:
        return concept_row(lib.db, concept)
    except ConceptNotFound as exc:
        raise CommandError(str(exc)) from None
