"""What only real checkpoints would show, reproduced on tiny random models of the same classes."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.vlm import loader
from myvlm_desktop.vlm.backends.base import surface_form
from myvlm_desktop.vlm.generate import load_backend
from myvlm_desktop.vlm.train import make_targets, whole_sentences
from tests.vlm.helpers import photo

NO_ANGLES = ["a man standing on a beach", "a woman with a dog", "[Alice] and (Bob) are here", "Alice Bob Rex",
             "Question: What is the man doing? Answer:", "a photo of a person in a park . , ' ?"]


def t5_like_tokenizer():
    """A sentencepiece-style (Metaspace) tokenizer whose vocabulary, like T5's, has no `<` or `>`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from myvlm_desktop.vlm.testing import SPECIAL_TOKENS

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(NO_ANGLES * 20, trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL_TOKENS,
                                                                show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", bos_token="<s>",
                                   unk_token="<unk>")


@pytest.fixture(scope="module")
def t5_backend(tmp_path_factory):
    """BLIP-2 Flan-T5 (tiny) whose tokenizer cannot write `<Alice>`."""
    from myvlm_desktop.vlm.testing import build_processor, random_model, tiny_config

    folder = tmp_path_factory.mktemp("t5-vocab") / "blip2"
    tokenizer = t5_like_tokenizer()
    config = tiny_config("blip2", tokenizer, "t5")
    random_model("blip2", config).save_pretrained(folder)
    build_processor("blip2", config, tokenizer).save_pretrained(folder)
    return load_backend("blip2", str(folder), device="cpu", dtype=torch.float32)


# -- BLIP-2 Flan-T5: the identifier round-trips ----------------------------------------------------------------
def test_identifier_surface_form_round_trips_without_angle_brackets_in_the_vocabulary():
    tok = t5_like_tokenizer()
    broken = tok.decode(tok(" <Alice>", add_special_tokens=False)["input_ids"], skip_special_tokens=True).strip()
    assert broken != "<Alice>"  # the failure the fix is for
    form = surface_form(tok, "<Alice>")
    assert form != "<Alice>" and "Alice" in form
    assert tok.decode(tok(" " + form, add_special_tokens=False)["input_ids"], skip_special_tokens=True).strip() == form


def test_a_byte_level_vocabulary_keeps_the_identifier_as_it_is():
    from myvlm_desktop.vlm.testing import build_tokenizer

    assert surface_form(build_tokenizer(), "<Alice>") == "<Alice>"


def test_t5_targets_carry_the_spoken_identifier_and_captions_show_the_users_one(t5_backend):
    samples = make_targets(t5_backend, [photo("astronaut")], "<Alice>", "person", max_new_tokens=8)
    spoken = t5_backend.spoken("<Alice>")
    assert spoken != "<Alice>"
    for sample in samples:
        ids = t5_backend.target_ids(sample.target, sample.ended)
        assert spoken in t5_backend.tokenizer.decode(ids, skip_special_tokens=True)
        assert t5_backend.tokenizer.unk_token_id not in ids
    assert t5_backend.shown(f"{spoken} on a beach", ["<Alice>"]) == "<Alice> on a beach"


# -- BLIP-2 OPT: targets as the model writes them -----------------------------------------------------------
def test_opt_targets_start_without_a_space_as_generation_after_bos_does(tiny_backend):
    backend = tiny_backend("blip2-opt")
    ids = backend.target_ids("a man on a beach")
    first = backend.tokenizer.convert_ids_to_tokens(ids[0])
    assert first == "a", first  # not "Ġa"
    assert ids[-1] == backend.end_token_id


# -- cut answers: whole sentences, end token only when the model ended -------------------------------------------
@pytest.mark.parametrize("text, ended, expected", [
    ("A man on a beach. He is walking to", False, ("A man on a beach.", True)),
    ("a man walking on a beach with a", False, ("a man walking on a beach with a", False)),
    ("a man on a beach", True, ("a man on a beach", True)),
    ("Is it 3.5 m? Yes it is. And", False, ("Is it 3.5 m? Yes it is.", True)),
])
def test_cut_answers_keep_whole_sentences(text, ended, expected):
    assert whole_sentences(text, ended) == expected


