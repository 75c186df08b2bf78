"""SmolLM2 (a Llama) in numpy, so that the CLI phrases a library answer without importing torch.

Importing torch and transformers alone takes about 5 s on a 2-core laptop, more than a library question may take
from the command line. This is the forward of transformers' LlamaForCausalLM for the one small phrasing model:
RMSNorm, rotary embeddings, grouped-query attention, SiLU MLP, tied embeddings, all read from the cached
config, with a key/value cache and greedy decoding. The weights are float32 (what the GGUF's Q4_1 weights
de-quantise to), memory-mapped; `tokenizers` and jinja2 give the token ids transformers' tokenizer and chat
template give. The folder is written and checked by vlm/phrase.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..storage import sha256_of

WEIGHTS_FP32 = "model-fp32.safetensors"


class DamagedWeights(ValueError):
    """The float32 weights do not match the sha256 they were written with."""


def check_weights(folder: Path, sha256: str) -> None:
    """Raises DamagedWeights unless the float32 file's sha256 is `sha256`."""
    try:
        found = sha256_of(folder / WEIGHTS_FP32)
    except OSError as exc:
        raise DamagedWeights(f"cannot read {WEIGHTS_FP32}: {exc}") from None
    if found != sha256:
        raise DamagedWeights(f"{folder / WEIGHTS_FP32} does not match its sha256")


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """A safetensors file's float32 tensors as read-only memory maps: nothing is read before it is used."""
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size)
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path.name}: {name} is {info['dtype']}, not F32")
        begin, end = info["data_offsets"]
        tensors[name] = data[begin:end].view(np.float32).reshape(info["shape"])
    return tensors


