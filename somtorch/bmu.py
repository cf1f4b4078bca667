"""Best-matching-unit search in memory-bounded chunks.

No function here builds an N × M (samples × neurons) matrix: samples are processed ``rows`` at a time, where
``rows`` comes from a byte budget, so peak memory is O(rows · M) whatever N is. Chunks that live on another
device than the weights (host data streamed to a GPU) are copied one at a time. On a CPU the chunks are searched
on somtorch's worker threads (:mod:`somtorch.threads`), each with its own buffers, and come back in order.

One rule decides every BMU: the unit with the smallest distance, and among exact ties the lowest flat index. The
euclidean search ranks units by the product-based score ‖w‖² − 2x·w, whose rounding error can reorder units
that are (nearly) equally far. So every sample whose best candidates lie within :func:`near_tie_tolerance` of each
other is decided again from the distance's exact formula (``distance.exact_pairs``, e.g. Σ (x − w)²) over the
units inside that tolerance, ties to the lowest index. The re-check touches only those samples.
"""
from __future__ import annotations

import logging
import copy
from typing import Any, Callable, Iterator, Optional, TypeVar

import numpy as np
import torch

from . import threads
from .distances import ActivationDistance

logger = logging.getLogger(__name__)

Result = TypeVar("Result")

DEFAULT_CHUNK_BYTES = 512 * 2**20  # on a CPU the cache-sized cap below applies first
# Per sample row a chunk holds: the (rows, M) score buffer, plus argmin/topk temporaries of about the same size.
_BUFFERS_PER_ROW = 2
# On a CPU each worker (see somtorch.threads) reuses one score buffer of about _CPU_TARGET_BYTES. Each chunk costs
# ~30 Python-level calls (product, two row scans, the near-tie check), and the workers contend for the GIL on every
# one of them, so bigger chunks parallelise better; cache misses cost less than that. 100,000 × 32 on 900 trained
# neurons, 2-core Xeon VM, one pass at 1 / 2 workers: 1 MiB 140 / 215 ms, 4 MiB 117 / 75 ms, 16 MiB 103 / 55 ms
# (NumPy's product + argmin at 2 threads: 65 ms). Never fewer than _CPU_MIN_ROWS rows, so that the product stays
# efficient on maps with tens of thousands of neurons.
_CPU_TARGET_BYTES = 16 * 2**20
_CPU_MIN_ROWS = 64
# Rounding bound of the euclidean score, in units of eps·(‖x‖² + max‖w‖²) per feature (see near_tie_tolerance).
_TOLERANCE_PER_FEATURE, _TOLERANCE_OFFSET = 8, 16
_SCORES_ONLY = (4, 8)  # the same when the exact formula runs in float64 (float32 scores): two scores' errors alone
_TF32_EPS = 2.0**-10
# float32 near-ties are decided pairwise (candidate units only) unless their candidates exceed 1/_PAIRS_PER_PRODUCT of
# the rows' (R × M) scores; then one float64 product of the rows costs less. After one epoch of a 50 × 50 batch map on
# blob data, 74% of the samples were near-ties with 23 candidates each (of 2,500).
_PAIRS_PER_PRODUCT = 16
# Near-tie rows below 1/_NEAR_ROWS_GATHERED of a chunk are gathered before their units within tolerance are looked
# up; above it one comparison over the whole chunk costs less than the gather.
_NEAR_ROWS_GATHERED = 4


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


def near_tie_tolerance(x_sq: torch.Tensor, w_sq_max: torch.Tensor, n_features: int,
                       decided_in_float64: bool = False) -> torch.Tensor:
    """Bound on |score error of unit a| + |score error of unit b| + the exact formula's own error, per sample (B,).

    With u the unit roundoff, a D-term dot product errs by at most D·u·‖x‖‖w‖ ≤ D·u·(‖x‖² + ‖w‖²)/2, so the score
    ‖w‖² − 2x·w errs by at most (2D + 2)·u·S with S = ‖x‖² + max‖w‖², and Σ (x − w)² by (D + 2)·u·2S. Two units
    and both formulas: (8D + 12)·u·S; this returns (8D + 16)·eps·S (eps = 2u, a factor 2 of margin). Where the
    near-ties are ``decided_in_float64`` (float32 scores), the exact formula's error is float64's, negligible: two
    scores err by (4D + 4)·u·S, and this returns (4D + 8)·eps·S. TF32 products on CUDA use TF32's eps."""
    dtype = x_sq.dtype
    tf32 = x_sq.is_cuda and dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32
    eps = _TF32_EPS if tf32 else torch.finfo(dtype).eps
    per_feature, offset = _SCORES_ONLY if decided_in_float64 else (_TOLERANCE_PER_FEATURE, _TOLERANCE_OFFSET)
    return (per_feature * n_features + offset) * eps * (x_sq + w_sq_max)


