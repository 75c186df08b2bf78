"""What the three backends share: prompts to token ids, concept tokens into the sequence, loss, generation.

A backend splits its VLM at the point where MyVLM appends the concept token:
  encode(images)  -> the frozen features there, [B, N, D] (cached in the training bank)
  visual(tokens)  -> what the language model receives for the image, [B, M, H]
Everything after `visual` is the language model, run here on `inputs_embeds` whose image placeholders hold
the visual tokens, exactly as the transformers classes do internally, so that with no concept the logits are
bit-for-bit those of the unmodified model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ...imaging import to_rgb
from ..concept import ConceptVector
from ..layer import append_concepts, stable_order

IGNORE = -100


@dataclass
class Result:
    text: str
    concepts: list[str]  # names of the concepts whose tokens the model saw, in token order
    backend: str
    model: str = ""


@dataclass
class Sequences:
    """A tokenised batch: left-padded so every sequence ends at the last column."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    concept_positions: torch.Tensor  # [B, k] columns of the concept tokens (decoder-only models)
    labels: torch.Tensor | None = None  # decoder-only: [B, T]; encoder-decoder: [B, L] (right-padded)


@dataclass
class Prefix:
    """A batch's keys and values of the language model over a prompt's start, the same `ids` for every row."""

    ids: list[int]
    states: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [B, heads, len(ids), head_dim]

    def select(self, rows: torch.Tensor) -> Prefix:
        return Prefix(self.ids, [(k[rows], v[rows]) for k, v in self.states])


