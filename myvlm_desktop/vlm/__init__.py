"""MyVLM concept embeddings inside vision-language models: backends, the concept layer, training, generation.

Names are imported on first use so that importing the package (the CLI does) does not load torch.
"""

from __future__ import annotations

_EXPORTS = {
    "load_backend": "generate", "Backend": "backends", "Result": "backends", "BACKENDS": "backends",
    "ConceptVector": "concept", "load_concept_vector": "concept", "save_concept_vector": "concept",
    "ConceptTrainer": "train", "TrainSettings": "train",
}
__all__ = ["BACKENDS", "Backend", "ConceptTrainer", "ConceptVector", "Result", "TrainSettings", "load_backend",
           "load_concept_vector", "save_concept_vector"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
