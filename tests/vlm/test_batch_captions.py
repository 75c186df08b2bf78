"""Captions made several photos at a time equal the captions made one at a time (greedy)."""

import pytest
import torch

from myvlm_desktop.vlm.concept import ConceptVector
from myvlm_desktop.vlm.generate import caption_batch
from myvlm_desktop.vlm.train import ConceptTrainer, Sample, TrainSettings
from tests.vlm.helpers import photo


def test_no_photos_no_captions(tiny_backend):
    assert caption_batch(tiny_backend("smolvlm"), []) == []


def test_a_concept_for_another_model_is_refused(tiny_backend):
    backend = tiny_backend("smolvlm")
    wrong = ConceptVector("Odd", "<odd>", "person", torch.zeros(backend.concept_dim + 1), backend.name)
    with pytest.raises(ValueError, match="retrain"):
        caption_batch(backend, [photo("coffee")], [[wrong]])


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["smolvlm", "blip2", "blip2-opt"])
def test_batched_captions_equal_one_at_a_time(tiny_backend, variant):
    backend = tiny_backend(variant)
    generator = torch.Generator().manual_seed(0)
    alice = ConceptVector("Alice", "<alice>", "person", torch.randn(backend.concept_dim, generator=generator),
                          backend.name)
    rex = ConceptVector("Rex", "<rex>", "pet", torch.randn(backend.concept_dim, generator=generator), backend.name)
    images = [photo(n) for n in ("astronaut", "coffee", "chelsea", "rocket", "camera")]
    concepts = [[alice], [], [alice], [rex, alice], []]
    batched = caption_batch(backend, images, concepts, max_new_tokens=8)
    for image, chosen, result in zip(images, concepts, batched, strict=True):
        alone = backend.caption(image, chosen, max_new_tokens=8)
        assert (result.text, result.concepts) == (alone.text, alone.concepts)


@pytest.mark.slow
def test_the_trained_identifier_is_still_said_in_a_batch(tiny_backend, concept_photos, other_photos):
    backend = tiny_backend("smolvlm")
    photos, _ = concept_photos
    samples = [Sample(p, backend.caption_prompt(["sks"]), "sks") for p in range(len(photos))]
    sks = ConceptVector("Sks", "sks", "person", ConceptTrainer(backend, photos, samples,
                                                              TrainSettings(steps=100, views=4)).run(), backend.name)
    images = [*photos, *other_photos]
    results = caption_batch(backend, images, [[sks]] * len(photos) + [[]] * len(other_photos), max_new_tokens=10)
    assert all("sks" in r.text for r in results[:len(photos)])
    assert all("sks" not in r.text for r in results[len(photos):])
    assert [r.text for r in results] == [backend.caption(i, c, max_new_tokens=10).text for i, c in
                                         zip(images, [[sks]] * len(photos) + [[]] * len(other_photos), strict=True)]
