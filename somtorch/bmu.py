"""Best-matching-unit search in memory-bounded chunks.

No function here builds an N × M (samples × neurons) matrix: samples are processed ``rows`` at a time, where
``rows`` comes from a byte budget, so peak memory is O(rows · M) whatever N is. Chunks that live on another
device than the weights (host data streamed to a GPU) are copied one at a time.

One rule decides every BMU: the unit with the smallest distance, and among exact ties the lowest flat index. The
euclidean search ranks units by the product-based score ‖w‖² − 2x·w, whose rounding error can reorder units
that are (nearly) equally far. So every sample whose best candidates lie within :func:`near_tie_tolerance` of each
other is decided again from the distance's exact formula (``distance.exact_pairs``, e.g. Σ (x − w)²) over the
units inside that tolerance, ties to the lowest index. The re-check touches only those samples.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import numpy as np
import torch

from .distances import ActivationDistance

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 512 * 2**20  # on a CPU the cache-sized cap below applies first
# Per sample row a chunk holds: the (rows, M) score buffer, plus argmin/topk temporaries of about the same size.
_BUFFERS_PER_ROW = 2
# On a CPU the score buffer is reused for every chunk; kept cache-sized (a few MiB) the product that fills it and the
# argmin that reads it run several times faster than over one big buffer (measured on the 2-core CI machine:
# 100,000 × 32 by 900 neurons, 1,024-row chunks 49 ms, 4,096-row chunks 264 ms). Never fewer than _CPU_MIN_ROWS rows,
# so that the matrix product stays efficient on maps with tens of thousands of neurons.
_CPU_TARGET_BYTES = 4 * 2**20
_CPU_MIN_ROWS = 256
# Below this many multiply-adds (N·M·D) a CPU search runs on one torch thread: waking a second OpenMP thread cost
# 5–15 ms per call on the shared 2-core machine, more than the whole product (benchmarks/compat_bench.py).
SINGLE_THREAD_WORK = 1 << 24
# Rounding bound of the euclidean score, in units of eps·(‖x‖² + max‖w‖²) per feature (see near_tie_tolerance).
_TOLERANCE_PER_FEATURE, _TOLERANCE_OFFSET = 8, 16
_TF32_EPS = 2.0**-10


def chunk_rows(n_neurons: int, itemsize: int, budget_bytes: int, device: torch.device | None = None) -> int:
    """Rows per chunk: the per-chunk (rows × M) buffers fit in ``budget_bytes`` (at least 1 row); on a CPU also
    cache-sized (see ``_CPU_TARGET_BYTES``)."""
    rows = max(1, int(budget_bytes) // (n_neurons * itemsize * _BUFFERS_PER_ROW))
    if device is not None and device.type == "cpu":
        rows = min(rows, max(_CPU_MIN_ROWS, _CPU_TARGET_BYTES // (n_neurons * itemsize)))
    return rows


def ranks_in_numpy(scores: torch.Tensor) -> bool:
    """Whether :func:`smallest_units` ranks ``scores`` with NumPy on the tensor's memory (CPU float tensors: NumPy's
    vectorised argmin/min run ~5× faster than torch's for these shapes, and its indexing costs less)."""
    return scores.device.type == "cpu" and scores.dtype in (torch.float32, torch.float64)


@contextmanager
def threads_for_work(multiply_adds: int, device: torch.device) -> Iterator[None]:
    """Run the block on one torch thread when a CPU search has fewer than ``SINGLE_THREAD_WORK`` multiply-adds."""
    previous = torch.get_num_threads()
    small = device.type == "cpu" and multiply_adds < SINGLE_THREAD_WORK and previous > 1
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(previous)


