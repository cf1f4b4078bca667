"""Segments that are regions of the map (connectivity=True): contiguity checked with scipy.sparse.csgraph, the
tree checked against sklearn's own AgglomerativeClustering cut."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.cluster import AgglomerativeClustering

from pipeline.segmentation.clustering import CONNECTIVITY_METHODS, cluster_neurons
from somtorch import SOM

X, Y = 8, 7


def map_coords(topology: str) -> np.ndarray:
    """(X, Y, 2) Euclidean neuron coordinates of a somtorch map."""
    return np.stack(SOM(X, Y, 2, topology=topology, device="cpu").get_euclidean_coordinates(), axis=-1)


def grid_adjacency(coords: np.ndarray, topology: str) -> csr_matrix:
    """Neighbour graph by brute force: 4 neighbours (rectangular) or the 6 at distance 1 (hexagonal)."""
    flat = coords.reshape(-1, 2)
    gaps = np.sqrt(((flat[:, None, :] - flat[None, :, :]) ** 2).sum(axis=-1))
    adjacent = np.isclose(gaps, 1.0)
    assert adjacent.sum(axis=1).max() == (4 if topology == "rectangular" else 6)
    return csr_matrix(adjacent)


def segments_are_connected(labels: np.ndarray, adjacency: csr_matrix) -> bool:
    """True when the neurons of every label form one connected piece of the grid graph."""
    flat = labels.ravel()
    for label in np.unique(flat):
        members = np.flatnonzero(flat == label)
        pieces, _ = connected_components(adjacency[members][:, members], directed=False)
        if pieces != 1:
            return False
    return True


@pytest.fixture
def noisy_weights() -> np.ndarray:
    """Weights with no spatial order at all, so unconstrained segments scatter over the map."""
    return np.random.default_rng(4).normal(size=(X, Y, 3))


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
@pytest.mark.parametrize("method", CONNECTIVITY_METHODS)
def test_segments_are_regions_of_the_map(noisy_weights: np.ndarray, topology: str, method: str) -> None:
    coords = map_coords(topology)
    adjacency = grid_adjacency(coords, topology)
    hits = np.random.default_rng(1).integers(1, 30, size=(X, Y))
    free = cluster_neurons(noisy_weights, method=method, n_clusters=5, hits=hits, min_segment_share=0.0)
    if method != "single":  # single linkage splits off single neurons, which are trivially connected
        assert not segments_are_connected(free.labels, adjacency), "unconstrained segments should scatter here"
    result = cluster_neurons(noisy_weights, method=method, n_clusters=5, hits=hits, connectivity=True,
                             coords=coords, min_segment_share=0.0)
    assert result.n_clusters == 5
    assert segments_are_connected(result.labels, adjacency)
    assert result.method == f"{method}+connectivity"


@pytest.mark.parametrize("method", CONNECTIVITY_METHODS)
@pytest.mark.parametrize("k", [2, 6])
def test_the_linkage_matrix_cuts_like_sklearn(noisy_weights: np.ndarray, method: str, k: int) -> None:
    coords = map_coords("hexagonal")
    adjacency = grid_adjacency(coords, "hexagonal")
    points = noisy_weights.reshape(-1, 3)
    reference = AgglomerativeClustering(n_clusters=k, linkage=method, connectivity=adjacency).fit(points).labels_
    full_tree = AgglomerativeClustering(n_clusters=None, distance_threshold=0.0, compute_full_tree=True,
                                        compute_distances=True, linkage=method, connectivity=adjacency).fit(points)
    result = cluster_neurons(noisy_weights, method=method, n_clusters=k, connectivity=True, coords=coords)
    np.testing.assert_array_equal(result.linkage[:, :2], full_tree.children_)
    np.testing.assert_allclose(result.linkage[:, 2], full_tree.distances_)
    np.testing.assert_array_equal(result.linkage[:, 3], _leaf_counts(result.linkage))
    assert same_partition(result.labels, reference)


def test_an_inverted_ward_tree_is_cut_like_sklearn_and_its_cut_height_is_reported(noisy_weights: np.ndarray) -> None:
    """Under connectivity, ward's merge heights can fall (here the last merge is lower than the one before), so
    the cut undoes the last merges as sklearn does, not the highest ones."""
    coords = map_coords("hexagonal")
    result = cluster_neurons(noisy_weights, method="ward", n_clusters=2, connectivity=True, coords=coords)
    assert result.linkage[-1, 2] < result.linkage[-2, 2]
    assert result.n_clusters == 2
    # the line sits midway between the highest kept merge and the undone one, inside the inversion
    assert result.cut_height == pytest.approx((result.linkage[:-1, 2].max() + result.linkage[-1, 2]) / 2)


def test_empty_neurons_splitting_the_map_are_reported(noisy_weights: np.ndarray,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    hits = np.ones((X, Y), dtype=int)
    hits[:, 3] = 0  # an empty column cuts the rectangular grid in two
    with caplog.at_level(logging.WARNING, logger="pipeline.segmentation.clustering"):
        result = cluster_neurons(noisy_weights, method="ward", n_clusters=3, hits=hits, connectivity=True,
                                 coords=map_coords("rectangular"))
    assert "2 separate regions" in caplog.text
    assert result.linkage_neurons.size == X * (Y - 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"connectivity": True}, "needs coords"),
        ({"connectivity": True, "coords": np.zeros((X, Y))}, r"coords must have shape \(8, 7, 2\)"),
        ({"connectivity": True, "coords": np.zeros((X, Y, 2)), "method": "centroid"}, "supports methods"),
        ({"connectivity": True, "coords": np.zeros((X, Y, 2)), "refine": "kmeans"}, "cannot be combined"),
    ],
)
def test_rejects_bad_connectivity_arguments(noisy_weights: np.ndarray, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cluster_neurons(noisy_weights, **kwargs)


def same_partition(first: np.ndarray, second: np.ndarray) -> bool:
    """True when two labelings split the items identically (equal up to renaming the labels)."""
    first, second = np.ravel(first), np.ravel(second)
    pair_count = np.unique(np.stack([first, second]), axis=1).shape[1]
    return pair_count == np.unique(first).size == np.unique(second).size


def _leaf_counts(tree: np.ndarray) -> np.ndarray:
    """Number of leaves under each merge of a linkage matrix, recounted from its children."""
    leaf_total = tree.shape[0] + 1
    counts = np.ones(2 * leaf_total - 1)
    for merge, (left, right) in enumerate(tree[:, :2].astype(int)):
        counts[leaf_total + merge] = counts[left] + counts[right]
    return counts[leaf_total:]
