"""Compare face detectors: recall of the labelled faces, false faces, faces found on animals, time per photo.

    faces_jurassic  the clean subset (no quality_flag): every photo shows its labelled person, so a photo
                    where no face is found is a missed face; extra faces in single-person photos (no
                    multi_face_note) are false faces (or background people the manifest did not note)
    pets_dreambooth 9 animals: every face found there is an animal taken for a person

Photos are decoded as the indexer decodes them (longest side 2048; the engine detects at its `max_side`)
and run through the engine's full `analyze` (detect, align, embed). The faces (boxes, scores, vectors)
are cached per detector under benchmarks/results/faces_<detector>.npz so eval_heads.py and later runs
do not detect again (--fresh to recompute).

    nice python benchmarks/bench_detectors.py [--detectors hog,mtcnn,hog+mtcnn] [--fresh] [--cpu-every 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from myvlm_desktop.imaging import ImageError, load_array
from myvlm_desktop.vision.faces import DLIB_DETECTORS, DlibEngine

DATA = Path("/work/shared/data")
RESULTS = ROOT / "benchmarks" / "results"
DECODE_SIDE = 2048  # pipeline/index.py decodes photos this big


def photos(data: Path) -> list[dict]:
    """Clean faces_jurassic photos and every pets_dreambooth photo, tagged with their set."""
    items = []
    for name in ("faces_jurassic", "pets_dreambooth"):
        manifest = json.loads((data / name / "manifest.json").read_text())["images"]
        for item in manifest:
            if (data / name / item["path"]).is_file() and not item.get("quality_flag"):
                items.append({**item, "set": name, "file": str(data / name / item["path"])})
    return items


def detect_all(detector: str, items: list[dict], fresh: bool = False) -> dict:
    """{"faces": per photo [(box, score)], "vectors": per photo (n, 128), "seconds": per photo}, cached."""
    cache = RESULTS / f"faces_{detector.replace('+', '_')}.npz"
    if cache.exists() and not fresh:
        stored = np.load(cache, allow_pickle=False)
        meta = json.loads(str(stored["meta"]))
        if meta["files"] == [i["file"] for i in items]:
            vectors = np.split(stored["vectors"], np.cumsum(meta["counts"])[:-1])
            return {"faces": meta["faces"], "vectors": vectors, "seconds": meta["seconds"], "load": meta["load"]}
    engine = DlibEngine(detector=detector)
    faces, vectors, seconds = [], [], []
    load = os.getloadavg()[0]
    for item in items:
        try:
            rgb = load_array(item["file"], DECODE_SIDE)
        except ImageError:
            faces.append([]), vectors.append(np.zeros((0, engine.dim), np.float32)), seconds.append(0.0)
            continue
        started = time.perf_counter()
        found = engine.analyze(rgb)
        seconds.append(time.perf_counter() - started)
        faces.append([[list(map(float, f.box)), float(f.score)] for f in found])
        vectors.append(np.stack([f.embedding for f in found]) if found else np.zeros((0, engine.dim), np.float32))
    load = round((load + os.getloadavg()[0]) / 2, 2)
    meta = {"files": [i["file"] for i in items], "faces": faces, "seconds": seconds,
            "counts": [len(v) for v in vectors], "load": load, "detector": detector}
    RESULTS.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=np.concatenate(vectors), meta=json.dumps(meta))
    return {"faces": faces, "vectors": vectors, "seconds": seconds, "load": load}


def cpu_timing(detectors: list[str], items: list[dict], every: int) -> dict:
    """CPU seconds per photo of the index's work on every `every`-th photo: decode at 2048 px, the SSCD photo
    vector (`describe`), and faces with each detector (process time: on a shared machine wall time measures
    the neighbours; the app's index runs one photo per core). Detectors take turns photo by photo, so a change
    of load hits them alike. Split by set: pets_dreambooth are photos without a human face."""
    from myvlm_desktop.vision.embed import get_image_embedder

    sample = items[::every]
    engines = {name: DlibEngine(detector=name) for name in detectors}
    embedder = get_image_embedder("sscd")
    sets = ("faces_jurassic", "pets_dreambooth")
    common = {s: [] for s in sets}
    faces = {name: {s: [] for s in sets} for name in detectors}
    first = load_array(sample[0]["file"], DECODE_SIDE)
    for engine in engines.values():
        engine.analyze(first)  # warm up
    for item in sample:
        started = time.process_time()
        rgb = load_array(item["file"], DECODE_SIDE)
        embedder.describe(rgb)
        common[item["set"]].append(time.process_time() - started)
        for name, engine in engines.items():
            started = time.process_time()
            engine.analyze(rgb)
            faces[name][item["set"]].append(time.process_time() - started)
    out = {}
    for name in detectors:
        out[name] = {}
        for s in sets:
            face_s, rest = float(np.mean(faces[name][s])), float(np.mean(common[s]))
            out[name][s] = {"faces": round(face_s, 3), "index": round(face_s + rest, 3)}
    return {"photos": {s: len(common[s]) for s in sets}, "cpu_seconds_per_photo": out,
            "load": os.getloadavg()[0]}


def summarise(items: list[dict], found: dict) -> dict:
    people = [i for i, item in enumerate(items) if item["set"] == "faces_jurassic"]
    single = [i for i in people if not items[i].get("multi_face_note")]
    pets = [i for i, item in enumerate(items) if item["set"] == "pets_dreambooth"]
    n = [len(f) for f in found["faces"]]
    seconds = np.array(found["seconds"])
    return {
        "labelled_faces": len(people),
        "recall": round(sum(n[i] > 0 for i in people) / len(people), 3),
        "missed": sum(n[i] == 0 for i in people),
        "false_faces": sum(max(0, n[i] - 1) for i in single),
        "pet_photos": len(pets),
        "pet_photos_with_a_face": sum(n[i] > 0 for i in pets),
        "faces_on_pets": sum(n[i] for i in pets),
        "seconds_per_photo": round(float(seconds.mean()), 3),
        "seconds_per_pet_photo": round(float(seconds[pets].mean()), 3),
        "seconds_p95": round(float(np.percentile(seconds, 95)), 3),
        "load_during_run": found["load"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--detectors", default=",".join(DLIB_DETECTORS))
    parser.add_argument("--fresh", action="store_true", help="detect again instead of reading the cache")
    parser.add_argument("--cpu-every", type=int, default=0, help="also time CPU seconds on every N-th photo")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_detectors.json")
    args = parser.parse_args()
    if not (args.data / "faces_jurassic" / "manifest.json").is_file():
        print(f"no developer sets under {args.data}; pass --data", file=sys.stderr)
        return 2
    items = photos(args.data)
    report = {name: summarise(items, detect_all(name, items, args.fresh)) for name in args.detectors.split(",")}
    base = report.get("hog", {}).get("seconds_per_photo")
    print(f"{'detector':<10} {'recall':>7} {'missed':>7} {'false':>6} {'pet photos w/ face':>19} "
          f"{'s/photo':>8} {'x hog':>6} {'load':>5}")
    for name, r in report.items():
        ratio = f"{r['seconds_per_photo'] / base:.1f}" if base else "-"
        print(f"{name:<10} {r['recall']:>7} {r['missed']:>7} {r['false_faces']:>6} "
              f"{r['pet_photos_with_a_face']:>12}/{r['pet_photos']:<6} {r['seconds_per_photo']:>8} {ratio:>6} "
              f"{r['load_during_run']:>5}")
    if args.cpu_every:
        report["cpu"] = cpu_timing(args.detectors.split(","), items, args.cpu_every)
        cpu = report["cpu"]
        print(f"CPU seconds per photo (faces / whole index work) on {cpu['photos']} photos, load {cpu['load']:.1f}:")
        hog = cpu["cpu_seconds_per_photo"].get("hog")
        for name, per_set in cpu["cpu_seconds_per_photo"].items():
            cells = []
            for s, t in per_set.items():
                ratio = f" = {t['index'] / hog[s]['index']:.2f}x hog" if hog else ""
                cells.append(f"{s} {t['faces']} / {t['index']}{ratio}")
            print(f"  {name:<10} " + "; ".join(cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
