"""A fused BMU search for batch epochs on CUDA, written in Triton: scores, argmin and runner-up in one pass.

Per block of BLOCK_N rows, one program walks the neurons BLOCK_M at a time. For each tile it forms the euclidean
score ‖w‖² − 2x·w (``tl.dot`` over D in BLOCK_K slices) and folds the tile into a running (best value, best index,
second-best value) per row, exact ties to the LOWEST index (tiles are visited in index order and only a strictly
smaller score replaces the best). The N × M score matrix is never written: the kernel returns the BMU (N,) and the
gap second − best (N,).

The rule of :mod:`somtorch.bmu` is then applied as it is there: a row whose gap is ≤ ``bmu.near_tie_tolerance``
(the same bound, TF32's eps where TF32 products are allowed) may be misranked by rounding, so those rows alone are
decided again by ``bmu.best_matching_units`` (exact distance, then the lowest index). Every BMU therefore equals
the one of :func:`somtorch.bmu.best_matching_units`. The per-BMU sums (float64) and counts (int64) are then added
with ``index_add_``, as :func:`somtorch.bmu.accumulate_by_bmu` does.

float32 products are exact float32 (``"ieee"``, CUDA cores) by default. ``FP32_PRODUCTS = "tf32x3"`` (initially the
environment variable ``SOMTORCH_FUSED_FP32_PRODUCTS``) runs them on the tensor cores as three TF32 products
(x_hi·w_hi + x_hi·w_lo + x_lo·w_hi); each term then errs by up to about 3·2⁻²⁰·|x_d w_d| (TF32 truncates), several
times float32's rounding, so the near-tie tolerance is widened by ``TF32X3_TOLERANCE_FACTOR`` and more rows go to the
exact re-check. Where ``torch.backends.cuda.matmul.allow_tf32`` is set, the products are plain TF32, as in bmu.py.

Importing this module needs Triton (shipped with CUDA builds of PyTorch). Under Triton's interpreter
(``TRITON_INTERPRET=1`` set before Triton is imported) the same kernel runs on CPU tensors, which is how the CPU
tests check it.
"""
from __future__ import annotations

import logging
import os

import torch
import triton
import triton.language as tl

from . import bmu as bmu_search
from .distances import ActivationDistance

logger = logging.getLogger(__name__)

DTYPES = (torch.float32, torch.float64)
FP32_PRODUCT_CHOICES = ("ieee", "tf32x3")
FP32_PRODUCTS = os.environ.get("SOMTORCH_FUSED_FP32_PRODUCTS", "ieee")
# tf32x3 (u = 2⁻²⁴, S = ‖x‖² + max‖w‖²): two scores and the exact re-check err by up to about (100 + 10D)·u·S, within
# 8 × the float32 bound (16D + 32)·u·S for every D, with room for the tensor cores' truncating accumulation
TF32X3_TOLERANCE_FACTOR = 8
MIN_DOT = 16  # tl.dot needs every block dimension ≥ 16
MAX_BLOCK_K = 64
# Tile shapes timed on the first call for each (map size, feature count, dtype); float64 tiles are smaller (twice the
# registers per value). Not tuned on hardware yet: benchmarks/gpu_check.sh times the chosen one against cuBLAS.
_CONFIGS = {
    torch.float32: [triton.Config({"BLOCK_N": n, "BLOCK_M": m}, num_warps=w, num_stages=s)
                    for n, m, w, s in ((64, 64, 4, 3), (128, 64, 4, 3), (128, 128, 8, 3), (64, 128, 4, 2))],
    torch.float64: [triton.Config({"BLOCK_N": n, "BLOCK_M": m}, num_warps=w, num_stages=s)
                    for n, m, w, s in ((32, 32, 4, 2), (64, 32, 4, 2))],
}
_INTERPRETER_BLOCKS = {"BLOCK_N": 32, "BLOCK_M": 32}  # CPU tensors run under the interpreter: one fixed tile


