"""Adapters that train each SOM library on a workload and return its weights (x, y, D) as NumPy.

Every library is imported lazily and guarded: one that is missing or broken is reported with the reason and
skipped. Settings are each library's own defaults, except where the issue's table fixes them (batch sizes,
budgets) and except somtorch's batch σ schedule, which follows XPySom's defaults so that the two batch maps
compute the same thing (see :class:`ExponentialDecay`).

The somtorch and XPySom batch maps start from the same MiniSom-style random weights (same seed, same draw order)
and use the same schedule, so their results should agree to float32 rounding: the time ratio is then a pure speed
comparison and the QE comparison a correctness check.

The second batch schedule, ``pca3`` (issue 14's independent protocol): both maps start from the plane of somtorch's
``pca_weights_init`` (computed once, untimed, and handed to XPySom as its ``_weights``), σ_t = 3 / (1 + 2t/T)
(somtorch ``asymptotic_decay``, XPySom ``decay_function="asymptotic"``) and XPySom's ``std_coeff = 1``, so its
Gaussian exp(−d²/(2·(1·σ)²)) is somtorch's. XPySom's learning rate multiplies numerator and denominator of the
batch update alike and cancels.

The ``qe`` mode (:data:`QUANTIZERS`) times one quantization error over all rows on fixed weights: somtorch's
``SOM.quantization_error`` against MiniSom's ``quantization_error`` (its float64 weights, MiniSom's own formula).
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import math
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Optional

import numpy as np

from .workloads import MODEL_SEED, Entry

logger = logging.getLogger(__name__)

ONLINE_SIGMA = 1.0  # MiniSom's default σ and η, used by somtorch and MiniSom in online mode
ONLINE_LEARNING_RATE = 0.5
XPYSOM_STD_COEFF = 0.5  # XPySom's gaussian is exp(−d²/(2·(0.5σ)²)): an effective σ of half its nominal σ
XPYSOM_FINAL_SIGMA = 1.0
CHUNK_ROWS = 1 << 18  # row block of somtorch's "chunks" input variant
PCA_SCHEDULE = "pca3"  # Entry.schedule of the second batch schedule
PCA_SCHEDULE_SIGMA = 3.0


@dataclass
class Inputs:
    """The data of one run: a host array (None where the data lives only on the GPU) and, on CUDA, a device tensor."""

    host: Optional[np.ndarray]
    device_tensor: Any = None
    initial_weights: Optional[np.ndarray] = None  # (x, y, D) start of the ``pca3`` schedule and fixed map of ``qe``

    @property
    def n_rows(self) -> int:
        return self.host.shape[0] if self.host is not None else int(self.device_tensor.shape[0])


class ExponentialDecay:
    """σ_t = σ_0 · (σ_N / σ_0)^(t/T): XPySom's ``exponential`` schedule, as a somtorch decay callable f(p, t, T)."""

    def __init__(self, final: float) -> None:
        if final <= 0:
            raise ValueError(f"final must be > 0; got {final!r}")
        self.final = final

    def __call__(self, initial: float, t: Any, total: int) -> Any:
        return initial * np.exp(-np.asarray(t, dtype=np.float64) * math.log(initial / self.final) / total)


def batch_sigma(x: int, y: int) -> tuple[float, float]:
    """(σ_0, σ_N) of XPySom's default schedule in somtorch's units: nominal min(x, y)/2 → 1, times std_coeff 0.5."""
    return min(x, y) / 2 * XPYSOM_STD_COEFF, XPYSOM_FINAL_SIGMA * XPYSOM_STD_COEFF


@dataclass(frozen=True)
class Peer:
    """A library: its distribution name, the module that must import, where it runs, and its training adapter."""

    name: str
    distribution: str
    module: str
    devices: tuple[str, ...]  # devices it can run on; "cpu" for a CPU-only library
    train: Callable[[Inputs, tuple[int, int, int], Entry, int, str], np.ndarray]

    def version(self) -> Optional[str]:
        try:
            return metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            return None

    def unavailable_reason(self) -> Optional[str]:
        """None when the library imports and can train; else why not (import error, missing compiled part)."""
        try:
            importlib.import_module(self.module)
        except Exception as error:  # any import failure means "not runnable here", reported verbatim
            return f"import {self.module} failed: {type(error).__name__}: {error}"
        if self.name == "somoclu" and not hasattr(importlib.import_module("somoclu.train"), "wrap_train"):
            return "somoclu imported without its compiled extension (the build needs a C++ compiler and OpenMP)"
        return None

    def runs_on(self, device: str) -> Optional[str]:
        """The device this library uses when the benchmark targets ``device``, or None if it cannot take part."""
        if device in self.devices:
            if self.name == "xpysom" and device == "cuda" and importlib.util.find_spec("cupy") is None:
                return None
            return device
        return "cpu" if self.name == "minisom" else None


