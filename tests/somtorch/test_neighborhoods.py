"""Neighbourhood application: h_x ⊗ h_y and blocked evaluation equal the dense M × M product."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from somtorch.grid import Grid
from somtorch.neighborhoods import NEIGHBORHOODS, GridTables, MapNeighborhood


def dense_matrix(neighborhood: MapNeighborhood, m: int, sigma: float) -> torch.Tensor:
    """h[c, k] for every winner c (rows) and neuron k, (M, M), from the dense formula."""
    return neighborhood.dense(torch.arange(m), sigma)


@pytest.mark.parametrize("name", sorted(NEIGHBORHOODS))
@pytest.mark.parametrize("topology,periodic", [("rectangular", False), ("rectangular", True), ("hexagonal", False), ("hexagonal", True)])
@pytest.mark.parametrize("block_rows", [1, 7, 10_000])
def test_smooth_equals_dense_product(name, topology, periodic, block_rows):
    grid = Grid(7, 6, topology, periodic)
    tables = GridTables.from_grid(grid, torch.device("cpu"), torch.float64)
    neighborhood = MapNeighborhood(NEIGHBORHOODS[name], tables, topology)
    rng = np.random.default_rng(0)
    sums = torch.tensor(rng.normal(size=(grid.n_neurons, 5)))
    counts = torch.tensor(rng.integers(0, 5, grid.n_neurons).astype(float))
    sigma = 1.7
    h = dense_matrix(neighborhood, grid.n_neurons, sigma)  # [c, k]
    numerator, denominator = neighborhood.smooth(sums, counts, sigma, block_rows)
    torch.testing.assert_close(numerator, h.T @ sums, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(denominator, h.T @ counts, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,topology,separable", [
    ("gaussian", "rectangular", True), ("gaussian", "hexagonal", False), ("mexican_hat", "rectangular", False),
    ("bubble", "hexagonal", True), ("triangle", "hexagonal", True),
])
def test_separability_flags(name, topology, separable):
    assert NEIGHBORHOODS[name].is_separable(topology) is separable


def test_dense_values_by_hand():
    """3 × 3 rectangular map, winner at the centre (flat 4), σ = 1."""
    grid = Grid(3, 3)
    tables = GridTables.from_grid(grid)
    r2 = np.array([2, 1, 2, 1, 0, 1, 2, 1, 2], dtype=float)
    gaussian = MapNeighborhood(NEIGHBORHOODS["gaussian"], tables, "rectangular").dense(np.int64(4), 1.0)
    np.testing.assert_allclose(gaussian, np.exp(-r2 / 2))
    hat = MapNeighborhood(NEIGHBORHOODS["mexican_hat"], tables, "rectangular").dense(np.int64(4), 1.0)
    np.testing.assert_allclose(hat, (1 - r2) * np.exp(-r2 / 2))
    bubble = MapNeighborhood(NEIGHBORHOODS["bubble"], tables, "rectangular").dense(np.int64(4), 1.0)
    np.testing.assert_array_equal(bubble, [0, 0, 0, 0, 1, 0, 0, 0, 0])
    triangle = MapNeighborhood(NEIGHBORHOODS["triangle"], tables, "rectangular").dense(np.int64(4), 2.0)
    np.testing.assert_array_equal(triangle, [1, 2, 1, 2, 4, 2, 1, 2, 1])
