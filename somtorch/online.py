"""Online (single-sample) SOM updates: W ← W + η_t·h(c_t, ·; s_t)·(x_t − W) for t = 0 … T−1.

Two kernels run the same arithmetic:

* :func:`train_online_numpy`, for CPU weights. Per step it issues about a dozen NumPy calls on the tensor's own
  memory; at MiniSom-sized maps torch's per-operator dispatch (~4 µs) would cost more than the arithmetic.
* :func:`train_online_torch`, for CUDA weights. Every per-step quantity (sample index, η, σ, step counter) lives in
  device tensors, so no step synchronises with the host. Euclidean BMUs on maps that fit in registers run the fused
  Triton kernel of :mod:`somtorch._fused_online` (one launch per block of steps); otherwise the steps are captured
  in CUDA graphs and replayed.

The step schedule (sample order, η_t, σ_t, optional forced winners) is computed up front by the caller.
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .distances import ActivationDistance
from .neighborhoods import MapNeighborhood

logger = logging.getLogger(__name__)

PROGRESS_BLOCK = 1000  # steps between progress-bar updates
GRAPH_STEPS = 64  # steps captured per CUDA graph
FUSED_STEPS = 1 << 16  # steps per launch of the fused kernel


def train_online_numpy(
    weights: np.ndarray,
    data: np.ndarray,
    order: np.ndarray,
    eta: np.ndarray,
    sigma: np.ndarray,
    neighborhood: MapNeighborhood,
    distance: ActivationDistance,
    forced_winners: Optional[np.ndarray] = None,
    progress: Optional[tqdm] = None,
) -> None:
    """Run T online steps in place on ``weights`` (M, D), a NumPy view of the CPU weight tensor.

    data: (N, D); order: (T,) sample index per step; eta, sigma: (T,) float64; forced_winners: (T,) flat neuron
    index per step or −1 for "use the BMU" (MiniSom's ``fixed_points``). Tables in ``neighborhood`` are NumPy.

    The loop works on a transposed copy (D, M): broadcasting the sample down columns and h along rows then runs
    NumPy's long contiguous inner loops (M elements) instead of M short ones (D elements), ~10% faster per step.
    """
    separable = neighborhood.separable
    euclidean = distance.is_euclidean
    eta_steps, sigma_steps = eta.tolist(), sigma.tolist()  # Python floats: cheaper scalar arithmetic per step
    columns = np.ascontiguousarray(weights.T)  # [D, M]
    diff = np.empty_like(columns)  # reused every step
    squares = np.empty_like(columns)
    ones = np.ones(columns.shape[0], dtype=columns.dtype)  # column sums as one BLAS vector-matrix product
    for t in range(len(order)):
        x = data[order[t]]
        np.subtract(x[:, None], columns, out=diff)
        if forced_winners is not None and forced_winners[t] >= 0:
            c = int(forced_winners[t])
        elif euclidean:
            np.multiply(diff, diff, out=squares)
            c = int((ones @ squares).argmin())
        else:
            c = int(distance.single_numpy(x, columns.T).argmin())
        if separable:
            hx, hy = neighborhood.axis_factors(c, sigma_steps[t])
            g = np.multiply.outer(hx, hy).reshape(-1)
        else:
            g = neighborhood.dense(c, sigma_steps[t])
        g *= eta_steps[t]
        np.multiply(g, diff, out=diff)
        columns += diff
        if progress is not None and (t + 1) % PROGRESS_BLOCK == 0:
            progress.update(PROGRESS_BLOCK)
    weights[...] = columns.T
    if progress is not None:
        progress.update(len(order) % PROGRESS_BLOCK)


class _TorchOnlineStep:
    """One online step on device tensors. Every index is a shape-(1,) tensor and the step counter lives on the
    device, so a step never reads a value back to the host and can be captured in a CUDA graph."""

    def __init__(self, weights, data, order, eta, sigma, neighborhood, distance, forced_winners):
        self.weights, self.data, self.order = weights, data, order
        self.eta, self.sigma = eta, sigma
        self.neighborhood, self.distance = neighborhood, distance
        self.forced = forced_winners
        self.t = torch.zeros(1, dtype=torch.long, device=weights.device)

    def __call__(self) -> None:
        W = self.weights
        x = self.data.index_select(0, self.order.index_select(0, self.t))  # [1, D]
        diff = x - W  # [M, D]
        if self.distance.is_euclidean:
            c = (diff * diff).sum(1).argmin().reshape(1)
        else:
            c = self.distance.scores(x, W, None).argmin(dim=1)  # [1]
        if self.forced is not None:
            forced = self.forced.index_select(0, self.t)
            c = torch.where(forced >= 0, forced, c)
        s, eta = self.sigma.index_select(0, self.t), self.eta.index_select(0, self.t)  # [1], [1]
        if self.neighborhood.separable:
            hx, hy = self.neighborhood.axis_factors(c, s)  # [1, x], [1, y]
            g = (hx[:, :, None] * hy[:, None, :]).reshape(-1) * eta
        else:
            g = self.neighborhood.dense(c, s).reshape(-1) * eta  # [M]
        W.add_(g[:, None] * diff)
        self.t.add_(1)


def train_online_torch(
    weights: torch.Tensor,
    data: torch.Tensor,
    order: torch.Tensor,
    eta: torch.Tensor,
    sigma: torch.Tensor,
    neighborhood: MapNeighborhood,
    distance: ActivationDistance,
    forced_winners: Optional[torch.Tensor] = None,
    progress: Optional[tqdm] = None,
    use_cuda_graphs: Optional[bool] = None,
    use_fused: Optional[bool] = None,
) -> None:
    """Run T online steps in place on ``weights`` (M, D); order/eta/sigma/forced_winners are (T,) device tensors.

    On CUDA (``use_fused`` None → auto) the fused kernel runs when it applies; else (``use_cuda_graphs`` None → auto)
    one block of ``GRAPH_STEPS`` steps is captured as a CUDA graph and replayed, the remainder eagerly. Nothing in
    the loop reads a device value on the host.
    """
    if (weights.is_cuda if use_fused is None else use_fused) and distance.is_euclidean and _fused_kernel_fits(weights):
        _run_fused(weights, data, order, eta, sigma, neighborhood, forced_winners, progress)
        return
    step = _TorchOnlineStep(weights, data, order, eta, sigma, neighborhood, distance, forced_winners)
    total = int(order.shape[0])
    graphs = weights.is_cuda if use_cuda_graphs is None else use_cuda_graphs
    done = 0
    if graphs and total >= 2 * GRAPH_STEPS:
        graph = _capture(step, GRAPH_STEPS)
        done = GRAPH_STEPS  # the warm-up block ran for real
        while done + GRAPH_STEPS <= total:
            graph.replay()
            done += GRAPH_STEPS
            if progress is not None and done - progress.n >= PROGRESS_BLOCK:
                progress.update(done - progress.n)
    for _ in range(total - done):
        step()
    if progress is not None:
        progress.update(total - progress.n)


def _fused_kernel_fits(weights: torch.Tensor) -> bool:
    try:
        from ._fused_online import fits
    except ImportError:  # no Triton: CUDA graphs instead
        logger.info("Triton is not installed; online training uses CUDA graphs")
        return False
    return fits(*weights.shape)


def _run_fused(weights, data, order, eta, sigma, neighborhood, forced_winners, progress) -> None:
    """Launch the fused kernel on consecutive blocks of FUSED_STEPS steps (one launch each; progress in between)."""
    from ._fused_online import train_online_fused

    total = int(order.shape[0])
    for start in range(0, total, FUSED_STEPS):
        block = slice(start, min(start + FUSED_STEPS, total))
        forced = None if forced_winners is None else forced_winners[block]
        train_online_fused(weights, data, order[block], eta[block], sigma[block], neighborhood, forced)
        if progress is not None:
            progress.update(block.stop - block.start)


def _capture(step: _TorchOnlineStep, n_steps: int) -> "torch.cuda.CUDAGraph":
    """Run ``n_steps`` real steps on a side stream (CUDA-graph warm-up), then capture the same block as a graph.

    Capturing records kernels without running them, so the caller replays the graph for the following blocks.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(n_steps):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(n_steps):
            step()
    return graph
