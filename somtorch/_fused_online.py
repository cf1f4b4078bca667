"""A fused online-training kernel for CUDA, written in Triton: the whole run of T steps in one launch.

One program holds the (M, D) weights in registers and, per step, loads the sample, finds the euclidean BMU,
evaluates the neighbourhood from the neuron coordinates and updates the weights, all without leaving the kernel.
It computes exactly the update of :mod:`somtorch.online` (same formulas; the minimum image is
d − L·⌊d/L + ½⌋, which differs from round-half-even only where |d| = L/2 and so gives the same h).

Used for euclidean BMUs on maps whose M × D block fits in registers (``fits``); anything else runs the
CUDA-graph path. Importing this module needs Triton (shipped with CUDA builds of PyTorch).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .neighborhoods import MapNeighborhood

NEIGHBORHOOD_CODES = {"gaussian": 0, "mexican_hat": 1, "bubble": 2, "triangle": 3}
MAX_BLOCK_ELEMENTS = 16384  # padded M × D held in registers by one program of 8 warps


def block_shape(n_neurons: int, dim: int) -> tuple[int, int]:
    """Padded (BLOCK_M, BLOCK_D) powers of two covering (M, D)."""
    return triton.next_power_of_2(n_neurons), max(2, triton.next_power_of_2(dim))


def fits(n_neurons: int, dim: int) -> bool:
    """Whether the fused kernel can hold this map's weights in registers."""
    block_m, block_d = block_shape(n_neurons, dim)
    return block_m * block_d <= MAX_BLOCK_ELEMENTS


@triton.jit
def _minimum_image(d, period, PERIODIC: tl.constexpr):
    if PERIODIC:
        d = d - period * tl.floor(d / period + 0.5)
    return d


# Integer arguments are not specialised: Triton would otherwise compile a new variant whenever a count changes
# divisibility by 16 (a warm-up of 100 steps and a run of 10,000 compiled twice; the second compile cost 0.28 s).
@triton.jit(do_not_specialize=["n_steps", "n_neurons", "dim"])
def _online_kernel(
    w_ptr, x_ptr, order_ptr, eta_ptr, sigma_ptr, forced_ptr, pos_x_ptr, pos_y_ptr, period_ptr,
    n_steps, n_neurons, dim,
    NEIGHBORHOOD: tl.constexpr, PERIODIC: tl.constexpr, HAS_FORCED: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):
    m = tl.arange(0, BLOCK_M)
    k = tl.arange(0, BLOCK_D)
    m_ok = m < n_neurons
    k_ok = k < dim
    tile = m[:, None] * dim + k[None, :]
    tile_ok = m_ok[:, None] & k_ok[None, :]
    w = tl.load(w_ptr + tile, mask=tile_ok, other=0.0)  # [BLOCK_M, BLOCK_D]
    pos_x = tl.load(pos_x_ptr + m, mask=m_ok, other=0.0)  # coordinates, or grid indices for bubble/triangle
    pos_y = tl.load(pos_y_ptr + m, mask=m_ok, other=0.0)
    period_x = tl.load(period_ptr)  # periods in the weights' dtype: a Python float argument would arrive as fp32
    period_y = tl.load(period_ptr + 1)
    for t in range(n_steps):
        row = tl.load(order_ptr + t)
        x = tl.load(x_ptr + row * dim + k, mask=k_ok, other=0.0)  # [BLOCK_D]
        diff = x[None, :] - w
        dist = tl.where(m_ok, tl.sum(diff * diff, axis=1), float("inf"))
        c = tl.argmin(dist, axis=0)
        if HAS_FORCED:
            forced = tl.load(forced_ptr + t)
            c = tl.where(forced >= 0, forced, c)
        dx = _minimum_image(pos_x - tl.sum(tl.where(m == c, pos_x, 0.0), axis=0), period_x, PERIODIC)
        dy = _minimum_image(pos_y - tl.sum(tl.where(m == c, pos_y, 0.0), axis=0), period_y, PERIODIC)
        s = tl.load(sigma_ptr + t)
        eta = tl.load(eta_ptr + t)
        if NEIGHBORHOOD == 0:
            d = 2 * s * s
            h = tl.exp(-(dx * dx) / d) * tl.exp(-(dy * dy) / d)
        elif NEIGHBORHOOD == 1:
            d = 2 * s * s
            p = dx * dx + dy * dy
            h = tl.exp(-p / d) * (1 - 2 / d * p)
        elif NEIGHBORHOOD == 2:
            h = tl.where((tl.abs(dx) < s) & (tl.abs(dy) < s), 1.0, 0.0)
        else:
            h = tl.maximum(s - tl.abs(dx), 0.0) * tl.maximum(s - tl.abs(dy), 0.0)
        w = w + (h * eta)[:, None] * diff
    tl.store(w_ptr + tile, w, mask=tile_ok)


def train_online_fused(
    weights: torch.Tensor,
    data: torch.Tensor,
    order: torch.Tensor,
    eta: torch.Tensor,
    sigma: torch.Tensor,
    neighborhood: MapNeighborhood,
    forced_winners: Optional[torch.Tensor] = None,
) -> None:
    """T euclidean online steps in place on ``weights`` (M, D) in one kernel launch (see module doc)."""
    tables = neighborhood.tables
    n_neurons, dim = weights.shape
    block_m, block_d = block_shape(n_neurons, dim)
    by_index = neighborhood.neighborhood.uses_grid_index
    pos_x = (tables.index_i if by_index else tables.coord_x).to(weights.dtype).contiguous()
    pos_y = (tables.index_j if by_index else tables.coord_y).to(weights.dtype).contiguous()
    period = (float(tables.x), float(tables.y)) if by_index else (tables.period or (1.0, 1.0))
    periods = torch.tensor(period, dtype=weights.dtype, device=weights.device)
    _online_kernel[(1,)](
        weights, data.contiguous(), order, eta.to(weights.dtype), sigma.to(weights.dtype),
        forced_winners if forced_winners is not None else order, pos_x, pos_y, periods,
        int(order.shape[0]), n_neurons, dim,
        NEIGHBORHOOD=NEIGHBORHOOD_CODES[neighborhood.neighborhood.name], PERIODIC=tables.period is not None,
        HAS_FORCED=forced_winners is not None, BLOCK_M=block_m, BLOCK_D=block_d,
        num_warps=4 if block_m * block_d <= 4096 else 8,
    )
