"""Hierarchical clustering of SOM neurons, and the mapping of rows to neuron clusters.

The neurons' weight vectors (an (x, y, D) array, flattened row-major so that neuron (i, j) is row i*y + j)
are clustered with scipy's agglomerative ``linkage``; the tree is cut into flat clusters with ``fcluster``.
Every neuron gets a cluster, hit or not, and a row's cluster is the cluster of its BMU.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import cophenet, fcluster, linkage, maxdists
from scipy.spatial.distance import pdist

logger = logging.getLogger(__name__)

LINKAGE_METHODS: tuple[str, ...] = ("single", "complete", "average", "weighted", "centroid", "median", "ward")
EUCLIDEAN_ONLY_METHODS: tuple[str, ...] = ("centroid", "median", "ward")


@dataclass(frozen=True)
class NeuronClusters:
    """Flat clusters of the neurons of an x × y map.

    Attributes:
        linkage: scipy linkage matrix Z, shape (M − 1, 4) with M = x·y.
        labels: (x, y) int array, the cluster of every neuron, 0..n_clusters−1, numbered by size, largest first.
        n_clusters: the number of clusters actually formed.
        cut_height: a height t at which ``fcluster(linkage, t, "distance")`` yields exactly these clusters.
        cophenetic_correlation: Pearson correlation between the cophenetic distances of Z and the pairwise
            neuron distances (``scipy.cluster.hierarchy.cophenet(Z, pdist(W))``); NaN if all distances are equal.
    """

    linkage: np.ndarray
    labels: np.ndarray
    n_clusters: int
    cut_height: float
    cophenetic_correlation: float


def cluster_neurons(
    weights: np.ndarray,
    *,
    method: str = "average",
    n_clusters: int | None = 8,
    max_d: float | None = None,
    hits: np.ndarray | None = None,
    metric: str = "euclidean",
) -> NeuronClusters:
    """Cluster the neurons of a SOM by their weight vectors.

    Args:
        weights: (x, y, D) neuron weights; neuron (i, j) is observation i*y + j of the linkage.
        method: scipy linkage method, one of ``LINKAGE_METHODS``; centroid, median and ward need
            ``metric="euclidean"``.
        n_clusters: cut the tree into at most this many clusters (``fcluster(Z, k, "maxclust")``). Ties in merge
            heights can make fewer clusters possible; a warning is logged and the real count is reported.
        max_d: cut the tree at this height instead (``fcluster(Z, max_d, "distance")``). Give exactly one of
            ``n_clusters`` and ``max_d``; pass ``n_clusters=None`` to use ``max_d``.
        hits: optional (x, y) non-negative counts of rows per neuron; when given, clusters are numbered by the
            number of rows they hold rather than by their number of neurons.
        metric: distance between weight vectors, any metric name ``scipy.spatial.distance.pdist`` accepts.

    Returns:
        NeuronClusters with labels numbered 0..k−1 by size (largest first; ties broken by neuron count, then by
        the smallest flat neuron index).
    """
    flat_weights = _validate_weights(weights)
    grid_shape = weights.shape[:2]
    neuron_count = flat_weights.shape[0]
    _validate_method(method, metric)
    hit_counts = None if hits is None else _validate_hits(hits, grid_shape)
    if (n_clusters is None) == (max_d is None):
        raise ValueError(
            f"give exactly one of n_clusters and max_d, got n_clusters={n_clusters!r} and max_d={max_d!r} "
            "(pass n_clusters=None to cut at max_d)"
        )

    try:
        neuron_distances = pdist(flat_weights, metric=metric)
    except ValueError as error:
        raise ValueError(f"metric {metric!r} is not usable by scipy pdist: {error}") from error
    tree = linkage(neuron_distances, method=method)

    if n_clusters is not None:
        requested = _validate_n_clusters(n_clusters, neuron_count)
        raw_labels = fcluster(tree, requested, criterion="maxclust")
        formed = int(np.unique(raw_labels).size)
        if formed != requested:
            logger.warning(
                "asked for %d clusters but tied merge heights allow only %d; using %d", requested, formed, formed
            )
        cut_height = _cut_height_for_count(tree, formed)
    else:
        cut_height = _validate_max_d(max_d)
        raw_labels = fcluster(tree, cut_height, criterion="distance")
        formed = int(np.unique(raw_labels).size)

    _, dense_labels = np.unique(raw_labels, return_inverse=True)
    labels = _number_by_size(dense_labels, formed, hit_counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation, _ = cophenet(tree, neuron_distances)
    logger.info(
        "clustered %d neurons into %d clusters (method=%s, cut height %.4g, cophenetic correlation %.3f)",
        neuron_count, formed, method, cut_height, correlation,
    )
    return NeuronClusters(
        linkage=tree,
        labels=labels.reshape(grid_shape),
        n_clusters=formed,
        cut_height=float(cut_height),
        cophenetic_correlation=float(correlation),
    )


def assign_rows(labels: np.ndarray, bmu_flat: np.ndarray) -> np.ndarray:
    """Cluster of each row = cluster of its BMU neuron.

    Args:
        labels: (x, y) int cluster of every neuron.
        bmu_flat: (N,) flat BMU index of every row, ``i * y + j``.

    Returns:
        (N,) int array, ``labels.ravel()[bmu_flat]``.
    """
    labels = np.asarray(labels)
    bmu_flat = np.asarray(bmu_flat)
    if labels.ndim != 2:
        raise ValueError(f"labels must be an (x, y) array, got shape {labels.shape}")
    if bmu_flat.ndim != 1:
        raise ValueError(f"bmu_flat must be a 1-D array of flat neuron indices, got shape {bmu_flat.shape}")
    if bmu_flat.size and not np.issubdtype(bmu_flat.dtype, np.integer):
        raise TypeError(f"bmu_flat must hold integers, got dtype {bmu_flat.dtype}")
    neuron_count = labels.size
    out_of_range = (bmu_flat < 0) | (bmu_flat >= neuron_count)
    if out_of_range.any():
        bad_row = int(np.flatnonzero(out_of_range)[0])
        raise ValueError(
            f"bmu_flat[{bad_row}] = {int(bmu_flat[bad_row])} is outside the map's neuron range 0..{neuron_count - 1}"
        )
    return labels.ravel()[bmu_flat.astype(np.intp, copy=False)]


def _validate_weights(weights: np.ndarray) -> np.ndarray:
    """Check an (x, y, D) finite numeric array with at least two neurons; return it as (M, D) float64."""
    if not isinstance(weights, np.ndarray):
        raise TypeError(f"weights must be a numpy array of shape (x, y, D), got {type(weights).__name__}")
    if weights.ndim != 3:
        raise ValueError(f"weights must have shape (x, y, D), got shape {weights.shape}")
    if not np.issubdtype(weights.dtype, np.number) or np.issubdtype(weights.dtype, np.complexfloating):
        raise TypeError(f"weights must be real numbers, got dtype {weights.dtype}")
    x, y, dim = weights.shape
    if x * y < 2 or dim < 1:
        raise ValueError(f"need at least 2 neurons and 1 feature to cluster, got weights of shape {weights.shape}")
    flat_weights = weights.reshape(x * y, dim).astype(np.float64, copy=False)
    if not np.isfinite(flat_weights).all():
        bad_neuron = int(np.flatnonzero(~np.isfinite(flat_weights).all(axis=1))[0])
        raise ValueError(f"weights of neuron {divmod(bad_neuron, y)} contain NaN or infinity")
    return flat_weights


def _validate_method(method: str, metric: str) -> None:
    """Check the linkage method name and that centroid/median/ward get Euclidean distances."""
    if method not in LINKAGE_METHODS:
        raise ValueError(f"unknown linkage method {method!r}; valid methods: {', '.join(LINKAGE_METHODS)}")
    if method in EUCLIDEAN_ONLY_METHODS and metric != "euclidean":
        raise ValueError(f"linkage method {method!r} needs metric='euclidean', got metric={metric!r}")


def _validate_hits(hits: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """Check (x, y) finite non-negative hit counts; return them flattened as float64 (M,)."""
    hits = np.asarray(hits)
    if hits.shape != tuple(grid_shape):
        raise ValueError(f"hits must have the map's shape {tuple(grid_shape)}, got shape {hits.shape}")
    if not np.issubdtype(hits.dtype, np.number) or np.issubdtype(hits.dtype, np.complexfloating):
        raise TypeError(f"hits must be real counts, got dtype {hits.dtype}")
    flat_hits = hits.ravel().astype(np.float64)
    if not np.isfinite(flat_hits).all() or (flat_hits < 0).any():
        raise ValueError("hits must be finite and non-negative")
    return flat_hits


def _validate_n_clusters(n_clusters: int, neuron_count: int) -> int:
    """Check 1 <= n_clusters <= number of neurons."""
    if isinstance(n_clusters, (bool, np.bool_)) or not isinstance(n_clusters, (int, np.integer)):
        raise TypeError(f"n_clusters must be an integer, got {n_clusters!r}")
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be at least 1, got {n_clusters}")
    if n_clusters > neuron_count:
        raise ValueError(f"n_clusters={n_clusters} is more than the map's {neuron_count} neurons")
    return int(n_clusters)


def _validate_max_d(max_d: float) -> float:
    """Check a finite, non-negative cut height."""
    if isinstance(max_d, (bool, np.bool_)) or not isinstance(max_d, (int, float, np.integer, np.floating)):
        raise TypeError(f"max_d must be a number, got {max_d!r}")
    if not np.isfinite(max_d) or max_d < 0:
        raise ValueError(f"max_d must be a finite, non-negative height, got {max_d}")
    return float(max_d)


def _cut_height_for_count(tree: np.ndarray, cluster_count: int) -> float:
    """A height t where ``fcluster(tree, t, "distance")`` gives exactly ``cluster_count`` clusters.

    With h the merge heights sorted ascending (made monotone up the tree, as fcluster does, so inversions of
    centroid/median linkage are handled), cutting at t leaves M − #{h ≤ t} clusters; so t lies in
    [h[−k], h[−k+1]) and the midpoint of that band is returned. Outside the tree (k = 1 or k = M) the band is
    extended by 5% of the top merge height.
    """
    heights = np.sort(maxdists(tree))
    neuron_count = heights.size + 1
    margin = 0.05 * heights[-1] if heights[-1] > 0 else 1.0
    if cluster_count == 1:
        return float(heights[-1] + margin)
    if cluster_count == neuron_count:
        return float(heights[0] / 2 if heights[0] > 0 else -margin)
    return float((heights[-cluster_count] + heights[-cluster_count + 1]) / 2)


def _number_by_size(raw_labels: np.ndarray, cluster_count: int, hit_counts: np.ndarray | None) -> np.ndarray:
    """Renumber 0-based cluster ids so that 0 is the largest.

    Size is the number of rows (hits) when given, else the number of neurons; ties go to the cluster with more
    neurons, then to the one holding the smallest flat neuron index.
    """
    neurons_per_cluster = np.bincount(raw_labels, minlength=cluster_count)
    size = neurons_per_cluster if hit_counts is None else np.bincount(
        raw_labels, weights=hit_counts, minlength=cluster_count
    )
    first_neuron = np.full(cluster_count, raw_labels.size)
    np.minimum.at(first_neuron, raw_labels, np.arange(raw_labels.size))
    order = np.lexsort((first_neuron, -neurons_per_cluster, -size))
    new_id = np.empty(cluster_count, dtype=np.int64)
    new_id[order] = np.arange(cluster_count)
    return new_id[raw_labels]
