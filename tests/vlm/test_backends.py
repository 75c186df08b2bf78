"""The concept layer inside the real transformers classes (tiny random models loaded by the real loader)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from myvlm_desktop.vlm.concept import ConceptVector
from tests.vlm.helpers import VARIANTS

pytestmark = pytest.mark.parametrize("variant", list(VARIANTS))


def concept(backend, name: str, seed: int) -> ConceptVector:
    vector = torch.randn(backend.concept_dim, generator=torch.Generator().manual_seed(seed))
    return ConceptVector(name, f"<{name}>", "person", vector, backend.name)


def reference_logits(backend, image, prompt: str) -> torch.Tensor:
    """The unmodified model, called the way its model card does."""
    inputs = backend.processor(images=image, text=prompt, return_tensors="pt", **backend._processor_options())
    extra = {}
    if backend.name == "blip2" and backend.encoder_decoder:
        extra["decoder_input_ids"] = torch.tensor([[backend.model.config.text_config.decoder_start_token_id]])
    with torch.no_grad():
        return backend.model(**inputs, **extra).logits


def test_no_concept_gives_exactly_the_unmodified_models_logits(tiny_backend, variant, other_photos):
    backend = tiny_backend(variant)
    for image in other_photos[:2]:
        for prompt in (backend.caption_prompt(), backend.question_prompt("What is on the table?")):
            ours = backend.logits(image, prompt, concepts=[])
            assert torch.equal(ours, reference_logits(backend, image, prompt))
    with_concept = backend.logits(other_photos[0], backend.caption_prompt(), [concept(backend, "Alice", 1)])
    assert not torch.allclose(with_concept[:, -1], reference_logits(backend, other_photos[0],
                                                                    backend.caption_prompt())[:, -1])


def test_two_concepts_are_two_tokens_in_a_stable_order(tiny_backend, variant, concept_photos):
    backend = tiny_backend(variant)
    image = concept_photos[0][0]
    alice, bob = concept(backend, "Alice", 1), concept(backend, "Bob", 2)
    seen = []
    # where the tokens enter: the Q-Former's keys (BLIP-2), else the language model's input sequence
    module, key = ((backend.model.qformer, "encoder_hidden_states") if backend.name == "blip2"
                   else (backend.language_model(), "inputs_embeds"))
    hook = module.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs[key].detach().clone()),
                                            with_kwargs=True)
    try:
        prompt = backend.caption_prompt()
        none = backend.logits(image, prompt)
        both = backend.logits(image, prompt, [bob, alice])
        swapped = backend.logits(image, prompt, [alice, bob])
    finally:
        hook.remove()
    assert seen[1].shape[1] == seen[0].shape[1] + 2
    assert torch.equal(both, swapped) and not torch.allclose(both[:, -1], none[:, -1])
    features = backend.encode([image])
    scale = features.float().norm(dim=-1).mean()
    if backend.name == "blip2":  # appended after the image tokens, in name order, at the image tokens' norm
        tokens = seen[1][0, -2:]
    else:  # in the LM sequence: right after the image placeholders
        ids = backend.sequences([backend.prompt_ids(prompt)], 2).input_ids[0]
        where = (ids == backend.image_token_id).nonzero().flatten()[-2:]
        tokens = seen[1][0, where]
    for token, c in zip(tokens, (alice, bob)):
        assert torch.allclose(token.float(), c.vector / c.vector.norm() * scale, rtol=1e-4, atol=1e-5)


def test_only_the_concept_vectors_receive_gradients(tiny_backend, variant, concept_photos):
    backend = tiny_backend(variant)
    features = backend.encode(concept_photos[0])
    attention = backend.model.config.text_config._attn_implementation
    vectors = [torch.randn(backend.concept_dim, requires_grad=True) for _ in range(2)]
    weights = torch.full((2,), backend.reg_lambda["caption"])
    prompt = backend.caption_prompt(["<Alice>", "<Bob>"])
    lm_loss, reg = backend.loss(features, vectors, [prompt] * 2, ["<Alice> and <Bob> on a beach", "<Bob>"], weights)
    (lm_loss + reg).backward()
    assert lm_loss.item() > 0 and reg.item() > 0
    for v in vectors:
        assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in backend.model.parameters())
    assert backend.model.config.text_config._attn_implementation == attention  # eager only while recording


def test_caption_and_answer_stream_their_text(tiny_backend, variant, other_photos):
    backend = tiny_backend(variant)
    pieces = []
    alice = concept(backend, "Alice", 1)
    result = backend.caption(np.asarray(other_photos[1]), [alice], on_token=pieces.append, max_new_tokens=12,
                             min_new_tokens=12)
    assert result.text and "".join(pieces).strip() == result.text
    assert (result.concepts, result.backend) == (["Alice"], backend.name)
    answer = backend.answer(other_photos[0], "What is in the cup?", [], max_new_tokens=6, min_new_tokens=6)
    assert answer.text and answer.concepts == []


def test_bad_inputs_get_clear_errors(tiny_backend, variant, other_photos):
    backend = tiny_backend(variant)
    with pytest.raises(ValueError, match="expected an RGB image"):
        backend.caption(np.zeros((4, 4, 7), dtype=np.float32))
    wrong = ConceptVector("Rex", "<Rex>", "pet", torch.randn(backend.concept_dim + 1), backend.name)
    with pytest.raises(ValueError, match="retrain"):
        backend.caption(other_photos[0], [wrong])
