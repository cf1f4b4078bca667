"""SOM.evaluate: BMUs, quantization error and topographic error from one two-best search (issue 9, item 3).

References are written here: float64 NumPy distances from the differences with a stable sort (ties to the lowest
index), the adjacency rule from the neuron coordinates (MiniSom's layout, minimum image by hand), and MiniSom 2.3.6
itself on the same weights. The three separate queries are compared bit for bit.
"""
from __future__ import annotations

import dataclasses
import math
import warnings

import minisom
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

import somtorch.som as som_module
from somtorch import SOM, SOMEvaluation
from somtorch import bmu as bmu_module
from somtorch.evaluation import non_adjacent
from somtorch.grid import Grid
from somtorch.streaming import ChunkSource

FEATURES = 5
MAPS = [("rectangular", False), ("hexagonal", False), ("rectangular", True), ("hexagonal", True)]
DTYPES = [torch.float32, torch.float64]


def blobs(n: int, seed: int, dtype: torch.dtype = torch.float64) -> np.ndarray:
    """n samples around 6 random centres, (n, FEATURES), in the SOM's dtype."""
    rng = np.random.RandomState(seed)
    centres = rng.normal(scale=3.0, size=(6, FEATURES))
    data = centres[rng.randint(6, size=n)] + rng.normal(size=(n, FEATURES))
    return data.astype(np.float32 if dtype == torch.float32 else np.float64)


def trained_som(topology: str, periodic: bool, dtype: torch.dtype, device: str, data: np.ndarray, **kwargs) -> SOM:
    som = SOM(5, 6, FEATURES, sigma=1.5, topology=topology, periodic=periodic, random_seed=2, device=device, dtype=dtype, **kwargs)
    som.train_random(data, 800)
    return som


def rows_budget(rows: int, som: SOM) -> int:
    """chunk_bytes that give ``rows`` rows per search chunk."""
    return rows * som.n_neurons * som.weights.element_size() * 2


