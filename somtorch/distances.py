"""Activation distances between samples and neuron weights, used to find the best-matching unit (BMU).

For a sample x (D,) and weights w (M, D):

* ``euclidean``:  ‖x − w‖₂
* ``cosine``:     1 − x·w / (‖x‖‖w‖ + 1e-8)   (MiniSom's guard against zero norms)
* ``manhattan``:  Σ |x − w|
* ``chebyshev``:  max |x − w|                 (MiniSom 2.3.6 omits the abs; the native SOM does not)
* a callable ``f(X, W) -> (B, M)`` taking torch tensors X (B, D) and W (M, D).

Each distance offers ``scores`` (any row-wise monotone transform of the distance, cheapest for argmin),
``distances`` (the true values) and ``exact_pairs`` (the euclidean formula that decides near-ties of the
product-based score, Σ (x − w)² from the differences). The euclidean score is ‖w‖² − 2x·w, one ``addmm`` (the chunked search in
:mod:`somtorch.bmu` writes it into a reused buffer); ‖x‖² is constant per row and irrelevant to the argmin.
"""
from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import torch

DistanceFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DistanceSpec = Union[str, DistanceFunction]
DISTANCE_NAMES = ("euclidean", "cosine", "manhattan", "chebyshev")
COSINE_EPS = 1e-8


class ActivationDistance:
    """A named or callable activation distance, evaluated on torch tensors (batched) or NumPy arrays (one sample)."""

    def __init__(self, spec: DistanceSpec) -> None:
        if callable(spec):
            self.name, self.function = getattr(spec, "__name__", "callable"), spec
        elif isinstance(spec, str) and spec in DISTANCE_NAMES:
            self.name, self.function = spec, None
        else:
            raise ValueError(
                f"activation_distance={spec!r} is not supported; choose one of {list(DISTANCE_NAMES)} "
                "or pass a callable f(X, W) -> (B, M)"
            )
        self.spec = spec

    @property
    def is_euclidean(self) -> bool:
        return self.function is None and self.name == "euclidean"

    def distances(self, X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """True distances, (B, D) × (M, D) → (B, M)."""
        if self.function is not None:
            return self.function(X, W)
        if self.name == "euclidean":
            sq = (X * X).sum(1, keepdim=True) + self.scores(X, W, (W * W).sum(1))
            return sq.clamp_min(0).sqrt()
        if self.name == "cosine":
            return self.scores(X, W, None)
        return torch.cdist(X, W, p=1.0 if self.name == "manhattan" else float("inf"))

    def scores(self, X: torch.Tensor, W: torch.Tensor, w_sq: Optional[torch.Tensor]) -> torch.Tensor:
        """A row-wise monotone transform of the distance (B, M), for argmin. ``w_sq`` is ‖w‖² (M,) for euclidean."""
        if self.is_euclidean:
            return torch.addmm(w_sq, X, W.T, beta=1, alpha=-2)
        if self.function is None and self.name == "cosine":
            denominator = W.norm(dim=1)[None, :] * X.norm(dim=1, keepdim=True) + COSINE_EPS
            return 1 - (X @ W.T) / denominator
        return self.distances(X, W)

    def exact_pairs(self, X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """Σ_d (x_d − w_d)² for matching rows of X (P, D) and W (P, D) → (P,): the euclidean distance from the
        differences (no cancellation), which decides near-ties of the score ‖w‖² − 2x·w. On a CPU it is NumPy's
        sum, as in :meth:`single_numpy`, the same sum as the per-sample search."""
        if not self.is_euclidean:
            raise ValueError(f"exact_pairs is the euclidean re-check; activation_distance={self.name!r} scores exactly")
        if X.device.type == "cpu":
            d = X.numpy() - W.numpy()
            return torch.from_numpy(np.add.reduce(d * d, axis=-1))
        d = X - W
        return (d * d).sum(1)

    def single_numpy(self, x: np.ndarray, W: np.ndarray) -> np.ndarray:
        """Distance of one sample x (D,) to every neuron, weights W (M, D) → (M,), on NumPy arrays.

        The arithmetic mirrors MiniSom's per-sample ``winner`` so that online training picks the same BMUs
        (euclidean returns the squared distance, which has the same argmin).
        """
        if self.function is not None:
            return self.function(torch.from_numpy(x[None, :]), torch.from_numpy(W))[0].numpy()
        if self.name == "euclidean":
            d = x - W
            return np.add.reduce(d * d, axis=-1)
        if self.name == "cosine":
            num = np.add.reduce(W * x, axis=-1)
            return 1 - num / (np.linalg.norm(W, axis=-1) * np.linalg.norm(x) + COSINE_EPS)
        if self.name == "manhattan":
            return np.add.reduce(np.abs(x - W), axis=-1)
        return np.abs(x - W).max(axis=-1)
