"""One scorer for every library's trained map, written here (not somtorch's code), with MiniSom's definitions.

For data X (N, D) and weights W (x, y, D), with units ranked by euclidean distance:

* quantization error QE = mean_n ‖x_n − w_{bmu(n)}‖₂, the distance recomputed in float64 from the difference;
* topographic error TE = share of samples whose best and second-best units are not neighbours on a rectangular
  grid, i.e. whose grid positions are more than 1.42 apart (diagonal neighbours count as adjacent).

The ranking uses the float32 score ‖w‖² − 2·x·w (‖x‖² does not change a row's order), computed in row blocks so no
N × M matrix is ever held.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from somtorch._inputs import matmul_precision

logger = logging.getLogger(__name__)

SCORE_BLOCK_BYTES = 256 * 2**20
ADJACENT_GRID_DISTANCE = 1.42


@dataclass(frozen=True)
class MapScore:
    """QE and TE of one trained map on one data set."""

    quantization_error: float
    topographic_error: float


def _as_tensor(data: Any, device: torch.device) -> torch.Tensor:
    tensor = data if isinstance(data, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(data))
    return tensor.to(device=device, dtype=torch.float32)


def best_two_units(data: Any, weights: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """Flat indices (i·y + j) of each sample's best and second-best unit: int64 (N, 2) on ``device``.

    data: (N, D) array or tensor; weights: (x, y, D).
    """
    target = torch.device(device)
    flat = torch.as_tensor(np.asarray(weights, dtype=np.float32).reshape(-1, weights.shape[-1]), device=target)  # [M, D]
    if flat.shape[0] < 2:
        raise ValueError("scoring needs a map with at least 2 units")
    squared_norms = (flat.double() ** 2).sum(1).float()  # [M]
    rows = max(1, SCORE_BLOCK_BYTES // (flat.shape[0] * 4))
    ranked = torch.empty((data.shape[0], 2), dtype=torch.long, device=target)
    with matmul_precision(allow_tf32=False):  # full float32 CUDA products, whatever the caller set
        for start in range(0, data.shape[0], rows):
            block = _as_tensor(data[start : start + rows], target)  # [B, D]
            scores = torch.addmm(squared_norms, block, flat.T, beta=1, alpha=-2)  # [B, M]
            ranked[start : start + block.shape[0]] = scores.topk(2, dim=1, largest=False, sorted=True).indices
    return ranked


def score_map(data: Any, weights: np.ndarray, device: str = "cpu") -> MapScore:
    """QE and TE (MiniSom's definitions, rectangular grid) of map ``weights`` (x, y, D) on ``data`` (N, D)."""
    weights = np.asarray(weights)
    if weights.ndim != 3 or weights.shape[-1] != data.shape[1]:
        raise ValueError(f"weights must be (x, y, {data.shape[1]}); got shape {weights.shape}")
    y = weights.shape[1]
    ranked = best_two_units(data, weights, device)
    flat64 = torch.as_tensor(weights.reshape(-1, weights.shape[-1]), dtype=torch.float64, device=ranked.device)
    rows = max(1, SCORE_BLOCK_BYTES // (data.shape[1] * 8 * 4))
    distance_sum = 0.0
    for start in range(0, data.shape[0], rows):
        block = _as_tensor(data[start : start + rows], ranked.device).double()
        distance_sum += float((block - flat64[ranked[start : start + block.shape[0], 0]]).norm(dim=1).sum())
    first_i, first_j = ranked[:, 0] // y, ranked[:, 0] % y
    second_i, second_j = ranked[:, 1] // y, ranked[:, 1] % y
    grid_distance = torch.hypot((first_i - second_i).double(), (first_j - second_j).double())
    errors = int((grid_distance > ADJACENT_GRID_DISTANCE).sum())
    return MapScore(distance_sum / data.shape[0], errors / data.shape[0])

