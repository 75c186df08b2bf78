"""Calibrate a face engine's same-person threshold (cosine distance of the normalised vectors).

Uses a labelled face set laid out as <label>/<photo> with a manifest.json (faces_jurassic in ../shared/data):
the clean subset (images without `quality_flag` or `multi_face_note`), the largest face of each photo.
Prints same-person / different-person distance statistics, the false accept and false reject rates over
a grid of thresholds, and the chosen threshold: the largest one whose false accept rate stays at or below
--max-far (merging two people is worse than splitting one), and writes JSON.

With --store the chosen threshold is saved for this engine version in the app's models folder
(<models>/calibration/<engine id>.json): from then on the app uses it, and `auto` may pick the engine
(an engine without a measured threshold is never picked by `auto`; `myvlm doctor` says so). Run it once
on a machine that has the weights, e.g. for ArcFace:

    python benchmarks/calibrate_faces.py --engine insightface --store [--models-dir DIR]

The same for an image embedder on pets_dreambooth (one animal = one identity; each photo described as
the library stores it, whole frame + subject crops):

    python benchmarks/calibrate_faces.py --embedder clip --data ../shared/data/pets_dreambooth --store

    python benchmarks/calibrate_faces.py [--engine dlib] [--data ../shared/data/faces_jurassic]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from myvlm_desktop.imaging import ImageError, load_array
from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.vision.calibration import calibrated_threshold, save_calibration
from myvlm_desktop.vision.faces import get_face_engine

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "faces_jurassic"


def clean_images(data: Path) -> list[tuple[Path, str]]:
    manifest = json.loads((data / "manifest.json").read_text())
    return [(data / item["path"], item["label"]) for item in manifest["images"]
            if not item.get("quality_flag") and not item.get("multi_face_note") and (data / item["path"]).is_file()]


def embed_largest_faces(engine, images: list[tuple[Path, str]]) -> tuple[np.ndarray, list[str], int]:
    vectors, labels, without_face = [], [], 0
    for path, label in images:
        try:
            faces = engine.analyze(load_array(path, 2048))
        except ImageError:
            faces = []
        if not faces:
            without_face += 1
            continue
        largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        vectors.append(largest.embedding)
        labels.append(label)
    return np.stack(vectors), labels, without_face


def embed_images(embedder, images: list[tuple[Path, str]]) -> tuple[np.ndarray, list[str], int]:
    vectors, labels, unreadable = [], [], 0
    for path, label in images:
        try:
            vectors.append(embedder.describe(load_array(path, 768)))  # the vector the library stores
            labels.append(label)
        except ImageError:
            unreadable += 1
    vectors = np.stack(vectors)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), labels, unreadable


def pair_distances(vectors: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    distances = 1.0 - vectors @ vectors.T
    same = np.array(labels)[:, None] == np.array(labels)[None, :]
    upper = np.triu(np.ones_like(same, dtype=bool), k=1)
    return distances[same & upper], distances[~same & upper]


def choose(same: np.ndarray, different: np.ndarray, max_far: float) -> dict:
    grid = np.round(np.arange(0.02, 1.2, 0.005), 3)  # image embedders spread wider than face engines
    rows = [{"threshold": float(t), "far": float(np.mean(different < t)), "frr": float(np.mean(same >= t))}
            for t in grid]
    allowed = [r for r in rows if r["far"] <= max_far]
    chosen = allowed[-1] if allowed else rows[0]
    best = min(rows, key=lambda r: r["far"] + r["frr"])
    return {"chosen": chosen, "equal_error_region": best, "grid": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="dlib")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--max-far", type=float, default=0.01, help="largest false accept rate allowed")
    parser.add_argument("--embedder", help="calibrate an image embedder (sscd, clip) on photos instead")
    parser.add_argument("--store", action="store_true",
                        help="save the chosen threshold for this engine version in the app's models folder")
    parser.add_argument("--models-dir", type=Path, help="the app's models folder (default: the data folder's)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "calibrate_faces.json")
    args = parser.parse_args()
    if not (args.data / "manifest.json").is_file():
        print(f"no labelled face set at {args.data} (needs manifest.json); pass --data", file=sys.stderr)
        return 2
    try:
        if args.embedder:
            from myvlm_desktop.vision.embed import get_image_embedder

            engine = get_image_embedder(args.embedder)
        else:
            engine = get_face_engine(args.engine, models_dir=args.models_dir)
    except ModelUnavailable as exc:
        print(f"cannot calibrate: {exc}", file=sys.stderr)
        return 1
    images = clean_images(args.data)
    t0 = time.perf_counter()
    if args.embedder:
        vectors, labels, without_face = embed_images(engine, images)
    else:
        vectors, labels, without_face = embed_largest_faces(engine, images)
    same, different = pair_distances(vectors, labels)
    result = choose(same, different, args.max_far)
    current = calibrated_threshold(engine.engine_id, args.models_dir)
    report = {
        "engine": engine.engine_id, "data": str(args.data), "images": len(images), "faces": len(labels),
        "images_without_face": without_face, "identities": len(set(labels)), "seconds": time.perf_counter() - t0,
        "same_pairs": len(same), "different_pairs": len(different), "max_far": args.max_far,
        "same": {"mean": float(same.mean()), "p50": float(np.median(same)), "p95": float(np.percentile(same, 95))},
        "different": {"mean": float(different.mean()), "p1": float(np.percentile(different, 1)),
                      "p5": float(np.percentile(different, 5))},
        "current_threshold": current,
        "current": {"far": float(np.mean(different < current)),
                    "frr": float(np.mean(same >= current))} if current else None,
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if args.store:
        details = {k: report[k] for k in ("data", "faces", "identities", "same_pairs", "different_pairs", "max_far")}
        stored = save_calibration(engine.engine_id, report["chosen"]["threshold"],
                                  {**details, "far": report["chosen"]["far"], "frr": report["chosen"]["frr"]},
                                  args.models_dir)
        print(f"stored the threshold of {engine.engine_id} in {stored}")
    c, e = report["chosen"], report["equal_error_region"]
    print(f"{engine.engine_id}: {report['faces']} faces of {report['identities']} people "
          f"({report['same_pairs']} same / {report['different_pairs']} different pairs)")
    print(f"same-person distance: mean {report['same']['mean']:.3f}, p95 {report['same']['p95']:.3f}; "
          f"different: mean {report['different']['mean']:.3f}, p1 {report['different']['p1']:.3f}")
    print(f"chosen threshold {c['threshold']:.3f}: false accepts {c['far']:.2%}, false rejects {c['frr']:.2%}")
    print(f"lowest FAR+FRR at {e['threshold']:.3f}: false accepts {e['far']:.2%}, false rejects {e['frr']:.2%}")
    if current:
        print(f"threshold in use {current:.3f}: false accepts {report['current']['far']:.2%}, "
              f"false rejects {report['current']['frr']:.2%}")
    else:
        print(f"{engine.engine_id} has no calibrated threshold yet (--store saves the chosen one)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
