"""MyVLM's augmentation for concept-embedding training: horizontal flip, colour jitter (brightness 0.6),
rotation up to 45 degrees. The vision tower is frozen, so each view is encoded once into the bank."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance

BRIGHTNESS = 0.6
MAX_DEGREES = 45.0


def augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One random view of `image` (RGB)."""
    view = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image
    factor = rng.uniform(max(0.0, 1 - BRIGHTNESS), 1 + BRIGHTNESS)
    view = ImageEnhance.Brightness(view).enhance(factor)
    degrees = rng.uniform(-MAX_DEGREES, MAX_DEGREES)
    return view.rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


def views(image: Image.Image, count: int, seed: int) -> list[Image.Image]:
    """`count` views of one photo, the unchanged photo first; the same seed gives the same views."""
    rng = np.random.default_rng(seed)
    return [image] + [augment(image, rng) for _ in range(count - 1)]
