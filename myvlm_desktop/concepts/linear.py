"""The object / pet head (MyVLM section 1): a linear classifier on L2-normalised image embeddings.

Trained as MyVLM trains it: nn.Linear(dim, 2) with cross-entropy, AdamW (lr 1e-3, weight decay 0.01),
a cosine schedule down to 5e-6 over 500 steps of 16, gradient clipping at 0.1, and a weighted sampler
so positives and negatives are drawn equally often however few positives there are. Augmentation
(flip, rotation) reaches the head as embeddings of augmented views, computed once before training.
Class 1 is the concept. Two additions make it trustworthy with few examples:
- the cut-off on p(concept) is calibrated per concept from held-back positives (`calibrated_cutoff`):
  a head sure of its concept gets a stricter cut-off than MyVLM's fixed 0.5, so look-alikes stay out;
- with fewer than MIN_LINEAR photos a linear head cannot be calibrated (and tends to fire on every
  photo of the same breed or to collapse onto its one photo), so the head decides by cosine similarity
  to the example photos' views (prototypes) with a cut-off set between the examples and the nearest
  negatives (`prototype_cutoff`).
`scores` puts every head on one scale: 0.5 exactly at its cut-off; present means score >= 0.5.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PRESENT_AT = 0.5
MIN_LINEAR = 3      # photos needed before the linear head (and its calibration) takes over from prototypes
SHARPNESS = 20.0    # prototype scores: how fast the score leaves 0.5 per unit of cosine similarity
NEGATIVE_QUANTILE = 0.95  # prototype cut-off: above this share of the negatives' similarities (0.9: 1-shot 0.85)
HELD_BACK = 3       # photos held back, one at a time, to calibrate a linear head's cut-off
CUTOFF_MARGIN = 0.8  # the cut-off sits this much under the typical held-back photo's p(concept)
MAX_CUTOFF = 0.95


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 500
    batch: int = 16
    lr: float = 1e-3
    min_lr: float = 5e-6
    weight_decay: float = 0.01
    clip: float = 0.1
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class TrainingError(ValueError):
    """The examples cannot make a head (no positives, no negatives, mismatched sizes)."""


@dataclass
class LinearHead:
    weight: np.ndarray   # (2, dim) float32
    bias: np.ndarray     # (2,) float32
    threshold: float = PRESENT_AT          # cut-off on p(concept), calibrated from held-back positives
    prototypes: np.ndarray | None = None   # (n, dim): with too few photos these decide, not the weights
    cutoff: float = 0.0                    # cosine similarity to the nearest prototype at which it is present

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"a probability cut-off lies between 0 and 1, not {self.threshold}")
        if self.prototypes is not None:
            self.prototypes = _unit(np.asarray(self.prototypes, np.float32).reshape(-1, self.dim))

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """For each row: 0.5 at the head's cut-off, above it when the concept is present."""
        x = np.asarray(embeddings, np.float32).reshape(-1, self.dim)
        if self.prototypes is not None and len(self.prototypes):
            similarity = (_unit(x) @ self.prototypes.T).max(axis=1)
            return 1.0 / (1.0 + np.exp(-SHARPNESS * (similarity - self.cutoff)))
        p = np.clip(self.probabilities(x), 1e-7, 1 - 1e-7)
        shift = math.log(self.threshold / (1 - self.threshold))
        return 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) - shift)))

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """p(concept) for each row of `embeddings` (normalised here, as in training)."""
        x = np.asarray(embeddings, np.float32).reshape(-1, self.dim)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        logits = x @ self.weight.T + self.bias
        # softmax over two classes = sigmoid of the logit difference (stable for any magnitude)
        return 1.0 / (1.0 + np.exp(-(logits[:, 1] - logits[:, 0])))

    def present(self, embeddings: np.ndarray) -> np.ndarray:
        return self.scores(embeddings) >= PRESENT_AT


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit_concept_head(positives: np.ndarray, negatives: np.ndarray, positive_groups: np.ndarray,
                     config: TrainConfig = TrainConfig()) -> LinearHead:
    """The head a pet or object concept gets from its photos' views (`positive_groups`: the photo of each row).

    Fewer than MIN_LINEAR photos: a prototype head. Otherwise the linear head, its cut-off calibrated on
    photos held back from training.
    """
    pos, neg = _matrix(positives, "positive"), _matrix(negatives, "negative")
    groups = np.asarray(positive_groups)
    if len(groups) != len(pos):
        raise TrainingError("positive_groups must have one entry per positive row")
    if len(np.unique(groups)) < MIN_LINEAR:
        return prototype_head(pos, neg)
    head = train_linear_head(pos, neg, config, positive_groups=groups)
    head.threshold = calibrated_cutoff(pos, neg, groups, config)
    return head