def smallest_units(chunk: torch.Tensor, scores: torch.Tensor, k: int, scorer: "ChunkScorer") -> torch.Tensor:
    """Flat indices of the k nearest units of every sample of ``chunk`` (B, D), nearest first: (B, k) int64.

    ``scores`` (B, M) = ``scorer(chunk)`` ranks the units (overwritten). Where the scores are exact distances
    (``scorer.tolerance`` is None) ties go to the lowest index. Otherwise a sample whose k + 1 best scores have a gap
    ≤ its tolerance is ranked again by ``distance.exact_pairs`` over every unit scoring within tolerance of its k-th
    best: by exact value, then index (float32 scores are first computed again in float64, see
    :func:`_rescore_in_float64`). On a CPU the ranking runs in NumPy on the tensors' memory (torch's advanced
    indexing costs several times more).
    """
    tolerance = scorer.tolerance(chunk)
    cpu = ranks_in_numpy(scores)
    if cpu and k == 1 and tolerance is not None:
        return torch.from_numpy(_nearest_in_numpy(chunk, scores.numpy(), tolerance.numpy(), scorer))[:, None]
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
        if len(near_rows):
            candidates = values_of[near_rows] <= (ladder[near_rows, k - 1] + gap[near_rows])[:, None]  # [R, M]
            if cpu:  # flat indices: NumPy's 2-D nonzero is several times slower
                position, unit = np.divmod(np.flatnonzero(candidates), candidates.shape[1])
            else:
                position, unit = torch.nonzero(candidates).unbind(1)
            single = scores.dtype == torch.float32
            if single and len(unit) * _PAIRS_PER_PRODUCT > candidates.shape[0] * candidates.shape[1]:
                best[near_rows] = _rescore_in_float64(chunk, near_rows, k, scorer)
            else:  # float32 candidates are decided in float64, as the rescoring would
                exact_W = scorer.float64_twin().W if single else scorer.W
                best[near_rows] = _rerank(chunk, exact_W, (position, unit), best, near_rows, k, scorer.distance)
    return torch.from_numpy(best) if cpu else best


def _nearest_in_numpy(chunk: torch.Tensor, values: np.ndarray, gap: np.ndarray, scorer: "ChunkScorer") -> np.ndarray:
    """The BMU (B,) int64 of each row of ``values`` (B, M) scores with near-tie tolerances ``gap`` (B,): the k = 1
    case of :func:`smallest_units` on a CPU.

    A row is a near-tie when a second unit scores within ``gap`` of its best (an argmin and a masked min pass). The
    units within tolerance of the near-tie rows are then found by one comparison, over those rows when they are few
    and over the whole chunk (no gather) when they are many, and decided by the exact distance (float64 for float32
    scores), then the lowest index; flat indices list them by row and ascending unit."""
    n, m = values.shape
    rows = np.arange(n)
    pick = values.argmin(axis=1)
    best = values[rows, pick]
    values[rows, pick] = np.inf
    threshold = best + gap
    near = values.min(axis=1) <= threshold
    values[rows, pick] = best
    near_rows = np.flatnonzero(near)
    if not len(near_rows):
        return pick
    if len(near_rows) * _NEAR_ROWS_GATHERED < n:
        within = values[near_rows] <= threshold[near_rows][:, None]
        position, unit = np.divmod(np.flatnonzero(within), m)  # position among the near-tie rows
    else:
        within = np.less_equal(values, threshold[:, None], out=scorer.mask(n))
        position, unit = np.divmod(np.flatnonzero(within), m)
        keep = near[position]
        position, unit = (np.cumsum(near) - 1)[position[keep]], unit[keep]
    single = values.dtype == np.float32
    if single and len(unit) * _PAIRS_PER_PRODUCT > len(near_rows) * m:
        pick[near_rows] = _rescore_in_float64(chunk, near_rows, 1, scorer)[:, 0]
        return pick
    exact_W = scorer.float64_twin().W if single else scorer.W
    near_samples = chunk[torch.from_numpy(near_rows)].to(exact_W.dtype)  # converted once per row, not per pair
    exact = scorer.distance.exact_pairs(near_samples[torch.from_numpy(position)], exact_W[torch.from_numpy(unit)]).numpy()
    starts = np.flatnonzero(np.r_[True, position[1:] != position[:-1]])  # one run of pairs per near-tie row
    lowest = np.repeat(np.minimum.reduceat(exact, starts), np.diff(np.r_[starts, len(exact)]))
    at_lowest = np.flatnonzero(exact == lowest)
    first = np.r_[True, position[at_lowest[1:]] != position[at_lowest[:-1]]]  # the lowest unit of each row's minima
    pick[near_rows] = unit[at_lowest[first]]
    return pick