class KVCache:
    """Keys and values of the tokens read so far, per layer: (key/value heads, tokens, head size)."""

    def __init__(self, layers: int):
        self.keys: list[np.ndarray | None] = [None] * layers
        self.values: list[np.ndarray | None] = [None] * layers

    def __len__(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[1]

    def copy(self) -> KVCache:
        other = KVCache(len(self.keys))
        other.keys, other.values = list(self.keys), list(self.values)  # arrays are replaced, never changed
        return other

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.keys[layer] is not None:
            k, v = np.concatenate([self.keys[layer], k], 1), np.concatenate([self.values[layer], v], 1)
        self.keys[layer], self.values[layer] = k, v
        return k, v


class SmolLM:
    """A Llama causal LM from a folder with config.json, tokenizer.json, tokenizer_config.json (or
    chat_template.jinja) and the float32 weights."""

    def __init__(self, folder: str | Path, sha256: str | None = None):
        from tokenizers import Tokenizer

        folder = Path(folder)
        if sha256 is not None:  # vlm/phrase.py checks it in a thread instead, while answering
            check_weights(folder, sha256)
        config = json.loads((folder / "config.json").read_text())
        if config.get("hidden_act", "silu") != "silu" or config.get("attention_bias") or config.get("mlp_bias"):
            raise ValueError("only a bias-free SiLU Llama is supported")
        rope = config.get("rope_parameters") or {}
        if (config.get("rope_scaling") or {}).get("rope_type", "default") != "default" or \
                rope.get("rope_type", "default") != "default":
            raise ValueError("rope scaling is not supported")
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.kv_heads = config.get("num_key_value_heads") or self.heads
        self.head_dim = config.get("head_dim") or config["hidden_size"] // self.heads
        self.eps = config["rms_norm_eps"]
        theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
        # as transformers computes them, in float32
        self.inv_freq = 1.0 / (theta ** (np.arange(0, self.head_dim, 2).astype(np.float32) / self.head_dim))
        self.w = read_weights(folder / WEIGHTS_FP32)
        self.embed = self.w["model.embed_tokens.weight"]
        self.lm_head = self.embed if config.get("tie_word_embeddings", True) else self.w["lm_head.weight"]
        generation = _read_json(folder / "generation_config.json")
        eos = generation.get("eos_token_id", config.get("eos_token_id"))
        self.eos = set(eos if isinstance(eos, list) else [eos])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._template, self._specials = _chat_template(folder)

    def chat_ids(self, messages: list[dict], add_generation_prompt: bool = False) -> list[int]:
        text = self._template.render(messages=messages, add_generation_prompt=add_generation_prompt, **self._specials)
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def forward(self, ids: list[int], cache: KVCache, all_logits: bool = False) -> np.ndarray | None:
        """Reads `ids` after the cache's tokens; the logits of the last token (all: of every token; None:
        none, only the cache is wanted)."""
        w, n, start = self.w, len(ids), len(cache)
        x = self.embed[np.asarray(ids)]
        angles = np.outer(np.arange(start, start + n, dtype=np.float32), self.inv_freq)
        angles = np.concatenate([angles, angles], -1)
        cos, sin = np.cos(angles), np.sin(angles)
        # a query sees the cached tokens and the new ones up to itself
        future = np.triu(np.ones((n, start + n), dtype=bool), start + 1)
        for i in range(self.layers):
            p = f"model.layers.{i}."
            h = self._norm(x, w[p + "input_layernorm.weight"])
            q = self._heads(h @ w[p + "self_attn.q_proj.weight"].T, self.heads)
            k = self._heads(h @ w[p + "self_attn.k_proj.weight"].T, self.kv_heads)
            v = self._heads(h @ w[p + "self_attn.v_proj.weight"].T, self.kv_heads)
            k, v = cache.append(i, _rotate(k, cos, sin), v)
            attended = self._attend(_rotate(q, cos, sin), k, v, future)
            x = x + attended @ w[p + "self_attn.o_proj.weight"].T
            h = self._norm(x, w[p + "post_attention_layernorm.weight"])
            gate = h @ w[p + "mlp.gate_proj.weight"].T
            up = h @ w[p + "mlp.up_proj.weight"].T
            with np.errstate(over="ignore"):  # exp(-gate) -> inf for a very negative gate: SiLU is then 0
                silu = gate / (1 + np.exp(-gate))
            x = x + (silu * up) @ w[p + "mlp.down_proj.weight"].T
        if all_logits is None:
            return None
        x = self._norm(x if all_logits else x[-1:], w["model.norm.weight"])
        return x @ self.lm_head.T

    def generate(self, ids: list[int], max_new_tokens: int, stop=None, cache: KVCache | None = None) -> list[int]:
        """Greedy continuation of `ids` (the first len(cache) of which the cache has read already), up to an
        end-of-sequence token, `stop(new ids)` or max_new_tokens, as transformers' greedy `generate`."""
        cache = cache or KVCache(self.layers)
        logits = self.forward(ids[len(cache):], cache)
        new: list[int] = []
        while len(new) < max_new_tokens:
            new.append(int(np.argmax(logits[-1])))
            if new[-1] in self.eos or (stop and stop(new)) or len(new) == max_new_tokens:
                break
            logits = self.forward(new[-1:], cache)
        return new

    def _norm(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return weight * (x / np.sqrt(np.mean(x * x, -1, keepdims=True) + self.eps))

    def _heads(self, x: np.ndarray, heads: int) -> np.ndarray:
        return x.reshape(x.shape[0], heads, self.head_dim).transpose(1, 0, 2)

    def _attend(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, future: np.ndarray) -> np.ndarray:
        groups = self.heads // self.kv_heads  # each key/value head serves this many query heads
        q = q.reshape(self.kv_heads, groups * q.shape[1], self.head_dim)
        scores = (q @ k.transpose(0, 2, 1)).reshape(self.heads, -1, k.shape[1]) / np.float32(np.sqrt(self.head_dim))
        scores = np.where(future, -np.inf, scores)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = (scores / scores.sum(-1, keepdims=True)).reshape(self.kv_heads, -1, k.shape[1])
        out = (probs @ v).reshape(self.heads, -1, self.head_dim)
        return out.transpose(1, 0, 2).reshape(out.shape[1], -1)


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return x * cos + np.concatenate([-x[..., half:], x[..., :half]], -1) * sin



def _chat_template(folder: Path):
    """The chat template as transformers renders it (sandboxed jinja2, trimmed blocks), with the special tokens."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    config = _read_json(folder / "tokenizer_config.json")
    source = config.get("chat_template")
    if not source and (folder / "chat_template.jinja").is_file():
        source = (folder / "chat_template.jinja").read_text()
    if not isinstance(source, str):
        raise ValueError("no chat template")

    def raise_exception(message):
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    specials = {k: v for k, v in config.items() if k.endswith("_token") and isinstance(v, str)}
    return env.from_string(source), specials


def _read_json(path: Path) -> dict:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