def given_weights(inputs: Inputs, entry: Entry) -> np.ndarray:
    """The (x, y, D) weights the worker computed before the clock (``pca3`` start, ``qe`` map); ValueError if none."""
    if inputs.initial_weights is None:
        raise ValueError(f"{entry.library} {entry.mode} (schedule {entry.schedule!r}) needs Inputs.initial_weights; got None")
    return inputs.initial_weights


def _check_schedule(entry: Entry) -> None:
    if entry.schedule not in (None, PCA_SCHEDULE):
        raise ValueError(f"Entry.schedule={entry.schedule!r} is not known; choose None (XPySom's default) or {PCA_SCHEDULE!r}")


def _rows_for(entry: Entry, budget: int, n_rows: int) -> int:
    """Rows a mini-batch library sees: ``budget`` rows (one epoch) for ``updates`` budgets, else all rows."""
    if entry.unit != "updates":
        return n_rows
    if budget > n_rows:
        raise ValueError(f"{entry.library}: a budget of {budget} single-sample updates needs ≥ {budget} rows; the data has {n_rows}")
    return budget


def train_somtorch(inputs: Inputs, shape: tuple[int, int, int], entry: Entry, budget: int, device: str,
                    allow_tf32: bool = False) -> np.ndarray:
    from somtorch import SOM

    x, y, dim = shape
    use_host = entry.variant == "host_stream" or inputs.device_tensor is None
    data = inputs.host if use_host else inputs.device_tensor
    if entry.mode == "qe":
        raise ValueError("mode 'qe' is no training: the worker's qe task times it (benchmarks.peers.QUANTIZERS)")
    if entry.mode == "online":
        som = SOM(x, y, dim, sigma=ONLINE_SIGMA, learning_rate=ONLINE_LEARNING_RATE, random_seed=MODEL_SEED, device=device)
        som.train_random(data, budget)
        return som.get_weights()
    _check_schedule(entry)
    if entry.schedule == PCA_SCHEDULE:
        som = SOM(x, y, dim, sigma=PCA_SCHEDULE_SIGMA, sigma_decay_function="asymptotic_decay", random_seed=MODEL_SEED,
                  device=device, allow_tf32=allow_tf32)
        som.set_weights(given_weights(inputs, entry))
    else:
        sigma0, sigma_final = batch_sigma(x, y)
        som = SOM(x, y, dim, sigma=sigma0, sigma_decay_function=ExponentialDecay(sigma_final), random_seed=MODEL_SEED,
                  device=device, allow_tf32=allow_tf32)
    if entry.variant == "chunks":
        som.train_batch([data[s : s + CHUNK_ROWS] for s in range(0, data.shape[0], CHUNK_ROWS)], budget)
    elif entry.variant == "host_stream":
        som.train_batch(data, budget, stream=True)
    else:
        som.train_batch(data, budget)
    return som.get_weights()


def _train_minisom(inputs: Inputs, shape: tuple[int, int, int], entry: Entry, budget: int, device: str) -> np.ndarray:
    from minisom import MiniSom

    x, y, dim = shape
    som = MiniSom(x, y, dim, sigma=ONLINE_SIGMA, learning_rate=ONLINE_LEARNING_RATE, random_seed=MODEL_SEED)
    som.train_random(inputs.host, budget)
    return som.get_weights()


def _train_xpysom(inputs: Inputs, shape: tuple[int, int, int], entry: Entry, budget: int, device: str) -> np.ndarray:
    from xpysom import XPySom

    x, y, dim = shape
    _check_schedule(entry)
    schedule = {"sigma": PCA_SCHEDULE_SIGMA, "decay_function": "asymptotic", "std_coeff": 1.0} if entry.schedule == PCA_SCHEDULE else {}
    if device == "cuda":
        import cupy

        som = XPySom(x, y, dim, random_seed=MODEL_SEED, xp=cupy, **schedule)
        if schedule:
            som._weights = np.array(given_weights(inputs, entry), dtype=np.float32)  # XPySom has no weight setter
        som.train(cupy.asarray(inputs.device_tensor), budget)  # zero-copy view of the torch tensor
    else:
        som = XPySom(x, y, dim, random_seed=MODEL_SEED, xp=np, **schedule)
        if schedule:
            som._weights = np.array(given_weights(inputs, entry), dtype=np.float32)
        som.train(inputs.host, budget)
    return np.asarray(som.get_weights())