def _rescore_in_float64(chunk: torch.Tensor, near_rows: Any, k: int, scorer: "ChunkScorer") -> Any:
    """float32 near-ties with many candidates: the rows' scores again in float64 (exact inputs, a 2⁻²⁹ smaller
    bound), so that only ties within float64 rounding reach the pairwise re-check, which then also runs in float64.
    (R, k) like ``near_rows``. The same units as the pairwise re-check of all float32 candidates in float64: a unit
    outside the float64 tolerance cannot be nearer by the exact formula.

    A batch map with a wide neighbourhood can leave samples near-ties among hundreds of nearly equal units; one
    float64 product of those rows then costs less than the pairwise re-check of all their candidates."""
    cpu = isinstance(near_rows, np.ndarray)
    X64 = chunk[torch.from_numpy(near_rows) if cpu else near_rows].double()
    twin = scorer.float64_twin()
    ranked = smallest_units(X64, twin(X64), k, twin)
    return ranked.numpy() if cpu else ranked


def _rerank(chunk: torch.Tensor, W: torch.Tensor, candidates: tuple[Any, Any], best: Any, near_rows: Any, k: int,
            distance: "ActivationDistance") -> Any:
    """The k nearest units of the near-tie rows by (exact value, index) among their candidates: (R, k).

    ``candidates`` (position among the near rows, unit) pairs the units within tolerance other than the k picks
    ``best``; NumPy arrays on a CPU, tensors elsewhere. The exact values are computed in W's dtype (float64 weights
    decide float32 chunks)."""
    cpu = isinstance(best, np.ndarray)
    n_near = len(near_rows)
    position, unit = candidates
    if cpu:
        position = np.concatenate([position, np.repeat(np.arange(n_near), k)])
        unit = np.concatenate([unit, best[near_rows].reshape(-1)])
        near_samples = chunk[torch.from_numpy(near_rows)].to(W.dtype)  # converted once per row, not per pair
        exact = distance.exact_pairs(near_samples[torch.from_numpy(position)], W[torch.from_numpy(unit)]).numpy()
        order = np.lexsort((unit, exact, position))  # by row, then exact value, then index
        counts = np.bincount(position, minlength=n_near)
        starts = np.cumsum(counts) - counts
        ranked = unit[order][starts[:, None] + np.arange(k)]
    else:
        position = torch.cat([position, torch.arange(n_near, device=W.device).repeat_interleave(k)])
        unit = torch.cat([unit, best[near_rows].reshape(-1)])
        exact = distance.exact_pairs(chunk[near_rows].to(W.dtype)[position], W[unit])
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
    Other distances use ``ActivationDistance.scores``. ``rows`` = 0 makes no buffer (see :meth:`with_buffer`).
    """

    def __init__(self, W: torch.Tensor, distance: ActivationDistance, rows: int) -> None:
        self.W, self.distance = W, distance
        if distance.is_euclidean:
            self.w_sq = (W * W).sum(1)
            self.w_sq_max = self.w_sq.max()
            self.buffer = torch.empty((rows, W.shape[0]), dtype=W.dtype, device=W.device)
        self._twin: Optional[ChunkScorer] = None
        self._mask: Optional[np.ndarray] = None

    def float64_twin(self) -> "ChunkScorer":
        """This scorer on a float64 copy of W (the near-tie rescoring of float32 scores), made on first use."""
        if self._twin is None:
            self._twin = ChunkScorer(self.W.double(), self.distance, 0)
        return self._twin

    def with_buffer(self, rows: int) -> "ChunkScorer":
        """A scorer sharing this one's weights and norms, with its own buffers of ``rows`` rows (one per worker)."""
        own = copy.copy(self)
        if self.distance.is_euclidean:
            own.buffer = torch.empty((rows, self.W.shape[0]), dtype=self.W.dtype, device=self.W.device)
        own._mask = None
        return own

    def mask(self, rows: int) -> np.ndarray:
        """A reused (rows, M) bool scratch array of this scorer (a fresh 4 MiB array per chunk cost its page faults)."""
        if self._mask is None or self._mask.shape[0] < rows:
            self._mask = np.empty((rows, self.W.shape[0]), dtype=bool)
        return self._mask[:rows]

    def tolerance(self, chunk: torch.Tensor) -> Optional[torch.Tensor]:
        """Near-tie tolerance of each sample's scores (B,), or None where the scores are exact distances."""
        if not self.distance.is_euclidean:
            return None
        single = chunk.dtype == torch.float32  # float32 near-ties are decided in float64
        return near_tie_tolerance((chunk * chunk).sum(1), self.w_sq_max, chunk.shape[1], decided_in_float64=single)

    def __call__(self, chunk: torch.Tensor) -> torch.Tensor:
        """Scores of ``chunk`` (B, D) on W's device: (B, M), in the buffer (valid until the next call) when B ≤ rows."""
        if self.distance.is_euclidean and chunk.shape[0] > self.buffer.shape[0]:
            return torch.addmm(self.w_sq, chunk, self.W.T, beta=1, alpha=-2)
        if self.distance.is_euclidean:
            return torch.addmm(self.w_sq, chunk, self.W.T, beta=1, alpha=-2, out=self.buffer[: chunk.shape[0]])
        return self.distance.scores(chunk, self.W, None)


