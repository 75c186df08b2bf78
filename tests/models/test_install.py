"""Choose folder: a copied model folder or a Hugging Face cache folder is checked, then copied into place."""

from __future__ import annotations

import json
import shutil

import pytest

from myvlm_desktop.models import install, lookup, registry
from myvlm_desktop.models.errors import ModelUnavailable

SMOLVLM = registry.spec("HuggingFaceTB/SmolVLM-256M-Instruct")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from myvlm_desktop.vlm.testing import save_tiny_model

    return save_tiny_model("smolvlm", tmp_path_factory.mktemp("saved") / "smolvlm", width=32)


def test_a_complete_folder_is_copied_where_lookup_finds_it(saved, tmp_path):
    target = install.install_folder(saved, SMOLVLM, tmp_path / "models")
    assert lookup.locate(SMOLVLM, tmp_path / "models") == target
    assert (target / "model.safetensors").read_bytes() == (saved / "model.safetensors").read_bytes()


@pytest.mark.parametrize("damage, says", [
    (lambda f: (f / "model.safetensors").unlink(), "no weights"),
    (lambda f: (f / "tokenizer.json").unlink(), "no tokenizer"),
    (lambda f: (f / "config.json").unlink(), "no config.json"),
    (lambda f: (f / "config.json").write_text("{not json"), "not readable JSON"),
    (lambda f: (f / "processor_config.json").unlink(), "no preprocessor_config.json or processor_config.json"),
])
def test_an_incomplete_folder_is_refused_and_nothing_is_copied(saved, tmp_path, damage, says):
    folder = shutil.copytree(saved, tmp_path / "copy")
    damage(folder)
    with pytest.raises(ModelUnavailable, match=says):
        install.install_folder(folder, SMOLVLM, tmp_path / "models")
    assert not (tmp_path / "models" / "HuggingFaceTB--SmolVLM-256M-Instruct").exists()


def test_a_sharded_model_needs_every_shard(saved, tmp_path):
    folder = shutil.copytree(saved, tmp_path / "sharded")
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelUnavailable, match="weight shards missing: model-00002-of-00002"):
        install.install_folder(folder, SMOLVLM, tmp_path / "models")


def test_a_hugging_face_cache_folder_gives_its_snapshot_with_links_made_real(saved, tmp_path):
    cache = tmp_path / "models--HuggingFaceTB--SmolVLM-256M-Instruct"
    blobs, snapshot = cache / "blobs", cache / "snapshots" / ("a" * 40)
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for i, path in enumerate(sorted(saved.iterdir())):
        shutil.copy(path, blobs / str(i))
        (snapshot / path.name).symlink_to(blobs / str(i))
    target = install.install_folder(cache, SMOLVLM, tmp_path / "models")
    assert not (target / "config.json").is_symlink() and lookup.locate(SMOLVLM, tmp_path / "models") == target


def test_recommended_models_follow_the_gpu():
    assert install.recommended(None) == ["HuggingFaceTB/SmolVLM-256M-Instruct"]
    assert "llava-hf/llava-1.5-7b-hf" in install.recommended(24 * registry.GB)
    assert "llava-hf/llava-1.5-7b-hf" not in install.recommended(16 * registry.GB)
    assert all(registry.spec(name) for name in install.recommended(80 * registry.GB))