class Backend:
    name = ""
    model_types: tuple[str, ...] = ()  # config.model_type values this adapter understands
    # MyVLM's attention-regulariser weights for LLaVA, by kind of target
    reg_lambda: ClassVar[dict[str, float]] = {"caption": 0.0075, "vqa": 10.0}
    trains_vqa = True  # whether training adds VQA targets
    concept_tokens_in_lm = True  # False when the concept token enters before a resampler (BLIP-2)

    def __init__(self, model, processor, model_id: str = ""):
        if self.model_types and model.config.model_type not in self.model_types:
            raise ValueError(f"{model_id or 'this model'} is a {model.config.model_type} model, not {self.name}")
        self.model = model.requires_grad_(False).eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.model_id = model_id or str(getattr(model.config, "_name_or_path", ""))
        self.image_token_id = _image_token(model.config, self.model_id, self.name)
        self._prompts: dict[str, list[int]] = {}
        head = model.get_output_embeddings()
        if head is not None:
            head.register_forward_pre_hook(_compact_input)

    @classmethod
    def model_class(cls):
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    # -- what each backend defines -----------------------------------------------------------------
    @property
    def concept_dim(self) -> int:
        """Length of a concept vector: the width of the features `encode` returns."""
        raise NotImplementedError

    def encode(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Frozen features where concept tokens are appended, [B, N, D]."""
        raise NotImplementedError

    def visual(self, tokens: torch.Tensor, record: bool = False) -> tuple[torch.Tensor, list | None]:
        """Image (+ concept) tokens -> the language model's image embeddings [B, M, H], and attentions to record."""
        return tokens.to(self.dtype), None

    def caption_prompt(self, identifiers: Sequence[str] = ()) -> str:
        raise NotImplementedError

    def question_prompt(self, question: str) -> str:
        raise NotImplementedError

    def language_model(self):
        """The module that takes `inputs_embeds` (decoder-only backends)."""
        return self.model

    # -- the public API --------------------------------------------------------------------------------
    def caption(self, image, concepts: Sequence[ConceptVector] = (), on_token: Callable[[str], None] | None = None,
                max_new_tokens: int = 40, min_new_tokens: int = 0) -> Result:
        """A caption of `image` that names the given concepts (those whose heads fired on it)."""
        concepts = self._usable(concepts)
        prompt = self.caption_prompt([self.spoken(c.identifier) for c in concepts])
        return self._respond(image, prompt, concepts, on_token, max_new_tokens, min_new_tokens)

    def answer(self, image, question: str, concepts: Sequence[ConceptVector] = (),
               on_token: Callable[[str], None] | None = None, max_new_tokens: int = 60,
               min_new_tokens: int = 0) -> Result:
        concepts = self._usable(concepts)
        for c in concepts:
            question = question.replace(c.identifier, self.spoken(c.identifier))
        return self._respond(image, self.question_prompt(question), concepts, on_token, max_new_tokens,
                             min_new_tokens)

    def _respond(self, image, prompt, concepts, on_token, max_new_tokens, min_new_tokens) -> Result:
        features = self.encode([as_image(image)])
        text = self.generate(features, [c.vector for c in concepts], [prompt], on_token=on_token,
                             max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens)[0]
        return Result(self.shown(text, [c.identifier for c in concepts]), [c.name for c in concepts], self.name,
                      self.model_id)

    def spoken(self, identifier: str) -> str:
        """The identifier as this model's tokenizer can write it (see surface_form)."""
        return surface_form(self.tokenizer, identifier)

    def shown(self, text: str, identifiers: Sequence[str]) -> str:
        """Model text with each identifier's spoken form back as the user knows it (`<Alice>`)."""
        for identifier in identifiers:
            form = self.spoken(identifier)
            if form != identifier:
                text = re.sub(rf"(?<![\w<\[(']){re.escape(form)}(?![\w>\])'])", identifier, text)
        return text

    def _usable(self, concepts: Sequence[ConceptVector]) -> list[ConceptVector]:
        for c in concepts:
            if c.vector.numel() != self.concept_dim or (c.backend and c.backend != self.name):
                raise ValueError(f"concept {c.name!r} was trained for {c.backend or 'another model'} "
                                 f"({c.vector.numel()} values), not {self.name} ({self.concept_dim}); retrain it")
        return stable_order(concepts)

    @torch.no_grad()
    def logits(self, image, prompt: str, concepts: Sequence[ConceptVector] = ()) -> torch.Tensor:
        """Next-token logits over the prompt (encoder-decoder: for the decoder's start token)."""
        features = self.encode([as_image(image)])
        vectors = [c.vector for c in self._usable(concepts)]
        out, _, _ = self.forward(features, vectors, [self.prompt_ids(prompt)])
        return out.logits

    # -- generation --------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, features: torch.Tensor, vectors: Sequence[torch.Tensor], prompts: Sequence[str],
                 on_token: Callable[[str], None] | None = None, max_new_tokens: int = 40,
                 min_new_tokens: int = 0, ended: list | None = None,
                 prompt_ids: Sequence[list[int]] | None = None) -> list[str]:
        """Greedy answers for prompts[i] about image features[i] (or features[0] for all).

        `ended`, when given, is filled with whether each answer ended with the end token (else it was cut).
        `prompt_ids` replaces the prompts' own token ids where the image placeholders depend on the photo."""
        features = features.expand(len(prompts), -1, -1) if features.shape[0] == 1 else features
        visual, _ = self.visual(append_concepts(features, vectors))
        ids = prompt_ids if prompt_ids is not None else [self.prompt_ids(p) for p in prompts]
        seqs = self.sequences(ids, self._lm_concepts(vectors))
        embeds = self.embed(seqs.input_ids, visual)
        streamer = _Streamer(self.tokenizer, on_token) if on_token is not None and len(prompts) == 1 else None
        options = {"max_new_tokens": max_new_tokens, "min_new_tokens": min_new_tokens, "do_sample": False,
                   "num_beams": 1, "streamer": streamer}
        ids = self._generate(embeds, seqs, options)
        texts = [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        if ended is not None:
            ended[:] = [bool((row == self.end_token_id).any()) for row in ids]
        return texts

    def _generate(self, embeds: torch.Tensor, seqs: Sequences, options: dict) -> torch.Tensor:
        lm = self.language_model()
        return lm.generate(inputs_embeds=embeds, attention_mask=seqs.attention_mask, **options)

    # -- training --------------------------------------------------------------------------------------
    def loss(self, features: torch.Tensor, vectors: Sequence[torch.Tensor], prompts: Sequence[str],
             targets: Sequence[str], reg_weights: torch.Tensor | None = None,
             ends: Sequence[bool] | None = None, prefix: Prefix | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(language-model loss, attention regulariser) for a batch; gradients reach only `vectors`.

        `ends[i]` False: target i was cut, so the model is not taught to stop after it. `prefix`: the cached
        keys and values of the prompts' start for these features (`prefix_states`), to run only the rest."""
        record = reg_weights is not None and bool((reg_weights > 0).any())
        prompt_ids = [self.prompt_ids(p) for p in prompts]
        ends = [True] * len(targets) if ends is None else list(ends)
        target_ids = [self.target_ids(t, end) for t, end in zip(targets, ends)]
        with self.recording_attentions(record):
            out, seqs, cross = self.forward(features, vectors, prompt_ids, target_ids, record, prefix)
        lm_loss = self._lm_loss(out.logits, seqs)
        if not record:
            return lm_loss, lm_loss.new_zeros(())
        per_sample = self._attention_penalty(out, seqs, cross, features.shape[1])
        return lm_loss, (per_sample * reg_weights.to(per_sample)).mean()

    def forward(self, features, vectors, prompt_ids, target_ids=None, record: bool = False,
                prefix: Prefix | None = None):
        """Run the model with concept tokens appended: (model output, the sequences, recorded cross-attentions).

        With `prefix` (the cached keys and values of every row's prompt before its concept tokens), only the
        columns from the concept tokens on are run; see `_run_after_prefix`."""
        visual, cross = self.visual(append_concepts(features, vectors), record)
        seqs = self.sequences(prompt_ids, self._lm_concepts(vectors), target_ids)
        if prefix is not None:
            return self._run_after_prefix(prefix, visual, seqs, record)
        embeds = self.embed(seqs.input_ids, visual)
        return self._run_lm(embeds, seqs, record), seqs, cross

    # -- training: the prompt before the concept token runs once, without gradients ------------------------
    def prefix_ids(self, prompt: str) -> list[int]:
        """The prompt's token ids before its concept tokens (up to its last image placeholder): the model's
        keys and values there do not depend on a concept vector, since attention only looks back."""
        ids = self.prompt_ids(prompt)
        return ids[:self._concept_slot(ids)] if self.concept_tokens_in_lm else []

    @torch.no_grad()
    def prefix_states(self, features: torch.Tensor, prefix_ids: Sequence[int]) -> Prefix:
        """Keys and values of the language model over `prefix_ids` for each image's features [B, N, D]."""
        visual, _ = self.visual(features)
        ids = torch.tensor([list(prefix_ids)] * features.shape[0], device=self.device)
        out = self.language_model()(inputs_embeds=self.embed(ids, visual), use_cache=True, logits_to_keep=1)
        return Prefix(list(prefix_ids), [(layer.keys, layer.values) for layer in out.cache.layers])

    def _run_after_prefix(self, prefix: Prefix, visual: torch.Tensor, seqs: Sequences, record: bool):
        """The language model over the columns after `prefix`, reading the prefix's keys and values from a cache.

        Each row's left padding moves from before its prefix to just after it: the concept columns and the
        targets keep their columns, the position ids of real tokens stay those of the full left-padded run, so
        the loss and the attention maps of these columns are those of the full run (up to rounding)."""
        from transformers import DynamicCache

        length, width = len(prefix.ids), seqs.input_ids.shape[1]
        pads = (width - seqs.attention_mask.sum(1))[:, None]
        cols = torch.arange(width, device=seqs.input_ids.device)[None]
        order = torch.where(cols < length, cols + pads, torch.where(cols < length + pads, cols - length, cols))
        ids, mask = seqs.input_ids.gather(1, order), seqs.attention_mask.gather(1, order)
        if not bool((ids[:, :length] == torch.tensor(prefix.ids, device=ids.device)).all()):
            raise ValueError("the cached prefix is not the start of these prompts")
        k = seqs.concept_positions.shape[1]
        embeds = self.embed(ids[:, length:], visual[:, visual.shape[1] - k:])
        seqs = replace(seqs, input_ids=ids, attention_mask=mask)
        keep = int((seqs.labels != IGNORE).sum(1).max()) + 1
        extra = {"output_attentions": True} if record else {}
        # a fresh cache per call: it concatenates the new keys onto copies, so the stored prefix never grows
        cache = DynamicCache(ddp_cache_data=prefix.states)
        out = self.language_model()(inputs_embeds=embeds, attention_mask=mask, cache=cache, use_cache=True,
                                    position_ids=positions(mask)[:, length:], logits_to_keep=keep, **extra)
        return out, seqs, None

    def _run_lm(self, embeds: torch.Tensor, seqs: Sequences, record: bool):
        keep = 0 if seqs.labels is None else int((seqs.labels != IGNORE).sum(1).max()) + 1
        extra = {"output_attentions": True} if record else {}
        return self.language_model()(inputs_embeds=embeds, attention_mask=seqs.attention_mask,
                                     position_ids=positions(seqs.attention_mask), logits_to_keep=keep, **extra)

    def _lm_loss(self, logits: torch.Tensor, seqs: Sequences) -> torch.Tensor:
        keep = logits.shape[1]  # the last `keep` columns; logits at column t predict the token at t + 1
        labels = seqs.labels[:, -keep + 1:] if keep > 1 else seqs.labels[:, :0]
        return F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)

    def _attention_penalty(self, out, seqs: Sequences, cross, n_image: int) -> torch.Tensor:
        """Per sample: sum over layers of mean(attention to the concept tokens ^ 2) over heads and queries.

        The mean is over all the sequence's real queries. Maps that start at the concept token (after a cached
        prefix) lack the queries before it, which attend 0 to it (attention looks back), so the value is the same."""
        mask = seqs.attention_mask.float()
        count = mask.sum(1)  # padding queries do not count
        total = 0.0
        for attn in out.attentions:
            valid = mask[:, None, mask.shape[1] - attn.shape[2]:, None]
            idx = seqs.concept_positions[:, None, None, :].expand(-1, attn.shape[1], attn.shape[2], -1)
            to_concept = attn.gather(-1, idx).float().pow(2) * valid
            total = total + to_concept.sum(dim=(1, 2, 3)) / (count * attn.shape[1] * idx.shape[-1])
        return total

    @contextmanager
    def checkpointing(self, on: bool = True):
        """Activation checkpointing in the language model while training: the backward pass recomputes each
        layer instead of keeping its activations (LLaVA-1.5-7B at batch 4: 49 GB kept without, under 1 GB with;
        benchmarks/bench_train.py --backend llava --big). transformers checkpoints only in training mode; these
        language models have no dropout, so training mode changes nothing else."""
        lm = self.language_model()
        if not on or not hasattr(lm, "activation_checkpointing_enable"):
            yield
            return
        lm.activation_checkpointing_enable({"use_reentrant": False})
        lm.train(True)
        try:
            yield
        finally:
            lm.activation_checkpointing_disable()
            lm.train(False)

    @contextmanager
    def recording_attentions(self, on: bool = True):
        """Eager attention after the vision tower while attention maps are needed: fused kernels do not return
        them (and on a CPU, training backpropagates faster through eager attention than through the fused one).
        The frozen vision tower keeps its fused attention."""
        config = self.model.config
        before = {name: getattr(config, name)._attn_implementation for name in config.sub_configs}
        before[""] = config._attn_implementation
        wanted = {name: ("eager" if name != "vision_config" else impl) for name, impl in before.items()}
        if not on or wanted == before:
            yield
            return
        self.model.set_attn_implementation(wanted)
        try:
            yield
        finally:
            self.model.set_attn_implementation(before)

    # -- token ids and sequences -------------------------------------------------------------------------
    def prompt_ids(self, text: str) -> list[int]:
        """Token ids of a prompt with its image placeholders expanded, as the model's own processor makes them."""
        if text not in self._prompts:
            blank = Image.new("RGB", (64, 64))
            self._prompts[text] = self.processor(images=blank, text=text, **self._processor_options())[
                "input_ids"][0]
            self._prompts[text] = [int(i) for i in self._prompts[text]]
        return self._prompts[text]

    def _processor_options(self) -> dict:
        return {}

    def target_ids(self, text: str, end: bool = True) -> list[int]:
        """What the model should write after the prompt, ending with its end token when `end`."""
        ids = self.tokenizer(" " + text.strip(), add_special_tokens=False)["input_ids"]
        return [*ids, self.end_token_id] if end else ids

    @property
    def end_token_id(self) -> int:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return int(eos[0] if isinstance(eos, (list, tuple)) else eos)

    def _lm_concepts(self, vectors) -> int:
        return len(vectors) if self.concept_tokens_in_lm else 0

    def sequences(self, prompt_ids: Sequence[list[int]], k: int, target_ids=None) -> Sequences:
        """Left-padded prompt (+ target) sequences with k concept placeholders after the image placeholders."""
        rows, labels, spots = [], [], []
        for i, ids in enumerate(prompt_ids):
            prompt, where = self._insert_placeholders(ids, k)
            target = list(target_ids[i]) if target_ids is not None else []
            rows.append(prompt + target)
            labels.append([IGNORE] * len(prompt) + target)
            spots.append(where)
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        spots_t = torch.tensor([[width - len(r) + s for s in where] for r, where in zip(rows, spots)],
                               dtype=torch.long).reshape(len(rows), k)
        lab = torch.tensor([[IGNORE] * (width - len(r)) + la for r, la in zip(rows, labels)])
        dev = self.device
        return Sequences(ids.to(dev), mask.to(dev), spots_t.to(dev), lab.to(dev) if target_ids is not None else None)

    def _insert_placeholders(self, ids: list[int], k: int) -> tuple[list[int], list[int]]:
        if k == 0:
            return list(ids), []
        slot = self._concept_slot(ids)
        return ids[:slot] + [self.image_token_id] * k + ids[slot:], list(range(slot, slot + k))

    def _concept_slot(self, ids: Sequence[int]) -> int:
        """Where concept tokens go: right after the last image placeholder."""
        return max(i for i, t in enumerate(ids) if t == self.image_token_id) + 1

    def embed(self, input_ids: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the image placeholders replaced, in order, by the visual tokens."""
        embeds = self.model.get_input_embeddings()(input_ids)
        mask = (input_ids == self.image_token_id).unsqueeze(-1).to(embeds.device)
        if int(mask.sum()) != visual.shape[0] * visual.shape[1]:
            raise RuntimeError(f"{int(mask.sum())} image placeholders for {visual.shape[1]} visual tokens")
        return embeds.masked_scatter(mask, visual.to(embeds.device, embeds.dtype))

    def pixels(self, images: Sequence[Image.Image], one_per_sample: bool = False, **options) -> dict:
        """Pixel tensors on the model's device; `one_per_sample` for processors that group a list into one sample."""
        images = [[as_image(i)] if one_per_sample else as_image(i) for i in images]
        out = self.processor.image_processor(images, return_tensors="pt", **options)
        return {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                for k, v in out.items() if isinstance(v, torch.Tensor)}


def _image_token(config, model_id: str, backend: str) -> int:
    """The image placeholder's id. Snapshots saved before transformers gave BLIP-2 an image token lack it
    (image_token_index is None); their processor would not expand the image either, so they cannot run."""
    token = getattr(config, "image_token_id", None)
    if token is None:
        from ...models.errors import ModelUnavailable

        raise ModelUnavailable(model_id or backend, "this copy of the model is an old snapshot without "
                               "image_token_index in its config.json",
                               f"Download the model again (`myvlm models download {model_id or backend}`).")
    return int(token)


def surface_form(tokenizer, identifier: str) -> str:
    """How the model writes `identifier`: the first form that survives encode-then-decode unchanged.

    `<Alice>` itself where the vocabulary has `<` and `>`; T5's has neither (they become <unk>), so there the
    identifier is spoken as `[Alice]`, `(Alice)` or, at worst, `Alice`. Users always see `<Alice>`."""
    name = identifier.strip()
    bare = name[1:-1] if name.startswith("<") and name.endswith(">") else name
    for form in (name, f"[{bare}]", f"({bare})", f"'{bare}'", bare):
        ids = tokenizer(" " + form, add_special_tokens=False)["input_ids"]
        if tokenizer.decode(ids, skip_special_tokens=True).strip() == form:
            return form
    return bare


def _compact_input(module, args):
    """The models hand their LM head a slice of the hidden states (the last positions). With the strides of
    the whole sequence, torch multiplies it through a batched copy of the vocabulary matrix (0.2-1 s per
    call on a CPU); a compact copy of the slice (a few kilobytes) takes the plain matmul path."""
    x = args[0]
    if x.dim() == 3 and x.stride(0) != x.shape[1] * x.shape[2]:
        x = x.clone(memory_format=torch.contiguous_format)
    return (x, *args[1:])


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that ignore left padding."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def as_image(image) -> Image.Image:
    """An RGB PIL image from a PIL image or an HxWx3 / HxW uint8 array."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"expected an RGB image (HxWx3 uint8), got an array {array.shape} {array.dtype}")
    return to_rgb(Image.fromarray(array))


class _Streamer:
    """Hands decoded text to `on_token` as generation goes (word by word, as transformers' TextStreamer does)."""

    def __init__(self, tokenizer, on_token: Callable[[str], None]):
        from transformers import TextStreamer

        class Callback(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    on_token(text)

        self._inner = Callback(tokenizer, skip_prompt=False, skip_special_tokens=True)
        self._first = True

    def put(self, value) -> None:
        if self._first:  # the first call carries the prompt (or the decoder's start token): not part of the answer
            self._first = False
            return
        self._inner.put(value)

    def end(self) -> None:
        self._inner.end()
