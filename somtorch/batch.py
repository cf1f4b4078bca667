"""The batch-map epoch as two pure steps, the kernel of every batch driver (one process, torch.distributed, Dask).

With c_n the BMU of sample x_n under the current weights W (M, D) (smallest distance, ties to the lowest flat index):

    partial statistics of a shard:  S_k = Σ_{n: c_n = k} x_n   (M, D)      c_k = #{n : c_n = k}   (M,) int64
    merge of shards:                S = Σ_shards S_shard,  c = Σ_shards c_shard   (M·(D + 1) numbers, any order)
    weight update at radius σ:      W'_k = Σ_j h(j, k; σ)·S_j / Σ_j h(j, k; σ)·c_j,  W'_k = W_k where the
                                    denominator is ≤ 0

S is accumulated in float64 (``accumulate="float64"``): shards summed in another order agree to ~1e-16 relative.
``accumulate="exact"`` sums every value as a fixed-point integer (2⁻⁴⁰ resolution, two int64 limbs): integer sums
are associative, so S, and the weights after any number of epochs, are bit-identical for any split of the data
into shards, any shard order and any number of ranks. Values must satisfy |x| < 2⁷ and the rows ≤ 2³⁶ (the limbs
cannot overflow below that); the rounding to 2⁻⁴⁰ moves S by at most n·2⁻⁴¹.

On CUDA, float64 accumulation of euclidean BMUs uses the fused Triton search of :mod:`somtorch._fused_batch` (no
N × M score matrix; the same BMUs). ``FUSED_BMU_SEARCH`` (initially the environment variable
``SOMTORCH_FUSED_BMU_SEARCH``, default ``auto``) chooses: ``auto`` (CUDA weights and Triton importable), ``never``,
or ``always`` (wherever the distance and dtype allow, CPU tensors included: those need Triton's interpreter).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import torch

from . import bmu as bmu_search
from .distances import ActivationDistance
from .neighborhoods import MapNeighborhood

logger = logging.getLogger(__name__)

ACCUMULATIONS = ("float64", "exact")
FUSED_CHOICES = ("auto", "never", "always")
FUSED_BMU_SEARCH = os.environ.get("SOMTORCH_FUSED_BMU_SEARCH", "auto")
# Fixed point of accumulate="exact": x ≈ hi·2⁻²⁰ + lo·2⁻⁴⁰ with hi = floor(x·2²⁰) and lo in [0, 2²⁰].
LIMB_BITS = 20
EXACT_MAX_ABS = 2.0**7  # |x| < 2⁷ keeps |hi| < 2²⁷, so a sum of 2³⁶ rows stays below 2⁶³
EXACT_MAX_ROWS = 2**36


def check_accumulation(accumulate: str) -> None:
    """Raise ValueError unless ``accumulate`` is one of ACCUMULATIONS."""
    if accumulate not in ACCUMULATIONS:
        raise ValueError(f"accumulate={accumulate!r} is not supported; choose one of {list(ACCUMULATIONS)}")


@dataclass(frozen=True)
class BatchStatistics:
    """Per-neuron statistics of a set of samples under fixed weights; shards merge by ``+``.

    ``sums``: S (M, D) float64, or, when ``exact``, its fixed-point limbs (2, M, D) int64 (hi, lo);
    ``counts``: c (M,) int64.
    """

    sums: torch.Tensor
    counts: torch.Tensor

    @property
    def exact(self) -> bool:
        return self.sums.dtype == torch.int64

    @classmethod
    def zeros(cls, n_neurons: int, dim: int, *, accumulate: str = "float64", device: torch.device | str = "cpu") -> "BatchStatistics":
        """Statistics of no samples: zeros of the right shapes and types."""
        check_accumulation(accumulate)
        shape = (2, n_neurons, dim) if accumulate == "exact" else (n_neurons, dim)
        dtype = torch.int64 if accumulate == "exact" else torch.float64
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(n_neurons, dtype=torch.int64, device=device))

    def __add__(self, other: "BatchStatistics") -> "BatchStatistics":
        if self.sums.shape != other.sums.shape or self.sums.dtype != other.sums.dtype:
            raise ValueError(f"cannot add statistics of shapes {tuple(self.sums.shape)} {self.sums.dtype} and "
                             f"{tuple(other.sums.shape)} {other.sums.dtype}")
        return BatchStatistics(self.sums + other.sums.to(self.sums.device), self.counts + other.counts.to(self.counts.device))

    def to(self, device: torch.device | str) -> "BatchStatistics":
        return BatchStatistics(self.sums.to(device), self.counts.to(device))

    def sample_sums(self) -> torch.Tensor:
        """S as float64 (M, D) (exact limbs: hi·2⁻²⁰ + lo·2⁻⁴⁰, one rounding)."""
        if not self.exact:
            return self.sums
        total = int(self.counts.sum())
        if total > EXACT_MAX_ROWS:
            raise ValueError(f"exact accumulation holds at most {EXACT_MAX_ROWS} rows, got {total}; use accumulate='float64'")
        hi, lo = self.sums[0].to(torch.float64), self.sums[1].to(torch.float64)
        return hi * 2.0**-LIMB_BITS + lo * 2.0 ** (-2 * LIMB_BITS)


def fixed_point_limbs(chunk: torch.Tensor) -> torch.Tensor:
    """(2, B, D) int64 limbs (hi, lo) of a (B, D) chunk: hi = floor(x·2²⁰), lo = round((x·2²⁰ − hi)·2²⁰).

    Raises ValueError for |x| ≥ EXACT_MAX_ABS (the limbs' sums could overflow)."""
    x = chunk.to(torch.float64)
    if x.numel() and float(x.abs().max()) >= EXACT_MAX_ABS:
        raise ValueError(f"accumulate='exact' needs |x| < {EXACT_MAX_ABS:g}; the data holds |x| = {float(x.abs().max()):.6g} "
                         "(scale the features, or use accumulate='float64')")
    scaled = x * 2.0**LIMB_BITS  # exact: a power of two
    hi = torch.floor(scaled)
    lo = torch.round((scaled - hi) * 2.0**LIMB_BITS)  # scaled − hi is exact, in [0, 1)
    return torch.stack([hi, lo]).to(torch.int64)


def fused_search_applies(W: torch.Tensor, distance: ActivationDistance) -> bool:
    """Whether ``partial_stats`` (float64 accumulation) runs the fused Triton search for these weights, by
    ``FUSED_BMU_SEARCH``: never; always where the distance and dtype allow; auto also needs W on CUDA. Where Triton
    does not import the answer is False (the chunked search of :mod:`somtorch.bmu` runs)."""
    return _fused_accumulation(W, distance) is not None


def _fused_accumulation(W: torch.Tensor, distance: ActivationDistance) -> Optional[Callable[..., None]]:
    """``somtorch._fused_batch.accumulate_by_bmu`` where :func:`fused_search_applies`, else None."""
    if FUSED_BMU_SEARCH not in FUSED_CHOICES:
        raise ValueError(f"FUSED_BMU_SEARCH={FUSED_BMU_SEARCH!r} (or SOMTORCH_FUSED_BMU_SEARCH) is not supported; "
                         f"choose one of {list(FUSED_CHOICES)}")
    if FUSED_BMU_SEARCH == "never" or (FUSED_BMU_SEARCH == "auto" and not W.is_cuda):
        return None
    try:
        from . import _fused_batch
    except ImportError:  # no Triton: the chunked search
        logger.debug("Triton is not installed; the batch epoch uses the chunked BMU search")
        return None
    return _fused_batch.accumulate_by_bmu if _fused_batch.supports(W, distance) else None


def partial_stats(chunks: Iterable[torch.Tensor], W: torch.Tensor, distance: ActivationDistance, *,
                  chunk_bytes: int = bmu_search.DEFAULT_CHUNK_BYTES, accumulate: str = "float64") -> BatchStatistics:
    """S (float64 or exact limbs) and c (int64) of every sample of ``chunks`` ((rows, D) tensors) under W (M, D).

    BMUs follow the one rule of :mod:`somtorch.bmu` (exact distance decides near-ties, then the lowest index), so a
    sample's BMU does not depend on how the data is cut into chunks or shards, nor on whether the fused search runs
    (see :func:`fused_search_applies`)."""
    check_accumulation(accumulate)
    stats = BatchStatistics.zeros(W.shape[0], W.shape[1], accumulate=accumulate, device=W.device)
    accumulate_rows = (_fused_accumulation(W, distance) if accumulate == "float64" else None) or bmu_search.accumulate_by_bmu
    for chunk in chunks:
        if accumulate == "exact":
            for _, X, bmu in bmu_search.iter_bmus(chunk, W, distance, chunk_bytes):
                limbs = fixed_point_limbs(X)
                stats.sums[0].index_add_(0, bmu, limbs[0])
                stats.sums[1].index_add_(0, bmu, limbs[1])
                stats.counts.index_add_(0, bmu, torch.ones_like(bmu))
        else:
            accumulate_rows(chunk, W, distance, chunk_bytes, stats.sums, stats.counts)
    return stats


def apply_update(stats: BatchStatistics, W: torch.Tensor, neighborhood: MapNeighborhood, sigma: float,
                 block_rows: int) -> torch.Tensor:
    """The batch-map weights (M, D) in W's dtype from merged statistics: W'_k = Σ_j h(j,k;σ)S_j / Σ_j h(j,k;σ)c_j,
    W_k kept where that denominator is ≤ 0. ``neighborhood``'s tables must be float64 (the smoothing runs in
    float64); ``block_rows`` bounds the h blocks of non-separable neighbourhoods."""
    numerator, denominator = neighborhood.smooth(stats.sample_sums(), stats.counts.to(torch.float64), sigma, block_rows)
    positive = denominator > 0
    safe = torch.where(positive, denominator, torch.ones_like(denominator))
    return torch.where(positive[:, None], (numerator / safe[:, None]).to(W.dtype), W)
