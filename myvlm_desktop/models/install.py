"""Installing a model from a folder (another computer's copy, a USB stick), and which models suit this machine.

A chosen folder is checked before anything is copied: a Hugging Face cache folder (models--org--name, its
newest snapshot is used), a snapshot folder, or a folder saved with save_pretrained must hold the config,
the tokenizer, the processor config and the weights (every shard an index names). It is then copied into the
library's models folder under the name lookup looks for, through a temporary folder, so a half-copied model
is never found.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .errors import ModelUnavailable
from .registry import GB, ModelSpec

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")


def model_folder(chosen: Path) -> Path:
    """The folder holding the files: `chosen` itself, or the newest snapshot of a Hugging Face cache folder."""
    chosen = Path(chosen).expanduser()
    snapshots = chosen / "snapshots"
    if not (chosen / "config.json").exists() and snapshots.is_dir():
        found = sorted((p for p in snapshots.iterdir() if (p / "config.json").exists()),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        if found:
            return found[0]
    return chosen


def problems(folder: Path, model: ModelSpec) -> list[str]:
    """What is missing or broken in `folder` for `model` (empty: it is complete)."""
    if not folder.is_dir():
        return [f"{folder} is not a folder"]
    found = []
    missing = [name for name in model.files if not (folder / name).is_file()]
    found += [f"no {name}" for name in missing]
    if model.one_of and not any((folder / name).is_file() for name in model.one_of):
        found.append(f"no {' or '.join(model.one_of)}")
    if model.kind == "vlm" and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        found.append("no tokenizer (tokenizer.json or tokenizer.model)")
    if model.weights:
        found += _weight_problems(folder)
    if not found and (folder / "config.json").is_file():
        try:
            json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found.append("config.json is not readable JSON")
    return found


def _weight_problems(folder: Path) -> list[str]:
    indexes = list(folder.glob("*.safetensors.index.json"))
    if indexes:
        try:
            shards = set(json.loads(indexes[0].read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            return [f"{indexes[0].name} is not readable"]
        absent = sorted(s for s in shards if not (folder / s).is_file() or (folder / s).stat().st_size == 0)
        return [f"weight shards missing: {', '.join(absent)}"] if absent else []
    weights = [p for p in folder.glob("*.safetensors") if p.is_file() and p.stat().st_size > 0]
    return [] if weights else ["no weights (*.safetensors)"]


def install_folder(chosen: Path | str, model: ModelSpec, models_dir: Path) -> Path:
    """Check the folder, then copy it into `models_dir` where lookup finds it; ModelUnavailable if incomplete."""
    source = model_folder(Path(chosen))
    found = problems(source, model)
    if found:
        raise ModelUnavailable(model.name, f"the folder {chosen} is not a complete copy ({'; '.join(found)})",
                               "Choose the model's own folder (with config.json), or download it.")
    target = models_dir / (model.repo_id or model.name).replace("/", "--")
    if source.resolve() == target.resolve():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=f".{target.name}-") as tmp:
        staged = Path(tmp) / "model"
        shutil.copytree(source, staged, symlinks=False)  # a cache snapshot's links become real files
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return target


# -- what suits this machine -------------------------------------------------------------------------------------
def recommended(cuda_memory_bytes: int | None) -> list[str]:
    """Model names for a machine with that much CUDA memory (None: no CUDA GPU)."""
    if not cuda_memory_bytes:
        return ["HuggingFaceTB/SmolVLM-256M-Instruct"]
    if cuda_memory_bytes >= 24 * GB:
        return ["HuggingFaceTB/SmolVLM-500M-Instruct", "Salesforce/blip2-flan-t5-xl", "llava-hf/llava-1.5-7b-hf"]
    if cuda_memory_bytes >= 12 * GB:
        return ["HuggingFaceTB/SmolVLM-500M-Instruct", "Salesforce/blip2-flan-t5-xl"]
    return ["HuggingFaceTB/SmolVLM-500M-Instruct"]


def cuda_memory() -> int | None:
    """The first CUDA GPU's memory in bytes, or None (without importing torch when it is not installed)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(0).total_memory)
