"""MiniSom's euclidean BMU searches on the CPU, in NumPy, with MiniSom's own arithmetic.

MiniSom answers two kinds of queries with two formulas:

* ``quantization``, ``quantization_error`` and ``topographic_error`` rank units by its expanded distance
  d = sqrt(max(0, −2·x·w + ‖x‖² + ‖w‖²)) over the whole (N, M) matrix (``_distance_from_weights``);
* ``winner`` and everything built on it (``win_map``, ``activation_response``, ``labels_map``,
  ``train_batch_offline``, ``distortion_measure``) ranks units by ‖x − w‖ from the differences
  (``linalg.norm(x − w, axis=-1)``), one sample at a time.

The functions here return the units those formulas pick, bit for bit, without MiniSom's temporaries.

* The expanded formula needs MiniSom's product x·w to the bit, so it is one BLAS call over all rows, as in MiniSom:
  OpenBLAS's rounding depends on the matrix shape and its thread count (a block of rows can differ in the last
  bit from the same rows inside the whole product). That holds up to ``WHOLE_PRODUCT_ELEMENTS`` sample-unit pairs;
  beyond, MiniSom's bits are out of reach at bounded memory and the callers use the core search (exact distance,
  ties to the lowest index). Ranking uses the expanded score s before the monotone max(0, ·) and sqrt, and applies
  them only on rows where they could merge the best candidates.
* The winner formula needs no product: candidates come from the core's product search, and near-ties are decided by
  ‖x − w‖ computed exactly as ``winner`` does (:class:`WinnerDistance`). That holds at every N.
"""
from __future__ import annotations

import logging
import numpy as np
import torch

from . import bmu as bmu_search

logger = logging.getLogger(__name__)

# Up to this many N·M pairs the product runs over all rows at once (128 MiB in float64), as MiniSom computes it.
WHOLE_PRODUCT_ELEMENTS = 1 << 24
# Small calls evaluate MiniSom's formula directly: up to this many N·M pairs (expanded distance) or N·M·D
# differences (winner distance), a dozen NumPy calls cost less than the candidate search and its re-check.
DIRECT_PAIRS = 1 << 16
DIRECT_DIFFERENCES = 1 << 15


def squared_norms(values: np.ndarray) -> np.ndarray:
    """MiniSom's ‖v‖² per row, ``power(v, 2).sum(axis=1, keepdims=True)``: (N, 1)."""
    return np.power(values, 2).sum(axis=1, keepdims=True)


def _expanded_scores(samples: np.ndarray, weights: np.ndarray, samples_sq: np.ndarray, weights_sq_t: np.ndarray) -> np.ndarray:
    """−2·x·wᵀ + ‖x‖² + ‖w‖²ᵀ (B, M) in MiniSom's order of operations, in one buffer."""
    scores = np.dot(samples, weights.T)
    scores *= -2
    scores += samples_sq
    scores += weights_sq_t
    return scores


def _expanded_distance(scores: np.ndarray) -> np.ndarray:
    """MiniSom's distance sqrt(max(0, s)) of expanded scores s."""
    return np.sqrt(np.maximum(0, scores))


def _pop_minimum(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, value) of each row's first minimum; the entry is then masked with +inf."""
    rows = np.arange(scores.shape[0])
    index = scores.argmin(axis=1)
    value = scores[rows, index]
    scores[rows, index] = np.inf
    return index, value


def expanded_nearest(samples: np.ndarray, weights: np.ndarray, samples_sq: np.ndarray) -> np.ndarray:
    """MiniSom's ``argmin(_distance_from_weights(data), axis=1)``: (N,) flat unit indices.

    samples: (N, D), weights: (M, D), samples_sq: (N, 1) from :func:`squared_norms` of the caller's data (MiniSom
    squares the data in its own dtype). N·M must be at most ``WHOLE_PRODUCT_ELEMENTS``."""
    scores = _expanded_scores(samples, weights, samples_sq, squared_norms(weights).T)  # [N, M]
    if scores.size <= DIRECT_PAIRS:
        return _expanded_distance(scores).argmin(axis=1)
    first, first_value = _pop_minimum(scores)
    rows = np.flatnonzero(_expanded_distance(scores.min(axis=1)) == _expanded_distance(first_value))
    if rows.size:  # max(0, ·)/sqrt made another unit equally near: MiniSom's argmin of d decides
        scores[rows, first[rows]] = first_value[rows]
        first[rows] = _expanded_distance(scores[rows]).argmin(axis=1)
    return first


def expanded_two_nearest(samples: np.ndarray, weights: np.ndarray, samples_sq: np.ndarray) -> np.ndarray:
    """The two units of MiniSom's ``argsort(_distance_from_weights(data), axis=1)[:, :2]``: (N, 2).

    Rows whose second and third distances are equal take MiniSom's argsort itself; elsewhere the pair is the same
    set (in the same order unless the first two distances are equal, which no topographic error can tell).
    Arguments as in :func:`expanded_nearest`."""
    scores = _expanded_scores(samples, weights, samples_sq, squared_norms(weights).T)  # [N, M]
    if scores.size <= DIRECT_PAIRS:
        return np.argsort(_expanded_distance(scores), axis=1)[:, :2]
    first, first_value = _pop_minimum(scores)
    second, second_value = _pop_minimum(scores)
    rows = np.flatnonzero(_expanded_distance(scores.min(axis=1)) == _expanded_distance(second_value))
    if rows.size:
        scores[rows, first[rows]] = first_value[rows]
        scores[rows, second[rows]] = second_value[rows]
        pairs = np.argsort(_expanded_distance(scores[rows]), axis=1)[:, :2]
        first[rows], second[rows] = pairs[:, 0], pairs[:, 1]
    return np.stack([first, second], axis=1)


class WinnerDistance:
    """MiniSom's ``winner`` distance ‖x − w‖ = sqrt(Σ (x − w)²) (NumPy's sum, as in ``linalg.norm(axis=-1)``) for
    the near-tie re-check of :func:`somtorch.bmu.smallest_units`."""

    is_euclidean = True

    def exact_pairs(self, X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """‖x_p − w_p‖ for matching rows of X (P, D) and W (P, D) → (P,)."""
        d = np.subtract(X.numpy(), W.numpy())
        return torch.from_numpy(np.sqrt(np.add.reduce(d * d, axis=-1)))


def winner_values(samples: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """‖x − w‖ of every sample (B, D) to every unit (M, D), MiniSom's ``winner`` arithmetic: (B, M)."""
    diff = np.subtract(samples[:, None, :], weights[None])  # [B, M, D]
    return np.sqrt(np.add.reduce(diff * diff, axis=-1))


def winner_nearest(samples: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The unit MiniSom's ``winner(x)`` returns for every sample (argmin of ‖x − w‖, first on ties): (N,).

    Small inputs evaluate ‖x − w‖ directly; larger ones take the core search's candidates and decide its near-ties
    (:func:`somtorch.bmu.smallest_units`) with :class:`WinnerDistance`."""
    if samples.size * weights.shape[0] <= DIRECT_DIFFERENCES:
        return winner_values(samples, weights).argmin(axis=1)
    return bmu_search.best_matching_units(torch.from_numpy(samples), torch.from_numpy(weights), WinnerDistance()).numpy()
