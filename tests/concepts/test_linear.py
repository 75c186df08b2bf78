"""The linear head: MyVLM's recipe, balanced sampling, 1 to 4+ positives, reproducible with a seed."""

import numpy as np
import pytest

from myvlm_desktop.concepts.linear import (
    MAX_CUTOFF,
    LinearHead,
    TrainConfig,
    TrainingError,
    fit_concept_head,
    train_linear_head,
)

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


def test_one_example_falls_back_to_prototypes_that_neither_collapse_nor_fire_everywhere():
    pos, groups, neg, unseen_pos, unseen_neg = _data(1, seed=11)
    head = fit_concept_head(pos, neg, groups, TrainConfig(steps=100))
    assert head.prototypes is not None and len(head.prototypes) == len(pos)
    # the cut-off lies above 95% of the negatives' similarities, below the example's own views
    assert np.mean(head.present(neg)) <= 0.06 and head.present(pos).all()
    assert head.present(unseen_pos).mean() >= 0.8  # new photos of the concept, not only its one photo
    assert head.present(unseen_neg).mean() <= 0.25  # about the 5% of negatives above the cut-off
    scores = head.scores(np.vstack([pos[:1], unseen_neg[:1]]))
    assert scores[0] > 0.5 > scores[1]


def test_three_examples_train_a_linear_head_with_a_calibrated_cut_off():
    pos, groups, neg, unseen_pos, unseen_neg = _data(3, seed=12)
    head = fit_concept_head(pos, neg, groups, TrainConfig())
    assert head.prototypes is None
    assert 0.5 <= head.threshold <= MAX_CUTOFF
    # at the cut-off the score is exactly 0.5, whatever the cut-off is
    p = head.probabilities(unseen_pos)
    assert np.allclose(head.scores(unseen_pos) >= 0.5, p >= head.threshold)
    assert head.present(unseen_pos).mean() >= 0.9 and head.present(unseen_neg).mean() <= 0.05


def test_fit_refuses_mismatched_groups_and_cut_offs_out_of_range():
    pos, groups, neg, _, _ = _data(2, seed=13)
    with pytest.raises(TrainingError, match="one entry per positive"):
        fit_concept_head(pos, neg, groups[:-1])
    with pytest.raises(ValueError, match="between 0 and 1"):
        LinearHead(np.zeros((2, DIM), np.float32), np.zeros(2, np.float32), threshold=1.5)
