"""The clustering algorithm on vectors: DBSCAN's answer, fixed clusters, rejections, waiting faces."""

import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from myvlm_desktop.people.cluster import ARCFACE, DLIB, ClusterParams, cluster_all, cluster_items, params_for
from myvlm_desktop.people.index import VectorIndex
from tests.people.helpers import faces_of, identities, unit


def blobs(sizes, seed=0, spread=0.012, dim=128):
    centers = identities(len(sizes), seed, dim)
    vectors = np.concatenate([faces_of(centers[i], n, seed + i, spread) for i, n in enumerate(sizes)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return vectors, truth


def test_without_fixed_clusters_it_is_dbscan():
    rng = np.random.default_rng(3)
    # overlapping, noisy groups so that core, border and noise points all occur
    vectors = unit(np.concatenate([identities(6, 1)[i] + 0.09 * rng.normal(size=(40, 128)) for i in range(6)]
                                  + [rng.normal(size=(30, 128))]))
    params = ClusterParams(min_faces=4, max_distance=0.5, neighbours=64)
    ours = cluster_all(vectors, params)
    theirs = DBSCAN(eps=0.5, min_samples=4, metric="cosine").fit_predict(vectors)
    assert (ours < 0).sum() == (theirs < 0).sum() > 0
    assert adjusted_rand_score(ours, theirs) == 1.0


def test_order_of_the_items_does_not_matter():
    vectors, truth = blobs([7, 5, 3, 1, 1])
    order = np.random.default_rng(0).permutation(len(vectors))
    first = cluster_all(vectors, DLIB)
    second = np.empty_like(first)
    second[order] = cluster_all(vectors[order], DLIB)
    assert adjusted_rand_score(first, second) == 1.0
    assert adjusted_rand_score(truth[:15], first[:15]) == 1.0 and (first[15:] == -1).all()


def test_new_faces_join_fixed_clusters_and_never_merge_two_of_them():
    vectors, _truth = blobs([6, 6])
    ids = np.arange(100, 112)
    index = VectorIndex.build(ids, vectors)
    fixed = np.array([100, 106])            # one known face of each person, in clusters 7 and 9
    free = np.setdiff1d(ids, fixed)
    labels = cluster_items(index, free, vectors[free - 100], DLIB, fixed, np.array([7, 9]))
    assert labels.tolist() == [7] * 5 + [9] * 5


def test_a_group_between_two_clusters_is_split_by_nearness():
    # a chain of faces from A's face to B's face: each end goes to the cluster it is nearest to
    a, b = identities(2, 5)
    steps = unit(np.stack([a + t * (b - a) for t in np.linspace(0, 1, 40)]))
    ids = np.arange(40)
    index = VectorIndex.build(ids, steps)
    params = ClusterParams(min_faces=2, max_distance=0.01, neighbours=8)
    labels = cluster_items(index, ids[1:-1], steps[1:-1], params, np.array([0, 39]), np.array([1, 2]))
    assert set(labels.tolist()) == {1, 2}
    assert labels[0] == 1 and labels[-1] == 2
    assert (np.diff(labels) >= 0).all()  # one switch from A to B along the chain


def test_a_rejected_face_never_joins_that_cluster():
    vectors, _ = blobs([5])
    ids = np.arange(5)
    index = VectorIndex.build(ids, vectors)
    labels = cluster_items(index, ids[1:], vectors[1:], DLIB, np.array([0]), np.array([3]), blocked={2: {3}})
    assert labels.tolist() == [3, 0, 3, 3]


def test_lonely_faces_wait_and_pairs_form_clusters():
    vectors, _ = blobs([2, 1])
    labels = cluster_all(vectors, DLIB)
    assert labels.tolist() == [0, 0, -1]


# 512-D: ArcFace-like faces (pair distance ~0.3, bound 0.5), searched in a PCA projection and re-ranked
@pytest.mark.parametrize(("dim", "spread", "params"), [(128, 0.012, DLIB), (512, 0.029, ARCFACE)])
def test_ivf_index_finds_the_same_clusters(dim, spread, params):
    vectors, truth = blobs([30] * 40, seed=2, spread=spread, dim=dim)
    ids = np.arange(len(vectors))
    exact = cluster_all(vectors, params)
    index = VectorIndex.build(ids, vectors, exact_limit=100)
    approx = cluster_all(vectors, params, index)
    assert not index.exact
    assert adjusted_rand_score(exact, approx) == 1.0 and adjusted_rand_score(truth, exact) == 1.0


def test_the_reduced_search_returns_exact_cosine_distances_and_our_ids():
    vectors, truth = blobs([30] * 40, seed=4, spread=0.029, dim=512)
    ids = np.arange(len(vectors)) * 7 + 1000
    dist, found = VectorIndex.build(ids, vectors, exact_limit=100).search(vectors[:50], 5)
    at = (found - 1000) // 7
    assert (found[:, 0] == ids[:50]).all() and (truth[at] == truth[:50, None]).all()  # itself, then its own person
    exact = 1 - np.einsum("qd,qkd->qk", vectors[:50], vectors[at])
    assert np.allclose(dist, exact, atol=1e-5) and (np.diff(dist, axis=1) >= 0).all()  # re-ranked on full vectors


def test_thresholds_per_engine():
    assert params_for("dlib-20.0") is DLIB and params_for("insightface-buffalo_l") is ARCFACE
    assert params_for("other", 128) is DLIB and params_for("other", 512) is ARCFACE
    assert DLIB.max_distance < ARCFACE.max_distance < 0.675  # clustering is tighter than recognition
