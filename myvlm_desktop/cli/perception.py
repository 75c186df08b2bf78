"""Perception commands: models list/download, index, faces PATH, doctor."""

from __future__ import annotations

import os
from pathlib import Path

from .. import config
from ..imaging import ImageError, load_array
from ..models.download import hub_offline
from ..models.errors import ModelUnavailable
from ..sizes import human_size
from .common import CommandError, StderrProgress, emit, library, positive_int

# as vision/faces.ENGINES and vision/embed.EMBEDDERS, which `myvlm --help` must not import
FACE_ENGINES = ("auto", "dlib", "dlib+mtcnn", "dlib+cnn", "dlib-cnn", "insightface")
EMBEDDERS = ("sscd", "clip")


def register(sub) -> None:
    p = sub.add_parser("models", help="the models the app can use: list them, download one")
    models = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    q = models.add_parser("list", help="every model with kind, availability, path and size")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=models_list)
    q = models.add_parser("download", help="download a model (progress on stderr)")
    q.add_argument("name")
    q.set_defaults(handler=models_download)

    p = sub.add_parser("index", help="find faces and compute image embeddings for photos not yet indexed")
    p.add_argument("--face-engine", default="auto", choices=FACE_ENGINES, help="default auto")
    p.add_argument("--embedder", default="sscd", choices=EMBEDDERS, help="default sscd")
    p.add_argument("--workers", type=positive_int, default=2)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=index)

    p = sub.add_parser("faces", help="the faces of one photo (stored ones when it is indexed, else found now)")
    p.add_argument("path")
    p.add_argument("--engine", default="auto", choices=FACE_ENGINES,
                   help="engine for a photo that is not indexed (default auto)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=faces)

    p = sub.add_parser("doctor", help="which engines and models the app will use here, and why")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=doctor)


def _models_dir(args) -> Path:
    try:
        return config.models_dir(config.data_dir(args.data_dir))
    except OSError as exc:
        raise CommandError(f"cannot use the data folder: {exc}") from None


# -- models ---------------------------------------------------------------------------------------------------
def models_list(args) -> None:
    from ..models.registry import list_models

    rows = list_models(_models_dir(args))
    lines = [f"{'yes' if r['available'] else 'no ':>3}  {r['kind']:<8} {r['name']:<38} {human_size(r['size']) or '-':>9}  "
             f"{r['path'] or r.get('reason', '')}" for r in rows]
    emit(rows, args.json, "\n".join(lines))


def models_download(args) -> None:
    from ..models.registry import MODELS, download_model, spec

    try:
        spec(args.name)
    except ModelUnavailable:
        raise CommandError(f"no model called {args.name!r}; known: {', '.join(m.name for m in MODELS)}") from None
    path = download_model(args.name, progress=StderrProgress(unit="B"), models_dir=_models_dir(args))
    print(f"{args.name}: {path}")


# -- index ----------------------------------------------------------------------------------------------------
def index(args) -> None:
    from ..pipeline.index import index_library

    result = index_library(library(args), control=StderrProgress(), face_engine=args.face_engine,
                           embedder=args.embedder, workers=args.workers)
    text = (f"{result['indexed']} photos indexed, {result['faces']} faces, {result['errors']} errors "
            f"(faces: {result['face_engine'] or 'skipped'}, embeddings: {result['embedder'] or 'skipped'})")
    text += "".join(f"\n{stage} skipped: {why}" for stage, why in result["skipped"].items())
    emit(result, args.json, text)


# -- faces PATH -----------------------------------------------------------------------------------------------
def faces(args) -> None:
    path = os.path.abspath(os.path.expanduser(args.path))
    if not os.path.exists(path):
        raise CommandError(f"no such file: {args.path}")
    lib = library(args)
    row = lib.photo_by_path(path) or lib.photo_by_path(os.path.realpath(path))
    stored = _stored_faces(lib, row["id"]) if row is not None else None
    if stored is not None:
        result = {"path": row["path"], "photo_id": row["id"], "stored": True, **stored}
    else:
        result = {"path": path, "photo_id": row["id"] if row is not None else None, "stored": False,
                  **_found_faces(path, args.engine, config.models_dir(lib.root))}
    lines = [f"{f['box']} score {f['score']}" + (f" {f['concept']}" if f.get("concept") else "")
             for f in result["faces"]]
    emit(result, args.json, f"{len(result['faces'])} faces ({result['engine']})" + "".join("\n" + x for x in lines))


