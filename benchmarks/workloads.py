"""Benchmark workloads (shapes, budgets, which libraries run) and their synthetic data.

Data: ``n_centers`` Gaussian blobs, centres drawn uniformly from [−10, 10]^D, unit spread, then every column
standardised to mean 0 and (population) standard deviation 1. The same seed gives the same data to every library.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DATA_SEED = 20240611
MODEL_SEED = 7
N_CENTERS = 8
GENERATION_ROWS = 1 << 18  # rows generated per block, so generation never holds a float64 copy of the data


@dataclass(frozen=True)
class VariantSwitch:
    """The somtorch module switch a somtorch variant sets: ``module.attribute = value``, read at import from the
    environment variable ``environment`` (set in a worker's environment; set in-process by the profiler)."""

    module: str
    attribute: str
    environment: str
    value: str


VARIANT_SWITCHES = {
    "unfused": VariantSwitch("somtorch.batch", "FUSED_BMU_SEARCH", "SOMTORCH_FUSED_BMU_SEARCH", "never"),
    "tf32x3": VariantSwitch("somtorch._fused_batch", "FP32_PRODUCTS", "SOMTORCH_FUSED_FP32_PRODUCTS", "tf32x3"),
}


@dataclass(frozen=True)
class Entry:
    """One library run in a workload.

    ``mode``: ``online`` (single-sample updates), ``batch`` (Kohonen batch map, per epoch) or ``minibatch``
    (mini-batch online updates, TorchSOM/quicksom). ``unit``: ``updates`` (budget = single-sample steps; a
    mini-batch library with batch_size 1 runs one epoch over the first ``budget`` rows) or ``epochs``.
    ``variant``: a somtorch input variant (``chunks``: a list of row blocks; ``host_stream``: host data streamed to
    the GPU through pinned buffers; ``unfused``: the chunked BMU search of somtorch.bmu instead of the fused CUDA
    kernel; ``tf32x3``: the fused kernel with three-TF32 float32 products; both by ``VARIANT_SWITCHES``). ``slow``: runs only with ``--slow-peers``. ``schedule``: the batch map's
    start and σ schedule, None for XPySom's default (random start, std_coeff 0.5, exponential σ) or ``pca3``
    (somtorch's PCA plane handed to both maps, σ = 3, asymptotic decay, XPySom with std_coeff 1; see
    :mod:`benchmarks.peers`). Mode ``qe``: one quantization error of a fixed map over all rows (unit
    ``evaluations``), not a training.
    """

    library: str
    mode: str
    budget: int
    unit: str
    batch_size: Optional[int] = None
    variant: Optional[str] = None
    slow: bool = False
    time_to_quality: bool = True
    schedule: Optional[str] = None

    @property
    def label(self) -> str:
        return self.library if self.variant is None else f"{self.library} ({self.variant.replace('_', ' ')})"


@dataclass(frozen=True)
class Workload:
    """A data shape (N × D), a map (x × y) and the runs to time on it, per device."""

    name: str
    description: str
    n_rows: int
    n_features: int
    x: int
    y: int
    cpu_entries: tuple[Entry, ...]
    cuda_entries: tuple[Entry, ...]
    ttq_fractions: tuple[float, ...] = ()  # time-to-quality budgets, as fractions of each entry's budget
    data_on_device: bool = False  # generate the data on the GPU (too big for a host round trip)
    floor_passes: int = 1  # distance passes the somtorch batch run makes (its epochs)

    @property
    def n_neurons(self) -> int:
        return self.x * self.y

    @property
    def data_bytes(self) -> int:
        return self.n_rows * self.n_features * 4

    def entries(self, device: str, slow_peers: bool) -> tuple[Entry, ...]:
        chosen = self.cpu_entries if device == "cpu" else self.cuda_entries
        return tuple(e for e in chosen if slow_peers or not e.slow)

    def quick(self) -> "Workload":
        """A tiny version (≤ 2,000 rows, ≤ 6 × 6 map, short budgets) for smoke runs."""

        def shrink(entry: Entry) -> Entry:
            budget = min(entry.budget, 500) if entry.unit == "updates" else min(entry.budget, 2)
            return replace(entry, budget=budget, batch_size=None if entry.batch_size is None else min(entry.batch_size, 64))

        return replace(
            self, n_rows=min(self.n_rows, 2000), n_features=min(self.n_features, 8), x=min(self.x, 6), y=min(self.y, 6),
            cpu_entries=tuple(shrink(e) for e in self.cpu_entries), cuda_entries=tuple(shrink(e) for e in self.cuda_entries),
            ttq_fractions=tuple(f for f in self.ttq_fractions if f >= 0.5), floor_passes=min(self.floor_passes, 2),
        )


_W1_BATCH = (Entry("somtorch", "batch", 10, "epochs"), Entry("xpysom", "batch", 10, "epochs"), Entry("somoclu", "batch", 10, "epochs"))

WORKLOADS: dict[str, Workload] = {
    "W1": Workload(
        "W1", "online: N=20,000, D=12, 15×15, 10,000 single-sample updates (+ batch map, 10 epochs)",
        20_000, 12, 15, 15,
        cpu_entries=(
            Entry("somtorch", "online", 10_000, "updates"),
            Entry("minisom", "online", 10_000, "updates"),
            Entry("torchsom", "minibatch", 10_000, "updates", batch_size=1),
            Entry("quicksom", "minibatch", 10_000, "updates", batch_size=1),
            *_W1_BATCH,
        ),
        cuda_entries=(  # GPU time is scarce: the CPU-bound peers (MiniSom, batch-size-1 quicksom) stay in the CPU report
            Entry("somtorch", "online", 10_000, "updates"),
            Entry("somtorch", "batch", 10, "epochs"),
            Entry("xpysom", "batch", 10, "epochs"),
        ),
        ttq_fractions=(0.1, 0.2, 0.5, 1.0, 2.0),
    ),
    "W2": Workload(
        "W2", "batch: N=100,000, D=32, 30×30, 10 epochs", 100_000, 32, 30, 30,
        cpu_entries=(
            Entry("somtorch", "batch", 10, "epochs"),
            Entry("xpysom", "batch", 10, "epochs"),
            Entry("somoclu", "batch", 10, "epochs"),
            Entry("torchsom", "minibatch", 10, "epochs", batch_size=256, time_to_quality=False),
            Entry("minisom", "online", 1_000_000, "updates", slow=True, time_to_quality=False),
            Entry("quicksom", "minibatch", 10, "epochs", slow=True, time_to_quality=False),
        ),
        cuda_entries=(
            Entry("somtorch", "batch", 10, "epochs"),
            Entry("xpysom", "batch", 10, "epochs"),
        ),
        ttq_fractions=(0.1, 0.2, 0.3, 0.5, 1.0, 2.0),
        floor_passes=10,
    ),
    "W3": Workload(
        "W3", "large: N=1,000,000, D=64, 50×50, one batch epoch", 1_000_000, 64, 50, 50,
        cpu_entries=(
            Entry("somtorch", "batch", 1, "epochs"),
            Entry("somtorch", "batch", 1, "epochs", variant="chunks"),
            Entry("xpysom", "batch", 1, "epochs"),
        ),
        cuda_entries=(
            Entry("somtorch", "batch", 1, "epochs"),
            Entry("somtorch", "batch", 1, "epochs", variant="tf32x3"),
            Entry("somtorch", "batch", 1, "epochs", variant="unfused"),
            Entry("somtorch", "batch", 1, "epochs", variant="host_stream"),
            Entry("xpysom", "batch", 1, "epochs"),
        ),
    ),
    "bigmap": Workload(
        "bigmap", "big map: N=50,000, D=32, 200×200 (40,000 neurons), 2 batch epochs", 50_000, 32, 200, 200,
        cpu_entries=(Entry("somtorch", "batch", 2, "epochs"), Entry("xpysom", "batch", 2, "epochs")),
        cuda_entries=(Entry("somtorch", "batch", 2, "epochs"),),
        floor_passes=2,
    ),
    "gpu10m": Workload(
        "gpu10m", "GPU: N=10,000,000, D=64, 100×100, one batch epoch (data generated on the GPU)", 10_000_000, 64, 100, 100,
        cpu_entries=(),
        cuda_entries=(
            Entry("somtorch", "batch", 1, "epochs"),
            Entry("somtorch", "batch", 1, "epochs", variant="unfused"),
            Entry("somtorch", "batch", 1, "epochs", variant="host_stream"),
        ),
        data_on_device=True,
    ),
}
_W2PCA_ENTRIES = (Entry("somtorch", "batch", 10, "epochs", schedule="pca3"), Entry("xpysom", "batch", 10, "epochs", schedule="pca3"))
WORKLOADS["W2pca"] = Workload(
    "W2pca", "batch, second schedule: W2's data and map, 10 epochs, both maps from somtorch's PCA plane, σ = 3, "
    "asymptotic decay (XPySom std_coeff 1)", 100_000, 32, 30, 30,
    cpu_entries=_W2PCA_ENTRIES, cuda_entries=_W2PCA_ENTRIES, floor_passes=10,
)
_QE_ENTRIES = (Entry("somtorch", "qe", 1, "evaluations", time_to_quality=False),
               Entry("minisom", "qe", 1, "evaluations", time_to_quality=False))
WORKLOADS["QE"] = Workload(
    "QE", "quantization error: N=1,000,000, D=32, 15×15, one QE pass over all rows of a fixed map "
    "(benchmarks/evaluation.py's preset map, trained untimed)", 1_000_000, 32, 15, 15,
    cpu_entries=_QE_ENTRIES, cuda_entries=_QE_ENTRIES[:1],
)
# The TF32 comparison uses W3's shape: exact float32 vs allow_tf32=True, one epoch each from the same start.
TF32_WORKLOAD = "W3"
CPU_DEFAULT = ("W1", "W2", "W3", "bigmap")
CUDA_DEFAULT = ("W1", "W3", "gpu10m", "tf32")


def make_blobs(n_rows: int, n_features: int, seed: int = DATA_SEED, n_centers: int = N_CENTERS) -> np.ndarray:
    """Standardised Gaussian blobs as a C-contiguous float32 array (n_rows, n_features).

    x_n = c_{k_n} + ε_n with c_k ~ U(−10, 10)^D, k_n ~ U{0..K−1}, ε ~ N(0, I); then z = (x − mean) / std per column.
    Generated in blocks of rows, so peak memory stays near the float32 result.
    """
    if n_rows < 1 or n_features < 1:
        raise ValueError(f"make_blobs needs n_rows ≥ 1 and n_features ≥ 1; got {n_rows} × {n_features}")
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10.0, 10.0, size=(n_centers, n_features)).astype(np.float32)
    data = np.empty((n_rows, n_features), dtype=np.float32)
    for start in range(0, n_rows, GENERATION_ROWS):
        block = data[start : start + GENERATION_ROWS]
        rng.standard_normal(out=block, dtype=np.float32)
        block += centers[rng.integers(n_centers, size=block.shape[0])]
    sums = np.zeros(n_features)
    squares = np.zeros(n_features)
    for start in range(0, n_rows, GENERATION_ROWS):
        block = data[start : start + GENERATION_ROWS]
        sums += block.sum(axis=0, dtype=np.float64)
        squares += np.square(block).sum(axis=0, dtype=np.float64)
    mean = sums / n_rows
    std = np.sqrt(np.maximum(squares / n_rows - mean**2, 1e-24))
    for start in range(0, n_rows, GENERATION_ROWS):
        block = data[start : start + GENERATION_ROWS]
        block -= mean.astype(np.float32)
        block /= std.astype(np.float32)
    return data


