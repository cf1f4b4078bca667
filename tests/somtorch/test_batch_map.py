"""Kohonen's batch map against a float64 NumPy reference written here from the formula in DESIGN.md."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from minisom import MiniSom

from somtorch import SOM


def reference_coordinates(x: int, y: int, topology: str) -> tuple[np.ndarray, np.ndarray]:
    """Neuron coordinates by the DESIGN.md rule, (x, y) each."""
    i, j = np.meshgrid(np.arange(x, dtype=float), np.arange(y, dtype=float), indexing="ij")
    if topology == "hexagonal":
        shifted = (y - 1 - j) % 2 == 0  # every other row, counted from the last one
        return i - 0.5 * shifted, j * np.sqrt(3) / 2
    return i, j


def wrap(d: np.ndarray, period: float | None) -> np.ndarray:
    return d if period is None else d - period * np.round(d / period)


def reference_h(x, y, topology, periodic, neighborhood, s) -> np.ndarray:
    """h[c, k] for all winner/neuron pairs, (M, M), straight from the formulas (minimum image when periodic)."""
    cx, cy = (a.ravel() for a in reference_coordinates(x, y, topology))
    gi, gj = (a.ravel() for a in np.meshgrid(np.arange(x, dtype=float), np.arange(y, dtype=float), indexing="ij"))
    px = float(x) if periodic else None
    py = (y * np.sqrt(3) / 2 if topology == "hexagonal" else float(y)) if periodic else None
    dx, dy = wrap(cx[None, :] - cx[:, None], px), wrap(cy[None, :] - cy[:, None], py)
    di = wrap(gi[None, :] - gi[:, None], float(x) if periodic else None)
    dj = wrap(gj[None, :] - gj[:, None], float(y) if periodic else None)
    r2 = dx**2 + dy**2
    if neighborhood == "gaussian":
        return np.exp(-r2 / (2 * s * s))
    if neighborhood == "mexican_hat":
        return (1 - r2 / s**2) * np.exp(-r2 / (2 * s * s))
    if neighborhood == "bubble":
        return ((np.abs(di) < s) & (np.abs(dj) < s)).astype(float)
    return np.clip(s - np.abs(di), 0, None) * np.clip(s - np.abs(dj), 0, None)


def reference_batch_map(data, weights, x, y, topology, periodic, neighborhood, sigma, epochs):
    """T epochs of W_k ← Σ_n h(c_n,k)x_n / Σ_n h(c_n,k) (k kept where the denominator ≤ 0), σ asymptotic."""
    W = weights.reshape(x * y, -1).copy()
    for t in range(epochs):
        s = sigma / (1 + t / (epochs / 2))
        bmu = ((data[:, None, :] - W[None, :, :]) ** 2).sum(-1).argmin(1)
        h = reference_h(x, y, topology, periodic, neighborhood, s)[bmu]  # [N, M]
        denominator = h.sum(0)
        numerator = h.T @ data
        update = denominator > 0
        W[update] = numerator[update] / denominator[update, None]
    return W.reshape(x, y, -1)


CASES = [
    (neighborhood, topology, periodic)
    for neighborhood in ("gaussian", "mexican_hat", "bubble", "triangle")
    for topology in ("rectangular", "hexagonal")
    for periodic in (False, True)
]


def build(x, y, d, neighborhood, topology, periodic, dtype, device="cpu", sigma=None):
    sigma = sigma or (2.0 if neighborhood in ("bubble", "triangle") else 1.4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SOM(x, y, d, sigma=sigma, neighborhood_function=neighborhood, topology=topology, periodic=periodic,
                   random_seed=4, dtype=dtype, device=device), sigma


@pytest.mark.parametrize("neighborhood,topology,periodic", CASES)
def test_batch_map_float64_matches_reference(wine, neighborhood, topology, periodic, device):
    som, sigma = build(6, 4, wine.shape[1], neighborhood, topology, periodic, torch.float64, device)
    start = som.get_weights()
    som.train_batch(wine, 5)
    expected = reference_batch_map(wine, start, 6, 4, topology, periodic, neighborhood, sigma, 5)
    # 1e-10 relative to the weights' scale: a mexican hat's denominators mix positive and negative terms and can be
    # small, which amplifies last-bit differences in the sums (weights of ~14 agree to ~1e-10 there)
    assert np.abs(som.get_weights() - expected).max() <= 1e-10 * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("neighborhood,topology,periodic", CASES[::3])
def test_batch_map_float32_matches_reference(wine, neighborhood, topology, periodic):
    som, sigma = build(5, 4, wine.shape[1], neighborhood, topology, periodic, torch.float32)
    start = som.get_weights().astype(np.float64)
    som.train_batch(wine, 3)
    expected = reference_batch_map(wine, start, 5, 4, topology, periodic, neighborhood, sigma, 3)
    np.testing.assert_allclose(som.get_weights(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("neighborhood,sigma", [("bubble", 1.0), ("mexican_hat", 2.5)])
def test_neuron_with_nonpositive_denominator_keeps_weights(neighborhood, sigma):
    """Bubble: neurons far from every hit get 0; mexican hat: the ring around the winner is negative."""
    data = np.array([[0.0, 0.0], [0.1, 0.0]])
    som, _ = build(6, 6, 2, neighborhood, "rectangular", False, torch.float64, sigma=sigma)
    weights = np.full((6, 6, 2), 10.0)
    weights[0, 0] = [0.0, 0.0]  # the only winner
    som.set_weights(weights)
    som.train_batch(data, 1)
    h = reference_h(6, 6, "rectangular", False, neighborhood, sigma)[0]  # winner is neuron 0
    kept = h <= 0
    assert kept.sum() > 0
    np.testing.assert_array_equal(som.get_weights().reshape(36, 2)[kept], weights.reshape(36, 2)[kept])
    moved = ~kept
    np.testing.assert_allclose(som.get_weights().reshape(36, 2)[moved], np.tile(data.mean(0), (moved.sum(), 1)), atol=1e-12)


@pytest.mark.parametrize("neighborhood", ["gaussian", "mexican_hat", "bubble", "triangle"])
@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_batch_map_equals_minisom_offline_with_unit_learning_rate(wine, neighborhood, topology):
    """MiniSom's train_batch_offline with η ≡ 1 is the plain batch map: an independent second reference."""
    sigma = 2.0 if neighborhood in ("bubble", "triangle") else 1.4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = MiniSom(5, 5, wine.shape[1], sigma=sigma, learning_rate=1.0, decay_function=lambda p, t, T: p,
                            neighborhood_function=neighborhood, topology=topology, random_seed=2)
    som, _ = build(5, 5, wine.shape[1], neighborhood, topology, False, torch.float64, sigma=sigma)
    som.set_weights(reference.get_weights())
    reference.train_batch_offline(wine, 4)
    som.train_batch(wine, 4)
    assert np.abs(som.get_weights() - reference.get_weights()).max() <= 1e-10
