"""The concept layer and the concept file format (no model needed)."""

from __future__ import annotations

import pytest
import torch

from myvlm_desktop.vlm.concept import (
    ConceptFileError,
    ConceptVector,
    load_concept_vector,
    save_concept_vector,
)
from myvlm_desktop.vlm.layer import append_concepts, concept_tokens, stable_order


def test_concept_token_is_the_unit_vector_scaled_to_each_images_mean_token_norm():
    torch.manual_seed(0)
    images = torch.randn(3, 10, 16) * torch.tensor([1.0, 5.0, 20.0])[:, None, None]
    vector = torch.randn(16) * 123.0
    tokens = concept_tokens([vector], images)
    assert tokens.shape == (3, 1, 16)
    for b in range(3):
        mean_norm = images[b].norm(dim=-1).mean()
        assert torch.allclose(tokens[b, 0].norm(), mean_norm, rtol=1e-5)
        assert torch.allclose(tokens[b, 0] / tokens[b, 0].norm(), vector / vector.norm(), atol=1e-6)


def test_no_concept_leaves_the_image_tokens_untouched_and_two_concepts_add_two_tokens():
    images = torch.randn(2, 7, 8)
    assert append_concepts(images, []) is images
    both = append_concepts(images, [torch.randn(8), torch.randn(8)])
    assert both.shape == (2, 9, 8)
    assert torch.equal(both[:, :7], images)


def test_vectors_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="values"):
        concept_tokens([torch.randn(5)], torch.randn(1, 3, 8))


def test_concepts_go_in_a_stable_order_whatever_order_the_heads_fired_in():
    a, b, c = (ConceptVector(n, f"<{n}>", "person", torch.zeros(2)) for n in ("bob", "Alice", "carl"))
    assert [x.name for x in stable_order([c, a, b])] == ["Alice", "bob", "carl"]
    assert [x.name for x in stable_order([b, a, a])] == ["Alice", "bob"]


def test_concept_vector_round_trips_through_safetensors_and_json(tmp_path):
    vector = torch.randn(32)
    saved = save_concept_vector(tmp_path / "7" / "smolvlm", ConceptVector("Alice", "<Alice>", "person", vector,
                                                                          "smolvlm", "tiny"), steps=100,
                                concept_version=3, loss_history=[2.0, 1.0])
    assert saved.suffix == ".safetensors" and saved.with_suffix(".json").exists()
    loaded = load_concept_vector(saved)
    assert torch.equal(loaded.vector, vector)
    assert (loaded.name, loaded.identifier, loaded.kind, loaded.backend, loaded.model) == (
        "Alice", "<Alice>", "person", "smolvlm", "tiny")
    assert loaded.meta["steps"] == 100 and loaded.meta["concept_version"] == 3
    assert loaded.meta["loss_history"] == [2.0, 1.0]


def test_damaged_concept_files_give_a_clear_error(tmp_path):
    path = save_concept_vector(tmp_path / "x", ConceptVector("A", "<A>", "pet", torch.randn(4)))
    path.write_bytes(b"not safetensors")
    with pytest.raises(ConceptFileError, match="unreadable"):
        load_concept_vector(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(ConceptFileError, match="missing"):
        load_concept_vector(path)