def near_tie_tolerance(x_sq: torch.Tensor, w_sq_max: torch.Tensor, n_features: int) -> torch.Tensor:
    """Bound on |score error of unit a| + |score error of unit b| + the exact formula's own error, per sample (B,).

    With u the unit roundoff, a D-term dot product errs by at most D·u·‖x‖‖w‖ ≤ D·u·(‖x‖² + ‖w‖²)/2, so the score
    ‖w‖² − 2x·w errs by at most (2D + 2)·u·S with S = ‖x‖² + max‖w‖², and Σ (x − w)² by (D + 2)·u·2S. Two units
    and both formulas: (8D + 12)·u·S; this returns (8D + 16)·eps·S (eps = 2u, a factor 2 of margin). TF32 products
    on CUDA use TF32's eps."""
    dtype = x_sq.dtype
    tf32 = x_sq.is_cuda and dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32
    eps = _TF32_EPS if tf32 else torch.finfo(dtype).eps
    return (_TOLERANCE_PER_FEATURE * n_features + _TOLERANCE_OFFSET) * eps * (x_sq + w_sq_max)


def smallest_units(chunk: torch.Tensor, W: torch.Tensor, scores: torch.Tensor, k: int, distance: "ActivationDistance",
                   tolerance: Optional[torch.Tensor]) -> torch.Tensor:
    """Flat indices of the k nearest units of every sample of ``chunk`` (B, D), nearest first: (B, k) int64.

    ``scores`` (B, M) ranks the units (overwritten). Without ``tolerance`` the scores are exact and ties go to the
    lowest index. With it (B,), a sample whose k + 1 best scores have a gap ≤ its tolerance is ranked again by
    ``distance.exact_pairs`` over every unit scoring within tolerance of its k-th best: by exact value, then index.
    On a CPU the ranking runs in NumPy on the tensors' memory (torch's advanced indexing costs several times more).
    """
    cpu = ranks_in_numpy(scores)
    xp = np if cpu else torch
    values_of = scores.numpy() if cpu else scores
    rows = xp.arange(scores.shape[0]) if cpu else torch.arange(scores.shape[0], device=scores.device)
    picks, values = [], []
    for _ in range(k):  # k argmin passes, each masking its pick: several times faster than topk on a CPU
        pick = values_of.argmin(axis=1) if cpu else values_of.argmin(dim=1)
        picks.append(pick)
        values.append(values_of[rows, pick])
        values_of[rows, pick] = float("inf")
    best = xp.stack(picks, 1)  # [B, k]
    if tolerance is not None:
        following = values_of.min(axis=1) if cpu else values_of.amin(dim=1)
        ladder = xp.stack(values + [following], 1)  # [B, k + 1], ascending
        gap = tolerance.numpy() if cpu else tolerance
        near = ((ladder[:, 1:] - ladder[:, :-1]) <= gap[:, None]).any(1)
        near_rows = np.flatnonzero(near) if cpu else torch.nonzero(near).squeeze(1)  # CUDA: one host sync per chunk
        if len(near_rows) and scores.dtype == torch.float32:
            best[near_rows] = _rescore_in_float64(chunk, W, near_rows, k, distance)
        elif len(near_rows):
            candidates = values_of[near_rows] <= (ladder[near_rows, k - 1] + gap[near_rows])[:, None]  # [R, M]
            best[near_rows] = _rerank(chunk, W, candidates, best, near_rows, k, distance)
    return torch.from_numpy(best) if cpu else best


def _rescore_in_float64(chunk: torch.Tensor, W: torch.Tensor, near_rows: Any, k: int, distance: "ActivationDistance") -> Any:
    """float32 near-ties: the rows' scores again in float64 (exact inputs, a 2⁻²⁹ smaller bound), so that only ties
    within float64 rounding reach the pairwise re-check, which then also runs in float64. (R, k) like ``near_rows``.

    A batch map with a wide neighbourhood can leave every sample a float32 near-tie (its units nearly equal); one
    float64 product of those rows costs far less than the pairwise re-check of all their candidates."""
    cpu = isinstance(near_rows, np.ndarray)
    X64, W64 = chunk[torch.from_numpy(near_rows) if cpu else near_rows].double(), W.double()
    w_sq = (W64 * W64).sum(1)
    scores = torch.addmm(w_sq, X64, W64.T, beta=1, alpha=-2)  # [R, M]
    tolerance = near_tie_tolerance((X64 * X64).sum(1), w_sq.max(), X64.shape[1])
    ranked = smallest_units(X64, W64, scores, k, distance, tolerance)
    return ranked.numpy() if cpu else ranked