def make_blobs_torch(n_rows: int, n_features: int, device: str, seed: int = DATA_SEED, n_centers: int = N_CENTERS) -> "torch.Tensor":
    """The same blob model generated with torch on ``device`` (float32 tensor (n_rows, n_features)).

    Centres come from the NumPy generator of :func:`make_blobs`; labels and noise from a torch generator on the
    device, so the rows differ from :func:`make_blobs` but follow the same distribution. Used where the data is too
    big to build on the host (10^7 × 64 on a GPU).
    """
    import torch

    rng = np.random.default_rng(seed)
    centers = torch.as_tensor(rng.uniform(-10.0, 10.0, size=(n_centers, n_features)), dtype=torch.float32, device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    data = torch.empty((n_rows, n_features), dtype=torch.float32, device=device)
    for start in range(0, n_rows, GENERATION_ROWS * 8):
        block = data[start : start + GENERATION_ROWS * 8]
        block.normal_(generator=generator)
        labels = torch.randint(n_centers, (block.shape[0],), generator=generator, device=device)
        block += centers[labels]
    mean = data.mean(dim=0, dtype=torch.float64)
    var = _blockwise_square_mean(data) - mean**2
    data -= mean.float()
    data /= var.clamp_min(1e-24).sqrt().float()
    return data


def _blockwise_square_mean(data: "torch.Tensor") -> "torch.Tensor":
    """Column means of data² in float64, one block of rows at a time (no full-size float64 copy)."""
    total = None
    for start in range(0, data.shape[0], GENERATION_ROWS * 8):
        part = data[start : start + GENERATION_ROWS * 8].double().square().sum(dim=0)
        total = part if total is None else total + part
    return total / data.shape[0]


def resolve_workloads(spec: str, device: str) -> list[str]:
    """Workload names from ``W1``, ``W1,W3``, or ``all`` (the device's default set); unknown names raise ValueError."""
    names = list(CPU_DEFAULT if device == "cpu" else CUDA_DEFAULT) if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    valid = [*WORKLOADS, "tf32"]
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        raise ValueError(f"--workload {spec!r}: unknown workload(s) {unknown}; choose from {valid} or 'all'")
    for name in names:
        if device == "cpu" and (name == "tf32" or (name in WORKLOADS and not WORKLOADS[name].cpu_entries)):
            raise ValueError(f"workload {name!r} runs on CUDA only; use --device cuda")
    return names
