"""The device-side online kernel (used on CUDA) computes what the NumPy kernel computes; run on CPU here."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from somtorch import SOM
from somtorch.distances import ActivationDistance
from somtorch.grid import Grid
from somtorch.neighborhoods import NEIGHBORHOODS, GridTables, MapNeighborhood
from somtorch.online import train_online_numpy, train_online_torch


@pytest.mark.parametrize("neighborhood", sorted(NEIGHBORHOODS))
@pytest.mark.parametrize("topology,periodic", [("rectangular", False), ("hexagonal", False), ("rectangular", True), ("hexagonal", True)])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_torch_kernel_equals_numpy_kernel(wine, neighborhood, topology, periodic, distance, device):
    grid = Grid(6, 4, topology, periodic)
    rng = np.random.RandomState(0)
    start = rng.rand(grid.n_neurons, wine.shape[1])
    order = rng.randint(len(wine), size=300)
    eta = 0.5 / (1 + np.arange(300) / 150)
    sigma = 2.0 / (1 + np.arange(300) / 150)
    forced = np.where(np.arange(300) % 17 == 0, 5, -1)
    act = ActivationDistance(distance)
    expected = start.copy()
    train_online_numpy(expected, wine, order, eta, sigma, MapNeighborhood(NEIGHBORHOODS[neighborhood], GridTables.from_grid(grid), topology), act, forced)
    dev = torch.device(device)
    tables = GridTables.from_grid(grid, dev, torch.float64)
    weights = torch.tensor(start, device=dev)
    as_t = lambda a, dt: torch.as_tensor(a, dtype=dt, device=dev)  # noqa: E731
    train_online_torch(weights, as_t(wine, torch.float64), as_t(order, torch.long), as_t(eta, torch.float64), as_t(sigma, torch.float64),
                       MapNeighborhood(NEIGHBORHOODS[neighborhood], tables, topology), act, as_t(forced, torch.long))
    # relative to the weights' scale: online mexican-hat training on small maps diverges (|W| up to ~1e9 here)
    assert np.abs(weights.cpu().numpy() - expected).max() <= 1e-9 * max(1.0, np.abs(expected).max())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-8), (torch.float32, 2e-3)])
@pytest.mark.parametrize("neighborhood,topology,periodic", [("gaussian", "rectangular", False), ("mexican_hat", "hexagonal", True),
                                                            ("bubble", "hexagonal", False), ("triangle", "rectangular", True)])
@pytest.mark.parametrize("fused", [True, False])
def test_cuda_online_matches_numpy_kernel(wine, dtype, tolerance, neighborhood, topology, periodic, fused):
    """On CUDA: the fused Triton kernel and the CUDA-graph path (1,000 steps: capture, replays and an eager
    remainder) both reproduce the float64 NumPy kernel."""
    grid = Grid(8, 6, topology, periodic)
    rng = np.random.RandomState(1)
    start = rng.rand(grid.n_neurons, wine.shape[1])
    steps = 1000
    order = rng.randint(len(wine), size=steps)
    eta = 0.5 / (1 + np.arange(steps) / 500)
    sigma = 2.0 / (1 + np.arange(steps) / 500)
    expected = start.copy()
    train_online_numpy(expected, wine, order, eta, sigma, MapNeighborhood(NEIGHBORHOODS[neighborhood], GridTables.from_grid(grid), topology),
                       ActivationDistance("euclidean"))
    dev = torch.device("cuda")
    weights = torch.tensor(start, device=dev, dtype=dtype)
    as_t = lambda a, dt: torch.as_tensor(a, dtype=dt, device=dev)  # noqa: E731
    train_online_torch(weights, as_t(wine, dtype), as_t(order, torch.long), as_t(eta, dtype), as_t(sigma, dtype),
                       MapNeighborhood(NEIGHBORHOODS[neighborhood], GridTables.from_grid(grid, dev, dtype), topology),
                       ActivationDistance("euclidean"), use_fused=fused)
    assert np.abs(weights.cpu().numpy() - expected).max() <= tolerance * max(1.0, np.abs(expected).max())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_train_random_matches_minisom_order(wine):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = SOM(8, 7, wine.shape[1], sigma=1.5, random_seed=5, device="cpu", dtype=torch.float64)
        gpu = SOM(8, 7, wine.shape[1], sigma=1.5, random_seed=5, device="cuda", dtype=torch.float64)
    cpu.train_random(wine, 1000)
    gpu.train_random(wine, 1000)
    assert np.abs(gpu.get_weights() - cpu.get_weights()).max() <= 1e-8
