"""The Python API the captions pipeline and the GUI call.

    backend = load_backend("smolvlm")                  # ModelUnavailable when the weights are not on disk
    concept = load_concept_vector(path)                # one per (concept, backend), written by training
    result = backend.caption(image, [concept], on_token=print)
    result.text, result.concepts, result.backend
    results = caption_batch(backend, images, [[concept], [], ...])  # several photos at once, same captions

`concepts` are the concepts whose heads fired on this photo (myvlm_desktop.concepts decides that); their
tokens are appended in a stable order. With no concepts the caption is the unmodified model's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .backends import BACKENDS, Backend, Result
from .backends.base import as_image
from .concept import ConceptVector, load_concept_vector, save_concept_vector
from .loader import DEFAULT_MODELS, load_parts, pick_device, pick_dtype

__all__ = ["BACKENDS", "Backend", "ConceptVector", "Result", "caption_batch", "load_backend", "load_concept_vector",
           "save_concept_vector"]


def load_backend(name: str = "smolvlm", model: str | None = None, device: str = "auto",
                 dtype: torch.dtype | str | None = None, models_dir=None) -> Backend:
    """Load a backend's model from a local folder, the model manager or the Hugging Face cache (offline).

    `models_dir` is the app's own models folder (default: the data folder's); ModelUnavailable when absent.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    cls = BACKENDS[name]
    model_id = model or DEFAULT_MODELS[name]
    where = pick_device(device)
    net, processor, _ = load_parts(cls.model_class(), model_id, where, pick_dtype(where, dtype), models_dir)
    return cls(net, processor, model_id)


def caption_batch(backend: Backend, images: Sequence, concepts: Sequence[Sequence[ConceptVector]] | None = None,
                  max_new_tokens: int = 40, min_new_tokens: int = 0) -> list[Result]:
    """Captions of several photos, `concepts[i]` for photo i: the same greedy captions as `backend.caption` one
    by one. Photos with the same concepts share one prompt, so they go through `generate` together with no
    padding at all (whatever side a backend pads on); on a CPU a batch costs little more than one photo."""
    concepts = [backend._usable(c) for c in (concepts or [[] for _ in images])]
    if getattr(backend, "detail", "fast") == "detailed":  # tiles differ from photo to photo: one at a time
        return [backend.caption(image, chosen, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens)
                for image, chosen in zip(images, concepts, strict=True)]
    groups: dict[tuple, list[int]] = {}
    for i, chosen in enumerate(concepts):
        groups.setdefault(tuple((c.identifier, id(c.vector)) for c in chosen), []).append(i)
    results: list[Result] = [Result("", [], backend.name)] * len(images)
    for members in groups.values():
        chosen = concepts[members[0]]
        prompt = backend.caption_prompt([backend.spoken(c.identifier) for c in chosen])  # as its tokenizer writes
        features = backend.encode([as_image(images[i]) for i in members])
        texts = backend.generate(features, [c.vector for c in chosen], [prompt] * len(members),
                                 max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens)
        for i, text in zip(members, texts, strict=True):
            results[i] = Result(backend.shown(text, [c.identifier for c in chosen]), [c.name for c in chosen],
                                backend.name, backend.model_id)
    return results
