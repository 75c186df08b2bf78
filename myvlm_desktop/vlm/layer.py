"""The MyVLM concept layer: one extra visual token per concept whose head fired on the photo.

Each concept's vector is L2-normalised, then rescaled to the mean norm of that image's own tokens (so it sits
in the range the frozen model expects) and appended after the image tokens. Concepts go in a stable order
(by name), so the same photo always gives the same sequence whichever head fired first. With no concept the
image tokens pass through untouched, so the model behaves exactly as it did before personalisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def concept_tokens(vectors: Sequence[torch.Tensor], image_tokens: torch.Tensor) -> torch.Tensor:
    """[B, k, D] tokens for k vectors of length D, scaled per image to the mean norm of `image_tokens` [B, N, D]."""
    batch, _, dim = image_tokens.shape
    if not vectors:
        return image_tokens.new_zeros(batch, 0, dim)
    stacked = torch.stack([v.to(image_tokens.device, torch.float32).reshape(-1) for v in vectors])
    if stacked.shape[-1] != dim:
        raise ValueError(f"concept vectors have {stacked.shape[-1]} values, this model's tokens {dim}")
    scale = image_tokens.detach().float().norm(dim=-1).mean(dim=1)  # [B]: each image's mean token norm
    tokens = F.normalize(stacked, dim=-1)[None] * scale[:, None, None]
    return tokens.to(image_tokens.dtype)


def append_concepts(image_tokens: torch.Tensor, vectors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The image tokens followed by one token per concept: [B, N + k, D]."""
    if not vectors:
        return image_tokens
    return torch.cat([image_tokens, concept_tokens(vectors, image_tokens)], dim=1)


def stable_order(concepts: Sequence) -> list:
    """Concepts sorted by name (case-insensitive), duplicates dropped: the order their tokens are appended in."""
    unique = {c.name.casefold(): c for c in concepts}
    return [unique[k] for k in sorted(unique)]
