"""Training one concept embedding (MyVLM section 3) on a frozen VLM.

1. Targets come from the frozen VLM itself: it captions each training photo, and the class noun phrase
   ("a man", "the dog", the user's object noun) is replaced by the concept's identifier. Backends that answer
   questions also get VQA targets: ~10 template questions asked about "the man", with the noun swapped for the
   identifier in question and answer.
2. The vision tower is frozen, so its outputs for a bank of augmented views (flip, brightness 0.6, rotation
   up to 45 degrees) are computed once and reused at every step.
3. The paper's recipe: AdamW lr 1.0, weight decay 1e-4, constant lr, gradient clip 0.05, 100 steps, batch 4,
   language-model loss + lambda * attention regulariser. Only the concept vector has a gradient.

Each step's batch is drawn from a generator seeded by (seed, step), so a run resumed from a checkpoint
(vector + AdamW moments + step) ends with exactly the vector of an uninterrupted run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from ..vision import augment
from .backends.base import Backend, Prefix

CLASS_NOUNS = {
    "person": ["man", "woman", "person", "boy", "girl", "child", "kid", "baby", "toddler", "lady", "guy",
               "gentleman", "teenager", "player"],
    "pet": ["dog", "cat", "puppy", "kitten", "pet", "animal", "bird", "rabbit", "bunny", "horse", "hamster",
            "parrot"],
    "object": ["object", "item", "toy"],
}
# Asked about "the <noun>" with the frozen model; the training question names the identifier instead.
QUESTIONS = [
    "What is {n} doing in the image?", "Where is {n} in the image?", "What does {n} look like?",
    "What is next to {n}?", "What is behind {n}?", "Is {n} indoors or outdoors?",
    "What colors can you see on {n}?", "What is in front of {n}?", "Describe {n} in one sentence.",
    "What is the setting around {n}?",
]


@dataclass
class TrainSettings:
    steps: int = 100
    batch_size: int = 4
    lr: float = 1.0
    weight_decay: float = 1e-4
    grad_clip: float = 0.05
    checkpoint_every: int = 25
    views: int = 4  # views per photo in the bank: the photo itself + 3 augmented (each costs one vision pass)
    seed: int = 0
    questions: int = 10  # VQA targets per photo, for backends that train VQA
    cached: bool = True  # reuse the bank; False re-encodes a fresh augmented view at every step
    regularise: bool = True
    checkpointing: str = "auto"  # activation checkpointing: "auto" (LLaVA on a GPU), "on" or "off"
    prefix: bool = True  # run the prompt before the concept token once per bank view, without gradients


@dataclass
class Sample:
    photo: int  # index into the training photos
    prompt: str  # the prompt at training (and inference) time, naming the identifier where the backend does
    target: str
    kind: str = "caption"  # or "vqa"
    ended: bool = True  # the frozen model ended here; False: its answer was cut, so no end token is learned


# -- targets ------------------------------------------------------------------------------------------------
def class_nouns(kind: str, noun: str | None = None) -> list[str]:
    extra = [noun.strip().lower()] if noun and noun.strip() else []
    return extra + [n for n in CLASS_NOUNS.get(kind, []) if n not in extra]


def _noun_pattern(nouns: Sequence[str]) -> re.Pattern:
    words = "|".join(re.escape(n) for n in sorted(nouns, key=len, reverse=True))
    return re.compile(rf"\b(?:a|an|the|this|that|one)\s+(?:[\w-]+\s+){{0,2}}?(?:{words})(?:s|es)?\b", re.IGNORECASE)


def personalize(text: str, identifier: str, nouns: Sequence[str], fallback: bool = True) -> str:
    """Replace the first class noun phrase ("a young man", "the dog") with the identifier.

    With no such phrase, `fallback` names the concept in front: "A photo of <id>. <caption>".
    """
    text = text.strip()
    match = _noun_pattern(nouns).search(text) if nouns else None
    if match:
        return text[:match.start()] + identifier + text[match.end():]
    if not fallback:
        return text
    return f"A photo of {identifier}. {text}" if text else f"A photo of {identifier}."


def mentioned_noun(text: str, nouns: Sequence[str]) -> str | None:
    match = _noun_pattern(nouns).search(text) if nouns else None
    if not match:
        return None
    last = match.group(0).split()[-1].lower()
    return next((n for n in nouns if last.startswith(n)), last)


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def whole_sentences(text: str, ended: bool) -> tuple[str, bool]:
    """(target text, whether it ends): a cut answer keeps its whole sentences only, and ends there; with no
    whole sentence it stays as it is, without an end token, so the model never learns to stop mid-sentence."""
    text = text.strip()
    if ended:
        return text, True
    stops = [m.end() for m in _SENTENCE_END.finditer(text)]
    return (text[:stops[-1]], True) if stops else (text, False)


def make_targets(backend: Backend, images: Sequence[Image.Image], identifier: str, kind: str,
                 noun: str | None = None, settings: TrainSettings | None = None, max_new_tokens: int = 40,
                 on_photo: Callable[[int], None] | None = None, features: torch.Tensor | None = None) -> list[Sample]:
    """Caption (and question) each photo with the frozen model; swap the class noun for the identifier.

    `features` [P, N, D] are the photos' encodings when already computed (the bank's first view).
    """
    settings = settings or TrainSettings()
    nouns = class_nouns(kind, noun)
    spoken = backend.spoken(identifier)  # `<Alice>` unless the tokenizer cannot write it (T5: `[Alice]`)
    samples = []
    for p, image in enumerate(images):
        features_p = backend.encode([image]) if features is None else features[p:p + 1]
        ended: list[bool] = []
        caption = backend.generate(features_p, [], [backend.caption_prompt()], max_new_tokens=max_new_tokens,
                                   ended=ended)[0]
        text, ends = whole_sentences(caption, ended[0])
        samples.append(Sample(p, backend.caption_prompt([spoken]), personalize(text, spoken, nouns), ended=ends))
        asks = QUESTIONS[:settings.questions] if backend.trains_vqa else []
        if asks:
            subject = f"the {mentioned_noun(caption, nouns) or (nouns[0] if nouns else kind)}"
            answers = backend.generate(features_p, [], [backend.question_prompt(q.format(n=subject)) for q in asks],
                                       max_new_tokens=max_new_tokens, ended=ended)
            for q, a, done in zip(asks, answers, ended):
                text, ends = whole_sentences(a, done)
                if text:
                    samples.append(Sample(p, backend.question_prompt(q.format(n=spoken)),
                                          personalize(text, spoken, nouns, fallback=False), "vqa", ends))
        if on_photo:
            on_photo(p + 1)
    return samples


# -- the vision bank ---------------------------------------------------------------------------------------
@torch.no_grad()
def build_bank(backend: Backend, images: Sequence[Image.Image], views: int = 4, seed: int = 0, batch: int = 4,
               on_batch: Callable[[], None] | None = None) -> torch.Tensor:
    """Frozen features of `views` augmented views of each photo: [P, V, N, D]. `on_batch` may raise to stop.

    Views go through the vision tower `batch` at a time: 16 at once measured no faster than 4 on a 2-core CPU
    (real-size SmolVLM-256M), and 4 keeps a cancel quick."""
    flat = [v for p, image in enumerate(images) for v in augment.views(image, views, seed=seed * 1000 + p)]
    chunks = []
    for i in range(0, len(flat), batch):
        chunks.append(backend.encode(flat[i:i + batch]))
        if on_batch:
            on_batch()
    features = torch.cat(chunks)
    return features.reshape(len(images), views, *features.shape[1:])


# -- the trainer ---------------------------------------------------------------------------------------------
class ConceptTrainer:
    """Learns one concept vector; everything in the backend's model stays frozen."""

    def __init__(self, backend: Backend, images: Sequence[Image.Image], samples: Sequence[Sample],
                 settings: TrainSettings | None = None, bank: torch.Tensor | None = None):
        self.backend, self.images, self.samples = backend, list(images), list(samples)
        self.settings = settings or TrainSettings()
        if not self.samples:
            raise ValueError("no training targets")
        s = self.settings
        if s.cached and bank is None:
            bank = build_bank(backend, self.images, s.views, s.seed)
        self.bank = bank if s.cached else None
        start = torch.randn(backend.concept_dim, generator=torch.Generator().manual_seed(s.seed))
        self.vector = torch.nn.Parameter(start.to(backend.device))
        self.optimizer = torch.optim.AdamW([self.vector], lr=s.lr, weight_decay=s.weight_decay)
        self.step = 0
        self.losses: list[float] = []
        self._by_photo = [[i for i, x in enumerate(self.samples) if x.photo == p] for p in range(len(self.images))]
        self._prefixes: dict[tuple[int, ...], Prefix] | None = None  # per prompt start: [photo * views + view]

    def run(self, on_step: Callable[[int, float], None] | None = None,
            on_checkpoint: Callable[[ConceptTrainer], None] | None = None, lane=nullcontext) -> torch.Tensor:
        """Train until `settings.steps`; `on_step` may raise to stop (the last checkpoint stays valid).

        `lane()` is held for each step, so a model shared with captions and questions serves them between steps."""
        s = self.settings
        with self.backend.recording_attentions(), self.backend.checkpointing(self.uses_checkpointing):
            while self.step < s.steps:  # eager attention: the maps, and on CPU a faster backward
                with lane():
                    loss = self.train_step()
                if on_step:
                    on_step(self.step, loss)
                if on_checkpoint and self.step % s.checkpoint_every == 0 and self.step < s.steps:
                    on_checkpoint(self)
        return self.vector.detach().clone()

    @property
    def uses_checkpointing(self) -> bool:
        """LLaVA-7B at batch 4 keeps ~49 GB for the backward pass; checkpointed, a 24 GB GPU trains it."""
        choice = self.settings.checkpointing
        if choice in ("on", "off"):
            return choice == "on"
        return self.backend.name == "llava" and self.backend.device.type == "cuda"

    @property
    def uses_prefix(self) -> bool:
        """Whether the prompt before the concept token is run once per bank view instead of at every step.

        Those columns (the image tokens and the words before them) do not depend on the concept vector, so
        their keys and values are the same at every step; only the columns from the concept token on go
        through the model with gradients (on SmolVLM about a third of the sequence). Not under activation
        checkpointing (it drops the cache) and not where the concept token enters before the language model."""
        return (self.settings.prefix and self.bank is not None and self.backend.concept_tokens_in_lm
                and not self.uses_checkpointing)

    def prepare(self) -> None:
        """Compute the prefixes' keys and values for every bank view (done by the first step when not called)."""
        if self._prefixes is not None or not self.uses_prefix:
            return
        views = self.bank.flatten(0, 1)
        starts = {tuple(self.backend.prefix_ids(x.prompt)) for x in self.samples}
        self._prefixes = {}
        with self.backend.recording_attentions():  # the same attention as the steps, so the same rounding
            for start in sorted(starts):
                parts = [self.backend.prefix_states(views[i:i + 4], start) for i in range(0, len(views), 4)]
                states = [(torch.cat([p.states[j][0] for p in parts]), torch.cat([p.states[j][1] for p in parts]))
                          for j in range(len(parts[0].states))]
                self._prefixes[start] = Prefix(list(start), states)

    def _prefix(self, picks: list[tuple[int, int]], samples: list[Sample]) -> Prefix | None:
        if not self.uses_prefix:
            return None
        self.prepare()
        starts = {tuple(self.backend.prefix_ids(x.prompt)) for x in samples}
        if len(starts) != 1:  # prompts that differ before the concept token: the whole sequence runs
            return None
        rows = torch.tensor([x.photo * self.settings.views + v for x, (_, v) in zip(samples, picks)])
        return self._prefixes[starts.pop()].select(rows.to(self.backend.device))

    def train_step(self) -> float:
        picks = self._pick(self.step)
        samples = [self.samples[i] for i, _ in picks]
        features = self._features(picks)
        weights = torch.tensor([self.backend.reg_lambda[x.kind] if self.settings.regularise else 0.0
                                for x in samples])
        lm_loss, reg = self.backend.loss(features, [self.vector], [x.prompt for x in samples],
                                         [x.target for x in samples], weights, [x.ended for x in samples],
                                         prefix=self._prefix(picks, samples))
        loss = lm_loss + reg
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([self.vector], self.settings.grad_clip)
        self.optimizer.step()
        self.step += 1
        value = float(loss.detach())
        self.losses.append(round(value, 6))
        return value

    def _pick(self, step: int) -> list[tuple[int, int]]:
        """(sample, view) pairs for a step: each photo at most once when there are enough (MyVLM's batch)."""
        g = torch.Generator().manual_seed(self.settings.seed * 1_000_003 + step)
        photos = [p for p in range(len(self.images)) if self._by_photo[p]]
        order = [photos[i] for i in torch.randperm(len(photos), generator=g).tolist()]
        while len(order) < self.settings.batch_size:
            order.append(photos[int(torch.randint(len(photos), (1,), generator=g))])
        picks = []
        for p in order[:self.settings.batch_size]:
            options = self._by_photo[p]
            sample = options[int(torch.randint(len(options), (1,), generator=g))]
            picks.append((sample, int(torch.randint(self.settings.views, (1,), generator=g))))
        return picks

    def _features(self, picks: list[tuple[int, int]]) -> torch.Tensor:
        photos = [self.samples[i].photo for i, _ in picks]
        if self.bank is not None:
            return self.bank[torch.tensor(photos), torch.tensor([v for _, v in picks])]
        rng = np.random.default_rng([self.settings.seed, self.step])
        with torch.no_grad():  # the slow path the bank avoids: the vision tower at every step
            return self.backend.encode([augment.augment(self.images[p], rng) for p in photos])

    # -- checkpoints -----------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Tensors (safetensors) and JSON-able facts that resume this run exactly."""
        moments = self.optimizer.state.get(self.vector, {})
        tensors = {"vector": self.vector.detach().cpu().contiguous()}
        for key in ("exp_avg", "exp_avg_sq", "step"):
            if key in moments:
                tensors[key] = moments[key].detach().cpu().reshape(-1).contiguous()
        return tensors, {"step": self.step, "losses": list(self.losses), "settings": asdict(self.settings)}

    def load_state(self, tensors: dict[str, torch.Tensor], info: dict) -> None:
        with torch.no_grad():
            self.vector.copy_(tensors["vector"].to(self.vector))
        if "exp_avg" in tensors:
            saved = self.optimizer.state_dict()
            saved["state"] = {0: {"step": tensors["step"].reshape(()).clone(),
                                  "exp_avg": tensors["exp_avg"].to(self.vector),
                                  "exp_avg_sq": tensors["exp_avg_sq"].to(self.vector)}}
            self.optimizer.load_state_dict(saved)
        self.step = int(info["step"])
        self.losses = list(info.get("losses", []))
