"""One BMU rule everywhere: the smallest exact distance, ties to the lowest flat index (issue 12).

References are NumPy computations written here: the exact squared distance from the differences, in float64 on
the map's own weights, and ``argmin`` (first minimum). Maps get duplicated neurons (bit-identical weights, the case
a bubble batch map produces) and samples on and near them.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from somtorch import SOM
from somtorch import bmu as bmu_search
from somtorch.distances import ActivationDistance

X_SIDE, Y_SIDE, FEATURES = 4, 5, 6
DUPLICATES = {3: [7, 12, 19], 0: [5]}  # unit → later units that get its weights
DTYPES = [torch.float32, torch.float64]


def reference_bmus(samples: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """argmin over units of Σ (x − w)², float64, first minimum: (N,)."""
    diff = samples[:, None, :].astype(np.float64) - weights[None].astype(np.float64)
    return np.einsum("nmd,nmd->nm", diff, diff).argmin(axis=1)


def tied_map(dtype: torch.dtype, seed: int = 0) -> tuple[SOM, np.ndarray]:
    """A SOM whose units 3 and 0 have bit-identical copies at higher indices, and samples on them, near them
    (1e-3 away) and elsewhere: (som, samples (N, D) in the SOM's dtype)."""
    rng = np.random.RandomState(seed)
    weights = rng.normal(size=(X_SIDE * Y_SIDE, FEATURES))
    for unit, copies in DUPLICATES.items():
        weights[copies] = weights[unit]
    som = SOM(X_SIDE, Y_SIDE, FEATURES, random_seed=seed, device="cpu", dtype=dtype)
    som.set_weights(weights.reshape(X_SIDE, Y_SIDE, FEATURES))
    stored = som.get_weights().reshape(-1, FEATURES)
    on = np.repeat(stored[[3, 0]], 20, axis=0)
    near = on + 1e-3 * rng.normal(size=on.shape)
    samples = np.concatenate([on, near, rng.normal(size=(60, FEATURES))])
    samples = samples[rng.permutation(len(samples))]
    return som, samples.astype(np.float32 if dtype == torch.float32 else np.float64)


def rows_budget(rows: int, n_neurons: int, itemsize: int) -> int:
    """chunk_bytes that give ``rows`` rows per chunk."""
    return rows * n_neurons * itemsize * 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 3, 17, 10_000])
def test_exact_ties_go_to_the_lowest_index_at_every_chunk_size(dtype, rows):
    som, samples = tied_map(dtype)
    som.chunk_bytes = rows_budget(rows, som.n_neurons, som.weights.element_size())
    expected = reference_bmus(samples, som.get_weights().reshape(-1, FEATURES))
    assert set(expected) & set(sum(DUPLICATES.values(), [])) == set()  # the reference itself never picks a copy
    np.testing.assert_array_equal(som.bmu_indices(samples).numpy(), expected)
    assert [som.winner(x) for x in samples[:40]] == [divmod(int(c), Y_SIDE) for c in expected[:40]]
    winmap = som.win_map(samples, return_indices=True)
    assert {key: list(value) for key, value in winmap.items()} == {
        divmod(int(c), Y_SIDE): [int(n) for n in np.flatnonzero(expected == c)] for c in np.unique(expected)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 5, 10_000])
