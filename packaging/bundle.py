"""What the frozen app must carry besides Python code: one list, used by the spec and checked by a test.

Model files come from the registry's package-shipped models (dlib, SSCD, SmolLM2), so a model added there is
bundled without touching the spec. Large downloadable models (insightface, CLIP, VLMs) are never bundled:
the model manager fetches them on first use.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Photos for `--self-test`, shipped by packages that are installed anyway (never photos of our own).
from myvlm_desktop.gui.selftest import BUNDLED as SAMPLE_DEST  # noqa: E402
from myvlm_desktop.gui.selftest import SAMPLES as SAMPLE_PHOTOS  # noqa: E402

# Packages whose version transformers/huggingface_hub check at import through importlib.metadata.
METADATA = ("torch", "transformers", "tokenizers", "safetensors", "huggingface_hub", "numpy", "tqdm", "regex",
            "requests", "packaging", "filelock", "pyyaml", "pillow", "onnxruntime", "gguf", "myvlm-desktop")


def module_dir(module: str) -> Path:
    found = importlib.util.find_spec(module)
    if found is None or not found.origin:
        raise RuntimeError(f"{module} is not installed: run `make setup` first")
    return Path(found.origin).parent


def model_files() -> list[tuple[str, str]]:
    """(source file, folder inside the bundle) for every model that ships inside a pip package."""
    from myvlm_desktop.models.registry import MODELS

    pairs = []
    for model in MODELS:
        if model.source != "package":
            continue
        folder = module_dir(model.module) / model.subdir
        dest = str(Path(model.module) / model.subdir) if model.subdir else model.module
        pairs += [(str(folder / name), dest) for name in model.files]
    return sorted(set(pairs))


def hidden_imports() -> list[str]:
    """Modules the model lookup finds with importlib.util.find_spec (never imported, so PyInstaller misses them)."""
    from myvlm_desktop.models.registry import MODELS

    return sorted({model.module for model in MODELS if model.source == "package"})


# Test programs, test data and C++ headers inside torch's wheel that nothing runs at run time (about 190 MB).
# packaging/README.md says why each is safe to drop; the frozen --self-test proves it on every build.
DROP_PREFIXES = ("torch/test/", "torch/bin/", "torch/include/", "torch/testing/_internal/data/")
# ...except torch's shared-memory manager: `import torch` looks for it (and fails without it) on Linux and macOS.
KEEP = ("torch/bin/torch_shm_manager",)


def keep(entry) -> bool:
    """For the spec's TOC filter: False for files the app never uses."""
    path = entry[0].replace("\\", "/")
    return path.startswith(KEEP) or not path.startswith(DROP_PREFIXES)


def resource_files() -> list[tuple[str, str]]:
    return [(str(path), str(Path("resources") / path.relative_to(ROOT / "resources").parent))
            for path in sorted((ROOT / "resources").rglob("*")) if path.is_file()]


def sample_files() -> list[tuple[str, str]]:
    return [(str(module_dir(module) / rel), SAMPLE_DEST) for module, rel in SAMPLE_PHOTOS]


def data_files() -> list[tuple[str, str]]:
    return model_files() + resource_files() + sample_files()