def _train_somoclu(inputs: Inputs, shape: tuple[int, int, int], entry: Entry, budget: int, device: str) -> np.ndarray:
    import somoclu

    x, y, dim = shape
    som = somoclu.Somoclu(n_columns=y, n_rows=x)
    som.train(np.ascontiguousarray(inputs.host, dtype=np.float32), epochs=budget)
    return np.asarray(som.codebook).reshape(x, y, dim)


def _train_torchsom(inputs: Inputs, shape: tuple[int, int, int], entry: Entry, budget: int, device: str) -> np.ndarray:
    import torch
    from torchsom import SOM as TorchSOM

    x, y, dim = shape
    rows = _rows_for(entry, budget, inputs.n_rows)
    epochs = 1 if entry.unit == "updates" else budget
    som = TorchSOM(x, y, dim, epochs=epochs, batch_size=entry.batch_size or 5, device=device, random_seed=MODEL_SEED)
    som.fit(torch.from_numpy(inputs.host[:rows]), verbose=False)
    return som.weights.detach().cpu().numpy().reshape(x, y, dim)


def _train_quicksom(inputs: Inputs, shape: tuple[int, int, int], entry: Entry, budget: int, device: str) -> np.ndarray:
    from quicksom.som import SOM as QuickSOM

    x, y, dim = shape
    rows = _rows_for(entry, budget, inputs.n_rows)
    epochs = 1 if entry.unit == "updates" else budget
    np.random.seed(MODEL_SEED)  # quicksom draws its initial weights from NumPy's global generator
    som = QuickSOM(x, y, dim, n_epoch=epochs, device=device)
    batch = {"batch_size": entry.batch_size} if entry.batch_size is not None else {}
    som.fit(dataset=inputs.host[:rows], n_epoch=epochs, print_each=10**9, logfile=None, **batch)
    return som.centroids.detach().cpu().numpy().reshape(x, y, dim)


def pca_plane(data: Any, shape: tuple[int, int, int], device: str) -> np.ndarray:
    """somtorch's ``pca_weights_init`` plane (x, y, D) of ``data`` (N, D): the start both maps of ``pca3`` get."""
    from somtorch import SOM

    som = SOM(*shape, random_seed=MODEL_SEED, device=device)
    som.pca_weights_init(data)
    return som.get_weights()


def _somtorch_quantization_error(inputs: Inputs, weights: np.ndarray, device: str) -> float:
    from somtorch import SOM

    som = SOM(*weights.shape, device=device)
    som.set_weights(weights)
    return float(som.quantization_error(inputs.device_tensor if inputs.device_tensor is not None else inputs.host))


def _minisom_quantization_error(inputs: Inputs, weights: np.ndarray, device: str) -> float:
    from minisom import MiniSom

    som = MiniSom(*weights.shape)
    som._weights = weights.astype(np.float64)  # MiniSom has no weight setter; its own weights are float64
    return float(som.quantization_error(inputs.host))


# Mode ``qe``: f(inputs, weights (x, y, D), device) → mean distance from each row to its BMU.
QUANTIZERS: dict[str, Callable[[Inputs, np.ndarray, str], float]] = {
    "somtorch": _somtorch_quantization_error, "minisom": _minisom_quantization_error,
}


def get_quantizer(name: str) -> Callable[[Inputs, np.ndarray, str], float]:
    """The quantization-error call of library ``name`` (mode ``qe``); ValueError for a library without one."""
    if name not in QUANTIZERS:
        raise ValueError(f"library {name!r} has no quantization-error adapter; choose from {sorted(QUANTIZERS)}")
    return QUANTIZERS[name]


PEERS: dict[str, Peer] = {
    "somtorch": Peer("somtorch", "somtorch", "somtorch", ("cpu", "cuda"), train_somtorch),
    "minisom": Peer("minisom", "MiniSom", "minisom", ("cpu",), _train_minisom),
    "xpysom": Peer("xpysom", "XPySom", "xpysom", ("cpu", "cuda"), _train_xpysom),
    "somoclu": Peer("somoclu", "somoclu", "somoclu", ("cpu",), _train_somoclu),
    "torchsom": Peer("torchsom", "torchsom", "torchsom", ("cpu", "cuda"), _train_torchsom),
    "quicksom": Peer("quicksom", "quicksom", "quicksom.som", ("cpu", "cuda"), _train_quicksom),
}


def get_peer(name: str) -> Peer:
    """The adapter of library ``name``; unknown names raise ValueError listing the known ones."""
    if name not in PEERS:
        raise ValueError(f"unknown library {name!r}; choose from {sorted(PEERS)}")
    return PEERS[name]