def test_batch_map_accumulation_counts_ties_at_the_lowest_index(dtype, rows):
    som, samples = tied_map(dtype, seed=1)
    W = som.weights.reshape(-1, FEATURES)
    X = torch.from_numpy(samples)
    sums, counts = torch.zeros_like(W), torch.zeros(som.n_neurons, dtype=dtype)
    bmu_search.accumulate_by_bmu(X, W, ActivationDistance("euclidean"), rows_budget(rows, som.n_neurons, W.element_size()),
                                 sums, counts)
    expected = reference_bmus(samples, W.numpy())
    np.testing.assert_array_equal(counts.numpy(), np.bincount(expected, minlength=som.n_neurons))
    expected_sums = np.zeros((som.n_neurons, FEATURES))
    np.add.at(expected_sums, expected, samples.astype(np.float64))
    np.testing.assert_allclose(sums.numpy(), expected_sums, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_best_units_rank_exact_ties_by_index(dtype):
    som, samples = tied_map(dtype, seed=2)
    weights = som.get_weights().reshape(-1, FEATURES)
    best = bmu_search.two_best_units(torch.from_numpy(samples), som.weights.reshape(-1, FEATURES), rows_budget(3, 20, 8)).numpy()
    diff = samples[:, None, :].astype(np.float64) - weights[None].astype(np.float64)
    exact = np.einsum("nmd,nmd->nm", diff, diff)
    expected = np.argsort(exact, axis=1, kind="stable")[:, :2]  # stable: ties in index order
    np.testing.assert_array_equal(best, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_near_ties_are_settled_by_the_difference_formula(dtype):
    """Units 1 ulp apart, far from the origin: the product-based score cannot order them, the exact distance does."""
    real = np.float32 if dtype == torch.float32 else np.float64
    rng = np.random.RandomState(3)
    weights = (rng.normal(size=(X_SIDE * Y_SIDE, FEATURES)) * 100.0).astype(real)
    weights[9] = weights[4]
    weights[9, 0] = np.nextafter(weights[4, 0], real(np.inf))  # unit 9 is 1 ulp to the right of unit 4
    samples = np.repeat(weights[[4]], 30, axis=0)
    samples[:10, 0] = np.nextafter(weights[9, 0], real(np.inf))  # right of both: unit 9 is nearer
    samples[10:20, 0] = np.nextafter(weights[4, 0], real(-np.inf))  # left of both: unit 4
    som = SOM(X_SIDE, Y_SIDE, FEATURES, device="cpu", dtype=dtype)
    som.set_weights(weights.reshape(X_SIDE, Y_SIDE, FEATURES))
    expected = reference_bmus(samples, weights)
    assert set(expected[:10]) == {9} and set(expected[10:]) == {4}
    np.testing.assert_array_equal(som.bmu_indices(samples).numpy(), expected)
    assert som.winner(samples[0]) == divmod(9, Y_SIDE)


def bubble_batch_reference(samples: np.ndarray, weights: np.ndarray, x: int, y: int, sigma: float, epochs: int) -> np.ndarray:
    """Kohonen's batch map with the bubble neighbourhood, written out: per epoch σ_t = σ/(1 + 2t/T), BMU by
    argmin Σ (x − w)², h = [|i − c_i| < σ_t]·[|j − c_j| < σ_t], W_k = Σ h·x / Σ h where Σ h > 0."""
    ii, jj = np.divmod(np.arange(x * y), y)
    W = weights.reshape(-1, samples.shape[1]).copy()
    for t in range(epochs):
        s = sigma / (1 + t / (epochs / 2))
        bmu = reference_bmus(samples, W)
        h = ((np.abs(ii[bmu][:, None] - ii[None]) < s) & (np.abs(jj[bmu][:, None] - jj[None]) < s)).astype(float)  # [N, M]
        denominator = h.sum(0)
        hit = denominator > 0
        W[hit] = (h.T @ samples)[hit] / denominator[hit][:, None]
    return W.reshape(x, y, -1)


@pytest.mark.parametrize("shape", [(5, 9), (7, 3)])
def test_float64_bubble_batch_map_equals_the_reference(shape):
    rng = np.random.RandomState(4)
    centres = rng.uniform(-3, 3, size=(5, 4))
    samples = centres[rng.randint(5, size=400)] + 0.3 * rng.normal(size=(400, 4))
    epochs = 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        som = SOM(*shape, 4, sigma=3.0, neighborhood_function="bubble", random_seed=5, device="cpu", dtype=torch.float64)
    start = som.get_weights()
    som.train_batch(samples, epochs)
    expected = bubble_batch_reference(samples, start, *shape, 3.0, epochs)
    flat = expected.reshape(-1, 4)
    assert len(np.unique(flat, axis=0)) < len(flat)  # the case of the issue: neurons with identical weights
    np.testing.assert_allclose(som.get_weights(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("source", ["numpy", "tensor"])
def test_set_weights_never_aliases(source):
    som = SOM(3, 4, 2, random_seed=0, device="cpu", dtype=torch.float64)
    given = np.random.RandomState(0).normal(size=(3, 4, 2))
    before = given.copy()
    som.set_weights(given if source == "numpy" else torch.from_numpy(given))
    som.train_random(np.random.RandomState(1).normal(size=(50, 2)), 100)
    som.train_batch(np.random.RandomState(2).normal(size=(50, 2)), 2)
    np.testing.assert_array_equal(given, before)
    assert not np.array_equal(som.get_weights(), before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_cuda_branch_of_the_search_keeps_the_rule(dtype, monkeypatch):
    """The search ranked with torch (the branch CUDA takes; NumPy ranks on the CPU), run on the CPU."""
    monkeypatch.setattr(bmu_search, "ranks_in_numpy", lambda scores: False)
    som, samples = tied_map(dtype, seed=6)
    som.chunk_bytes = rows_budget(7, som.n_neurons, som.weights.element_size())
    np.testing.assert_array_equal(som.bmu_indices(samples).numpy(), reference_bmus(samples, som.get_weights().reshape(-1, FEATURES)))
