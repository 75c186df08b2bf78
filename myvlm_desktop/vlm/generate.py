"""The Python API the captions pipeline and the GUI call.

    backend = load_backend("smolvlm")                  # ModelUnavailable when the weights are not on disk
    concept = load_concept_vector(path)                # one per (concept, backend), written by training
    result = backend.caption(image, [concept], on_token=print)
    result.text, result.concepts, result.backend

`concepts` are the concepts whose heads fired on this photo (myvlm_desktop.concepts decides that); their
tokens are appended in a stable order. With no concepts the caption is the unmodified model's.
"""

from __future__ import annotations

import torch

from .backends import BACKENDS, Backend, Result
from .concept import ConceptVector, load_concept_vector, save_concept_vector
from .loader import DEFAULT_MODELS, load_parts, pick_device, pick_dtype

__all__ = ["BACKENDS", "Backend", "ConceptVector", "Result", "load_backend", "load_concept_vector",
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