def _stored_faces(lib, photo_id: int) -> dict | None:
    """The photo's faces from the index, or None when the index has not processed the photo yet."""
    state = lib.db.read().execute("SELECT engine, error FROM index_state WHERE photo_id = ? AND stage = 'faces'",
                                  (photo_id,)).fetchone()
    if state is None:
        return None
    rows = lib.db.query(
        "SELECT f.*, c.concept_id, n.name AS concept FROM faces f LEFT JOIN clusters c ON c.id = f.cluster_id "
        "LEFT JOIN concepts n ON n.id = c.concept_id WHERE f.photo_id = ? ORDER BY f.x1", (photo_id,))
    faces = [{"id": r["id"], "box": [round(r[k], 1) for k in ("x1", "y1", "x2", "y2")],
              "score": round(r["score"], 4) if r["score"] is not None else None, "engine": r["engine"],
              "cluster_id": r["cluster_id"], "concept": r["concept"], "hidden": bool(r["hidden"]),
              "assigned_by": r["assigned_by"]} for r in rows]
    return {"engine": state["engine"], "error": state["error"], "faces": faces}


def _found_faces(path: str, engine_name: str, models_dir: Path) -> dict:
    from ..vision.faces import get_face_engine

    try:
        rgb = load_array(path)
    except ImageError as exc:
        raise CommandError(f"cannot read {path}: {exc.reason}") from None
    engine = get_face_engine(engine_name, models_dir=models_dir)
    found = engine.analyze(rgb)
    faces = [{"box": [round(float(v), 1) for v in f.box], "score": round(float(f.score), 4),
              "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in f.landmarks]} for f in found]
    return {"engine": engine.engine_id, "error": None, "faces": faces}


# -- doctor ---------------------------------------------------------------------------------------------------
def doctor(args) -> None:
    from ..models.registry import list_models
    from ..vision.calibration import calibrated_threshold
    from ..vision.embed import CLIP_MODELS, clip_engine_id
    from ..vision.faces import auto_choice

    models_dir = _models_dir(args)
    engine, why = auto_choice(models_dir)
    models = list_models(models_dir)
    available = {m["name"]: m for m in models}
    thresholds = {e: calibrated_threshold(e, models_dir) for e in ("dlib-resnet_v1", "insightface-buffalo_l")}
    clip = {"available": available[CLIP_MODELS[0]]["available"],
            "calibrated_threshold": calibrated_threshold(clip_engine_id(), models_dir)}
    report = {
        "face_engine": {"auto": engine, "reason": why, "calibrated_thresholds": thresholds},
        "embedder": {"default": "sscd", "available": available["sscd"]["available"],
                     "reason": available["sscd"].get("reason"), "clip": clip},
        "onnxruntime": _onnxruntime(),
        "dlib": _dlib(),
        "models_dir": str(models_dir),
        "hf_cache": _hf_cache(),
        "hf_offline": hub_offline(),
        "models": models,
    }
    text = [f"faces: {engine} ({why})",
            "face thresholds: " + ", ".join(f"{e} {'uncalibrated' if t is None else t}" for e, t in thresholds.items()),
            f"image embeddings: sscd {'ready' if report['embedder']['available'] else 'missing'}, "
            f"clip {'ready' if clip['available'] else 'not downloaded'} "
            f"({'uncalibrated: its grouping distance was never measured on photos here' if clip['calibrated_threshold'] is None else 'calibrated'})",
            f"onnxruntime {report['onnxruntime'].get('version')}: {', '.join(report['onnxruntime'].get('providers', []))}",
            f"dlib {report['dlib'].get('version')}",
            f"models folder: {models_dir}",
            *(f"  {'yes' if m['available'] else 'no ':>3}  {m['name']}" for m in models)]
    emit(report, args.json, "\n".join(text))


def _onnxruntime() -> dict:
    try:
        import onnxruntime
    except ImportError as exc:
        return {"error": str(exc)}
    from ..vision.arrays import onnx_providers

    return {"version": onnxruntime.__version__, "providers": onnx_providers()}


def _dlib() -> dict:
    try:
        import dlib
    except ImportError as exc:
        return {"error": str(exc)}
    return {"version": dlib.__version__, "cuda": bool(getattr(dlib, "DLIB_USE_CUDA", False))}


def _hf_cache() -> str | None:
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    return str(constants.HF_HUB_CACHE)
