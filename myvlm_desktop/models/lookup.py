"""Find a model's files on disk: inside its pip package, in the Hugging Face cache, in the app's models
folder, or (insightface) in ~/.insightface/models. Nothing here touches the network."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from .. import config
from .errors import ModelUnavailable
from .registry import ModelSpec


def app_models_dir(models_dir: Path | str | None = None) -> Path:
    """The app's own models folder: the one given, else the data folder's (--data-dir / $MYVLM_DATA_DIR)."""
    return Path(models_dir) if models_dir else config.models_dir(config.data_dir())


def insightface_dir() -> Path:
    """Where the insightface package itself keeps its models (its `root` default is ~/.insightface)."""
    return Path(os.environ.get("INSIGHTFACE_HOME") or "~/.insightface").expanduser() / "models"


def locate(model: ModelSpec, models_dir: Path | str | None = None) -> Path:
    if model.source == "package":
        return _in_package(model)
    if model.source == "url":
        folders = [app_models_dir(models_dir) / model.folder, insightface_dir() / model.folder]
        return _in_folders(model, folders)
    return _in_hub(model, app_models_dir(models_dir))


def size_on_disk(model: ModelSpec, path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    names = model.files if model.source != "huggingface" else [p.name for p in path.iterdir()]
    return sum((path / name).stat().st_size for name in names if (path / name).is_file())


def _in_package(model: ModelSpec) -> Path:
    try:
        found = importlib.util.find_spec(model.module)  # finds it without running its __init__
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin:
        raise ModelUnavailable(model.name, f"the pip package {model.package} is not installed", model.how_to_get)
    folder = Path(found.origin).parent / model.subdir
    missing = [name for name in model.files if not (folder / name).is_file()]
    if missing:
        raise ModelUnavailable(model.name, f"{', '.join(missing)} missing from the {model.package} package",
                               f"Reinstall it with `pip install --force-reinstall {model.package}`.", [str(folder)])
    return folder / model.files[0] if len(model.files) == 1 else folder


def _in_folders(model: ModelSpec, folders: list[Path]) -> Path:
    for folder in folders:
        if all((folder / name).is_file() for name in model.files):
            return folder
    raise ModelUnavailable(model.name, f"weights not found ({', '.join(model.files)})", model.how_to_get,
                           [str(f) for f in folders])


def _in_hub(model: ModelSpec, models_dir: Path) -> Path:
    local = [models_dir / model.repo_id.replace("/", "--"), models_dir / model.repo_id]
    for folder in local:
        if _complete(model, folder):
            return folder
    snapshot = _hub_snapshot(model)
    if snapshot is not None and _complete(model, snapshot):
        return snapshot
    from huggingface_hub import constants

    where = [f"Hugging Face cache {constants.HF_HUB_CACHE}", *map(str, local)]
    what = "weights incomplete" if snapshot is not None else "weights not found"
    raise ModelUnavailable(model.name, what, model.how_to_get, where)


def _hub_snapshot(model: ModelSpec) -> Path | None:
    """The cached snapshot folder holding the model's first file, or None (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return None
    cached = try_to_load_from_cache(model.repo_id, model.files[0])
    return Path(cached).parent if isinstance(cached, str) else None


def _complete(model: ModelSpec, folder: Path) -> bool:
    if not folder.is_dir() or not all((folder / name).is_file() for name in model.files):
        return False
    if model.one_of and not any((folder / name).is_file() for name in model.one_of):
        return False
    return not model.weights or _weights_present(folder)


def _weights_present(folder: Path) -> bool:
    """Single-file weights, or every shard an index names (is_file follows the cache's symlinks)."""
    for index in folder.glob("*.safetensors.index.json"):
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            return False
        return bool(shards) and all((folder / shard).is_file() for shard in shards)
    return any(path.is_file() for path in folder.glob("*.safetensors"))
