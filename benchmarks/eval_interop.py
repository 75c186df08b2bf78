"""Interoperability on real files: formats, names from other apps' XMP, and concept pack sizes.

formats: each file of ../shared/data/formats scanned and indexed (dlib faces, SSCD embedding): indexed?,
    format, size, faces found, embedding stored, decode time (load at the index stage's 2048 px, median of 3).
xmp: ../shared/data/xmp_regions scanned, indexed and `import-names` run: each name, the face it landed on
    (detected or made from the region), and the IoU of that face with the region.
packs: concept packs exported for a person (Marie Curie, a dlib person head) and a pet (a linear head on
    SSCD embeddings), each with one concept-embedding slot: pack sizes in bytes.

    python benchmarks/eval_interop.py [--data ../shared/data] [--out benchmarks/results/interop.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from myvlm_desktop import config, imaging
from myvlm_desktop.concepts.train import train_concept_head
from myvlm_desktop.interop import pack, xmp
from myvlm_desktop.library.scan import scan_library
from myvlm_desktop.library.store import Library
from myvlm_desktop.people import ops
from myvlm_desktop.pipeline.index import DECODE_SIDE, index_library
from myvlm_desktop.pipeline.names import import_names
from myvlm_desktop.vision.boxes import iou

SMOLVLM_DIM = 576  # SmolVLM-256M's hidden size: the length of its concept embedding


def _library(files: list[Path], root: Path) -> Library:
    photos = root / "photos"
    photos.mkdir(parents=True)
    for f in files:
        shutil.copy(f, photos / f.name)
    lib = Library(root / "data")
    lib.add_folder(photos)
    scan_library(lib, workers=1)
    index_library(lib, face_engine="dlib", embedder="sscd", workers=1)
    return lib


def eval_formats(folder: Path, root: Path) -> list[dict]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() not in (".txt", ".json"))
    lib = _library(files, root)
    rows = []
    for f in files:
        row = lib.db.query("SELECT * FROM photos WHERE path LIKE ?", (f"%/{f.name}",))[0]
        times = []
        for _ in range(3):
            start = time.perf_counter()
            imaging.load_array(f, DECODE_SIDE)
            times.append(time.perf_counter() - start)
        state = {r["stage"]: r["error"] or "ok" for r in
                 lib.db.query("SELECT stage, error FROM index_state WHERE photo_id = ?", (row["id"],))}
        rows.append({"file": f.name, "bytes": f.stat().st_size, "indexed": row["status"] == "ok",
                     "error": row["error"], "format": row["format"], "size": f"{row['width']}x{row['height']}",
                     "faces": lib.db.scalar("SELECT count(*) FROM faces WHERE photo_id = ?", (row["id"],)),
                     "faces_stage": state.get("faces"), "embedding": bool(lib.db.scalar(
                         "SELECT count(*) FROM image_embeddings WHERE photo_id = ?", (row["id"],))),
                     "embedding_stage": state.get("embedding"),
                     "decode_s": round(statistics.median(times), 3)})
    lib.close()
    return rows


def eval_xmp(folder: Path, root: Path) -> tuple[list[dict], Library]:
    files = sorted(folder.glob("*.jpg"))
    lib = _library(files, root)
    result = import_names(lib, face_engine="dlib")
    out = []
    for f in files:
        photo = lib.db.query("SELECT * FROM photos WHERE path LIKE ?", (f"%/{f.name}",))[0]
        names = xmp.read_names(f)
        found = {"file": f.name, "regions_in_file": [(r.name, r.source) for r in names.regions],
                 "keywords": names.keywords, "warnings": names.warnings, "names": []}
        for m in lib.db.query("SELECT m.*, f.x1 AS fx1, f.y1 AS fy1, f.x2 AS fx2, f.y2 AS fy2, f.source AS fsource, "
                              "k.name AS on_face FROM metadata_names m LEFT JOIN faces f ON f.id = m.face_id "
                              "LEFT JOIN clusters c ON c.id = f.cluster_id LEFT JOIN concepts k ON k.id = c.concept_id "
                              "WHERE m.photo_id = ? ORDER BY m.id", (photo["id"],)):
            entry = {"name": m["name"], "origin": m["origin"], "outcome": m["outcome"], "detail": m["detail"]}
            if m["face_id"]:
                w, h = photo["width"], photo["height"]
                region = (m["x1"] * w, m["y1"] * h, m["x2"] * w, m["y2"] * h)
                face = (m["fx1"], m["fy1"], m["fx2"], m["fy2"])
                entry.update(face_id=m["face_id"], face_source=m["fsource"], face_box=[round(v) for v in face],
                             iou=round(iou(region, face), 2), face_named=m["on_face"])
            found["names"].append(entry)
        out.append(found)
    print(f"import-names: {json.dumps({k: v for k, v in result.items() if k != 'warnings'})}")
    return out, lib


def eval_packs(person_lib: Library, formats_root: Path, root: Path) -> dict:
    sizes = {}
    head = train_concept_head(person_lib, "Marie Curie")
    _vector(person_lib, "Marie Curie")
    out = pack.export_concept(person_lib, "Marie Curie", root / "marie.myvlm")
    sizes["person"] = {"bytes": out["bytes"], "head": head.kind, "head_shapes": out["head"]["shapes"],
                       "thumbnails": len(out["thumbnails"])}
    lib = Library(formats_root / "data")
    try:
        ids = [r["id"] for r in lib.db.query("SELECT id FROM photos WHERE status = 'ok' AND (path LIKE '%denali%' "
                                             "OR path LIKE '%rocks%')")]
        ops.create_concept_from_photos(lib, "Rocky", "pet", ids)
        head = train_concept_head(lib, "Rocky")
        _vector(lib, "Rocky")
        out = pack.export_concept(lib, "Rocky", root / "rocky.myvlm")
        sizes["pet"] = {"bytes": out["bytes"], "head": head.kind, "head_shapes": out["head"]["shapes"],
                        "thumbnails": len(out["thumbnails"])}
    finally:
        lib.close()
    return sizes


def _vector(lib: Library, name: str) -> None:
    """A concept-embedding slot of SmolVLM-256M's size (no VLM weights here: the values are not trained)."""
    from safetensors.numpy import save as save_tensors

    concept = lib.db.query("SELECT * FROM concepts WHERE name = ?", (name,))[0]
    folder = config.concepts_dir(lib.root) / str(concept["id"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "smolvlm.safetensors").write_bytes(save_tensors({"vector": np.zeros(SMOLVLM_DIM, np.float32)}))
    (folder / "smolvlm.json").write_text(json.dumps({"name": name, "backend": "smolvlm", "dim": SMOLVLM_DIM,
                                                     "model": "HuggingFaceTB/SmolVLM-256M-Instruct"}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--out", default="benchmarks/results/interop.json")
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "formats").is_dir():
        parser.error(f"no formats folder under {data}")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        formats = eval_formats(data / "formats", tmp / "formats")
        print(f"{'file':28} {'indexed':7} {'format':6} {'size':10} {'faces':5} {'emb':5} decode_s")
        for r in formats:
            print(f"{r['file']:28} {r['indexed']!s:7} {r['format'] or '-':6} {r['size']:10} {r['faces']:<5} "
                  f"{r['embedding']!s:5} {r['decode_s']}" + (f"  ({r['error']})" if r["error"] else ""))
        names, lib = eval_xmp(data / "xmp_regions", tmp / "xmp")
        for f in names:
            print(f"{f['file']}: " + "; ".join(
                f"{n['name']} ({n['origin']}) {n['outcome']}" + (
                    f" on face {n['face_id']} [{n['face_source']}] IoU {n['iou']}" if n.get("face_id") else "")
                for n in f["names"]) if f["names"] else f"{f['file']}: no names ({f['warnings'] or 'no regions'})")
        try:
            packs = eval_packs(lib, tmp / "formats", tmp)
        finally:
            lib.close()
        print(f"pack sizes: person {packs['person']['bytes']} B, pet {packs['pet']['bytes']} B")
    result = {"load_before": load, "load_after": os.getloadavg(), "formats": formats, "xmp": names, "packs": packs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {args.out}; load {load[0]:.2f} -> {result['load_after'][0]:.2f}")


if __name__ == "__main__":
    main()
