"""The bare distance floor: one BMU pass, the (N × D)·(D × M) product plus a row argmin, with nothing else.

A batch-map epoch cannot beat one such pass, so ``somtorch time / (epochs × floor)`` says how much of an epoch is
overhead. Each variant runs in row blocks with a reused output buffer:

* ``torch_addmm``: ``torch.addmm(‖w‖², X_b, Wᵀ, alpha=−2, out=buf).argmin(1)``, in blocks of the rows somtorch's
  BMU search uses (the same split);
* ``numpy_blas``: ``np.matmul(X_b, −2·Wᵀ, out=buf); buf += ‖w‖²; buf.argmin(1)`` (NumPy's BLAS, OpenBLAS here), same blocks;
* on CUDA, ``cublas_gemm``: the product alone (``torch.mm`` into a buffer of up to 2 GiB of rows) and
  ``cublas_gemm_argmin``: the same plus argmin, with the device synchronised before each clock reading.

On CUDA it also times the floor of a host-streamed epoch, the host-to-device copy of the data alone (``copy``):
``h2d_pinned``, the rows already in pinned host memory, copied in somtorch's streaming blocks (pure DMA), and
``h2d_staged``, somtorch's own streaming of pageable host rows (``somtorch.streaming.ChunkSource``: each block
copied into one of two pinned buffers, then to the device) with no BMU work.
"""
from __future__ import annotations

import inspect
import logging
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch

logger = logging.getLogger(__name__)

CUDA_BLOCK_BYTES = 2 * 2**30


def somtorch_rows(n_neurons: int, device: str) -> int:
    """Rows per block that somtorch's BMU search uses for float32 weights of ``n_neurons`` units on ``device``."""
    from somtorch.bmu import DEFAULT_CHUNK_BYTES, chunk_rows

    if "device" in inspect.signature(chunk_rows).parameters:
        return chunk_rows(n_neurons, 4, DEFAULT_CHUNK_BYTES, torch.device(device))
    return chunk_rows(n_neurons, 4, DEFAULT_CHUNK_BYTES)


def _median_time(run: Callable[[], Any], repeats: int, synchronize: Callable[[], None]) -> tuple[float, list[float]]:
    run()  # warm-up: thread pools, BLAS buffers, CUDA kernels
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def torch_pass(data: torch.Tensor, weights: torch.Tensor, rows: int) -> Callable[[], None]:
    """One chunked addmm + argmin pass over ``data`` (N, D) against ``weights`` (M, D), both on one device."""
    squared_norms = (weights * weights).sum(1)
    buffer = torch.empty((min(rows, data.shape[0]), weights.shape[0]), dtype=data.dtype, device=data.device)
    winners = torch.empty(data.shape[0], dtype=torch.long, device=data.device)

    def run() -> None:
        for start in range(0, data.shape[0], rows):
            block = data[start : start + rows]
            out = buffer[: block.shape[0]]
            torch.addmm(squared_norms, block, weights.T, beta=1, alpha=-2, out=out)
            torch.argmin(out, dim=1, out=winners[start : start + block.shape[0]])

    return run


def numpy_pass(data: np.ndarray, weights: np.ndarray, rows: int) -> Callable[[], None]:
    """One chunked BLAS product + argmin pass in NumPy (float32)."""
    scaled_transposed = np.ascontiguousarray(-2 * weights.T)  # [D, M]
    squared_norms = (weights * weights).sum(1)
    buffer = np.empty((min(rows, data.shape[0]), weights.shape[0]), dtype=np.float32)
    winners = np.empty(data.shape[0], dtype=np.int64)

    def run() -> None:
        for start in range(0, data.shape[0], rows):
            block = data[start : start + rows]
            out = buffer[: block.shape[0]]
            np.matmul(block, scaled_transposed, out=out)
            out += squared_norms
            winners[start : start + block.shape[0]] = out.argmin(axis=1)

    return run


