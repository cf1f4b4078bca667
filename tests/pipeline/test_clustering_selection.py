"""Choosing the number of segments: the hit-weighted silhouette against a NumPy brute force and sklearn, auto-k
on planted blobs of prototypes, and the k_selection table."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from pipeline.segmentation.clustering import cluster_neurons, hit_weighted_silhouette


def brute_force_silhouette(points: np.ndarray, sizes: np.ndarray, labels: np.ndarray) -> float:
    """The hit-weighted silhouette, one prototype at a time, straight from its definition."""
    scores = []
    for p in range(len(points)):
        distance = np.sqrt(((points - points[p]) ** 2).sum(axis=1))
        mates = (labels == labels[p]) & (np.arange(len(points)) != p)
        if not mates.any():
            scores.append(0.0)
            continue
        within = np.sum(sizes[mates] * distance[mates]) / np.sum(sizes[mates])
        between = min(np.sum(sizes[labels == c] * distance[labels == c]) / np.sum(sizes[labels == c])
                      for c in set(labels.tolist()) - {labels[p]})
        scores.append((between - within) / max(within, between))
    return float(np.sum(sizes * np.array(scores)) / np.sum(sizes))


def test_hit_weighted_silhouette_matches_the_definition() -> None:
    rng = np.random.default_rng(8)
    points, sizes = rng.normal(size=(25, 3)), rng.integers(1, 9, size=25).astype(float)
    labels = rng.integers(0, 4, size=25)
    labels[7] = 9  # a cluster of one prototype scores 0
    assert hit_weighted_silhouette(points, sizes, labels) == pytest.approx(
        brute_force_silhouette(points, sizes, labels), rel=1e-12)


def test_hit_weighted_silhouette_with_unit_hits_is_sklearns() -> None:
    rng = np.random.default_rng(9)
    points, labels = rng.normal(size=(30, 2)), rng.integers(0, 3, size=30)
    for metric in ("euclidean", "cityblock"):
        assert hit_weighted_silhouette(points, np.ones(30), labels, metric) == pytest.approx(
            silhouette_score(points, labels, metric=metric), rel=1e-12)
    assert np.isnan(hit_weighted_silhouette(points, np.ones(30), np.zeros(30)))


def planted_map(k: int) -> tuple[np.ndarray, np.ndarray]:
    """A 9 × 8 map whose prototypes form k far-apart blobs (centres on a circle of radius 20, jitter ±1), with
    uneven hits and some empty neurons."""
    rng = np.random.default_rng(k)
    angles = 2 * np.pi * np.arange(k) / k
    centres = 20 * np.column_stack([np.cos(angles), np.sin(angles)])
    blob = rng.permutation(np.arange(72) % k)
    weights = (centres[blob] + rng.uniform(-1, 1, size=(72, 2))).reshape(9, 8, 2)
    hits = rng.integers(1, 50, size=72) * (rng.random(72) > 0.2)
    return weights, hits.reshape(9, 8)


@pytest.mark.parametrize("k", [3, 5, 9])
@pytest.mark.parametrize(("method", "refine"), [("average", "none"), ("ward", "kmeans"), ("hit_weighted_ward", "none")])
def test_auto_finds_the_planted_number_of_segments(k: int, method: str, refine: str) -> None:
    weights, hits = planted_map(k)
    result = cluster_neurons(weights, method=method, n_clusters="auto", hits=hits, refine=refine)
    assert result.n_segments == k
    table = result.k_selection
    assert table.loc[table["chosen"], "k"].tolist() == [k]
    assert table["silhouette"].idxmax() == table.index[table["chosen"]][0]
    with_hits = result.linkage_neurons
    assert table.loc[table["chosen"], "silhouette"].iloc[0] == pytest.approx(hit_weighted_silhouette(
        weights.reshape(-1, 2)[with_hits], hits.ravel()[with_hits], result.leaf_labels))


def test_a_fixed_k_still_gets_the_whole_table() -> None:
    weights, hits = planted_map(4)
    result = cluster_neurons(weights, method="ward", n_clusters=3, hits=hits, k_range=(2, 6))
    table = result.k_selection
    assert list(table.columns) == ["k", "silhouette", "n_segments", "n_outlier_groups", "cut_height", "chosen"]
    assert table["k"].tolist() == [2, 3, 4, 5, 6]
    assert table["chosen"].tolist() == [False, True, False, False, False]
    assert table.set_index("k")["silhouette"].idxmax() == 4  # the planted k scores best even when not chosen
    assert (table["n_segments"] == table["k"]).all()
    outside = cluster_neurons(weights, method="ward", n_clusters=8, hits=hits, k_range=(2, 4))
    assert outside.k_selection["k"].tolist() == [2, 3, 4, 8]
    assert outside.k_selection["chosen"].tolist() == [False, False, False, True]


def test_a_max_d_cut_marks_no_row_and_k_range_stops_at_the_neuron_count() -> None:
    weights, hits = planted_map(3)
    result = cluster_neurons(weights, method="average", n_clusters=None, max_d=10.0, hits=hits, k_range=(2, 500))
    assert result.n_segments == 3
    assert not result.k_selection["chosen"].any()
    assert result.k_selection["k"].max() == result.linkage_neurons.size


def test_auto_rejects_a_k_range_beyond_the_neurons() -> None:
    weights = np.random.default_rng(0).normal(size=(2, 2, 2))
    with pytest.raises(ValueError, match=r"k_range=\(5, 9\) has no k within the 4 neurons"):
        cluster_neurons(weights, n_clusters="auto", k_range=(5, 9))
