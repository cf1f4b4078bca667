"""Hit-aware neuron clustering: empty neurons, k-means refinement, hit-weighted ward and outlier groups, against
scipy's linkage/fcluster, sklearn's KMeans, NumPy brute force and hand-built maps."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import KMeans

from pipeline.segmentation.clustering import KMEANS_RESTARTS, cluster_neurons, hit_weighted_ward_linkage


def same_partition(first: np.ndarray, second: np.ndarray) -> bool:
    """True when two labelings split the items identically (equal up to renaming the labels)."""
    first, second = np.ravel(first), np.ravel(second)
    pair_count = np.unique(np.stack([first, second]), axis=1).shape[1]
    return pair_count == np.unique(first).size == np.unique(second).size


@pytest.fixture
def sparse_map() -> tuple[np.ndarray, np.ndarray]:
    """An 8 × 7 map of 3-D weights and hits, about a third of the neurons empty."""
    rng = np.random.default_rng(11)
    weights = rng.normal(size=(8, 7, 3))
    hits = rng.integers(1, 40, size=(8, 7)) * (rng.random((8, 7)) > 0.35)
    return weights, hits


@pytest.mark.parametrize("method", ["average", "complete", "ward", "centroid"])
@pytest.mark.parametrize("k", [2, 5])
def test_linkage_is_over_the_neurons_with_hits(sparse_map: tuple, method: str, k: int) -> None:
    weights, hits = sparse_map
    with_hits = np.flatnonzero(hits.ravel() > 0)
    reference_tree = linkage(weights.reshape(-1, 3)[with_hits], method)
    result = cluster_neurons(weights, method=method, n_clusters=k, hits=hits, min_segment_share=0.0)
    np.testing.assert_array_equal(result.linkage_neurons, with_hits)
    np.testing.assert_allclose(result.linkage, reference_tree)
    assert same_partition(result.leaf_labels, fcluster(reference_tree, k, criterion="maxclust"))
    assert result.method == method
    assert not result.outlier.any()


def test_empty_neurons_take_the_segment_of_the_nearest_neuron_with_hits(sparse_map: tuple) -> None:
    weights, hits = sparse_map
    flat_weights, flat_hits = weights.reshape(-1, 3), hits.ravel()
    result = cluster_neurons(weights, method="ward", n_clusters=4, hits=hits)
    labels = result.labels.ravel()
    with_hits = np.flatnonzero(flat_hits > 0)
    empty = np.flatnonzero(flat_hits == 0)
    assert empty.size > 5
    for neuron in empty:
        distances = np.sqrt(((flat_weights[with_hits] - flat_weights[neuron]) ** 2).sum(axis=1))
        assert labels[neuron] == labels[with_hits[np.argmin(distances)]]
    assert set(np.unique(labels)) == set(range(result.n_clusters))


def test_an_empty_neuron_equally_near_two_neurons_takes_the_lower_index() -> None:
    weights = np.array([0.0, 2.0, 1.0, 9.0]).reshape(2, 2, 1)  # neuron 2 (empty) is 1 from neurons 0 and 1
    hits = np.array([[5, 5], [0, 5]])
    result = cluster_neurons(weights, method="single", n_clusters=3, hits=hits)
    labels = result.labels.ravel()
    assert labels[0] != labels[1]
    assert labels[2] == labels[0]


def test_kmeans_refinement_equals_the_better_sklearn_kmeans_run(sparse_map: tuple) -> None:
    """The refinement is sklearn k-means from the cut's hit-weighted centroids or from KMEANS_RESTARTS k-means++
    starts, whichever ends with the lower weighted inertia."""
    weights, hits = sparse_map
    with_hits = np.flatnonzero(hits.ravel() > 0)
    points, sizes = weights.reshape(-1, 3)[with_hits], hits.ravel()[with_hits].astype(float)
    cut = fcluster(linkage(points, "ward"), 5, criterion="maxclust")
    centroids = np.array([np.average(points[cut == c], axis=0, weights=sizes[cut == c]) for c in np.unique(cut)])
    runs = [KMeans(5, init=centroids, n_init=1, random_state=3).fit(points, sample_weight=sizes),
            KMeans(5, n_init=KMEANS_RESTARTS, random_state=3).fit(points, sample_weight=sizes)]
    reference = min(runs, key=lambda run: run.inertia_).labels_
    assert not same_partition(reference, cut), "k-means should move this cut, else the test proves nothing"

    result = cluster_neurons(weights, method="ward", n_clusters=5, hits=hits, refine="kmeans",
                             min_segment_share=0.0, seed=3)
    assert same_partition(result.leaf_labels, reference)
    assert result.method == "ward+kmeans"
    assert np.unique(fcluster(result.linkage, result.cut_height, criterion="distance")).size == 5


def test_hit_weighted_ward_with_unit_hits_is_scipy_ward() -> None:
    points = np.random.default_rng(5).normal(size=(40, 3))
    np.testing.assert_allclose(hit_weighted_ward_linkage(points, np.ones(40)), linkage(points, "ward"), atol=1e-12)


def test_hit_weighted_ward_is_scipy_ward_on_the_rows_each_neuron_stands_for() -> None:
    rng = np.random.default_rng(6)
    points, sizes = rng.normal(size=(30, 4)), rng.integers(1, 6, size=30)
    tree = hit_weighted_ward_linkage(points, sizes)
    rows_tree = linkage(np.repeat(points, sizes, axis=0), "ward")  # copies of a neuron merge first, at height 0
    np.testing.assert_allclose(tree[:, 2], rows_tree[-29:, 2], rtol=1e-10)
    neuron_of_row = np.repeat(np.arange(30), sizes)
    for k in (2, 4, 7, 12):
        by_neuron = fcluster(tree, k, criterion="maxclust")
        assert same_partition(by_neuron[neuron_of_row], fcluster(rows_tree, k, criterion="maxclust"))


def test_hit_weighted_ward_differs_from_ward_when_hits_differ() -> None:
    weights = np.array([0.0, 1.0, 2.2]).reshape(3, 1, 1)
    hits = np.array([100, 1, 1]).reshape(3, 1)
    # ward on unit weights joins 0 and 1 first (gap 1 < 1.2); weighted, the cost of moving the 100-hit neuron's
    # centroid is 2·100/101·1² ≈ 1.98 against 2·1/2·1.2² = 1.44, so 1 and 2 join first.
    plain = cluster_neurons(weights, method="ward", n_clusters=2, hits=hits, min_segment_share=0.0)
    weighted = cluster_neurons(weights, method="hit_weighted_ward", n_clusters=2, hits=hits, min_segment_share=0.0)
    np.testing.assert_array_equal(plain.labels.ravel(), [0, 0, 1])
    np.testing.assert_array_equal(weighted.labels.ravel(), [0, 1, 1])
    assert weighted.linkage[0, 2] == pytest.approx(np.sqrt(2 * 1 * 1 / 2) * 1.2)


def outlier_map() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 4 × 4 map in 1-D: blobs A (0), B (10), C (20) of 5, 5 and 4 neurons, and two far neurons at 100 and −100.

    Hits: A 5 × 100, B 5 × 60, C 4 × 40, the far ones 2 and 1 (0.2% and 0.1% of 963). Returns weights, hits and
    the group of each neuron (0 A, 1 B, 2 C, 3 at 100, 4 at −100).
    """
    group = np.array([0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 0, 4, 1, 2, 0, 1])
    centres = np.array([0.0, 10.0, 20.0, 100.0, -100.0])
    jitter = np.random.default_rng(2).uniform(-0.5, 0.5, size=16)
    hits_per_group = np.array([100, 60, 40, 2, 1])
    return (centres[group] + jitter).reshape(4, 4, 1), hits_per_group[group].reshape(4, 4), group


