"""The person head (MyVLM section 1): is this face the concept? Nearest-key matching on face embeddings.

Keys are embeddings of faces the user confirmed; a face is the concept when its cosine distance
(1 - cos) to the nearest key is within the face engine's threshold (ArcFace 0.675 as in MyVLM; dlib a
value calibrated on real photos). Faces the user rejected ("not Alice") are negative keys: a face
nearer to a negative key than to every positive key is not the concept, however near it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Large concepts keep this many representative keys: matching cost stays flat and 64 spread-out faces
# cover poses and ages as well as hundreds of near-duplicates do.
MAX_KEYS = 64


@dataclass
class FaceMatch:
    """The head's verdict on one face."""

    index: int          # the face's position in the list it was given
    distance: float     # cosine distance to the nearest positive key
    score: float        # 1 at distance 0, 0.5 at the threshold, 0 at twice the threshold
    present: bool


@dataclass
class PersonHead:
    keys: np.ndarray                  # (n, dim) float32, L2-normalised
    threshold: float                  # cosine distance under which a face is the concept
    negatives: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def __post_init__(self) -> None:
        self.keys = _normalised(self.keys)
        if len(self.keys) == 0:
            raise ValueError("a person head needs at least one face")
        dim = self.keys.shape[1]
        self.negatives = _normalised(self.negatives.reshape(-1, dim) if self.negatives.size else
                                     np.zeros((0, dim), np.float32))

    @property
    def dim(self) -> int:
        return int(self.keys.shape[1])

    def verdicts(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distance, score, present) arrays for rows of `embeddings`: the vectorised form of `match`."""
        faces = _normalised(np.asarray(embeddings, np.float32).reshape(-1, self.dim))
        if len(faces) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, bool)
        positive = 1.0 - (faces @ self.keys.T).max(axis=1)
        negative = (1.0 - (faces @ self.negatives.T).max(axis=1) if len(self.negatives)
                    else np.full(len(faces), np.inf))
        score = np.clip(1.0 - positive / (2.0 * self.threshold), 0.0, 1.0)
        return positive, score, (positive <= self.threshold) & (positive < negative)

    def match(self, embeddings: np.ndarray) -> list[FaceMatch]:
        """One verdict per face embedding (rows of `embeddings`)."""
        distance, score, present = self.verdicts(embeddings)
        return [FaceMatch(i, float(distance[i]), float(score[i]), bool(present[i])) for i in range(len(distance))]

    def best(self, embeddings: np.ndarray) -> FaceMatch | None:
        """In a photo with several faces: the one that is the concept (nearest among those present)."""
        hits = [m for m in self.match(embeddings) if m.present]
        return min(hits, key=lambda m: m.distance) if hits else None


def one_per_photo(matches: list[tuple[int, int, float]]) -> tuple[list[tuple], list[tuple]]:
    """A person appears at most once in a photo: of the (photo_id, face_id, score) matches of one person,
    keep the best-scoring face of each photo; the others (twins, siblings, a poster on the wall) go to
    review. Returns (kept, for review), each sorted."""
    kept: dict[int, tuple] = {}
    second = []
    for match in sorted(matches, key=lambda m: (m[0], -m[2], m[1])):
        if match[0] in kept:
            second.append(match)
        else:
            kept[match[0]] = match
    return sorted(kept.values()), sorted(second)


def representative_keys(embeddings: np.ndarray, k: int = MAX_KEYS) -> np.ndarray:
    """Indices of up to k faces that spread over the concept: farthest-point sampling from the medoid.

    Deterministic (no random start), so the same faces always give the same head.
    """
    faces = _normalised(np.asarray(embeddings, np.float32))
    n = len(faces)
    if n <= k:
        return np.arange(n)
    similarity = faces @ faces.T
    chosen = [int(similarity.sum(axis=1).argmax())]  # the medoid: the most typical face
    nearest = 1.0 - similarity[chosen[0]]
    while len(chosen) < k:
        pick = int(nearest.argmax())
        chosen.append(pick)
        nearest = np.minimum(nearest, 1.0 - similarity[pick])
    return np.array(sorted(chosen))


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected a matrix of embeddings, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
