"""pca_weights_init on data larger than its float64 budget: chunked mean and covariance give the plane of the
whole-data computation (float64 NumPy reference, MiniSom's formula), and the whole-data path is unchanged."""
from __future__ import annotations

import numpy as np
import pytest
from minisom import MiniSom

import somtorch.som as som_module
from somtorch import SOM


def numpy_plane(data: np.ndarray, x: int, y: int) -> np.ndarray:
    """MiniSom's pca_weights_init formula in float64 NumPy."""
    centred = data - data.mean(0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / (len(data) - 1))
    order = np.argsort(eigenvalues)[::-1]
    c1 = np.linspace(-1, 1, x)[:, None, None]
    c2 = np.linspace(-1, 1, y)[None, :, None]
    return data.mean(0) + c1 * eigenvectors[:, order[0]] + c2 * eigenvectors[:, order[1]]


@pytest.fixture()
def data() -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.standard_normal((5_003, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1]) + 10.0


def test_chunked_plane_equals_the_whole_data_plane(data: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(som_module, "PCA_CHUNK_BYTES", 8 * 6 * 997)  # 997 rows a chunk: six chunks
    chunked = SOM(7, 5, 6, dtype="float64")
    chunked.pca_weights_init(data)
    np.testing.assert_allclose(chunked.get_weights(), numpy_plane(data, 7, 5), rtol=1e-10, atol=1e-12)


def test_data_within_the_budget_keeps_minisom_parity(data: np.ndarray) -> None:
    ours = SOM(7, 5, 6, dtype="float64")
    ours.pca_weights_init(data)
    theirs = MiniSom(7, 5, 6)
    theirs.pca_weights_init(data)
    np.testing.assert_allclose(ours.get_weights(), theirs.get_weights(), rtol=1e-12, atol=1e-12)