def test_small_clusters_are_outlier_groups_numbered_after_the_segments() -> None:
    weights, hits, group = outlier_map()
    result = cluster_neurons(weights, method="average", n_clusters=3, hits=hits, min_segment_share=0.01)
    np.testing.assert_array_equal(result.labels.ravel(), group)
    np.testing.assert_array_equal(result.outlier, [False, False, False, True, True])
    assert (result.n_segments, result.n_clusters) == (3, 5)


def test_without_a_minimum_share_the_far_neurons_are_segments() -> None:
    weights, hits, group = outlier_map()
    result = cluster_neurons(weights, method="average", n_clusters=3, hits=hits, min_segment_share=0.0)
    expected_label_of_group = np.array([0, 0, 0, 1, 2])  # A+B+C 963 − 3 rows, then the 2-row and 1-row neurons
    np.testing.assert_array_equal(result.labels.ravel(), expected_label_of_group[group])
    assert not result.outlier.any()


def test_outlier_groups_stay_apart_under_kmeans_refinement() -> None:
    weights, hits, group = outlier_map()
    result = cluster_neurons(weights, method="ward", n_clusters=3, hits=hits, refine="kmeans")
    np.testing.assert_array_equal(result.labels.ravel(), group)
    np.testing.assert_array_equal(result.outlier, [False, False, False, True, True])


def test_too_few_hits_for_k_segments_gives_fewer_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    weights = np.array([0.0, 5.0, 9.0]).reshape(3, 1, 1)
    hits = np.array([1000, 1, 1]).reshape(3, 1)
    with caplog.at_level(logging.WARNING, logger="pipeline.segmentation.clustering"):
        result = cluster_neurons(weights, method="average", n_clusters=2, hits=hits)
    assert result.n_segments == 1
    assert "asked for 2 clusters but only 1" in caplog.text
    assert result.labels.ravel()[0] == 0 and result.outlier[result.labels.ravel()[1:]].all()