def map_nearest(X: torch.Tensor, W: torch.Tensor, distance: ActivationDistance, budget_bytes: int, k: int,
                then: Callable[[torch.Tensor, torch.Tensor], Result]) -> Iterator[tuple[slice, Result]]:
    """Yield ``(rows, then(chunk, nearest))`` per chunk of X, in order: its slice and ``then`` of the chunk on W's
    device with the flat indices of its k nearest units (B, k) under the BMU rule (see :func:`smallest_units`).

    On a CPU the chunks are searched, and ``then`` runs, on :func:`somtorch.threads.ordered_map`'s workers, while
    the caller's own torch calls between two chunks run on one thread (see :mod:`somtorch.threads`); small searches
    run on the caller alone, also on one thread."""
    n = X.shape[0]
    workers = threads.workers_for(n * W.shape[0] * W.shape[1], W.device)
    rows = min(chunk_rows(W.shape[0], W.element_size(), budget_bytes, W.device), max(1, n))
    if workers > 1:
        rows = min(rows, -(-n // workers))  # at least one chunk per worker
    scorer = ChunkScorer(W, distance, 0)

    def search(part: slice, own: ChunkScorer) -> tuple[slice, Result]:
        chunk = _on(W, X[part])
        return part, then(chunk, smallest_units(chunk, own(chunk), k, own))

    with threads.single_threaded_on_cpu(W.device):
        yield from threads.ordered_map(search, iter_chunks(n, rows), workers, lambda: scorer.with_buffer(rows))


def iter_nearest(X: torch.Tensor, W: torch.Tensor, distance: ActivationDistance, budget_bytes: int, k: int) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield ``(rows, chunk, nearest)`` per chunk of X (see :func:`map_nearest`)."""
    for part, (chunk, nearest) in map_nearest(X, W, distance, budget_bytes, k, lambda chunk, nearest: (chunk, nearest)):
        yield part, chunk, nearest


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

    def in_sums_dtype(chunk: torch.Tensor, nearest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return chunk.to(sums.dtype), nearest[:, 0]  # the conversion runs on the workers

    for _, (chunk, bmu) in map_nearest(X, W, distance, budget_bytes, 1, in_sums_dtype):
        sums.index_add_(0, bmu, chunk)
        counts.index_add_(0, bmu, ones[: bmu.shape[0]])


def two_best_units(X: torch.Tensor, W: torch.Tensor, budget_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """Flat indices of the best and second-best euclidean units of every sample: (N, 2) int64."""
    if W.shape[0] < 2:
        raise ValueError("two best units need a map with at least 2 neurons")
    out = torch.empty((X.shape[0], 2), dtype=torch.long, device=W.device)
    for part, _, nearest in iter_nearest(X, W, ActivationDistance("euclidean"), budget_bytes, 2):
        out[part] = nearest
    return out