def test_generation_says_whether_the_model_ended_and_cut_targets_get_no_end_token(tiny_backend):
    backend = tiny_backend("smolvlm")
    features = backend.encode([photo("astronaut")])
    ended: list[bool] = []
    backend.generate(features, [], [backend.caption_prompt()], max_new_tokens=3, min_new_tokens=3, ended=ended)
    assert ended == [False]
    assert backend.target_ids("a man", end=False)[-1] != backend.end_token_id
    assert backend.target_ids("a man")[-1] == backend.end_token_id
    cut = make_targets(backend, [photo("astronaut")], "<Alice>", "person", max_new_tokens=1)
    assert cut and all(s.ended is False or s.target.endswith((".", "!", "?")) for s in cut)


# -- device and dtype ----------------------------------------------------------------------------------------
def test_emulated_bf16_falls_back_to_fp16(monkeypatch):
    def bf16(including_emulation=True):
        return including_emulation  # a T4: bf16 only by emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16)
    assert loader.pick_dtype(torch.device("cuda")) is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100
    assert loader.pick_dtype(torch.device("cuda")) is torch.bfloat16


def test_cuda_without_cuda_is_a_clear_message(monkeypatch, tiny_folder):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelUnavailable, match="no CUDA GPU.*Choose device auto or cpu"):
        load_backend("smolvlm", str(tiny_folder("smolvlm")), device="cuda")
    with pytest.raises(ModelUnavailable, match="no such device"):
        loader.pick_device("gpu0")


def test_an_old_blip2_snapshot_without_image_token_index_asks_for_a_new_download(tiny_folder, tmp_path):
    old = shutil.copytree(tiny_folder("blip2"), tmp_path / "old-blip2")
    config = json.loads((old / "config.json").read_text())
    config.pop("image_token_index", None)
    config.pop("image_token_id", None)
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelUnavailable, match="image_token_index.*Download the model again"):
        load_backend("blip2", str(old), device="cpu", dtype=torch.float32)


# -- SmolVLM caption detail -------------------------------------------------------------------------------------
def test_detailed_captions_read_the_photo_in_tiles_as_the_model_card_does(tiny_folder, tmp_path):
    from myvlm_desktop.pipeline.shared_vlm import caption_detail
    from myvlm_desktop.vlm.concept import ConceptVector

    folder = shutil.copytree(tiny_folder("smolvlm"), tmp_path / "smolvlm")
    config = json.loads((folder / "processor_config.json").read_text())
    config["image_processor"]["size"] = {"longest_edge": 128}  # as the real 2048 over 512 px tiles: 4 x 4
    (folder / "processor_config.json").write_text(json.dumps(config))
    backend = load_backend("smolvlm", str(folder), device="cpu", dtype=torch.float32)
    image = photo("astronaut")
    assert backend.detail == "fast"
    fast = backend.image_tokens(image)
    backend.detail = "detailed"
    detailed = backend.image_tokens(image)
    assert fast == 4 and detailed == 17 * fast  # 16 tiles and the whole photo
    concept = ConceptVector("Alice", "<Alice>", "person", torch.randn(backend.concept_dim), "smolvlm")
    result = backend.caption(image, [concept], max_new_tokens=3)
    assert result.concepts == ["Alice"] and isinstance(result.text, str)
    assert caption_detail("auto", torch.device("cpu")) == "fast"
    assert caption_detail("auto", torch.device("cuda")) == "detailed"
    assert caption_detail("fast", torch.device("cuda")) == "fast"


# -- LLaVA memory: activation checkpointing ------------------------------------------------------------------
def test_checkpointed_training_steps_equal_plain_ones(tiny_backend, concept_photos):
    from myvlm_desktop.vlm.train import ConceptTrainer, Sample, TrainSettings

    backend = tiny_backend("llava")
    photos, _ = concept_photos
    samples = [Sample(p, backend.caption_prompt(["<sks>"]), "<sks> on a beach") for p in range(len(photos))]
    vectors = []
    for choice in ("off", "on"):
        trainer = ConceptTrainer(backend, photos, samples, TrainSettings(steps=3, views=1, checkpointing=choice))
        assert trainer.uses_checkpointing is (choice == "on")
        seen: list[bool] = []

        def note(step, loss, seen=seen):
            seen.append(backend.language_model().is_activation_checkpointing)

        vectors.append(trainer.run(on_step=note))
        assert seen == [choice == "on"] * 3
    assert torch.allclose(vectors[0], vectors[1], atol=1e-5)
    assert not backend.language_model().training  # back to inference afterwards
    auto = ConceptTrainer(backend, photos, samples, TrainSettings(steps=1, views=1))
    assert auto.uses_checkpointing is False  # auto: only LLaVA on a GPU
