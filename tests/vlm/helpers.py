"""What the VLM tests share with the pipeline's training tests."""

from __future__ import annotations

import numpy as np
from PIL import Image

# name -> (backend, language-model variant); BLIP-2 is tested with Flan-T5 (the paper's) and OPT
VARIANTS = {"smolvlm": ("smolvlm", "t5"), "llava": ("llava", "t5"), "blip2": ("blip2", "t5"),
            "blip2-opt": ("blip2", "opt")}


def photo(name: str) -> Image.Image:
    """A real photo shipped with scikit-image: astronaut, coffee, chelsea (a cat), rocket, ..."""
    from skimage import data

    return Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB")
