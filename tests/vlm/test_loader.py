"""Finding weights: local folders, the model manager, the Hugging Face cache; clear errors when absent."""

from __future__ import annotations

import pytest
import torch

from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.vlm.generate import load_backend
from myvlm_desktop.vlm.loader import pick_device, pick_dtype


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path


@pytest.mark.parametrize("backend, model_id", [("smolvlm", "HuggingFaceTB/SmolVLM-256M-Instruct"),
                                               ("blip2", "Salesforce/blip2-flan-t5-xl"),
                                               ("llava", "llava-hf/llava-1.5-7b-hf")])
def test_missing_weights_name_the_model_where_we_looked_and_what_to_do(empty_hf_cache, backend, model_id):
    with pytest.raises(ModelUnavailable) as caught:
        load_backend(backend, models_dir=empty_hf_cache / "models")
    message = str(caught.value)
    assert model_id in message and "looked in" in message and str(empty_hf_cache / "hf-cache") in message
    assert f"myvlm models download {model_id}" in message


def test_a_hub_id_the_model_manager_does_not_list_is_looked_up_in_the_cache(empty_hf_cache):
    with pytest.raises(ModelUnavailable, match="someone/my-vlm.*not found.*huggingface-cli download"):
        load_backend("smolvlm", "someone/my-vlm", models_dir=empty_hf_cache / "models")


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    with pytest.raises(ModelUnavailable, match="no config.json"):
        load_backend("llava", str(tmp_path))


def test_a_folder_with_another_models_weights_is_refused(tiny_folder):
    with pytest.raises(ValueError, match="idefics3 model, not llava"):
        load_backend("llava", str(tiny_folder("smolvlm")), device="cpu", dtype=torch.float32)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        load_backend("gpt5")


def test_device_and_dtype_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
    assert pick_dtype(torch.device("cpu"), "float32") is torch.float32
    assert pick_dtype(torch.device("cpu")) in (torch.bfloat16, torch.float32)
    assert pick_dtype(torch.device("mps")) is torch.float16
