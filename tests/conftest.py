"""Shared fixtures: a fresh library in a temporary data folder, and photos the tests make or pip packages ship."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def library(tmp_path):
    from myvlm_desktop.library.store import Library

    lib = Library(tmp_path / "data")
    yield lib
    lib.close()


@pytest.fixture
def photo_dir(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    return folder


def make_jpeg(path: Path, size=(320, 240), seed: int = 0, exif: Image.Exif | None = None) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, "JPEG", quality=80, **({"exif": exif} if exif is not None else {}))
    return path


def insightface_image(name: str) -> Path:
    """A real photo shipped inside the insightface wheel (t1.jpg: a group of 6 people)."""
    import importlib.util

    spec = importlib.util.find_spec("insightface")
    return Path(spec.origin).parent / "data" / "images" / name
