"""One VLM per process, shared by training, captioning and questions about a photo.

A VLM is gigabytes: a training job and the caption stage must not each load a copy onto one GPU. `backend()`
loads the configured one on first use from the library's own models folder (and the Hugging Face cache) and
hands the same object to every caller; asking for another model replaces it. `lane()` lets one of them run
the model at a time (a training step, one caption, one answer), so a question waits a step, not a whole run.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_lock = threading.Lock()
_lane = threading.RLock()
_loaded: dict[tuple, object] = {}
loads = 0  # how many times a model was loaded in this process (tests check that jobs share one)


def backend(name: str = "smolvlm", model: str | None = None, device: str = "auto", models_dir=None,
            detail: str | None = None):
    """The VLM for these options, loaded once; ModelUnavailable when its weights are not on disk.

    `detail` (the caption_detail setting: auto, fast, detailed) applies to captions and answers."""
    global loads
    from ..vlm.loader import DEFAULT_MODELS, pick_device

    model = model or DEFAULT_MODELS.get(name)
    key = (name, model, str(pick_device(device)), str(models_dir) if models_dir else None)  # 'auto' is 'cpu' here
    with _lock:
        if key not in _loaded:
            from ..vlm.generate import load_backend

            with _lane:  # never swap the model under a running step
                _loaded.clear()  # one VLM in memory at a time: they are large
                _loaded[key] = load_backend(name, model, device, models_dir=models_dir)
                loads += 1
        loaded = _loaded[key]
    if detail:
        loaded.detail = caption_detail(detail, loaded.device)
    return loaded


def caption_detail(setting: str, device) -> str:
    """'auto' is detailed on a GPU (tiles cost seconds there) and fast on a CPU (they cost a minute a photo)."""
    if setting in ("fast", "detailed"):
        return setting
    return "detailed" if getattr(device, "type", str(device)) == "cuda" else "fast"


def adopt(loaded, models_dir=None) -> None:
    """Share a backend loaded elsewhere (a test's tiny model) as the process's VLM."""
    with _lock, _lane:
        _loaded.clear()
        _loaded[(loaded.name, loaded.model_id, str(loaded.device), str(models_dir) if models_dir else None)] = loaded


def release() -> None:
    """Drop the shared VLM (switching models, closing a library)."""
    with _lock, _lane:
        _loaded.clear()


@contextmanager
def lane():
    """Run the shared model: one training step, caption or answer at a time (re-entrant)."""
    with _lane:
        yield