def test_without_hits_every_neuron_is_clustered_and_none_is_an_outlier() -> None:
    weights, _, _ = outlier_map()
    result = cluster_neurons(weights, method="average", n_clusters=3)
    np.testing.assert_array_equal(result.linkage_neurons, np.arange(16))
    np.testing.assert_allclose(result.linkage, linkage(weights.reshape(16, 1), "average"))
    assert result.outlier.shape == (3,) and not result.outlier.any()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"refine": "kmean"}, ValueError, r"'kmean'.*none, kmeans"),
        ({"refine": "kmeans", "metric": "cityblock"}, ValueError, "needs metric='euclidean'"),
        ({"method": "hit_weighted_ward", "metric": "cosine"}, ValueError, "needs metric='euclidean'"),
        ({"min_segment_share": 1.0}, ValueError, r"min_segment_share .*\[0, 1\)"),
        ({"min_segment_share": -0.1}, ValueError, "min_segment_share"),
        ({"min_segment_share": "1%"}, TypeError, "min_segment_share"),
        ({"k_range": (1, 5)}, ValueError, "2 <= low <= high"),
        ({"k_range": (6, 5)}, ValueError, "2 <= low <= high"),
        ({"k_range": 5}, ValueError, "pair of integers"),
        ({"k_range": (2.0, 5)}, ValueError, "pair of integers"),
        ({"n_clusters": "many"}, ValueError, r"'auto' or None, got 'many'"),
        ({"n_clusters": 40}, ValueError, r"n_clusters=40 .*neurons clustered"),
        ({"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_rejects_bad_arguments(sparse_map: tuple, kwargs: dict, error: type, message: str) -> None:
    weights, hits = sparse_map
    with pytest.raises(error, match=message):
        cluster_neurons(weights, hits=hits, **kwargs)


def test_rejects_a_map_with_fewer_than_two_neurons_with_hits() -> None:
    hits = np.zeros((3, 3))
    hits[1, 1] = 7
    with pytest.raises(ValueError, match="at least 2 neurons with hits"):
        cluster_neurons(np.random.default_rng(0).normal(size=(3, 3, 2)), n_clusters=1, hits=hits)


def test_hit_means_replace_the_weights_as_the_clustered_points(sparse_map):
    """With hit_means, the neurons with hits are clustered exactly as if the means were their weights (scipy's
    ward on the same points); empty neurons still follow the nearest neuron with hits by weights."""
    weights, hits = sparse_map
    means = np.random.default_rng(5).normal(size=weights.shape) * 3
    by_means = cluster_neurons(weights, method="ward", n_clusters=3, hits=hits, hit_means=means, min_segment_share=0)
    observed = np.flatnonzero(hits.ravel() > 0)
    expected = fcluster(linkage(means.reshape(-1, 3)[observed], method="ward"), 3, criterion="maxclust")
    assert same_partition(by_means.labels.ravel()[observed], expected)
    flat = weights.reshape(-1, 3)
    empty = np.flatnonzero(hits.ravel() == 0)
    nearest = observed[np.argmin(((flat[empty, None] - flat[None, observed]) ** 2).sum(-1), axis=1)]
    np.testing.assert_array_equal(by_means.labels.ravel()[empty], by_means.labels.ravel()[nearest])
    assert by_means.method.endswith("+hit_means")


@pytest.mark.parametrize("case, message", [
    ("no_hits", "need hits"), ("shape", "weights' shape"), ("nan", "finite"),
])
def test_hit_means_are_checked(sparse_map, case, message):
    weights, hits = sparse_map
    means = np.zeros(weights.shape)
    if case == "shape":
        means = means[:, :-1]
    if case == "nan":
        means[np.unravel_index(np.flatnonzero(hits.ravel() > 0)[0], hits.shape)] = np.nan
    with pytest.raises(ValueError, match=message):
        cluster_neurons(weights, method="ward", n_clusters=3, hits=None if case == "no_hits" else hits, hit_means=means)


def test_kmeans_refinement_runs_on_one_thread_and_restores_the_caller_s_threads(
    sparse_map: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadpoolctl import threadpool_info

    seen: list[list[int]] = []
    fit = KMeans.fit

    def recording_fit(self: KMeans, *args: object, **kwargs: object) -> KMeans:
        seen.append([library["num_threads"] for library in threadpool_info()])
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(KMeans, "fit", recording_fit)
    before = [library["num_threads"] for library in threadpool_info()]
    weights, hits = sparse_map
    cluster_neurons(weights, method="hit_weighted_ward", n_clusters=3, hits=hits, refine="kmeans")
    assert seen and all(counts and set(counts) == {1} for counts in seen)
    assert [library["num_threads"] for library in threadpool_info()] == before