def cuda_gemm_pass(data: torch.Tensor, weights: torch.Tensor, with_argmin: bool) -> Callable[[], None]:
    """The cuBLAS product in row blocks of up to ``CUDA_BLOCK_BYTES`` of output, optionally with argmin."""
    rows = max(1, CUDA_BLOCK_BYTES // (weights.shape[0] * 4))
    buffer = torch.empty((min(rows, data.shape[0]), weights.shape[0]), dtype=data.dtype, device=data.device)
    winners = torch.empty(data.shape[0], dtype=torch.long, device=data.device)

    def run() -> None:
        for start in range(0, data.shape[0], rows):
            block = data[start : start + rows]
            out = buffer[: block.shape[0]]
            torch.mm(block, weights.T, out=out)
            if with_argmin:
                torch.argmin(out, dim=1, out=winners[start : start + block.shape[0]])

    return run


def measure_floor(host: np.ndarray | None, device_data: torch.Tensor | None, n_neurons: int, device: str,
                  repeats: int) -> dict[str, Any]:
    """Median seconds of one distance pass per variant, GFLOP/s (2·N·D·M per pass), and ``floor_s`` (the fastest).

    host: (N, D) float32 host data (CPU runs); device_data: the same on the GPU (CUDA runs).
    """
    generator = np.random.default_rng(0)
    n_rows, dim = (host.shape if host is not None else tuple(device_data.shape))
    weights = generator.standard_normal((n_neurons, dim)).astype(np.float32)
    flops = 2.0 * n_rows * dim * n_neurons
    variants: dict[str, dict[str, Any]] = {}

    def record(name: str, run: Callable[[], None], synchronize: Callable[[], None], rows: int) -> None:
        median, times = _median_time(run, repeats, synchronize)
        variants[name] = {"median_s": median, "times_s": times, "gflops": flops / median / 1e9, "block_rows": rows}

    rows = somtorch_rows(n_neurons, device)
    if device == "cpu":
        record("torch_addmm", torch_pass(torch.from_numpy(host), torch.from_numpy(weights), rows), lambda: None, rows)
        record("numpy_blas", numpy_pass(host, weights, rows), lambda: None, rows)
    else:
        on_device = torch.as_tensor(weights, device=device_data.device)
        sync = torch.cuda.synchronize
        cuda_rows = max(1, CUDA_BLOCK_BYTES // (n_neurons * 4))
        record("torch_addmm", torch_pass(device_data, on_device, rows), sync, rows)
        record("cublas_gemm", cuda_gemm_pass(device_data, on_device, with_argmin=False), sync, cuda_rows)
        record("cublas_gemm_argmin", cuda_gemm_pass(device_data, on_device, with_argmin=True), sync, cuda_rows)
    floor_variant = min(variants, key=lambda name: variants[name]["median_s"])
    result = {"variants": variants, "floor_s": variants[floor_variant]["median_s"], "floor_variant": floor_variant,
              "flops_per_pass": flops, "repeats": repeats}
    if device != "cpu":
        result["copy"] = measure_copy_floor(host, device_data, repeats)
    return result


def measure_copy_floor(host: np.ndarray | None, device_data: torch.Tensor, repeats: int) -> dict[str, Any]:
    """Median seconds and GB/s of copying the (N, D) float32 data to the GPU: from pinned host memory
    (``h2d_pinned``) and through somtorch's streaming of pageable host rows (``h2d_staged``), in the rows per
    block that ``somtorch.streaming`` uses. ``host``: the data on the host, or None to take it from ``device_data``."""
    from somtorch.streaming import ChunkSource, stream_rows

    pageable = torch.from_numpy(host) if host is not None else device_data.cpu()
    pinned = pageable.pin_memory()
    rows = stream_rows(pageable.shape[1], pageable.element_size())
    target = torch.empty((min(rows, pageable.shape[0]), pageable.shape[1]), dtype=pageable.dtype, device=device_data.device)
    source = ChunkSource(pageable, pageable.shape[1], device_data.device, pageable.dtype)

    def pinned_copy() -> None:
        for start in range(0, pinned.shape[0], rows):
            block = pinned[start : start + rows]
            target[: block.shape[0]].copy_(block, non_blocking=True)

    def staged_copy() -> None:
        for _ in source:
            pass

    copies = {}
    for name, run in (("h2d_pinned", pinned_copy), ("h2d_staged", staged_copy)):
        median, times = _median_time(run, repeats, torch.cuda.synchronize)
        copies[name] = {"median_s": median, "times_s": times, "gb_per_s": pageable.numel() * pageable.element_size() / median / 1e9,
                        "block_rows": rows}
    return copies
