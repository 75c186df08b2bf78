"""Augmented views of a training photo (MyVLM: horizontal flip + rotation up to 30 degrees).

The head trains on embeddings, so each view is embedded once before training instead of augmenting
pixels at every step: a fixed set of views gives the same head every time and costs a handful of
embedder calls per photo, not 8000.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# (mirrored, degrees): the original, its mirror, and rotations within MyVLM's +-30 degrees of both.
VIEWS: tuple[tuple[bool, float], ...] = (
    (False, 0.0), (True, 0.0),
    (False, 15.0), (False, -15.0), (False, 30.0), (False, -30.0),
    (True, 15.0), (True, -15.0),
)


def augmented_views(rgb: np.ndarray, views: tuple[tuple[bool, float], ...] = VIEWS) -> list[np.ndarray]:
    """HxWx3 uint8 views of one photo, the original first."""
    img = Image.fromarray(np.asarray(rgb, np.uint8))
    out = []
    for mirrored, degrees in views:
        view = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirrored else img
        if degrees:
            # black corners as torchvision's RandomRotation leaves them (what MyVLM trained with)
            view = view.rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
        out.append(np.asarray(view))
    return out
