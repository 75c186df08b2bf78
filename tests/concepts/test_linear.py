"""The linear head: MyVLM's recipe, balanced sampling, 1 to 4+ positives, reproducible with a seed."""

import numpy as np
import pytest

from myvlm_desktop.concepts.linear import LinearHead, TrainConfig, TrainingError, train_linear_head

DIM = 256


def _unit(v):
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _data(n_pos, n_neg=150, seed=0, views=4):
    """A concept: views scattered around one direction; the user's other photos scattered everywhere,
    a few of them (hard negatives) close to the concept but on the other side."""
    rng = np.random.default_rng(seed)
    concept = _unit(rng.normal(size=DIM))
    photos = _unit(concept + 0.6 * _unit(rng.normal(size=(n_pos, DIM))))
    pos = np.vstack([_unit(p + 0.15 * _unit(rng.normal(size=(views, DIM)))) for p in photos])
    neg = _unit(rng.normal(size=(n_neg, DIM)))
    neg[:10] = _unit(-0.3 * concept + neg[:10])
    unseen_pos = _unit(concept + 0.6 * _unit(rng.normal(size=(20, DIM))))
    unseen_neg = _unit(rng.normal(size=(200, DIM)))
    return pos, np.repeat(np.arange(n_pos), views), neg, unseen_pos, unseen_neg


@pytest.mark.parametrize("n_pos", [1, 2, 4, 8])
def test_recognises_unseen_photos_from_one_to_many_positives(n_pos):
    pos, groups, neg, unseen_pos, unseen_neg = _data(n_pos, seed=n_pos)
    head = train_linear_head(pos, neg, TrainConfig(seed=0), positive_groups=groups)
    assert head.present(unseen_pos).mean() >= 0.9
    assert head.present(unseen_neg).mean() <= 0.05


def test_balanced_sampler_keeps_one_positive_from_being_drowned():
    pos, _groups, neg, _, _ = _data(1, n_neg=600, seed=5)
    head = train_linear_head(pos[:1], neg, TrainConfig(seed=0))
    assert head.present(pos[:1])[0], "a lone positive among 600 negatives must still be learnt"


def test_same_seed_same_head_other_seed_other_head():
    pos, groups, neg, unseen, _ = _data(2, seed=3)
    a = train_linear_head(pos, neg, TrainConfig(seed=7), positive_groups=groups)
    b = train_linear_head(pos, neg, TrainConfig(seed=7), positive_groups=groups)
    c = train_linear_head(pos, neg, TrainConfig(seed=8), positive_groups=groups)
    assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    assert not np.array_equal(a.weight, c.weight)
    assert np.array_equal(a.probabilities(unseen), b.probabilities(unseen))


def test_probabilities_use_normalised_embeddings():
    head = LinearHead(np.array([[0.0, -1.0], [0.0, 1.0]], np.float32), np.zeros(2, np.float32))
    x = np.array([[0.0, 1.0], [0.0, 100.0], [0.0, -3.0]], np.float32)
    p = head.probabilities(x)
    assert p[0] == pytest.approx(p[1]) and p[0] > 0.5 > p[2]


def test_bad_examples_are_refused_with_a_reason():
    pos, _, neg, _, _ = _data(1)
    with pytest.raises(TrainingError, match="negative"):
        train_linear_head(pos, np.zeros((0, DIM)))
    with pytest.raises(TrainingError, match="dimensions"):
        train_linear_head(pos, neg[:, :10])
    with pytest.raises(TrainingError, match="NaN"):
        train_linear_head(np.full((1, DIM), np.nan), neg)
