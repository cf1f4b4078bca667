"""Quality of a trained map from one euclidean search: every sample's BMU, the quantization and topographic errors.

For samples x_n (n < N) with euclidean best unit c_n and second-best unit c'_n (the BMU rule of
:mod:`somtorch.bmu`: smallest exact distance, ties to the lowest flat index, near-ties re-checked exactly):

* quantization error  QE = (1/N) Σ_n ‖x_n − w_{c_n}‖₂, the distance taken from the differences (MiniSom's
  definition, ``norm(data − quantization(data), axis=1).mean()``);
* topographic error   TE = (1/N) Σ_n [c'_n is not a true neighbour of c_n]: rectangular grid distance > 1.42
  (diagonals are neighbours), hexagonal coordinate distance ≠ 1, minimum image on periodic maps
  (:attr:`somtorch.grid.Grid.neighbors`).

A two-best search (k = 2) yields c_n and c'_n together, chunk by chunk from the byte budget (never an N × M matrix),
on the weights' device. QE and TE always use the euclidean distance, so the BMUs of a SOM whose
``activation_distance`` is not euclidean need a search of their own (see :meth:`somtorch.SOM.evaluate`).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterable, Optional

import torch

from . import bmu as bmu_search
from .distances import ActivationDistance

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SOMEvaluation:
    """What :meth:`somtorch.SOM.evaluate` measures on a data set of ``n`` rows.

    Attributes:
        bmu: flat BMU index i·y + j of every sample under the SOM's ``activation_distance``, int64 (n,) on the
            SOM's device (what ``bmu_indices`` returns).
        quantization_error: mean euclidean distance from each sample to its euclidean BMU.
        topographic_error: share of samples whose two best euclidean units are not adjacent (NaN on a 1 × 1 map).
        n: the number of rows.
    """

    bmu: torch.Tensor
    quantization_error: float
    topographic_error: float
    n: int


def non_adjacent(best_two: torch.Tensor, neighbors: torch.Tensor) -> torch.Tensor:
    """Whether each pair of units (B, 2) is *not* adjacent, given each unit's true neighbours (M, K), −1 padded: (B,)."""
    return ~(neighbors[best_two[:, 0]] == best_two[:, 1:2]).any(1)  # [B, K] → [B]


@dataclass(frozen=True)
class EvaluationSums:
    """The totals behind QE and TE, which add up over shards: ``bmu`` (n,) euclidean BMUs, ``distance_sum``
    Σ ‖x − w_c‖ (float64), ``non_adjacent`` the samples whose two best units are not adjacent, ``n`` the rows."""

    bmu: torch.Tensor
    distance_sum: float
    non_adjacent: int
    n: int


def euclidean_sums(chunks: Iterable[torch.Tensor], W: torch.Tensor, neighbors: torch.Tensor, budget_bytes: int,
                   two_best: bool = True) -> EvaluationSums:
    """The ``EvaluationSums`` of the samples in ``chunks`` (each (B, D) on W's device and dtype), euclidean distance.

    W: (M, D) weights; neighbors: (M, K) true neighbours of each unit, on W's device. The search splits each input
    chunk into byte-budget chunks and finds their two best units (only the best where ``two_best`` is False:
    ``non_adjacent`` is then 0). The distances ‖x − w_c‖ of a whole input chunk (B,), in W's dtype, are summed in
    float64 at once, so the sum does not depend on the search's chunk size. No rows give zero sums.
    """
    euclidean = ActivationDistance("euclidean")
    k = 2 if two_best else 1

    def measure(chunk: torch.Tensor, nearest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """BMU, ‖x − w_c‖ and the count of non-adjacent best pairs of a search chunk (on the search's workers)."""
        best = nearest[:, 0]
        return best, (chunk - W[best]).norm(dim=1), non_adjacent(nearest, neighbors).sum() if two_best else None

    found, n = [], 0
    distance_sum = torch.zeros((), dtype=torch.float64, device=W.device)
    errors = torch.zeros((), dtype=torch.long, device=W.device)
    for X in chunks:
        bmu = torch.empty(X.shape[0], dtype=torch.long, device=W.device)
        distances = torch.empty(X.shape[0], dtype=W.dtype, device=W.device)
        for part, (best, distance, non_adjacent_count) in bmu_search.map_nearest(X, W, euclidean, budget_bytes, k, measure):
            bmu[part] = best
            distances[part] = distance
            if two_best:
                errors += non_adjacent_count
        distance_sum += distances.to(torch.float64).sum()
        found.append(bmu)
        n += X.shape[0]
    bmus = torch.empty(0, dtype=torch.long, device=W.device) if not found else found[0] if len(found) == 1 else torch.cat(found)
    # the totals are read back once, after the last chunk
    return EvaluationSums(bmus, float(distance_sum), int(errors), n)


def euclidean_evaluation(chunks: Iterable[torch.Tensor], W: torch.Tensor, neighbors: torch.Tensor, budget_bytes: int,
                         two_best: bool = True) -> SOMEvaluation:
    """BMUs, QE = distance_sum / n and TE = non_adjacent / n (NaN unless ``two_best``) of the samples in ``chunks``,
    from :func:`euclidean_sums` (same arguments). ValueError when there are no rows."""
    sums = euclidean_sums(chunks, W, neighbors, budget_bytes, two_best)
    if sums.n == 0:
        raise ValueError("data has no rows: the quantization and topographic errors need at least one sample")
    topographic = sums.non_adjacent / sums.n if two_best else math.nan
    logger.debug("evaluated %d samples: QE sum %.6g, %d topographic errors", sums.n, sums.distance_sum, sums.non_adjacent)
    return SOMEvaluation(sums.bmu, sums.distance_sum / sums.n, topographic, sums.n)
