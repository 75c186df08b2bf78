"""Training concept embeddings on tiny models: targets, the vision bank, learning, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from myvlm_desktop.concepts.person import PersonHead
from myvlm_desktop.vision.faces import get_face_engine
from myvlm_desktop.vlm.concept import ConceptVector
from myvlm_desktop.vlm.train import (
    ConceptTrainer,
    Sample,
    TrainSettings,
    build_bank,
    make_targets,
    mentioned_noun,
    personalize,
)
from tests.conftest import insightface_image
from tests.vlm.helpers import VARIANTS

PERSON = ["man", "woman", "person"]


@pytest.mark.parametrize("caption, expected", [
    ("a man standing on a beach", "<Bob> standing on a beach"),
    ("A young man in a suit holding a flag", "<Bob> in a suit holding a flag"),
    ("two dogs and a woman on the grass", "two dogs and <Bob> on the grass"),
    ("the man's hat is red", "<Bob>'s hat is red"),
    ("a red car parked outside", "A photo of <Bob>. a red car parked outside"),
    ("", "A photo of <Bob>."),
])
def test_the_class_noun_phrase_becomes_the_identifier(caption, expected):
    assert personalize(caption, "<Bob>", PERSON) == expected


def test_answers_without_the_noun_stay_as_they_are():
    assert personalize("on the beach", "<Bob>", PERSON, fallback=False) == "on the beach"
    assert mentioned_noun("a smiling woman with a dog", PERSON) == "woman"
    assert mentioned_noun("a bowl of soup", PERSON) is None


def test_targets_come_from_the_frozen_model_with_the_identifier(tiny_backend, concept_photos):
    settings = TrainSettings(questions=3)
    smol = make_targets(tiny_backend("smolvlm"), concept_photos[0], "<sks>", "person", settings=settings,
                        max_new_tokens=8)
    captions = [s for s in smol if s.kind == "caption"]
    assert [s.photo for s in captions] == [0, 1]
    assert all("<sks>" in s.target and "<sks>" in s.prompt for s in captions)
    assert 0 < len([s for s in smol if s.kind == "vqa"]) <= 6
    assert all("<sks>" in s.prompt for s in smol if s.kind == "vqa")
    blip = make_targets(tiny_backend("blip2-opt"), concept_photos[0], "<sks>", "person", settings=settings,
                        max_new_tokens=8)
    assert [s.kind for s in blip] == ["caption", "caption"]  # BLIP-2 captions with the empty prompt only
    assert all(s.prompt == "" and "<sks>" in s.target for s in blip)


def test_the_vision_bank_holds_every_view_once_and_is_reproducible(tiny_backend, concept_photos):
    backend = tiny_backend("llava")
    bank = build_bank(backend, concept_photos[0], views=3, seed=5)
    n, d = backend.encode([concept_photos[0][0]]).shape[1:]
    assert bank.shape == (2, 3, n, d)
    assert torch.equal(bank[0, 0], backend.encode([concept_photos[0][0]])[0])  # view 0: the photo itself
    assert not torch.equal(bank[0, 1], bank[0, 2])
    assert torch.equal(bank, build_bank(backend, concept_photos[0], views=3, seed=5))


def test_the_bank_does_not_depend_on_how_many_views_are_encoded_at_once(tiny_backend, concept_photos):
    backend = tiny_backend("smolvlm")
    default = build_bank(backend, concept_photos[0], views=3, seed=5)
    calls = []
    small = build_bank(backend, concept_photos[0], views=3, seed=5, batch=2, on_batch=lambda: calls.append(1))
    assert len(calls) == 3  # 6 views, 2 at a time
    torch.testing.assert_close(default, small, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_training_makes_the_model_say_the_identifier_for_the_concept_only(tiny_backend, variant, concept_photos,
                                                                           other_photos):
    backend = tiny_backend(variant)
    photos, _ = concept_photos
    samples = [Sample(p, backend.caption_prompt(["sks"]), "sks") for p in range(len(photos))]
    steps = 300 if backend.name == "blip2" else 100  # the Q-Former dilutes one token among the image's
    trainer = ConceptTrainer(backend, photos, samples, TrainSettings(steps=steps, views=4))
    vector = trainer.run()
    first, last = sum(trainer.losses[:10]) / 10, sum(trainer.losses[-10:]) / 10
    assert last < first / 2
    sks = ConceptVector("Sks", "sks", "person", vector, backend.name)
    gate = _person_gate(photos[0])
    for image in photos:
        assert gate(image)
        assert "sks" in backend.caption(image, _fired(gate, image, sks), max_new_tokens=10).text
    for image in [*other_photos, Image.open(insightface_image("t1.jpg")).convert("RGB")]:  # six other people
        text = backend.caption(image, _fired(gate, image, sks), max_new_tokens=10).text
        assert "sks" not in text
        assert text == backend.generate(backend.encode([image]), [], [backend.caption_prompt()],
                                        max_new_tokens=10)[0]


def _person_gate(reference):
    """MyVLM's hard gate: the concept's person head, keyed on the face in `reference` (dlib, real weights)."""
    engine = get_face_engine("dlib")
    keys = np.stack([f.embedding for f in engine.analyze(np.asarray(reference))])
    head = PersonHead(keys, engine.threshold)
    return lambda image: head.best(np.stack([f.embedding for f in engine.analyze(np.asarray(image))] or
                                            [np.zeros(head.dim, np.float32)])) is not None


def _fired(gate, image, concept) -> list:
    """The concepts whose head fired on the photo: what the app hands to the VLM."""
    return [concept] if gate(image) else []


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["smolvlm", "blip2"])
def test_a_run_resumed_from_a_checkpoint_ends_with_the_same_vector(tiny_backend, variant, concept_photos, tmp_path):
    backend = tiny_backend(variant)
    photos, _ = concept_photos
    samples = [Sample(p, backend.caption_prompt(["<sks>"]), t) for p in range(2)
               for t in ("<sks> in space", "a photo of <sks>")]
    settings = TrainSettings(steps=30, checkpoint_every=10, views=3)
    straight = ConceptTrainer(backend, photos, samples, settings).run()

    class Stop(Exception):
        pass

    def stop_at_15(step, loss):
        if step == 15:
            raise Stop

    def save(trainer):  # a checkpoint on disk, as the pipeline writes it
        tensors, info = trainer.state()
        save_file(tensors, str(tmp_path / "ckpt.safetensors"))
        (tmp_path / "ckpt.step").write_text(str(info["step"]))
        saved_info.clear()
        saved_info.update(info)

    saved_info: dict = {}
    with pytest.raises(Stop):
        ConceptTrainer(backend, photos, samples, settings).run(on_step=stop_at_15, on_checkpoint=save)
    assert saved_info["step"] == 10
    resumed = ConceptTrainer(backend, photos, samples, settings)  # a new process: fresh trainer, same bank
    resumed.load_state(load_file(str(tmp_path / "ckpt.safetensors")), saved_info)
    assert resumed.step == 10
    assert torch.equal(resumed.run(), straight)
    assert len(resumed.losses) == 30


def test_without_the_bank_each_step_encodes_fresh_views(tiny_backend, concept_photos):
    backend = tiny_backend("smolvlm")
    samples = [Sample(0, backend.caption_prompt(["<sks>"]), "<sks>")]
    trainer = ConceptTrainer(backend, concept_photos[0][:1], samples, TrainSettings(steps=3, cached=False))
    assert trainer.bank is None
    trainer.run()
    assert trainer.step == 3 and all(torch.isfinite(torch.tensor(trainer.losses)))


# -- the prompt before the concept token, run once per bank view ------------------------------------------------
@pytest.mark.parametrize("variant", ["smolvlm", "llava"])
def test_a_cached_prompt_start_gives_the_loss_penalty_and_gradient_of_the_whole_sequence(tiny_backend, variant,
                                                                                      concept_photos):
    backend = tiny_backend(variant)
    with torch.no_grad():  # as the bank: frozen features, no graph shared by the two backward passes
        features = backend.encode(concept_photos[0])
    prompts = [backend.caption_prompt(["<sks>"]), backend.question_prompt("What is <sks> doing in the image?")]
    targets = ["<sks> floating in space in a white suit", "waving"]  # different lengths: rows are padded
    weights = torch.tensor([0.0075, 10.0])
    start = backend.prefix_ids(prompts[0])
    assert start == backend.prefix_ids(prompts[1])
    results = []
    for prefix in (None, backend.prefix_states(features, start)):
        vector = torch.nn.Parameter(torch.randn(backend.concept_dim, generator=torch.Generator().manual_seed(1)))
        with backend.recording_attentions():
            lm_loss, reg = backend.loss(features, [vector], prompts, targets, weights, prefix=prefix)
        (lm_loss + reg).backward()
        results.append((lm_loss.detach(), reg.detach(), vector.grad))
    (loss_a, reg_a, grad_a), (loss_b, reg_b, grad_b) = results
    assert reg_a > 0
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(reg_b, reg_a, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(grad_b, grad_a, rtol=1e-4, atol=1e-7)


def test_a_prefix_of_other_prompts_is_refused(tiny_backend, concept_photos):
    backend = tiny_backend("smolvlm")
    features = backend.encode(concept_photos[0][:1])
    other = backend.prefix_states(features, backend.prefix_ids(backend.caption_prompt())[1:])
    vector = torch.zeros(backend.concept_dim)
    with pytest.raises(ValueError, match="prefix"):
        backend.loss(features, [vector], [backend.caption_prompt(["<sks>"])], ["<sks>"], prefix=other)


def test_training_with_the_cached_prompt_start_ends_near_the_vector_of_whole_sequences(tiny_backend,
                                                                                      concept_photos):
    backend = tiny_backend("smolvlm")
    photos, _ = concept_photos
    samples = [Sample(p, backend.caption_prompt(["<sks>"]), t) for p in range(2)
               for t in ("<sks> in space", "a photo of <sks> in a white suit")]
    samples.append(Sample(0, backend.question_prompt("What is <sks> wearing?"), "a white suit", "vqa"))
    bank = build_bank(backend, photos, views=2)
    vectors = []
    for prefix in (False, True):
        trainer = ConceptTrainer(backend, photos, samples, TrainSettings(steps=12, views=2, prefix=prefix), bank)
        assert trainer.uses_prefix is prefix
        vectors.append(trainer.run())
    assert trainer._prefixes is not None and len(trainer._prefixes) == 1  # one prompt start, every view once
    start = torch.randn(backend.concept_dim, generator=torch.Generator().manual_seed(0))  # the trainer's seed 0
    moved, apart = (vectors[0] - start).norm(), (vectors[1] - vectors[0]).norm()
    # AdamW at lr 1 turns rounding-sized gradient differences into small steps, so: close, not equal
    assert apart < moved / 1000
    torch.testing.assert_close(vectors[1], vectors[0], rtol=1e-2, atol=1e-3)