def prototype_head(positives: np.ndarray, negatives: np.ndarray, quantile: float = NEGATIVE_QUANTILE) -> LinearHead:
    """Present when a photo is nearer one of the examples' views than most negatives are (cosine similarity
    above the `quantile` of the negatives' similarities): it neither collapses onto the example photo
    nor fires on everything, as a linear head trained on one or two photos does."""
    pos, neg = _unit(_matrix(positives, "positive")), _unit(_matrix(negatives, "negative"))
    if pos.shape[1] != neg.shape[1]:
        raise TrainingError(f"positives have {pos.shape[1]} dimensions but negatives {neg.shape[1]}")
    cutoff = float(np.quantile((neg @ pos.T).max(axis=1), quantile))
    dim = pos.shape[1]
    # the weights are unused while prototypes decide; zeros keep one file layout for both kinds
    return LinearHead(np.zeros((2, dim), np.float32), np.zeros(2, np.float32), prototypes=pos, cutoff=cutoff)


def calibrated_cutoff(positives: np.ndarray, negatives: np.ndarray, groups: np.ndarray,
                      config: TrainConfig = TrainConfig(), held_back: int = HELD_BACK) -> float:
    """The p(concept) cut-off from photos held back: for up to `held_back` photos, a head trained without
    that photo scores its original view; the cut-off sits a margin under the median of those scores, so
    a new photo like the examples is found while the look-alikes that a confident head still scores
    above 0.5 are not. Never under MyVLM's 0.5 (measured on pets_dreambooth, 4 photos: lowering it costs
    more false photos than it finds new ones; raising it where the head is sure gains precision)."""
    photos = np.unique(groups)[:held_back]
    held = []
    for photo in photos:
        rest = groups != photo
        head = train_linear_head(positives[rest], negatives, config, positive_groups=groups[rest])
        held.append(float(head.probabilities(positives[np.flatnonzero(groups == photo)[0]])[0]))
    return float(np.clip(np.median(held) * CUTOFF_MARGIN, PRESENT_AT, MAX_CUTOFF))


def train_linear_head(positives: np.ndarray, negatives: np.ndarray, config: TrainConfig = TrainConfig(),
                      positive_groups: np.ndarray | None = None) -> LinearHead:
    """Train a head from embeddings of the concept (`positives`, augmented views included) and of other photos.

    `positive_groups` says which photo each positive row came from, so a photo with more views does not
    outweigh one with fewer; without it every row counts alike. Same inputs and seed, same head.
    """
    import torch  # only training needs torch: loading and applying a head is numpy

    pos = _matrix(positives, "positive")
    neg = _matrix(negatives, "negative")
    if pos.shape[1] != neg.shape[1]:
        raise TrainingError(f"positives have {pos.shape[1]} dimensions but negatives {neg.shape[1]}")
    x = torch.from_numpy(np.concatenate([pos, neg]))
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    y = torch.cat([torch.ones(len(pos), dtype=torch.long), torch.zeros(len(neg), dtype=torch.long)])

    with _one_thread():
        return _fit(x, y, config, _balanced_weights(len(pos), len(neg), positive_groups))


def _fit(x: torch.Tensor, y: torch.Tensor, config: TrainConfig, weights: torch.Tensor) -> LinearHead:
    import torch
    from torch import nn
    from torch.utils.data import WeightedRandomSampler

    generator = torch.Generator().manual_seed(config.seed)
    head = _initialised_linear(x.shape[1], generator)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps, eta_min=config.min_lr)
    sampler = WeightedRandomSampler(weights, num_samples=config.steps * config.batch, replacement=True,
                                    generator=generator)
    order = torch.tensor(list(sampler)).view(config.steps, config.batch)
    loss_fn = nn.CrossEntropyLoss()
    for batch in order:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(head(x[batch]), y[batch])
        loss.backward()
        nn.utils.clip_grad_norm_(head.parameters(), config.clip)
        optimizer.step()
        schedule.step()
    return LinearHead(head.weight.detach().numpy().copy(), head.bias.detach().numpy().copy())


@contextlib.contextmanager
def _one_thread():
    """Train on one thread: the tensors are tiny, and 500 steps of thread hand-offs cost 5-50x the maths
    (worst on a busy machine). torch keeps the setting per thread, so other threads are not slowed."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _initialised_linear(dim: int, generator: torch.Generator) -> torch.nn.Linear:
    """nn.Linear with its usual uniform init, but drawn from our generator (the global RNG is shared)."""
    import torch
    from torch import nn

    head = nn.Linear(dim, 2)
    bound = 1.0 / math.sqrt(dim)
    with torch.no_grad():
        head.weight.uniform_(-bound, bound, generator=generator)
        head.bias.uniform_(-bound, bound, generator=generator)
    return head


def _balanced_weights(n_pos: int, n_neg: int, groups: np.ndarray | None) -> torch.Tensor:
    """Half the draws go to positives, half to negatives; within positives each photo counts alike."""
    import torch

    if groups is None:
        pos = np.full(n_pos, 0.5 / n_pos)
    else:
        groups = np.asarray(groups)
        if len(groups) != n_pos:
            raise TrainingError("positive_groups must have one entry per positive row")
        _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        pos = 0.5 / len(counts) / counts[inverse]
    neg = np.full(n_neg, 0.5 / n_neg)
    return torch.from_numpy(np.concatenate([pos, neg])).double()


def _matrix(rows: np.ndarray, what: str) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    if rows.ndim != 2 or len(rows) == 0:
        raise TrainingError(f"a linear head needs at least one {what} example (got shape {rows.shape})")
    if not np.isfinite(rows).all():
        raise TrainingError(f"{what} embeddings contain NaN or infinity")
    return rows