@triton.jit
def _tile_product(x_ptr, w_ptr, rows, row_ok, units, unit_ok, ks, dim, product, PRECISION: tl.constexpr,
                  BLOCK_K: tl.constexpr):
    """product + X[rows]·W[units]ᵀ over every feature, BLOCK_K features at a time: [BLOCK_N, BLOCK_M]."""
    for k0 in range(0, dim, BLOCK_K):
        k = k0 + ks
        k_ok = k < dim
        x = tl.load(x_ptr + rows[:, None] * dim + k[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        w = tl.load(w_ptr + units[None, :] * dim + k[:, None], mask=unit_ok[None, :] & k_ok[:, None], other=0.0)
        product = tl.dot(x, w, product, input_precision=PRECISION)
    return product


@triton.jit(do_not_specialize=["n_rows", "n_neurons", "dim"])
def _two_best_kernel(
    x_ptr, w_ptr, w_sq_ptr, bmu_ptr, gap_ptr,
    n_rows, n_neurons, dim,
    PRECISION: tl.constexpr, ONE_SLICE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n_rows
    tile_units = tl.arange(0, BLOCK_M)
    ks = tl.arange(0, BLOCK_K)
    value_type = w_sq_ptr.dtype.element_ty
    best = tl.full((BLOCK_N,), float("inf"), value_type)
    second = tl.full((BLOCK_N,), float("inf"), value_type)
    best_unit = tl.zeros((BLOCK_N,), dtype=tl.int32)
    if ONE_SLICE:  # every feature fits one slice: the rows' tile is loaded once, not once per unit tile
        x = tl.load(x_ptr + rows[:, None] * dim + ks[None, :], mask=row_ok[:, None] & (ks < dim)[None, :], other=0.0)
    for start in range(0, n_neurons, BLOCK_M):
        units = start + tile_units
        unit_ok = units < n_neurons
        product = tl.zeros((BLOCK_N, BLOCK_M), dtype=value_type)  # x·w
        if ONE_SLICE:
            w = tl.load(w_ptr + units[None, :] * dim + ks[:, None], mask=unit_ok[None, :] & (ks < dim)[:, None], other=0.0)
            product = tl.dot(x, w, product, input_precision=PRECISION)
        else:
            product = _tile_product(x_ptr, w_ptr, rows, row_ok, units, unit_ok, ks, dim, product, PRECISION, BLOCK_K)
        w_sq = tl.load(w_sq_ptr + units, mask=unit_ok, other=float("inf"))  # padded units score +inf
        scores = w_sq[None, :] - 2.0 * product  # [BLOCK_N, BLOCK_M]
        tile_best, tile_pick = tl.min(scores, axis=1, return_indices=True, return_indices_tie_break_left=True)
        tile_second = tl.min(tl.where(tile_units[None, :] == tile_pick[:, None], float("inf"), scores), axis=1)
        # the two smallest of {best, second, tile_best, tile_second}; a tie with an earlier tile keeps the earlier unit
        second = tl.minimum(tl.maximum(best, tile_best), tl.minimum(second, tile_second))
        best_unit = tl.where(tile_best < best, start + tile_pick, best_unit)
        best = tl.minimum(best, tile_best)
    tl.store(bmu_ptr + rows, best_unit.to(tl.int64), mask=row_ok)
    tl.store(gap_ptr + rows, second - best, mask=row_ok)


_tuned_two_best_kernel = {
    dtype: triton.autotune(configs=configs, key=["n_neurons", "dim"])(_two_best_kernel) for dtype, configs in _CONFIGS.items()
}


def supports(W: torch.Tensor, distance: ActivationDistance) -> bool:
    """Whether the fused search computes this map's BMUs: euclidean distance and float32/float64 weights."""
    return distance.is_euclidean and W.dtype in DTYPES


def product_precision(W: torch.Tensor) -> str:
    """``tl.dot``'s input precision for these weights: ``tf32`` under the condition of
    :func:`somtorch.bmu.near_tie_tolerance` (CUDA float32 with ``torch.backends.cuda.matmul.allow_tf32``, so the
    tolerance matches the scores), else ``FP32_PRODUCTS`` for float32 and ``ieee`` for float64."""
    if FP32_PRODUCTS not in FP32_PRODUCT_CHOICES:
        raise ValueError(f"FP32_PRODUCTS={FP32_PRODUCTS!r} (or SOMTORCH_FUSED_FP32_PRODUCTS) is not supported; "
                         f"choose one of {list(FP32_PRODUCT_CHOICES)}")
    if W.dtype != torch.float32:
        return "ieee"
    if W.is_cuda and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return FP32_PRODUCTS


def near_tie_tolerance(X: torch.Tensor, w_sq: torch.Tensor, precision: str) -> torch.Tensor:
    """Per row of X (N, D): :func:`somtorch.bmu.near_tie_tolerance` of its scores, times
    ``TF32X3_TOLERANCE_FACTOR`` for ``tf32x3`` products."""
    tolerance = bmu_search.near_tie_tolerance((X * X).sum(1), w_sq.max(), X.shape[1])
    return tolerance * TF32X3_TOLERANCE_FACTOR if precision == "tf32x3" else tolerance


def two_best_gap(X: torch.Tensor, W: torch.Tensor, w_sq: torch.Tensor, precision: str = "ieee") -> tuple[torch.Tensor, torch.Tensor]:
    """Best unit by score (N,) int64 (exact ties to the lowest index) and the gap second-best − best score (N,)
    (+inf on a one-unit map), for X (N, D) and W (M, D) of one dtype on one device, ``w_sq`` = ‖w‖² (M,), with
    ``precision`` the products' ``tl.dot`` input precision (see :func:`product_precision`)."""
    X, W = X.contiguous(), W.contiguous()
    n_rows, dim = X.shape
    bmu = torch.empty(n_rows, dtype=torch.int64, device=X.device)
    gap = torch.empty(n_rows, dtype=X.dtype, device=X.device)
    if n_rows == 0:
        return bmu, gap
    block_k = max(MIN_DOT, min(MAX_BLOCK_K, triton.next_power_of_2(dim)))
    arguments = (X, W, w_sq.contiguous(), bmu, gap, n_rows, W.shape[0], dim)
    if X.is_cuda:
        grid = lambda meta: (triton.cdiv(n_rows, meta["BLOCK_N"]),)  # noqa: E731 (Triton's grid idiom)
        _tuned_two_best_kernel[X.dtype][grid](*arguments, PRECISION=precision, ONE_SLICE=dim <= block_k, BLOCK_K=block_k)
    else:
        grid = (triton.cdiv(n_rows, _INTERPRETER_BLOCKS["BLOCK_N"]),)
        _two_best_kernel[grid](*arguments, PRECISION=precision, ONE_SLICE=dim <= block_k, BLOCK_K=block_k,
                               **_INTERPRETER_BLOCKS)
    return bmu, gap


def block_rows(dim: int, budget_bytes: int) -> int:
    """Rows per launch: the block's float64 copy for the sums, (rows, D) doubles, fits in ``budget_bytes``."""
    return max(1, int(budget_bytes) // (dim * 8))


def best_matching_units(X: torch.Tensor, W: torch.Tensor, distance: ActivationDistance, w_sq: torch.Tensor,
                        budget_bytes: int) -> torch.Tensor:
    """Flat BMU of every row of X (N, D) under the rule of :mod:`somtorch.bmu`: (N,) int64 on W's device.

    Rows whose best-vs-second score gap is ≤ the near-tie tolerance (:func:`near_tie_tolerance`) are decided again
    by ``bmu.best_matching_units`` (exact distance, ties to the lowest index); the others keep the kernel's pick.
    """
    precision = product_precision(W)
    bmu, gap = two_best_gap(X, W, w_sq, precision)
    near = torch.nonzero(gap <= near_tie_tolerance(X, w_sq, precision)).squeeze(1)  # CUDA: one host sync per block
    if near.numel():
        bmu[near] = bmu_search.best_matching_units(X[near], W, distance, budget_bytes)
        logger.debug("%d of %d rows re-decided by the exact search", near.numel(), X.shape[0])
    return bmu


def accumulate_by_bmu(X: torch.Tensor, W: torch.Tensor, distance: ActivationDistance, budget_bytes: int,
                      sums: torch.Tensor, counts: torch.Tensor) -> None:
    """Add each row of X (N, D) to ``sums`` (M, D) at its BMU and count it in ``counts`` (M,), in place: the same
    result as :func:`somtorch.bmu.accumulate_by_bmu` (S_k = Σ_{n: c_n = k} x_n in ``sums``' dtype, c_k = #{n: c_n = k}).

    X is processed ``block_rows(D, budget_bytes)`` rows per launch, each block moved to W's device and dtype."""
    if not supports(W, distance):
        raise ValueError(f"the fused BMU search needs the euclidean distance and float32/float64 weights; got "
                         f"activation_distance={distance.name!r}, dtype={W.dtype} (choose one of {list(DTYPES)})")
    w_sq = (W * W).sum(1)
    rows = min(block_rows(W.shape[1], budget_bytes), max(1, X.shape[0]))
    ones = torch.ones(rows, dtype=counts.dtype, device=W.device)
    for part in bmu_search.iter_chunks(X.shape[0], rows):
        block = X[part].to(device=W.device, dtype=W.dtype, non_blocking=True)
        bmu = best_matching_units(block, W, distance, w_sq, budget_bytes)
        sums.index_add_(0, bmu, block.to(sums.dtype))
        counts.index_add_(0, bmu, ones[: bmu.shape[0]])