def _rerank(chunk: torch.Tensor, W: torch.Tensor, candidates: Any, best: Any, near_rows: Any, k: int,
            distance: "ActivationDistance") -> Any:
    """The k nearest units of the near-tie rows by (exact value, index) among their candidates: (R, k).

    ``candidates`` (R, M) marks the units within tolerance other than the k picks ``best``; NumPy arrays on a CPU,
    tensors elsewhere."""
    cpu = isinstance(candidates, np.ndarray)
    n_near = len(near_rows)
    if cpu:
        position, unit = np.nonzero(candidates)
        position = np.concatenate([position, np.repeat(np.arange(n_near), k)])
        unit = np.concatenate([unit, best[near_rows].reshape(-1)])
        exact = distance.exact_pairs(chunk[torch.from_numpy(near_rows[position])], W[torch.from_numpy(unit)]).numpy()
        order = np.lexsort((unit, exact, position))  # by row, then exact value, then index
        counts = np.bincount(position, minlength=n_near)
        starts = np.cumsum(counts) - counts
        ranked = unit[order][starts[:, None] + np.arange(k)]
    else:
        others = torch.nonzero(candidates)  # [P, 2]: (near-row position, unit)
        position = torch.cat([others[:, 0], torch.arange(n_near, device=W.device).repeat_interleave(k)])
        unit = torch.cat([others[:, 1], best[near_rows].reshape(-1)])
        exact = distance.exact_pairs(chunk[near_rows[position]], W[unit])
        order = torch.argsort(unit, stable=True)  # lexicographic (row, exact value, unit) by three stable sorts
        order = order[torch.argsort(exact[order], stable=True)]
        order = order[torch.argsort(position[order], stable=True)]
        counts = torch.bincount(position, minlength=n_near)
        starts = torch.cumsum(counts, 0) - counts
        ranked = unit[order][starts[:, None] + torch.arange(k, device=W.device)]
    logger.debug("%d samples re-ranked with the exact distance", n_near)
    return ranked


def iter_chunks(n_rows: int, rows_per_chunk: int) -> Iterator[slice]:
    """Consecutive slices of at most ``rows_per_chunk`` rows covering ``range(n_rows)``."""
    for start in range(0, n_rows, rows_per_chunk):
        yield slice(start, min(start + rows_per_chunk, n_rows))


