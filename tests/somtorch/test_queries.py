"""Batched queries: chunking, dtypes, distances, training progress."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from somtorch import SOM, bmu as bmu_module


def trained(data, device="cpu", dtype=torch.float64, **kwargs) -> SOM:
    som = SOM(6, 5, data.shape[1], sigma=1.5, random_seed=1, device=device, dtype=dtype, **kwargs)
    som.train_random(data, 600)
    return som


def test_chunked_and_unchunked_queries_identical(breast_cancer, device):
    whole = trained(breast_cancer, device)
    chunked = trained(breast_cancer, device, chunk_bytes=30 * 8 * 2 * 37)  # 37 rows per chunk: 16 chunks
    assert bmu_module.chunk_rows(30, 8, chunked.chunk_bytes, torch.device(device)) == 37
    assert torch.equal(whole.bmu_indices(breast_cancer), chunked.bmu_indices(breast_cancer))
    assert whole.quantization_error(breast_cancer) == chunked.quantization_error(breast_cancer)
    assert whole.topographic_error(breast_cancer) == chunked.topographic_error(breast_cancer)
    np.testing.assert_array_equal(whole.activation_response(breast_cancer), chunked.activation_response(breast_cancer))
    whole.train_batch(breast_cancer, 3)
    chunked.train_batch(breast_cancer, 3)
    np.testing.assert_allclose(whole.get_weights(), chunked.get_weights(), atol=1e-12)


def test_bmu_search_memory_is_bounded_by_chunks(monkeypatch, breast_cancer):
    """With a tiny budget the search visits ceil(N / rows) chunks and never allocates more than rows × M scores."""
    som = trained(breast_cancer, chunk_bytes=30 * 8 * 2 * 50)
    visited = []
    original = bmu_module.iter_chunks

    def spy(n_rows, rows_per_chunk):
        for part in original(n_rows, rows_per_chunk):
            visited.append(part.stop - part.start)
            yield part

    monkeypatch.setattr(bmu_module, "iter_chunks", spy)
    som.bmu_indices(breast_cancer)
    assert len(visited) == int(np.ceil(len(breast_cancer) / 50)) and max(visited) == 50
    visited.clear()
    som.quantization_error(breast_cancer)
    som.topographic_error(breast_cancer)
    assert max(visited) == 50 and sum(visited) == 2 * len(breast_cancer)


@pytest.mark.parametrize("name,metric", [("euclidean", "euclidean"), ("manhattan", "cityblock"), ("chebyshev", "chebyshev"), ("cosine", "cosine")])
def test_activation_distances_match_scipy(wine, name, metric):
    som = trained(wine, activation_distance=name)
    W = som.get_weights().reshape(-1, wine.shape[1])
    expected = cdist(wine[:20], W, metric=metric)
    got = np.stack([som.activate(row).ravel() for row in wine[:20]])
    np.testing.assert_allclose(got, expected, atol=1e-7)
    np.testing.assert_array_equal(som.bmu_indices(wine).numpy(), cdist(wine, W, metric=metric).argmin(1))


def test_callable_distance_is_used(wine):
    def squared_euclidean(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        return torch.cdist(X, W) ** 2

    som = trained(wine, activation_distance=squared_euclidean)
    W = som.get_weights().reshape(-1, wine.shape[1])
    np.testing.assert_array_equal(som.bmu_indices(wine).numpy(), cdist(wine, W, "sqeuclidean").argmin(1))


def test_ties_go_to_lowest_flat_index():
    som = SOM(3, 3, 2, device="cpu", dtype=torch.float64)
    weights = np.zeros((3, 3, 2))
    weights[0, 2] = weights[2, 1] = [1.0, 1.0]
    som.set_weights(weights)
    assert som.winner([1.0, 1.0]) == (0, 2)
    assert som.winner([0.0, 0.0]) == (0, 0)


def test_float32_and_float64_agree_on_well_separated_data(device):
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=10, size=(6, 8))
    data = np.concatenate([c + rng.normal(scale=0.3, size=(200, 8)) for c in centres])
    som64 = SOM(5, 5, 8, random_seed=3, device=device, dtype=torch.float64)
    som32 = SOM(5, 5, 8, random_seed=3, device=device, dtype=torch.float32)
    som64.train_random(data, 2000)
    som32.set_weights(som64.get_weights())
    assert torch.equal(som32.bmu_indices(data).cpu(), som64.bmu_indices(data).cpu())
    som32b = SOM(5, 5, 8, random_seed=3, device=device, dtype=torch.float32)
    som32b.train_random(data, 2000)
    np.testing.assert_allclose(som32b.get_weights(), som64.get_weights(), atol=1e-3)


@pytest.mark.parametrize("mode", ["random", "sequential", "batch"])
def test_quantization_error_falls_in_every_mode(breast_cancer, mode, device):
    som = SOM(8, 8, breast_cancer.shape[1], sigma=2.0, random_seed=0, device=device)
    before = som.quantization_error(breast_cancer)
    som.train(breast_cancer, 10 if mode == "batch" else 2000, mode=mode)
    after = som.quantization_error(breast_cancer)
    assert after < 0.8 * before


def test_quantization_error_and_topographic_error_by_hand():
    som = SOM(1, 3, 1, device="cpu", dtype=torch.float64)
    som.set_weights(np.array([0.0, 1.0, 10.0]).reshape(1, 3, 1))
    data = np.array([[0.2], [9.0], [5.0]])
    assert som.quantization_error(data) == pytest.approx((0.2 + 1.0 + 4.0) / 3)
    # bests: (0, 1) adjacent; (2, 1) adjacent; 5.0 → (1, 0): adjacent (distance 1) → TE 0
    assert som.topographic_error(data) == 0.0
    som.set_weights(np.array([0.0, 10.0, 1.0]).reshape(1, 3, 1))
    assert som.topographic_error(np.array([[0.4]])) == 1.0  # bests (0, 2): two apart


def test_winners_and_win_map_consistent(wine):
    som = trained(wine)
    winners = som.winners(wine)
    flat = som.bmu_indices(wine).numpy()
    np.testing.assert_array_equal(winners[:, 0] * som.y + winners[:, 1], flat)
    wm = som.win_map(wine, return_indices=True)
    assert sum(len(v) for v in wm.values()) == len(wine)
    for (i, j), members in wm.items():
        assert (flat[members] == i * som.y + j).all()


def test_verbose_training_reports_quantization_error(wine, capsys):
    som = SOM(4, 4, wine.shape[1], random_seed=0, device="cpu")
    som.train_random(wine, 100, verbose=True)
    som.train_batch(wine, 2, verbose=True)
    assert "quantization_error" in capsys.readouterr().err
