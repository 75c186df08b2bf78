"""Questions, for the window's chat and for `myvlm ask` alike.

A question about a photo goes to the VLM (its weights are checked before transformers is loaded); a
question about the library is answered from the database and phrased by a small LM. Both are stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .. import config
from ..library.store import Library
from .process import vlm_weights
from .settings import load_settings, vlm_options


def ask_photo(library: Library, photo: int | str | os.PathLike, question: str,
              on_token: Callable[[str], None] | None = None, **overrides: Any) -> dict:
    """{"answer", "concepts", "backend", "photo_id"} for a question about a library photo (its id) or a file.

    ValueError for an empty question or a file that is not there, checked before any model is loaded;
    ModelUnavailable when the VLM's weights are not on disk. `overrides`: backend, model, device.
    """
    check_question(question, "What is <Alice> doing?")
    if not isinstance(photo, int) and not os.path.exists(photo):
        raise ValueError(f"no such file: {os.fsdecode(photo)}")
    from .captions import answer_photo

    backend = vlm_backend(library, **overrides)
    return answer_photo(library, photo, question, backend, on_token=on_token)


def ask_library(library: Library, question: str, on_token: Callable[[str], None] | None = None,
                use_model: bool = True) -> dict:
    """{"answer", "facts", "phrased_by", "concepts", "backend"} for a question about the whole library.

    `on_token` gets the template answer from the database's facts at once; the returned answer (phrased and
    checked, or that template) replaces it.
    """
    check_question(question, "When did I last see <Rex>?")
    from .ask import ask_library as answer_library

    result = answer_library(library, question, use_model=use_model, on_token=on_token)
    return {**result, "backend": result["phrased_by"]}


def preload_phraser(library: Library) -> str | None:
    """Load SmolLM2 and its worked examples' cache now (a background task when the chat turns to the library),
    so the first library question is answered warm. The model's name, or None when its weights are absent."""
    from .ask import shared_phraser

    phraser = shared_phraser(library.root)
    if phraser is None:
        return None
    phraser.warm()
    return phraser.name


def vlm_backend(library: Library, **overrides: Any):
    """The configured VLM (CLI options override the settings), loaded once per process."""
    from .captions import shared_backend

    settings = load_settings(library.db)
    options = vlm_options(settings)
    options.update({k: v for k, v in overrides.items() if v})
    options["models_dir"] = config.models_dir(library.root)  # the library's own models folder, not the default one
    vlm_weights(options)
    return shared_backend(**options)


def check_question(question: str, example: str) -> None:
    if not question or not question.strip():
        raise ValueError(f"ask a question, like: {example}")
