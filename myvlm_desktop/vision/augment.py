"""MyVLM's augmentation of training photos: random horizontal flip, brightness jitter and rotation.

One function for the two trainings, each with the setting ../MYVLM.md gives for it:
- a pet / object head (section 1): "augmentation: horizontal flip + rotation up to 30 degrees" (`HEAD`);
- a concept embedding (section 3): "horizontal flip, colour jitter (brightness 0.6), rotation up to
  45 degrees" (`EMBEDDING`).
Both train on frozen features, so each view is encoded once (the head's embedder, the VLM's vision
tower) and a fixed seed gives the same views, hence the same result, every time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance


@dataclass(frozen=True)
class Augmentation:
    max_degrees: float       # rotation drawn uniformly in [-max_degrees, max_degrees]
    brightness: float = 0.0  # brightness factor drawn uniformly in [1 - brightness, 1 + brightness]


HEAD = Augmentation(max_degrees=30.0)
EMBEDDING = Augmentation(max_degrees=45.0, brightness=0.6)


def draw(rng: np.random.Generator, setting: Augmentation) -> tuple[bool, float, float]:
    """One random (mirrored, brightness factor, degrees)."""
    mirrored = bool(rng.random() < 0.5)
    factor = rng.uniform(max(0.0, 1 - setting.brightness), 1 + setting.brightness) if setting.brightness else 1.0
    return mirrored, float(factor), float(rng.uniform(-setting.max_degrees, setting.max_degrees))


def augment(image: Image.Image, rng: np.random.Generator, setting: Augmentation = EMBEDDING) -> Image.Image:
    """One random view of `image` (RGB)."""
    mirrored, factor, degrees = draw(rng, setting)
    view = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirrored else image
    if factor != 1.0:
        view = ImageEnhance.Brightness(view).enhance(factor)
    # black corners, as torchvision's RandomRotation leaves them (what MyVLM trained with)
    return view.rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


def views(image: Image.Image, count: int, seed: int, setting: Augmentation = EMBEDDING) -> list[Image.Image]:
    """`count` views of one photo, the unchanged photo first; the same seed gives the same views."""
    rng = np.random.default_rng(seed)
    return [image] + [augment(image, rng, setting) for _ in range(count - 1)]


def array_views(rgb: np.ndarray, count: int, seed: int, setting: Augmentation = HEAD) -> list[np.ndarray]:
    """`views` for an HxWx3 uint8 array, as arrays (what the image embedders take)."""
    return [np.asarray(v) for v in views(Image.fromarray(np.asarray(rgb, np.uint8)), count, seed, setting)]