def _on(W: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
    """The chunk on the weights' device and dtype (a no-op when it is there already)."""
    return chunk.to(device=W.device, dtype=W.dtype, non_blocking=True)


class ChunkScorer:
    """Scores (B, M) of a chunk of samples against fixed weights W (M, D), written into one reused buffer.

    Euclidean scores are ‖w‖² − 2x·w, one ``torch.addmm`` into the buffer (reusing it roughly doubled the
    product's throughput on tall, thin chunks). The product stays in torch even on a CPU, where NumPy's OpenBLAS
    multiplies these shapes ~20% faster: alternating OpenBLAS's and torch's OpenMP thread pools in one loop made
    both spin against each other, and a 1,000,000 × 64 epoch took 33 s instead of 3.5 s on 2 cores.
    Other distances use ``ActivationDistance.scores``.
    """

    def __init__(self, W: torch.Tensor, distance: ActivationDistance, rows: int) -> None:
        self.W, self.distance = W, distance
        if distance.is_euclidean:
            self.w_sq = (W * W).sum(1)
            self.w_sq_max = self.w_sq.max()
            self.buffer = torch.empty((rows, W.shape[0]), dtype=W.dtype, device=W.device)

    def tolerance(self, chunk: torch.Tensor) -> Optional[torch.Tensor]:
        """Near-tie tolerance of each sample's scores (B,), or None where the scores are exact distances."""
        if not self.distance.is_euclidean:
            return None
        return near_tie_tolerance((chunk * chunk).sum(1), self.w_sq_max, chunk.shape[1])

    def __call__(self, chunk: torch.Tensor) -> torch.Tensor:
        """Scores of ``chunk`` (B ≤ rows, D) on W's device: (B, M), valid until the next call."""
        if self.distance.is_euclidean:
            return torch.addmm(self.w_sq, chunk, self.W.T, beta=1, alpha=-2, out=self.buffer[: chunk.shape[0]])
        return self.distance.scores(chunk, self.W, None)


def iter_nearest(X: torch.Tensor, W: torch.Tensor, distance: ActivationDistance, budget_bytes: int, k: int) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield ``(rows, chunk, nearest)`` per chunk of X: its slice, the chunk on W's device and the flat indices of
    its k nearest units (B, k) under the BMU rule (see :func:`smallest_units`). Small CPU searches run on one thread."""
    rows = min(chunk_rows(W.shape[0], W.element_size(), budget_bytes, W.device), max(1, X.shape[0]))
    with threads_for_work(X.shape[0] * W.shape[0] * W.shape[1], W.device):
        scorer = ChunkScorer(W, distance, rows)
        for part in iter_chunks(X.shape[0], rows):
            chunk = _on(W, X[part])
            yield part, chunk, smallest_units(chunk, W, scorer(chunk), k, distance, scorer.tolerance(chunk))


def iter_bmus(X: torch.Tensor, W: torch.Tensor, distance: ActivationDistance, budget_bytes: int) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield ``(rows, chunk, bmu)`` per chunk: the slice of X, the chunk on W's device, and its BMUs (flat, int64).

    X: (N, D), W: (M, D). The BMU rule: smallest exact distance, ties to the lowest flat index.
    """
    for part, chunk, nearest in iter_nearest(X, W, distance, budget_bytes, 1):
        yield part, chunk, nearest[:, 0]


def best_matching_units(X: torch.Tensor, W: torch.Tensor, distance: ActivationDistance, budget_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """Flat BMU index of every sample: (N,) int64 on W's device."""
    out = torch.empty(X.shape[0], dtype=torch.long, device=W.device)
    for part, _, bmu in iter_bmus(X, W, distance, budget_bytes):
        out[part] = bmu
    return out


def accumulate_by_bmu(X: torch.Tensor, W: torch.Tensor, distance: ActivationDistance, budget_bytes: int,
                      sums: torch.Tensor, counts: torch.Tensor) -> None:
    """Add each sample of X to ``sums`` (M, D) at its BMU and count it in ``counts`` (M,), in place (each in its own
    dtype: float64 sums of float32 samples, int64 counts, or W's dtype for both).

    ``index_add_`` counts the hits rather than ``bincount``: on CUDA bincount reads its input's maximum back to the
    host, a synchronisation per chunk that stalled a 1,000,000-row epoch at 2.5× its GPU time. The near-tie
    re-check of :func:`smallest_units` still reads back which rows are near-ties, once per chunk (not measured on a
    GPU yet; chunks there hold ~26,000 rows at 2,500 units).
    """
    ones = torch.ones(min(X.shape[0], chunk_rows(W.shape[0], W.element_size(), budget_bytes, W.device)), dtype=counts.dtype, device=W.device)
    for _, chunk, bmu in iter_bmus(X, W, distance, budget_bytes):
        sums.index_add_(0, bmu, chunk.to(sums.dtype))
        counts.index_add_(0, bmu, ones[: bmu.shape[0]])


def two_best_units(X: torch.Tensor, W: torch.Tensor, budget_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """Flat indices of the best and second-best euclidean units of every sample: (N, 2) int64."""
    if W.shape[0] < 2:
        raise ValueError("two best units need a map with at least 2 neurons")
    out = torch.empty((X.shape[0], 2), dtype=torch.long, device=W.device)
    for part, _, nearest in iter_nearest(X, W, ActivationDistance("euclidean"), budget_bytes, 2):
        out[part] = nearest
    return out
