"""Box overlap: the one intersection-over-union and one-to-one box matching of the app.

Boxes are (x1, y1, x2, y2) with x2 > x1 and y2 > y1 in pixels. Pure arithmetic, so every layer may use it:
the face engines (a detection found twice), re-indexing (which new face inherits an old face's decisions),
clustering's carry-over between engines, and the concept heads (a second box on the concept's own face).
"""

from __future__ import annotations

from collections.abc import Sequence

Box = Sequence[float]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes: 0 when they do not overlap or either has no area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match_boxes(old: Sequence[Box], new: Sequence[Box], min_iou: float = 0.5) -> dict[int, int]:
    """{index in old: index in new} pairing boxes one to one, best overlaps first, IoU above `min_iou`."""
    pairs = sorted(((iou(a, b), i, j) for i, a in enumerate(old) for j, b in enumerate(new)), reverse=True)
    matched: dict[int, int] = {}
    taken: set[int] = set()
    for overlap, i, j in pairs:
        if overlap <= min_iou:
            break
        if i not in matched and j not in taken:
            matched[i] = j
            taken.add(j)
    return matched
