"""Finding and loading VLM weights: a local folder, the model manager, or the Hugging Face cache (never the network).

Missing weights raise ModelUnavailable naming the model, where we looked and what to do, so the CLI and the GUI
can show it as it is and keep working without personalised captions.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..models import registry
from ..models.errors import ModelUnavailable

DEFAULT_MODELS = {
    "smolvlm": "HuggingFaceTB/SmolVLM-256M-Instruct",
    "blip2": "Salesforce/blip2-flan-t5-xl",
    "llava": "llava-hf/llava-1.5-7b-hf",
}


def find_weights(model: str, models_dir: Path | str | None = None) -> Path:
    """The folder holding `model`: itself when it is a folder, else the model manager's copy (the app's models
    folder or the HF cache) for the models it lists, else the HF cache for any other hub id."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelUnavailable(model, "the folder has no config.json, so it is not a model folder",
                                   "Point --model at a folder saved with save_pretrained.", [str(folder)])
        return folder
    try:
        registry.spec(model)
    except ModelUnavailable:  # not in the model manager's list: any hub id the user cached themselves
        return _from_hf_cache(model)
    return registry.find_model(model, models_dir)


def _from_hf_cache(model: str) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    how = (f"It is not one of the models `myvlm models download` knows: fetch it with "
           f"`huggingface-cli download {model}` (needs internet once), or pass a local model folder with --model.")
    try:
        path = Path(snapshot_download(model, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, HFValidationError):
        raise ModelUnavailable(model, "weights not found on this computer", how, [constants.HF_HUB_CACHE]) from None
    if not (path / "config.json").is_file():
        raise ModelUnavailable(model, "the cached copy is incomplete (no config.json)", how, [str(path)])
    return path


class DeviceUnavailable(ModelUnavailable):
    """The device asked for is not on this computer; a ModelUnavailable so every caller shows it as it is."""

    def __init__(self, device: str, why: str):
        super().__init__(f"device {device!r}", why, "Choose device auto or cpu (in Preferences, or --device cpu).")


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """CUDA, then Apple's MPS, then the CPU; a device that is not there is DeviceUnavailable, said plainly."""
    if str(device) != "auto":
        try:
            chosen = torch.device(device)
        except RuntimeError:
            raise DeviceUnavailable(str(device), "no such device (auto, cuda, mps or cpu)") from None
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise DeviceUnavailable(str(device), "this computer has no CUDA GPU that torch can use")
        mps = getattr(torch.backends, "mps", None)
        if chosen.type == "mps" and not (mps is not None and mps.is_available()):
            raise DeviceUnavailable(str(device), "Apple's Metal (MPS) is not available here")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, dtype: torch.dtype | str | None = None) -> torch.dtype:
    """bf16 where the hardware runs it natively (paper's recipe), fp16 on MPS, else fp32."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if dtype is not None:
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if _cpu_has_bf16() else torch.float32


def cuda_has_native_bf16() -> bool:
    """True only where the GPU runs bf16 itself (Ampere and newer); T4, V100 and RTX 20xx only emulate it, slowly."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a torch without the argument counts emulation as support: ask for Ampere directly
        return torch.cuda.get_device_capability()[0] >= 8


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def load_parts(model_class, model: str, device: torch.device, dtype: torch.dtype, models_dir=None):
    """(model, processor, folder) for a model id or folder; a broken folder is ModelUnavailable too."""
    from transformers import AutoProcessor

    folder = find_weights(model, models_dir)
    try:
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        net = model_class.from_pretrained(folder, dtype=dtype, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailable(model, f"cannot load the weights: {exc}",
                               "Download the model again with `myvlm models download`.", [str(folder)]) from None
    return net.to(device).eval(), processor, folder
