"""Evaluate concept heads as MyVLM does: 1, 2 and 4 training photos, 5 random splits, per concept P/R/F1.

    pets   ../shared/data/pets_dreambooth  each animal a concept; the other animals' photos are negatives
           (half of them train the head as the user's other photos, the other half are test negatives)
    people ../shared/data/faces_jurassic   each character a concept (clean subset: no quality_flag);
           training photos come from single-person shots, test photos are every other clean photo

The heads, training and thresholds are the app's own (myvlm_desktop.concepts). Besides precision / recall /
F1 it reports weighted accuracy, (recall on positives + accuracy on negatives) / 2, the measure of the
Yo'LLaVA recognition benchmark where MyVLM's heads reach 0.919 and RAP 0.980.

    python benchmarks/eval_heads.py [--only pets|people] [--splits 5] [--steps 500] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from myvlm_desktop.concepts.linear import TrainConfig, train_linear_head
from myvlm_desktop.concepts.person import PersonHead
from myvlm_desktop.concepts.train import HEAD_VIEWS, LOAD_SIDE, select_negatives
from myvlm_desktop.imaging import ImageError, load_array
from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.vision import augment

DATA = Path("/work/shared/data")
SHOTS = (1, 2, 4)
TARGETS = {"MyVLM heads (Yo'LLaVA benchmark)": 0.919, "RAP": 0.980}
THRESHOLD_SWEEP = (0.06, 0.07, 0.085, 0.1, 0.12, 0.15, 0.2)
FACE_SIDE = 1024  # as the indexer sees photos: big enough for dlib's HOG to find film-still faces


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--only", choices=("pets", "people"))
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--steps", type=int, default=500, help="linear head training steps (MyVLM: 500)")
    parser.add_argument("--face-engine", default="dlib")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "eval_heads.json")
    args = parser.parse_args()
    report: dict = {"machine": platform.platform(), "splits": args.splits, "shots": list(SHOTS),
                    "targets_weighted_accuracy": TARGETS}
    if args.only in (None, "pets"):
        report["pets"] = {name: _guard(eval_pets, args, name) for name in ("sscd", "clip")}
    if args.only in (None, "people"):
        report["people"] = {args.face_engine: _guard(eval_people, args, args.face_engine)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    _print(report)
    print(f"\nwrote {args.out}")
    return 0


def _guard(fn, args, engine: str) -> dict:
    """One engine's evaluation, or why it could not run (model or data missing): never a traceback."""
    try:
        return fn(args, engine)
    except ModelUnavailable as exc:
        return {"skipped": f"model unavailable: {exc}"}
    except FileNotFoundError as exc:
        return {"skipped": f"data not found: {exc}"}


