"""Where the app keeps its files: one data folder holding the database, thumbnails, heads and models."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "MyVLM Desktop"
ENV_DATA_DIR = "MYVLM_DATA_DIR"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data folder: an explicit choice, else $MYVLM_DATA_DIR, else the platform's user data dir."""
    chosen = explicit or os.environ.get(ENV_DATA_DIR) or platformdirs.user_data_dir(APP_NAME, appauthor=False)
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_path(root: Path) -> Path:
    return root / "library.sqlite3"


def thumbnails_dir(root: Path) -> Path:
    return root / "thumbnails"


def concepts_dir(root: Path) -> Path:
    """Concept heads and concept embeddings (safetensors + JSON)."""
    return root / "concepts"


def models_dir(root: Path) -> Path:
    """Weights the app downloaded itself (the Hugging Face cache is looked up as well)."""
    return root / "models"
