"""Neuron clustering against scipy's own linkage/fcluster/cophenet and hand-made maps."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from scipy.cluster.hierarchy import cophenet, fcluster, linkage
from scipy.spatial.distance import pdist

from pipeline.segmentation.clustering import SCIPY_LINKAGE_METHODS, NeuronClusters, assign_rows, cluster_neurons

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def same_partition(first: np.ndarray, second: np.ndarray) -> bool:
    """True when two labelings split the items identically (equal up to renaming the labels)."""
    first, second = np.ravel(first), np.ravel(second)
    pair_count = np.unique(np.stack([first, second]), axis=1).shape[1]
    return pair_count == np.unique(first).size == np.unique(second).size


@pytest.fixture
def random_weights() -> np.ndarray:
    """A 6 × 5 map of 4-D weights with distinct pairwise distances."""
    return np.random.default_rng(7).normal(size=(6, 5, 4))


def blob_weights() -> tuple[np.ndarray, np.ndarray]:
    """A 3 × 3 map whose neurons form three far-apart blobs of 5, 3 and 1 neurons.

    The singleton is neuron 0 and the 3-blob holds neurons 1..3, so numbering by first index would get the
    size order wrong. Returns the (3, 3, 2) weights and the (9,) blob id (0: five, 1: three, 2: one).
    """
    blob_of_neuron = np.array([2, 1, 1, 1, 0, 0, 0, 0, 0])
    blob_centres = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])
    jitter = np.random.default_rng(3).uniform(-1.0, 1.0, size=(9, 2))
    return (blob_centres[blob_of_neuron] + jitter).reshape(3, 3, 2), blob_of_neuron


@pytest.mark.parametrize("method", SCIPY_LINKAGE_METHODS)
@pytest.mark.parametrize("k", [1, 3, 8])
def test_partition_matches_scipy_maxclust(random_weights: np.ndarray, method: str, k: int) -> None:
    reference_tree = linkage(random_weights.reshape(30, 4), method)
    reference = fcluster(reference_tree, k, criterion="maxclust")
    result = cluster_neurons(random_weights, method=method, n_clusters=k)
    assert isinstance(result, NeuronClusters)
    np.testing.assert_allclose(result.linkage, reference_tree)
    assert result.labels.shape == (6, 5)
    assert np.issubdtype(result.labels.dtype, np.integer)
    assert same_partition(result.labels, reference)
    assert result.n_clusters == np.unique(reference).size
    assert sorted(np.unique(result.labels)) == list(range(result.n_clusters))


def test_clusters_numbered_by_neuron_count() -> None:
    weights, blob_of_neuron = blob_weights()
    result = cluster_neurons(weights, n_clusters=3)
    np.testing.assert_array_equal(result.labels.ravel(), blob_of_neuron)


def test_clusters_numbered_by_hits_when_given() -> None:
    weights, blob_of_neuron = blob_weights()
    hits_per_blob = np.array([1, 10, 100])  # rows: five-blob 5, three-blob 30, singleton 100
    hits = hits_per_blob[blob_of_neuron].reshape(3, 3)
    result = cluster_neurons(weights, n_clusters=3, hits=hits)
    expected_label_of_blob = np.array([2, 1, 0])
    np.testing.assert_array_equal(result.labels.ravel(), expected_label_of_blob[blob_of_neuron])


def test_equal_hits_broken_by_neuron_count() -> None:
    weights, blob_of_neuron = blob_weights()
    hits_per_blob = np.array([6, 10, 1])  # five-blob 30 rows, three-blob 30 rows, singleton 1
    hits = hits_per_blob[blob_of_neuron].reshape(3, 3)
    result = cluster_neurons(weights, n_clusters=3, hits=hits)
    np.testing.assert_array_equal(result.labels.ravel(), blob_of_neuron)


@pytest.mark.parametrize("method", ["average", "centroid", "ward", "single"])
def test_cut_height_yields_the_same_clusters(random_weights: np.ndarray, method: str) -> None:
    for k in range(1, 31):
        result = cluster_neurons(random_weights, method=method, n_clusters=k)
        at_cut = fcluster(result.linkage, result.cut_height, criterion="distance")
        assert same_partition(at_cut, result.labels), (method, k, result.cut_height)


def test_cut_height_is_the_midpoint_of_the_k_cluster_band(random_weights: np.ndarray) -> None:
    result = cluster_neurons(random_weights, n_clusters=8)
    tree = result.linkage
    assert result.cut_height == pytest.approx((tree[-8, 2] + tree[-7, 2]) / 2)


def test_tied_heights_report_the_real_cluster_count(caplog: pytest.LogCaptureFixture) -> None:
    weights = np.array([0.0, 0.0, 1.0, 1.0]).reshape(4, 1, 1)  # merges at 0, 0, then 1: no 3-cluster cut
    with caplog.at_level(logging.WARNING, logger="pipeline.segmentation.clustering"):
        result = cluster_neurons(weights, n_clusters=3)
    assert result.n_clusters == 2
    np.testing.assert_array_equal(result.labels.ravel(), [0, 0, 1, 1])
    assert "3 clusters" in caplog.text and "only 2" in caplog.text
    assert np.unique(fcluster(result.linkage, result.cut_height, criterion="distance")).size == 2


def test_every_neuron_its_own_cluster_with_duplicate_weights() -> None:
    weights = np.array([0.0, 0.0, 1.0, 1.0]).reshape(2, 2, 1)
    result = cluster_neurons(weights, n_clusters=4)
    assert result.n_clusters == 4
    np.testing.assert_array_equal(result.labels.ravel(), [0, 1, 2, 3])
    assert np.unique(fcluster(result.linkage, result.cut_height, criterion="distance")).size == 4


@pytest.mark.parametrize("max_d", [0.0, 1.5, 2.5, 100.0])
def test_max_d_matches_scipy_distance_cut(random_weights: np.ndarray, max_d: float) -> None:
    reference = fcluster(linkage(random_weights.reshape(30, 4), "average"), max_d, criterion="distance")
    result = cluster_neurons(random_weights, n_clusters=None, max_d=max_d)
    assert same_partition(result.labels, reference)
    assert result.n_clusters == np.unique(reference).size
    assert result.cut_height == max_d


@pytest.mark.parametrize("metric", ["euclidean", "cityblock", "cosine"])
def test_cophenetic_correlation_equals_scipy(random_weights: np.ndarray, metric: str) -> None:
    flat = random_weights.reshape(30, 4)
    reference_distances = pdist(flat, metric)
    reference_tree = linkage(reference_distances, "average")
    expected, _ = cophenet(reference_tree, reference_distances)
    result = cluster_neurons(random_weights, metric=metric)
    np.testing.assert_allclose(result.linkage, reference_tree)
    assert result.cophenetic_correlation == pytest.approx(expected, rel=1e-12)


def test_rejects_both_or_neither_cut(random_weights: np.ndarray) -> None:
    with pytest.raises(ValueError, match="exactly one of n_clusters and max_d"):
        cluster_neurons(random_weights, n_clusters=3, max_d=1.0)
    with pytest.raises(ValueError, match="exactly one of n_clusters and max_d"):
        cluster_neurons(random_weights, n_clusters=None)


def test_rejects_more_clusters_than_neurons(random_weights: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"n_clusters=31 .*30 neurons"):
        cluster_neurons(random_weights, n_clusters=31)


def test_rejects_unknown_method_listing_valid_ones(random_weights: np.ndarray) -> None:
    valid = "single, complete, average, weighted, centroid, median, ward, hit_weighted_ward"
    with pytest.raises(ValueError, match=rf"'averag'.*{valid}"):
        cluster_neurons(random_weights, method="averag")


def test_rejects_ward_with_non_euclidean_metric(random_weights: np.ndarray) -> None:
    with pytest.raises(ValueError, match="'ward' needs metric='euclidean'"):
        cluster_neurons(random_weights, method="ward", metric="cityblock")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_clusters": 0}, ValueError, "at least 1"),
        ({"n_clusters": 2.5}, TypeError, "integer"),
        ({"n_clusters": None, "max_d": -1.0}, ValueError, "non-negative"),
        ({"n_clusters": None, "max_d": float("nan")}, ValueError, "finite"),
        ({"hits": np.ones((5, 6))}, ValueError, r"shape \(6, 5\)"),
        ({"hits": -np.ones((6, 5))}, ValueError, "non-negative"),
        ({"metric": "no-such-metric"}, ValueError, "no-such-metric"),
    ],
)
def test_rejects_bad_arguments(random_weights: np.ndarray, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        cluster_neurons(random_weights, **kwargs)


def test_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match=r"\(x, y, D\)"):
        cluster_neurons(np.zeros((9, 2)))
    with pytest.raises(ValueError, match="at least 2 neurons"):
        cluster_neurons(np.zeros((1, 1, 3)), n_clusters=1)
    nan_weights = np.zeros((2, 3, 1))
    nan_weights[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"neuron \(1, 2\)"):
        cluster_neurons(nan_weights, n_clusters=2)


def test_assign_rows_takes_the_bmu_cluster() -> None:
    labels = np.array([[0, 1, 1], [2, 0, 2]])  # flat order: 0 1 1 2 0 2
    bmu_flat = np.array([5, 0, 1, 3, 3, 4, 2])
    np.testing.assert_array_equal(assign_rows(labels, bmu_flat), [2, 0, 1, 2, 2, 0, 1])
    assert assign_rows(labels, np.array([], dtype=np.int64)).shape == (0,)


def test_assign_rows_rejects_bad_bmus() -> None:
    labels = np.zeros((2, 3), dtype=int)
    with pytest.raises(ValueError, match=r"bmu_flat\[1\] = 6 .*0\.\.5"):
        assign_rows(labels, np.array([0, 6]))
    with pytest.raises(ValueError, match=r"bmu_flat\[0\] = -1"):
        assign_rows(labels, np.array([-1]))
    with pytest.raises(TypeError, match="integers"):
        assign_rows(labels, np.array([0.0, 1.0]))


def test_seed_data_with_modern_minisom_matches_documented_figures() -> None:
    """SEED_PIPELINE.md §1.9: MiniSom 2.3.6, 15×15, sigma 1, seeds 1–3 give 215–222 clusters at cut 1.2."""
    cleaned_csv = DATA_DIR / "bigbazaar_skrohit" / "cleaned_cproducts.csv"
    if not cleaned_csv.exists():
        pytest.skip(f"real data not found at {cleaned_csv}")
    pandas = pytest.importorskip("pandas")
    minisom = pytest.importorskip("minisom")
    from sklearn.preprocessing import StandardScaler

    rows = pandas.read_csv(cleaned_csv).dropna(subset=["Age"])
    data = StandardScaler().fit_transform(rows.to_numpy(dtype=np.float64))
    som = minisom.MiniSom(15, 15, data.shape[1], sigma=1.0, learning_rate=0.5, random_seed=3)
    som.random_weights_init(data)
    som.train_random(data, 10000)
    weights = som.get_weights()
    bmu_flat = np.array([np.ravel_multi_index(som.winner(row), (15, 15)) for row in data])
    hits = np.bincount(bmu_flat, minlength=225).reshape(15, 15)

    at_seed_cut = cluster_neurons(weights, n_clusters=None, max_d=1.2)
    assert 205 <= at_seed_cut.n_clusters <= 225
    eight = cluster_neurons(weights, n_clusters=8, hits=hits)
    assert 10.0 <= eight.linkage[-1, 2] <= 20.0
    assert (hits == 0).any(), "this seed is chosen because it leaves neurons without rows"
    row_clusters = assign_rows(eight.labels, bmu_flat)
    rows_per_cluster = np.bincount(row_clusters, minlength=eight.n_clusters)
    assert rows_per_cluster.sum() == len(rows) == 11132
    assert np.all(np.diff(rows_per_cluster) <= 0)
    assert set(np.unique(eight.labels)) == set(range(eight.n_clusters))
