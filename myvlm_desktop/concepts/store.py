"""Concept heads on disk: `<concepts dir>/<concept id>/head.safetensors` + `head.json`. Never pickle.

The safetensors file holds the numbers (person: keys and negative keys; linear: weight and bias). The
JSON says what they mean: the kind of head, the face engine or image embedder and its version, the
threshold, the training set, the concept version it was trained from, and the SHA-256 of the tensors
file, so a mismatched or half-written pair is caught. Both files are written atomically, JSON last.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from ..storage import atomic_write_bytes
from .linear import LinearHead
from .person import PersonHead

FORMAT = "myvlm-concept-head"
FORMAT_VERSION = 1
TENSORS_FILE = "head.safetensors"
META_FILE = "head.json"


class ConceptFileError(Exception):
    """A head file that is missing a part, truncated, not safetensors / JSON, or from another format."""

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        super().__init__(f"concept head file {self.path}: {reason}")


@dataclass
class Head:
    """A trained head with what it was trained from (`meta`, the JSON)."""

    model: PersonHead | LinearHead
    meta: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "person" if isinstance(self.model, PersonHead) else "linear"

    @property
    def version(self) -> str:
        """Stored in occurrences.head_version: the concept version and a digest of the weights."""
        return self.meta.get("head_version", "")


def save_head(folder: Path, head: Head) -> Head:
    """Write the head's two files into `folder`; returns the head with its final metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    data = save_tensors(_tensors(head.model), metadata={"format": FORMAT})
    digest = hashlib.sha256(data).hexdigest()
    meta = dict(head.meta, format=FORMAT, format_version=FORMAT_VERSION, kind=head.kind, tensors_sha256=digest,
                head_version=f"v{head.meta.get('concept_version', 0)}-{digest[:12]}")
    meta["threshold"] = float(head.model.threshold)
    if isinstance(head.model, LinearHead) and head.model.prototypes is not None:
        meta["prototype_cutoff"] = float(head.model.cutoff)
    _atomic_write(folder / TENSORS_FILE, data)
    _atomic_write(folder / META_FILE, json.dumps(meta, indent=2, sort_keys=True).encode())
    return Head(head.model, meta)


def load_head(folder: Path) -> Head | None:
    """The head saved in `folder`; None when there is none yet; ConceptFileError when it is unreadable."""
    meta_path, tensors_path = folder / META_FILE, folder / TENSORS_FILE
    if not meta_path.exists() and not tensors_path.exists():
        return None
    meta = _read_meta(meta_path)
    data = _read_bytes(tensors_path)
    if hashlib.sha256(data).hexdigest() != meta.get("tensors_sha256"):
        raise ConceptFileError(tensors_path, f"does not match {META_FILE} (truncated, or from another head)")
    try:
        tensors = load_tensors(data)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types on bad bytes
        raise ConceptFileError(tensors_path, f"not a safetensors file ({exc})") from None
    return Head(_model(meta, tensors, tensors_path), meta)


def _tensors(model: PersonHead | LinearHead) -> dict[str, np.ndarray]:
    if isinstance(model, PersonHead):
        return {"keys": np.ascontiguousarray(model.keys, np.float32),
                "negatives": np.ascontiguousarray(model.negatives, np.float32)}
    tensors = {"weight": np.ascontiguousarray(model.weight, np.float32),
               "bias": np.ascontiguousarray(model.bias, np.float32)}
    if model.prototypes is not None:
        tensors["prototypes"] = np.ascontiguousarray(model.prototypes, np.float32)
    return tensors


def _model(meta: dict, tensors: dict[str, np.ndarray], path: Path) -> PersonHead | LinearHead:
    kind = meta.get("kind")
    for name, values in tensors.items():  # a head of NaNs would match everyone, or no one, silently
        if not np.issubdtype(values.dtype, np.floating):
            raise ConceptFileError(path, f"{name} holds {values.dtype} values, not floats")
        if not np.isfinite(values).all():
            raise ConceptFileError(path, f"{name} holds NaN or infinite values")
    try:
        if kind == "person":
            return PersonHead(tensors["keys"], float(meta["threshold"]), tensors["negatives"])
        if kind == "linear":
            weight, bias = tensors["weight"], tensors["bias"]
            if weight.ndim != 2 or weight.shape[0] != 2 or bias.shape != (2,):
                raise ValueError(f"weight {weight.shape} / bias {bias.shape} is not a two-class linear head")
            prototypes = tensors.get("prototypes")
            if (prototypes is None) != ("prototype_cutoff" not in meta):
                raise ValueError("prototypes and their cut-off come together")
            return LinearHead(weight, bias, float(meta.get("threshold", 0.5)), prototypes,
                              float(meta.get("prototype_cutoff", 0.0)))
    except (KeyError, ValueError, TypeError) as exc:
        raise ConceptFileError(path, f"not a valid {kind} head: {exc}") from None
    raise ConceptFileError(path.with_name(META_FILE), f"unknown head kind {kind!r}")


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(_read_bytes(path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConceptFileError(path, f"not valid JSON (truncated or corrupt: {exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ConceptFileError(path, f"not a {FORMAT} description")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ConceptFileError(path, "written by a newer MyVLM Desktop; update the app or retrain the head")
    return meta


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConceptFileError(path, "missing (the head was only half written); retrain it") from None
    except OSError as exc:
        raise ConceptFileError(path, f"cannot read: {exc.strerror or exc}") from None


def _atomic_write(target: Path, data: bytes) -> None:
    atomic_write_bytes(target, data)  # DiskFull on a full disk; the previous head stays whole
