"""Index stage throughput against a plain face_recognition loop, side by side in one run.

Photos: every image under ../shared/data when present, else the photos pip packages ship (insightface's
samples, scikit-image's data). Three runs over the same files:
- ours: scan into a fresh library, then `index_library` (dlib faces + SSCD embeddings, `--workers`),
  timed without the scan;
- face_recognition: its documented defaults in a plain loop (`load_image_file`, `face_locations`,
  `face_encodings`), the usual way people index photos with dlib;
- engine loop (skip with --quick): our dlib engine in the same plain loop, faces only, one thread, to
  separate what the detection policy saves from what the worker processes add.
Faces are compared by box overlap (IoU > 0.5, full-size pixels; photos with an EXIF rotation are left out
of the comparison because face_recognition does not rotate them) and, for matched faces, by the cosine
distance between the two descriptors. Prints a summary and writes JSON.

Needs face_recognition, for the benchmark only: `pip install --no-deps face_recognition`.

    python benchmarks/bench_index.py [--workers 2] [--limit N] [--quick] [--out benchmarks/results/index.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from myvlm_desktop.imaging import IMAGE_SUFFIXES, ImageError, load_array
from myvlm_desktop.library.db import from_blob
from myvlm_desktop.library.scan import scan_library
from myvlm_desktop.library.store import Library
from myvlm_desktop.pipeline.index import DECODE_SIDE, index_library
from myvlm_desktop.vision.boxes import match_boxes
from myvlm_desktop.vision.faces import get_face_engine

SHARED_DATA = ROOT.parent / "shared" / "data"


def photo_folder(cache: Path) -> tuple[Path, str]:
    if SHARED_DATA.is_dir():
        return SHARED_DATA, str(SHARED_DATA)
    import insightface
    from skimage import data

    folder = cache / "packaged"
    folder.mkdir(parents=True, exist_ok=True)
    for image in (Path(insightface.__file__).parent / "data" / "images").iterdir():
        (folder / image.name).write_bytes(image.read_bytes())
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    return folder, "pip packages (insightface samples, scikit-image data)"


def photo_files(folder: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return files[:limit] if limit else files


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_ours(files: list[Path], workers: int, work: Path) -> dict:
    photos = work / "photos"
    photos.mkdir()
    for i, path in enumerate(files):  # links keep the library to exactly these files
        os.symlink(path, photos / f"{i:05d}{path.suffix.lower()}")
    with Library(work / "data") as lib:
        lib.add_folder(photos)
        scan_library(lib)
        get_face_engine("dlib")  # model loading is not indexing: load once, as the app does at start
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = index_library(lib, face_engine="dlib", embedder="sscd", workers=workers)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        rows = lib.db.query("SELECT p.path, p.orientation, f.x1, f.y1, f.x2, f.y2, f.embedding FROM faces f "
                            "JOIN photos p ON p.id = f.photo_id")
        oriented = {os.path.realpath(r["path"]) for r in lib.db.query("SELECT path FROM photos WHERE orientation > 1")}
    faces: dict[str, list] = {}
    for r in rows:
        faces.setdefault(os.path.realpath(r["path"]), []).append(
            ((r["x1"], r["y1"], r["x2"], r["y2"]), from_blob(r["embedding"])))
    return {"seconds": wall, "cpu_seconds": cpu, "photos": len(files), "photos_per_s": len(files) / wall,
            "faces": result["faces"], "errors": result["errors"], "workers": workers,
            "engine": result["face_engine"], "embedder": result["embedder"], "by_photo": faces, "rotated": oriented}


def run_face_recognition(files: list[Path]) -> dict:
    import face_recognition

    faces: dict[str, list] = {}
    seconds: dict[str, float] = {}
    errors = 0
    wall, cpu = time.perf_counter(), cpu_seconds()
    for path in files:
        started = time.perf_counter()
        try:
            image = face_recognition.load_image_file(path)
            loaded = time.perf_counter() - started
        except Exception:  # noqa: BLE001 - count what it cannot read, as our index does
            errors += 1
            continue
        if image.ndim != 3 or image.shape[2] != 3:
            errors += 1
            continue
        started = time.perf_counter()
        locations = face_recognition.face_locations(image)
        encodings = face_recognition.face_encodings(image, locations)
        seconds[os.path.realpath(path)] = time.perf_counter() - started + loaded
        faces[os.path.realpath(path)] = [((left, top, right + 1, bottom + 1), v / np.linalg.norm(v))
                                         for (top, right, bottom, left), v in zip(locations, encodings)]
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {"seconds": wall, "cpu_seconds": cpu, "photos": len(files), "photos_per_s": len(files) / wall,
            "faces": sum(len(v) for v in faces.values()), "errors": errors, "by_photo": faces, "seconds_by_photo": seconds}


def run_engine_loop(files: list[Path]) -> dict:
    engine = get_face_engine("dlib")
    count, seconds = 0, {}
    wall, cpu = time.perf_counter(), cpu_seconds()
    for path in files:
        started = time.perf_counter()
        try:
            rgb = load_array(path, DECODE_SIDE)
        except ImageError:
            continue  # the index records these as errors; the loop just skips them
        count += len(engine.analyze(rgb))
        seconds[os.path.realpath(path)] = time.perf_counter() - started
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {"seconds": wall, "cpu_seconds": cpu, "photos": len(files), "photos_per_s": len(files) / wall,
            "faces": count, "seconds_by_photo": seconds}


def by_size(files: list[Path], theirs: dict, loop: dict) -> dict:
    """Per-photo seconds of the two plain loops, for photos up to 1024 px and bigger ones."""
    groups: dict[str, dict] = {}
    for path in map(os.path.realpath, files):
        if path not in theirs["seconds_by_photo"] or path not in loop["seconds_by_photo"]:
            continue
        with Image.open(path) as img:
            key = "longest side <= 1024" if max(img.size) <= 1024 else "longest side > 1024"
        group = groups.setdefault(key, {"photos": 0, "face_recognition_s": 0.0, "our_engine_s": 0.0})
        group["photos"] += 1
        group["face_recognition_s"] += theirs["seconds_by_photo"][path]
        group["our_engine_s"] += loop["seconds_by_photo"][path]
    for group in groups.values():
        group["ratio"] = group["face_recognition_s"] / max(group["our_engine_s"], 1e-9)
    return groups


def agreement(ours: dict, theirs: dict, files: list[Path]) -> dict:
    matched, ours_only, theirs_only, distances = 0, [], [], []
    for path in map(os.path.realpath, files):
        if path in ours["rotated"]:
            continue
        mine, other = ours["by_photo"].get(path, []), theirs["by_photo"].get(path, [])
        pairs = match_boxes([b for b, _ in other], [b for b, _ in mine])
        matched += len(pairs)
        distances += [float(1 - other[i][1] @ mine[j][1]) for i, j in pairs.items()]
        theirs_only += [path] * (len(other) - len(pairs))
        ours_only += [path] * (len(mine) - len(pairs))
    total = matched + len(theirs_only)
    return {"matched": matched, "face_recognition_faces": total, "recall_of_face_recognition": matched / max(1, total),
            "only_face_recognition": len(theirs_only), "only_ours": len(ours_only),
            "descriptor_distance_mean": float(np.mean(distances)) if distances else None,
            "descriptor_distance_max": float(np.max(distances)) if distances else None,
            "only_face_recognition_photos": sorted(set(theirs_only)), "only_ours_photos": sorted(set(ours_only))}


def _summary(run: dict | None) -> dict | None:
    return None if run is None else {k: v for k, v in run.items() if k not in ("by_photo", "seconds_by_photo")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, help="index only the first N photos")
    parser.add_argument("--quick", action="store_true", help="skip the single-thread engine loop")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "index.json")
    args = parser.parse_args()
    try:
        import face_recognition  # noqa: F401
        compare = True
    except ImportError:
        print("face_recognition is not installed (pip install --no-deps face_recognition): "
              "measuring ours only", file=sys.stderr)
        compare = False
    with tempfile.TemporaryDirectory() as tmp:
        folder, source = photo_folder(Path(tmp))
        files = photo_files(folder, args.limit)
        load_before = os.getloadavg()
        print(f"{len(files)} photos from {source}; {os.cpu_count()} CPUs; load {load_before[0]:.1f}")
        ours = run_ours(files, args.workers, Path(tmp))
        print(f"ours:             {ours['photos_per_s']:.2f} photos/s ({ours['seconds']:.1f} s, "
              f"{ours['faces']} faces, faces + embeddings, {args.workers} workers)")
        theirs = run_face_recognition(files) if compare else None
        if theirs:
            print(f"face_recognition: {theirs['photos_per_s']:.2f} photos/s ({theirs['seconds']:.1f} s, "
                  f"{theirs['faces']} faces)")
        loop = None if args.quick else run_engine_loop(files)
        if loop:
            print(f"our engine, 1 thread, faces only: {loop['photos_per_s']:.2f} photos/s ({loop['seconds']:.1f} s)")
    match = agreement(ours, theirs, files) if theirs else None
    ratio = ours["photos_per_s"] / theirs["photos_per_s"] if theirs else None
    if theirs:
        print(f"speed-up: {ratio:.2f}x (goal 3x); CPU seconds {ours['cpu_seconds']:.0f} vs {theirs['cpu_seconds']:.0f}")
        print(f"faces: {match['matched']} of face_recognition's {match['face_recognition_faces']} found "
              f"({match['recall_of_face_recognition']:.1%}), {match['only_ours']} only ours; "
              f"descriptor distance of matched faces: mean {match['descriptor_distance_mean']:.4f}")
    sizes = by_size(files, theirs, loop) if theirs and loop else None
    for key, group in (sizes or {}).items():
        print(f"  {key}: {group['photos']} photos, one thread each: face_recognition {group['face_recognition_s']:.0f} s, "
              f"our engine {group['our_engine_s']:.0f} s ({group['ratio']:.1f}x)")
    report = {"source": source, "photos": len(files), "cpus": os.cpu_count(),
              "load_before": load_before, "load_after": os.getloadavg(), "speedup": ratio,
              "ours": {k: v for k, v in ours.items() if k not in ("by_photo", "rotated")},
              "face_recognition": _summary(theirs), "engine_loop": _summary(loop), "by_size": sizes,
              "agreement": match}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