# -- pets: linear heads on image embeddings ----------------------------------------------------------
def eval_pets(args, embedder_name: str) -> dict:
    from myvlm_desktop.vision.embed import get_image_embedder

    photos = _manifest(args.data / "pets_dreambooth")
    embedder = get_image_embedder(embedder_name)
    started = time.perf_counter()
    views = {}
    for item in photos:  # every view embedded once, as the app does before training
        rgb = _load(args.data / "pets_dreambooth", item)
        views[item["path"]] = np.asarray(embedder.embed(augment.array_views(rgb, HEAD_VIEWS, seed=0)))
    embed_s = time.perf_counter() - started
    labels = np.array([p["label"] for p in photos])
    paths = [p["path"] for p in photos]
    originals = np.stack([views[p][0] for p in paths])
    per_concept, started = {}, time.perf_counter()
    for concept in sorted(set(labels)):
        per_concept[concept] = {}
        for shots in SHOTS:
            counts = []
            for split in range(args.splits):
                rng = np.random.default_rng([split, shots, _stable(concept)])
                own = rng.permutation(np.flatnonzero(labels == concept))
                others = rng.permutation(np.flatnonzero(labels != concept))
                train_pos, test_pos = own[:shots], own[shots:]
                train_neg, test_neg = others[: len(others) // 2], others[len(others) // 2:]
                pos = np.concatenate([views[paths[i]] for i in train_pos])
                groups = np.repeat(train_pos, [len(views[paths[i]]) for i in train_pos])
                chosen = np.array(select_negatives(originals[train_neg], originals[train_pos]))
                head = train_linear_head(pos, originals[train_neg[chosen]],
                                         TrainConfig(steps=args.steps, seed=split), positive_groups=groups)
                counts.append(_counts(head.present(originals[test_pos]), head.present(originals[test_neg])))
            per_concept[concept][shots] = _scores(counts)
    return {"embedder": embedder.engine_id, "photos": len(photos), "views_per_photo": len(views[paths[0]]),
            "embed_seconds": round(embed_s, 1), "train_seconds": round(time.perf_counter() - started, 1),
            "per_concept": per_concept, "mean": _means(per_concept)}


# -- people: distance heads on face embeddings -------------------------------------------------------
def eval_people(args, engine_name: str) -> dict:
    from myvlm_desktop.vision.faces import get_face_engine

    folder = args.data / "faces_jurassic"
    photos = [p for p in _manifest(folder) if not p.get("quality_flag")]
    engine = get_face_engine(engine_name)
    started = time.perf_counter()
    faces = {}
    for item in photos:
        try:
            found = engine.analyze(_load(folder, item, FACE_SIDE))
        except ImageError:
            found = []
        faces[item["path"]] = found
    detect_s = time.perf_counter() - started
    labels = np.array([p["label"] for p in photos])
    solo = np.array([not p.get("multi_face_note") and len(faces[p["path"]]) == 1 for p in photos])
    vectors = [np.stack([f.embedding for f in faces[p["path"]]]) if faces[p["path"]] else None for p in photos]
    per_concept = _people_scores(vectors, labels, solo, engine.threshold, args.splits)
    # how the cut-off trades precision for recall (4 training photos): informs the engine's calibration
    sweep = {t: _means(_people_scores(vectors, labels, solo, t, args.splits))[4] for t in THRESHOLD_SWEEP}
    return {"engine": engine.engine_id, "threshold": engine.threshold, "photos": len(photos),
            "photos_with_a_face": sum(v is not None for v in vectors), "detect_seconds": round(detect_s, 1),
            "per_concept": per_concept, "mean": _means(per_concept), "threshold_sweep_4_shots": sweep}


def _people_scores(vectors: list, labels: np.ndarray, solo: np.ndarray, threshold: float, splits: int) -> dict:
    """Per concept and shot count: keys from `shots` single-person photos; a test photo is the concept's
    when any of its faces matches (a photo where no face was found counts as a miss)."""
    per_concept = {}
    for concept in sorted(set(labels)):
        per_concept[concept] = {}
        for shots in SHOTS:
            counts = []
            for split in range(splits):
                rng = np.random.default_rng([split, shots, _stable(concept)])
                train = rng.permutation(np.flatnonzero((labels == concept) & solo))[:shots]
                head = PersonHead(np.stack([vectors[i][0] for i in train]), threshold)
                rest = np.setdiff1d(np.arange(len(labels)), train)
                hits = np.array([vectors[i] is not None and head.best(vectors[i]) is not None for i in rest])
                truth = labels[rest] == concept
                no_face = np.array([vectors[i] is None for i in rest])
                counts.append(_counts(hits[truth], hits[~truth]) | {"no_face": int(no_face[truth].sum())})
            per_concept[concept][shots] = _scores(counts)
    return per_concept


# -- scoring --------------------------------------------------------------------------------------------
def _counts(on_positives: np.ndarray, on_negatives: np.ndarray) -> dict:
    return {"tp": int(on_positives.sum()), "fn": int((~on_positives).sum()),
            "fp": int(on_negatives.sum()), "tn": int((~on_negatives).sum())}


def _scores(splits: list[dict]) -> dict:
    """Per-split precision / recall / F1 / weighted accuracy, averaged over the splits."""
    rows = []
    for c in splits:
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        specificity = c["tn"] / (c["tn"] + c["fp"]) if c["tn"] + c["fp"] else 1.0
        seen = c["tp"] + c["fn"] - c.get("no_face", 0)  # positives whose face the detector found
        rows.append((precision, recall, f1, (recall + specificity) / 2, c["tp"] / seen if seen else 1.0))
    mean = np.mean(rows, axis=0)
    names = ("precision", "recall", "f1", "weighted_accuracy", "recall_of_found_faces")
    return dict(zip(names, (round(float(v), 3) for v in mean)))


def _means(per_concept: dict) -> dict:
    keys = next(iter(per_concept.values()))[SHOTS[0]].keys()
    return {shots: {k: round(float(np.mean([c[shots][k] for c in per_concept.values()])), 3) for k in keys}
            for shots in SHOTS}


def _print(report: dict) -> None:
    for task in ("pets", "people"):
        for engine, result in report.get(task, {}).items():
            print(f"\n== {task} / {engine}")
            if "skipped" in result:
                print("  skipped:", result["skipped"])
                continue
            print(f"  {'concept':<18}" + "".join(f"  {s}-shot P/R/F1/WA      " for s in SHOTS))
            for concept, by_shots in {**result["per_concept"], "MEAN": result["mean"]}.items():
                cells = ["  {precision:.2f}/{recall:.2f}/{f1:.2f}/{weighted_accuracy:.2f}     ".format(**by_shots[s])
                         for s in SHOTS]
                print(f"  {concept:<18}" + "".join(cells))
            if task == "people":
                print("  recall among photos whose face was found (4 shots):", result["mean"][4]["recall_of_found_faces"])
                for t, m in result["threshold_sweep_4_shots"].items():
                    print(f"  threshold {t:<6} 4-shot P {m['precision']:.2f} R {m['recall']:.2f} "
                          f"F1 {m['f1']:.2f} WA {m['weighted_accuracy']:.2f}")
    print("\ntargets (weighted accuracy):", ", ".join(f"{k} {v}" for k, v in TARGETS.items()))


# -- data -----------------------------------------------------------------------------------------------
def _manifest(folder: Path) -> list[dict]:
    manifest = folder / "manifest.json"
    if not manifest.exists():
        raise FileNotFoundError(str(manifest))
    images = json.loads(manifest.read_text())["images"]
    return [i for i in images if (folder / i["path"]).exists()]


def _load(folder: Path, item: dict, side: int = LOAD_SIDE) -> np.ndarray:
    return load_array(folder / item["path"], max_side=side)


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())  # the same seed on every run (hash() changes per process)


if __name__ == "__main__":
    sys.exit(main())
