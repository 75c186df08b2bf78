"""Which face engines have a same-person threshold measured on real photos, and what it is.

A threshold taken from another project (Immich's 0.5 for ArcFace) may merge or split people on this
app's photos, so `auto` only picks an engine calibrated here: dlib's figure is built in (measured on
faces_jurassic, see faces.py); others get theirs from benchmarks/calibrate_faces.py --store, which
writes <models folder>/calibration/<engine id>.json once someone with the weights has run it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..models.lookup import app_models_dir

# engine id -> threshold measured by calibrate_faces.py on faces_jurassic (the figures are in faces.py)
BUILT_IN = {"dlib-resnet_v1": 0.085}


def calibration_file(engine_id: str, models_dir=None) -> Path:
    return app_models_dir(models_dir) / "calibration" / f"{engine_id}.json"


def calibrated_threshold(engine_id: str, models_dir=None) -> float | None:
    """The measured threshold of this engine version, or None when nobody calibrated it yet.

    A damaged or foreign calibration file counts as none: the engine stays uncalibrated, nothing breaks.
    """
    if engine_id in BUILT_IN:
        return BUILT_IN[engine_id]
    try:
        stored = json.loads(calibration_file(engine_id, models_dir).read_text())
        threshold = float(stored["threshold"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if stored.get("engine") != engine_id or not 0.0 < threshold < 2.0:
        return None
    return threshold


def save_calibration(engine_id: str, threshold: float, details: dict, models_dir=None) -> Path:
    """Store a measured threshold for this engine version (written whole, then renamed into place)."""
    if not 0.0 < threshold < 2.0:
        raise ValueError(f"a cosine-distance threshold lies between 0 and 2, not {threshold}")
    path = calibration_file(engine_id, models_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps({"engine": engine_id, "threshold": threshold, **details}, indent=2))
    partial.replace(path)
    return path
