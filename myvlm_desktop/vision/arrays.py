"""Small array helpers the engines share: input checks, resizing, normalising, OpenCV and ONNX Runtime setup."""

from __future__ import annotations

import contextlib
import os

import numpy as np

# OpenCV wheels with Qt (opencv-python, which insightface asks for) point Qt at their own Qt5 plugins
# through these variables when cv2 is imported; that breaks PySide6, so they are put back afterwards.
_QT_VARIABLES = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR")


@contextlib.contextmanager
def keep_qt_environment():
    saved = {name: os.environ.get(name) for name in _QT_VARIABLES}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def opencv():
    with keep_qt_environment():
        import cv2
    return cv2


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A contiguous HxWx3 uint8 array; grey and RGBA arrays are converted, anything else is refused."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image array, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"expected an HxWx3 RGB image array, got shape {image.shape}")
    return np.ascontiguousarray(image)


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    cv2 = opencv()
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def resize_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    cv2 = opencv()
    shrink = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def onnx_providers() -> list[str]:
    """CUDA when onnxruntime-gpu can use it (the `gpu` extra), else the CPU."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available] or available