def reference_two_best(samples: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The two nearest units by Σ (x − w)² in float64, ties to the lowest index: (N, 2)."""
    diff = samples[:, None, :].astype(np.float64) - weights[None].astype(np.float64)
    return np.argsort(np.einsum("nmd,nmd->nm", diff, diff), axis=1, kind="stable")[:, :2]


def reference_adjacent(a: np.ndarray, b: np.ndarray, x: int, y: int, topology: str, periodic: bool) -> np.ndarray:
    """MiniSom's adjacency of flat units a, b: rectangular grid distance ≤ 1.42, hexagonal coordinate distance 1
    (every other row shifted by −0.5 counted from the last, rows √3/2 apart); periodic: the shorter way round."""
    (ia, ja), (ib, jb) = np.divmod(a, y), np.divmod(b, y)
    if topology == "rectangular":
        dx, dy, period = (ib - ia).astype(float), (jb - ja).astype(float), (x, y)
    else:
        shift = lambda j: 0.5 * ((y - 1 - j) % 2 == 0)  # noqa: E731
        dx, dy = (ib - shift(jb)) - (ia - shift(ja)), (jb - ja) * math.sqrt(3) / 2
        period = (x, y * math.sqrt(3) / 2)
    if periodic:
        dx, dy = (np.minimum(np.abs(d) % p, p - np.abs(d) % p) for d, p in zip((dx, dy), period))
    distance = np.hypot(dx, dy)
    return distance <= 1.42 if topology == "rectangular" else np.isclose(distance, 1.0)


def reference_metrics(som: SOM, samples: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(BMUs, QE, TE) in float64 NumPy on the SOM's stored weights."""
    weights = som.get_weights().reshape(som.n_neurons, -1).astype(np.float64)
    best = reference_two_best(samples, weights)
    qe = np.linalg.norm(samples.astype(np.float64) - weights[best[:, 0]], axis=1).mean()
    te = (~reference_adjacent(best[:, 0], best[:, 1], som.x, som.y, som.topology, som.periodic)).mean()
    return best[:, 0], float(qe), float(te)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("topology, periodic", MAPS)
def test_evaluate_equals_the_three_queries_and_the_reference(topology, periodic, dtype, device):
    data = blobs(1500, seed=0, dtype=dtype)
    som = trained_som(topology, periodic, dtype, device, data)
    som.chunk_bytes = rows_budget(37, som)  # 41 search chunks
    result = som.evaluate(data)
    assert isinstance(result, SOMEvaluation) and result.n == len(data)
    assert result.bmu.dtype == torch.long and result.bmu.device == som.weights.device
    assert torch.equal(result.bmu, som.bmu_indices(data))
    assert result.quantization_error == som.quantization_error(data)
    assert result.topographic_error == som.topographic_error(data)
    bmu, qe, te = reference_metrics(som, data)
    np.testing.assert_array_equal(result.bmu.cpu().numpy(), bmu)
    assert result.quantization_error == pytest.approx(qe, rel=1e-6 if dtype == torch.float32 else 1e-12)
    assert result.topographic_error == te
    assert 0 < te < 1  # both kinds of sample are present, so an inverted rule would fail


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 3, 17, 10_000])
def test_planted_exact_ties_go_to_the_lowest_index(rows, dtype, device):
    """Units 3 and 0 get bit-identical copies (7 and 12 adjacent to 3 or not, 5 beside 0); samples sit on them,
    1e-3 away and elsewhere. The best unit and the second best both break ties by index."""
    rng = np.random.RandomState(4)
    weights = rng.normal(size=(30, FEATURES))
    weights[[7, 12]] = weights[3]
    weights[5] = weights[0]
    som = SOM(5, 6, FEATURES, device=device, dtype=dtype)
    som.set_weights(weights.reshape(5, 6, FEATURES))
    stored = som.get_weights().reshape(30, FEATURES)
    on = np.repeat(stored[[3, 0, 7]], 15, axis=0)
    samples = np.concatenate([on, on + 1e-3 * rng.normal(size=on.shape), rng.normal(size=(60, FEATURES))]).astype(stored.dtype)
    som.chunk_bytes = rows_budget(rows, som)
    result = som.evaluate(samples)
    bmu, qe, te = reference_metrics(som, samples)
    assert {3, 0} <= set(bmu.tolist()) and not {7, 12, 5} & set(bmu.tolist())
    np.testing.assert_array_equal(result.bmu.cpu().numpy(), bmu)
    assert torch.equal(result.bmu, som.bmu_indices(samples))
    assert result.topographic_error == te == som.topographic_error(samples)
    assert result.quantization_error == som.quantization_error(samples)
    assert result.quantization_error == pytest.approx(qe, rel=1e-6 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_quantization_and_topographic_error_match_minisom(topology, device):
    data = blobs(1200, seed=1)
    som = trained_som(topology, False, torch.float64, device, data)
    reference = minisom.MiniSom(som.x, som.y, FEATURES, topology=topology)
    reference._weights = som.get_weights()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MiniSom warns about its hexagonal triangle/bubble use; not the case here
        expected_qe, expected_te = reference.quantization_error(data), reference.topographic_error(data)
    result = som.evaluate(data)
    assert result.quantization_error == pytest.approx(expected_qe, rel=1e-12)
    assert result.topographic_error == pytest.approx(expected_te, abs=1e-15)
    assert 0 < expected_te < 1


@pytest.mark.parametrize("distance, metric", [("manhattan", "cityblock"), ("cosine", "cosine")])
def test_other_activation_distances_take_their_own_bmu_search(distance, metric, device):
    data = blobs(800, seed=2)
    som = trained_som("rectangular", False, torch.float64, device, data, activation_distance=distance)
    result = som.evaluate(data)
    weights = som.get_weights().reshape(som.n_neurons, -1)
    np.testing.assert_array_equal(result.bmu.cpu().numpy(), cdist(data, weights, metric).argmin(axis=1))
    assert torch.equal(result.bmu, som.bmu_indices(data))
    _, qe, te = reference_metrics(som, data)  # the euclidean units
    assert result.quantization_error == som.quantization_error(data) == pytest.approx(qe, rel=1e-12)
    assert result.topographic_error == som.topographic_error(data) == te


@pytest.mark.parametrize("distance, passes", [("euclidean", 1), ("manhattan", 2)])
def test_one_search_pass_in_bounded_chunks_and_data_moved_once(monkeypatch, distance, passes):
    data = blobs(1000, seed=3)
    som = trained_som("hexagonal", False, torch.float64, "cpu", data, activation_distance=distance)
    som.chunk_bytes = rows_budget(64, som)
    visited, conversions = [], []
    original_chunks, original_matrix = bmu_module.iter_chunks, som_module.as_matrix

    def spy_chunks(n_rows, rows_per_chunk):
        for part in original_chunks(n_rows, rows_per_chunk):
            visited.append(part.stop - part.start)
            yield part

    def spy_matrix(*args, **kwargs):
        conversions.append(args[0])
        return original_matrix(*args, **kwargs)

    monkeypatch.setattr(bmu_module, "iter_chunks", spy_chunks)
    monkeypatch.setattr(som_module, "as_matrix", spy_matrix)
    som.evaluate(data)
    assert max(visited) == 64 and sum(visited) == passes * len(data)
    assert len(conversions) == 1


def test_chunk_source_gives_the_same_evaluation():
    data = blobs(900, seed=5)
    som = trained_som("rectangular", True, torch.float64, "cpu", data)
    whole = som.evaluate(data)
    streamed = som.evaluate(ChunkSource(data, FEATURES, som.device, som.dtype, rows_per_chunk=128))
    assert torch.equal(whole.bmu, streamed.bmu) and streamed.n == whole.n == len(data)
    assert streamed.topographic_error == whole.topographic_error
    assert streamed.quantization_error == pytest.approx(whole.quantization_error, rel=1e-12)


@pytest.mark.parametrize("x, y, topology, periodic", [
    (1, 5, "rectangular", False), (2, 3, "rectangular", True), (6, 5, "rectangular", True), (4, 4, "rectangular", False),
    (5, 5, "hexagonal", False), (2, 4, "hexagonal", True), (3, 4, "hexagonal", True), (5, 6, "hexagonal", True)])
def test_neighbour_lookup_is_the_adjacency_rule_for_every_pair(x, y, topology, periodic):
    grid = Grid(x, y, topology, periodic)
    a, b = (u.ravel() for u in np.meshgrid(np.arange(x * y), np.arange(x * y), indexing="ij"))
    a, b = a[a != b], b[a != b]
    found = non_adjacent(torch.from_numpy(np.stack([a, b], 1)), torch.from_numpy(grid.neighbors)).numpy()
    np.testing.assert_array_equal(found, ~reference_adjacent(a, b, x, y, topology, periodic))


def test_one_by_one_map_has_no_topographic_error():
    som = SOM(1, 1, 2, device="cpu", dtype=torch.float64)
    som.set_weights(np.array([[[1.0, 1.0]]]))
    with pytest.warns(UserWarning, match="not defined for a 1-by-1 map"):
        result = som.evaluate(np.array([[1.0, 4.0], [4.0, 5.0]]))
    assert math.isnan(result.topographic_error) and result.quantization_error == pytest.approx(4.0)
    assert result.bmu.tolist() == [0, 0]


def test_evaluation_is_frozen_and_data_is_validated():
    som = SOM(3, 3, 2, random_seed=0, device="cpu")
    result = som.evaluate(np.zeros((4, 2)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.n = 5
    with pytest.raises(ValueError, match="input_len=2"):
        som.evaluate(np.zeros((4, 3)))
