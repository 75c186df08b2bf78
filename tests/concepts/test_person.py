"""The person head: nearest positive key within the threshold, negative keys, which face in a group photo."""

import numpy as np
import pytest

from myvlm_desktop.concepts.person import PersonHead, representative_keys


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _at_distance(key, distance, other):
    """A unit vector whose cosine distance to `key` is exactly `distance` (turning towards `other`)."""
    ortho = _unit(other - (other @ key) * key)
    cos = 1.0 - distance
    return _unit(cos * key + np.sqrt(1 - cos**2) * ortho)


def test_present_exactly_up_to_the_threshold():
    rng = np.random.default_rng(0)
    key, other = _unit(rng.normal(size=128)), rng.normal(size=128)
    head = PersonHead(key[None], threshold=0.3)
    faces = np.stack([_at_distance(key, d, other) for d in (0.0, 0.29, 0.31, 0.9)])
    matches = head.match(faces)
    assert [m.present for m in matches] == [True, True, False, False]
    assert matches[1].distance == pytest.approx(0.29, abs=1e-4)
    # the score is 0.5 at the threshold, higher when nearer: the same cut as a linear head's p >= 0.5
    assert matches[0].score == pytest.approx(1.0) and matches[1].score > 0.5 > matches[2].score


def test_a_face_nearer_to_a_rejected_face_is_not_the_concept():
    rng = np.random.default_rng(1)
    alice, other = _unit(rng.normal(size=64)), rng.normal(size=64)
    lookalike = _at_distance(alice, 0.2, other)       # within the threshold of Alice...
    near_lookalike = _at_distance(lookalike, 0.02, rng.normal(size=64))
    without = PersonHead(alice[None], 0.3)
    with_negative = PersonHead(alice[None], 0.3, negatives=lookalike[None])
    assert without.match(near_lookalike[None])[0].present
    assert not with_negative.match(near_lookalike[None])[0].present   # ...but nearer to "not Alice"
    assert with_negative.match(alice[None])[0].present                 # Alice herself is still Alice


def test_best_picks_the_concepts_face_in_a_group_photo():
    rng = np.random.default_rng(2)
    alice = _unit(rng.normal(size=128))
    strangers = _unit(rng.normal(size=(4, 128)))
    group = np.vstack([strangers[:2], _at_distance(alice, 0.1, rng.normal(size=128)), strangers[2:]])
    head = PersonHead(alice[None], 0.3)
    assert head.best(group).index == 2
    assert head.best(strangers) is None
    assert head.match(np.zeros((0, 128))) == []


def test_representative_keys_spread_over_the_concept_and_are_deterministic():
    rng = np.random.default_rng(3)
    centres = _unit(rng.normal(size=(5, 32)))       # five looks of one person, 40 near-duplicates each
    faces = np.vstack([_unit(c + 0.05 * rng.normal(size=(40, 32))) for c in centres])
    chosen = representative_keys(faces, k=5)
    assert len(chosen) == 5 and np.array_equal(chosen, representative_keys(faces, k=5))
    assert sorted(set(chosen // 40)) == [0, 1, 2, 3, 4]   # one key per look, not five of the same
    assert np.array_equal(representative_keys(faces[:3], k=5), [0, 1, 2])


def test_a_head_needs_a_face():
    with pytest.raises(ValueError):
        PersonHead(np.zeros((0, 128), np.float32), 0.3)
