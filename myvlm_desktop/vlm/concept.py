"""A concept embedding on disk: one vector in safetensors, and what it means in a JSON beside it (never pickle)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ..storage import atomic_write_bytes

KINDS = ("person", "pet", "object")


class ConceptFileError(Exception):
    """A concept file that is missing, truncated or does not belong to this app."""


@dataclass
class ConceptVector:
    """One learned vector for one (concept, backend): what the VLM 'sees' when the concept's head fires."""

    name: str
    identifier: str  # how captions say it, e.g. <Alice>
    kind: str  # person, pet or object: the class noun a caption replaces
    vector: torch.Tensor  # 1-D, in the backend's feature space (its length is the backend's concept_dim)
    backend: str = ""
    model: str = ""
    meta: dict = field(default_factory=dict)  # steps, concept version, loss history, ...


def save_concept_vector(path: str | os.PathLike, concept: ConceptVector, **meta) -> Path:
    """Write `path` (.safetensors) and the JSON beside it, each atomically."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {**concept.meta, **meta, "name": concept.name, "identifier": concept.identifier, "kind": concept.kind,
            "backend": concept.backend, "model": concept.model, "dim": int(concept.vector.numel()), "format": 1}
    vector = concept.vector.detach().float().reshape(-1).contiguous().cpu()
    atomic_write_bytes(path, save({"vector": vector}))
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(info, indent=2, ensure_ascii=False).encode())
    return path


def load_concept_vector(path: str | os.PathLike) -> ConceptVector:
    path = Path(path).with_suffix(".safetensors")
    try:
        info = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        vector = load_file(str(path))["vector"]
    except FileNotFoundError as exc:
        raise ConceptFileError(f"concept file missing: {exc.filename}") from None
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        raise ConceptFileError(f"unreadable concept file {path}: {exc}") from None
    if not isinstance(info, dict) or vector.ndim != 1 or info.get("dim") != vector.numel():
        raise ConceptFileError(f"concept file {path} does not match its JSON")
    if not vector.is_floating_point() or not torch.isfinite(vector).all():
        raise ConceptFileError(f"concept file {path} holds {vector.dtype} values that are not finite floats")
    if not all(isinstance(info.get(k), str) for k in ("name", "identifier", "kind")):
        raise ConceptFileError(f"concept file {path}: its JSON lacks the concept's name, identifier or kind")
    keys = ("name", "identifier", "kind", "backend", "model")
    meta = {k: v for k, v in info.items() if k not in keys}
    return ConceptVector(info["name"], info["identifier"], info["kind"], vector, info.get("backend", ""),
                         info.get("model", ""), meta)
