"""The native SOM: a weight grid held as a torch tensor (x, y, D) on CPU or CUDA.

Parameter names and defaults follow MiniSom 2.3.6. Where the two differ on purpose (see the README):

* ``chebyshev`` is max |x − w| (MiniSom forgets the abs);
* the hexagonal U-matrix uses each neuron's true neighbours for either parity of y;
* ``train_batch`` is Kohonen's batch map; MiniSom's ``train_batch`` (samples in data order) is ``train_sequential``.
"""
from __future__ import annotations

import logging
import math
import warnings
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any, ContextManager, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from . import bmu as bmu_search
from . import threads
from ._inputs import DeviceSpec, as_matrix, as_sample, matmul_precision, resolve_device, resolve_dtype
from .decay import LEARNING_RATE_DECAYS, SIGMA_DECAYS, DecaySpec, decay_schedule, resolve_decay
from .distances import ActivationDistance, DistanceSpec
from .evaluation import SOMEvaluation, euclidean_evaluation
from .grid import Grid
from .initialization import pca_plane
from .neighborhoods import GridTables, MapNeighborhood, resolve_neighborhood
from .online import train_online_numpy, train_online_torch
from .batch import BatchStatistics, apply_update, check_accumulation, partial_stats
from .bmu import iter_chunks
from .streaming import ChunkSource

logger = logging.getLogger(__name__)

TRAINING_MODES = ("random", "sequential", "batch")
# pca_weights_init works on float64 copies of at most this many bytes at a time (MiniSom parity below it):
# its peak stays about 40-50 MiB above the data (benchmarks/pca_memory.py)
PCA_CHUNK_BYTES = 8 * 2**20
FILE_FORMAT = "somtorch.SOM/1"


class SOM:
    """Self-Organizing Map with weights W of shape (x, y, D) as a torch tensor.

    Online update (``train_random``/``train_sequential``), step t of T with sample x and BMU c:
        W ← W + η(t)·h(c, ·; σ(t))·(x − W),  η(t) = decay(learning_rate, t, T), σ(t) = sigma_decay(sigma, t, T).
    Batch map (``train_batch``), epoch t of T:
        W_k ← Σ_n h(c_n, k; σ(t))·x_n / Σ_n h(c_n, k; σ(t)), keeping W_k where the denominator is ≤ 0.

    Args:
        x, y: map size (neurons (i, j), flat index i·y + j).
        input_len: D, the number of features.
        sigma, learning_rate: initial σ and η.
        decay_function, sigma_decay_function: schedule names (see :mod:`somtorch.decay`) or callables f(p, t, T).
        neighborhood_function: ``gaussian``, ``mexican_hat``, ``bubble`` or ``triangle``.
        topology: ``rectangular`` or ``hexagonal``. periodic: toroidal map (minimum-image distances).
        activation_distance: ``euclidean``, ``cosine``, ``manhattan``, ``chebyshev`` or a callable f(X (B, D), W (M, D)) → (B, M).
        random_seed: seed of the ``numpy.random.RandomState`` that draws the initial weights and the sample order,
            in MiniSom's order, so the same seed gives MiniSom's result.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch.device. dtype: torch.float32 or torch.float64.
        chunk_bytes: memory budget of one chunk of a batched query (BMU search never builds an N × M matrix).
        allow_tf32: let CUDA matrix products use TF32 (faster on Ampere+, ~1e-3 relative error); off by default.
    """

    def __init__(
        self,
        x: int,
        y: int,
        input_len: int,
        sigma: float = 1.0,
        learning_rate: float = 0.5,
        decay_function: DecaySpec = "asymptotic_decay",
        neighborhood_function: str = "gaussian",
        topology: str = "rectangular",
        activation_distance: DistanceSpec = "euclidean",
        random_seed: Optional[int] = None,
        sigma_decay_function: DecaySpec = "asymptotic_decay",
        *,
        periodic: bool = False,
        device: DeviceSpec = "auto",
        dtype: Union[str, torch.dtype] = torch.float32,
        chunk_bytes: int = bmu_search.DEFAULT_CHUNK_BYTES,
        allow_tf32: bool = False,
    ) -> None:
        for name, value in (("x", x), ("y", y), ("input_len", input_len)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer ≥ 1; got {value!r}")
        if not (isinstance(sigma, (int, float, np.floating)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0; got {sigma!r}")
        if not (isinstance(learning_rate, (int, float, np.floating)) and math.isfinite(learning_rate)):
            raise ValueError(f"learning_rate must be a finite number; got {learning_rate!r}")
        if int(chunk_bytes) < 1:
            raise ValueError(f"chunk_bytes must be ≥ 1; got {chunk_bytes!r}")
        self.grid = Grid(int(x), int(y), topology, periodic)
        self._neighborhood = resolve_neighborhood(neighborhood_function)
        self._distance = ActivationDistance(activation_distance)
        self._lr_decay = resolve_decay(decay_function, LEARNING_RATE_DECAYS, "decay_function")
        self._sigma_decay = resolve_decay(sigma_decay_function, SIGMA_DECAYS, "sigma_decay_function")
        if sigma > math.sqrt(x * x + y * y):
            warnings.warn("Warning: sigma might be too high for the dimension of the map.", stacklevel=2)
        if neighborhood_function in ("triangle", "bubble") and (divmod(sigma, 1)[1] != 0 or sigma < 1):
            warnings.warn("sigma should be an integer >=1 when triangle or bubble are used as neighborhood function", stacklevel=2)
        if topology == "hexagonal" and neighborhood_function == "triangle":
            warnings.warn("triangle neighborhood function does not take in account hexagonal topology", stacklevel=2)
        self.x, self.y, self.input_len = int(x), int(y), int(input_len)
        self.sigma, self.learning_rate = float(sigma), float(learning_rate)
        self.decay_function, self.sigma_decay_function = decay_function, sigma_decay_function
        self.neighborhood_function, self.topology, self.periodic = neighborhood_function, topology, bool(periodic)
        self.activation_distance, self.random_seed = activation_distance, random_seed
        self.chunk_bytes, self.allow_tf32 = int(chunk_bytes), bool(allow_tf32)
        self.device, self.dtype = resolve_device(device), resolve_dtype(dtype)
        self._rng = np.random.RandomState(random_seed)
        initial = self._rng.rand(self.x, self.y, self.input_len) * 2 - 1
        initial /= np.linalg.norm(initial, axis=-1, keepdims=True)
        self._weights = torch.as_tensor(initial, dtype=self.dtype, device=self.device)
        self._build_tables()

    # ------------------------------------------------------------------ state
    def _build_tables(self) -> None:
        self._tables = GridTables.from_grid(self.grid, self.device, self.dtype)
        self._map_neighborhood = MapNeighborhood(self._neighborhood, self._tables, self.topology)
        # float64 twin on the device: the batch map smooths its float64 statistics in float64
        self._smoothing_neighborhood = MapNeighborhood(self._neighborhood, GridTables.from_grid(self.grid, self.device, torch.float64), self.topology)
        # NumPy twin of the tables for the CPU online kernel (float64, as MiniSom computes h)
        self._host_neighborhood = MapNeighborhood(self._neighborhood, GridTables.from_grid(self.grid), self.topology)
        self._neighbors = torch.as_tensor(self.grid.neighbors, device=self.device)

    @property
    def weights(self) -> torch.Tensor:
        """The weight tensor (x, y, D) on ``device`` (a live view: in-place edits change the map)."""
        return self._weights

    @property
    def n_neurons(self) -> int:
        return self.x * self.y

    @property
    def _flat(self) -> torch.Tensor:
        return self._weights.view(self.n_neurons, self.input_len)  # [M, D]

    def get_weights(self) -> np.ndarray:
        """A NumPy copy of the weights, (x, y, D)."""
        return self._weights.detach().cpu().numpy().copy()

    def set_weights(self, weights: Any) -> None:
        """Replace the weights with a copy of an (x, y, D) array or tensor (training never writes into ``weights``)."""
        values = torch.tensor(np.asarray(weights.detach().cpu() if isinstance(weights, torch.Tensor) else weights, dtype=np.float64))
        expected = (self.x, self.y, self.input_len)
        if tuple(values.shape) != expected:
            raise ValueError(f"weights must have shape {expected}; got {tuple(values.shape)}")
        if not bool(torch.isfinite(values).all()):
            raise ValueError("weights contain NaN or infinite values")
        self._weights = values.to(device=self.device, dtype=self.dtype).contiguous()

    def to(self, device: DeviceSpec) -> "SOM":
        """Move the map (weights and lookup tables) to ``device``; returns self."""
        self.device = resolve_device(device)
        self._weights = self._weights.to(self.device)
        self._build_tables()
        return self

    def _data(self, data: Any) -> torch.Tensor:
        return as_matrix(data, self.input_len, self.device, self.dtype)

    def _matmul_precision(self) -> ContextManager[None]:
        """Enable TF32 for CUDA matrix products only when ``allow_tf32`` was asked for."""
        return matmul_precision(self.allow_tf32)

    # ------------------------------------------------------------------ initialisation
    def random_weights_init(self, data: Any) -> None:
        """Set each neuron, in (i, j) row-major order, to a sample drawn with ``RandomState.randint(N)`` (MiniSom's draw)."""
        X = self._data(data)
        picks = self._rng.randint(X.shape[0], size=self.n_neurons)
        self._weights = X[torch.as_tensor(picks, device=self.device)].reshape(self.x, self.y, self.input_len).clone()

    def pca_weights_init(self, data: Any) -> None:
        """Span the first two principal components: W[i, j] = mean + c1_i·pc1 + c2_j·pc2, c1 = linspace(−1, 1, x),
        c2 = linspace(−1, 1, y), pc = eigenvectors of the (N−1)-normalised covariance (MiniSom's formula)."""
        if self.input_len == 1:
            raise ValueError("The data needs at least 2 features for pca initialization")
        data = self._data(data)
        if self.x == 1 or self.y == 1:
            warnings.warn("PCA initialization inappropriate:One of the dimensions of the map is 1.", stacklevel=2)
        n = data.shape[0]
        if n < 2:
            raise ValueError("pca_weights_init needs at least 2 samples")
        rows = max(1, PCA_CHUNK_BYTES // (8 * self.input_len))
        if n <= rows:  # the whole float64 copy fits in the budget: MiniSom's computation, to the bit
            X = data.to(torch.float64)
            mean = X.mean(0)
            centred = X - mean
            cov = centred.T @ centred / (n - 1)
        else:  # mean, then centred cross-products, accumulated chunk by chunk in float64
            mean = sum(data[part].to(torch.float64).sum(0) for part in iter_chunks(n, rows)) / n
            cov = torch.zeros(self.input_len, self.input_len, dtype=torch.float64, device=data.device)
            for part in iter_chunks(n, rows):
                centred = data[part].to(torch.float64) - mean
                cov += centred.T @ centred
            cov /= n - 1
        weights = pca_plane(mean.cpu().numpy(), cov.cpu().numpy(), self.x, self.y)
        self._weights = torch.as_tensor(weights, dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------ training
    def train(self, data: Any, num_iteration: int, mode: str = "random", verbose: Optional[bool] = False) -> "SOM":
        """Train in ``mode``: ``random`` (online, shuffled), ``sequential`` (online, data order) or ``batch`` (batch map)."""
        if mode not in TRAINING_MODES:
            raise ValueError(f"mode={mode!r} is not supported; choose one of {list(TRAINING_MODES)}")
        if mode == "batch":
            return self.train_batch(data, num_iteration, verbose=verbose)
        if mode == "sequential":
            return self.train_sequential(data, num_iteration, verbose=verbose)
        return self.train_random(data, num_iteration, verbose=verbose)

    def train_random(self, data: Any, num_iteration: int, verbose: Optional[bool] = False) -> "SOM":
        """``num_iteration`` online updates; samples ``arange(T) % N`` shuffled by the SOM's RandomState (MiniSom's order)."""
        X = self._data(data)
        _check_iterations(num_iteration)
        order = np.arange(num_iteration) % X.shape[0]
        self._rng.shuffle(order)
        self._train_online(X, order, verbose)
        return self

    def train_sequential(self, data: Any, num_iteration: int, verbose: Optional[bool] = False) -> "SOM":
        """``num_iteration`` online updates with samples in data order, cycling (MiniSom's ``train_batch``)."""
        X = self._data(data)
        _check_iterations(num_iteration)
        self._train_online(X, np.arange(num_iteration) % X.shape[0], verbose)
        return self

    def online_schedule(self, n_steps: int, decay_steps: Optional[np.ndarray] = None, decay_total: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
        """(η_t, σ_t) for ``n_steps`` online steps, float64. By default t = step and T = n_steps; MiniSom's epoch
        mode passes ``decay_steps`` = step // N and ``decay_total`` = number of epochs."""
        steps = np.arange(n_steps) if decay_steps is None else decay_steps
        total = n_steps if decay_total is None else decay_total
        return (decay_schedule(self._lr_decay, self.learning_rate, steps, total),
                decay_schedule(self._sigma_decay, self.sigma, steps, total))

    def _train_online(self, X: torch.Tensor, order: np.ndarray, verbose: bool, schedule: Optional[tuple[np.ndarray, np.ndarray]] = None,
                      forced_winners: Optional[np.ndarray] = None) -> None:
        eta, sigma = schedule if schedule is not None else self.online_schedule(len(order))
        progress = tqdm(total=len(order), desc="train online", unit="step", disable=_progress_disabled(verbose))
        if self.device.type == "cpu":
            self._weights = self._weights.contiguous()
            train_online_numpy(self._flat.numpy(), X.numpy(), order, eta, sigma, self._host_neighborhood, self._distance,
                               forced_winners, progress)
        else:
            as_device = lambda a, dt: torch.as_tensor(a, dtype=dt, device=self.device)  # noqa: E731
            forced = None if forced_winners is None else as_device(forced_winners, torch.long)
            with self._matmul_precision():
                train_online_torch(self._flat, X, as_device(order, torch.long), as_device(eta, self.dtype), as_device(sigma, self.dtype),
                                   self._map_neighborhood, self._distance, forced, progress)
        self._finish_progress(progress, X, verbose)

    def _finish_progress(self, progress: tqdm, data: Any, verbose: Optional[bool]) -> None:
        if verbose or (verbose is None and not progress.disable):
            qe = self.quantization_error(data)
            progress.set_postfix(quantization_error=f"{qe:.5g}")
            logger.info("quantization error after training: %.6g", qe)
        progress.close()

    def train_batch(self, data: Any, num_iteration: int, verbose: Optional[bool] = False, *, stream: Optional[bool] = None,
                    stream_rows: Optional[int] = None, accumulate: str = "float64") -> "SOM":
        """Kohonen's batch map for ``num_iteration`` epochs (no learning rate; σ_t = sigma_decay(σ, t, T)).

        Each epoch is ``partial_stats`` of the whole data, then ``apply_update`` (:mod:`somtorch.batch`); the
        distributed drivers (:mod:`somtorch.distributed`, :mod:`somtorch.dask`) run the same two steps per shard.
        ``accumulate``: ``float64`` sums, or ``exact`` fixed-point sums (bit-identical for any split into shards).

        ``data`` may be a matrix on any device or a re-iterable of (rows, D) chunks. It is streamed to the device
        chunk by chunk (pinned host buffers, non-blocking copies) when it is an iterable of chunks, when
        ``stream=True``, or (``stream=None``) when it is host data bigger than half the free CUDA memory.
        Otherwise it moves to the device once.
        """
        _check_iterations(num_iteration)
        check_accumulation(accumulate)
        source = self._batch_source(data, stream, stream_rows)
        progress = tqdm(range(num_iteration), desc="train batch", unit="epoch", disable=_progress_disabled(verbose))
        with threads.single_threaded_on_cpu(self.device):  # the parallel work runs on somtorch's own workers
            for epoch in progress:
                self.apply_update(self.partial_stats(source, accumulate=accumulate), self.batch_sigma(epoch, num_iteration))
        self._finish_progress(progress, source, verbose)
        return self

    def batch_sigma(self, epoch: int, num_epochs: int) -> float:
        """σ of batch epoch ``epoch`` of ``num_epochs``: sigma_decay(σ, epoch, num_epochs)."""
        return float(decay_schedule(self._sigma_decay, self.sigma, np.array([epoch]), num_epochs)[0])

    def partial_stats(self, data: Any, *, accumulate: str = "float64") -> BatchStatistics:
        """Per-neuron sums S (M, D) and hit counts c (M,) of ``data`` (a matrix, a ChunkSource or a shard of the
        data) under the current weights: step one of a batch epoch (:func:`somtorch.batch.partial_stats`)."""
        with self._matmul_precision():
            return partial_stats(self._chunks(data), self._flat, self._distance, chunk_bytes=self.chunk_bytes,
                                 accumulate=accumulate)

    def apply_update(self, stats: BatchStatistics, sigma: float) -> None:
        """Step two of a batch epoch: set the weights from merged statistics at radius σ
        (:func:`somtorch.batch.apply_update`)."""
        if tuple(stats.counts.shape) != (self.n_neurons,) or stats.sums.shape[-2:] != (self.n_neurons, self.input_len):
            raise ValueError(f"statistics of shape {tuple(stats.sums.shape)} do not fit a {self.x}×{self.y} map of "
                             f"{self.input_len} features")
        block = bmu_search.chunk_rows(self.n_neurons, 8, self.chunk_bytes, self.device)
        self._flat.copy_(apply_update(stats.to(self.device), self._flat, self._smoothing_neighborhood, float(sigma), block))

    def _batch_source(self, data: Any, stream: Optional[bool], stream_rows: Optional[int]) -> Any:
        if isinstance(data, ChunkSource):
            return data
        is_matrix = isinstance(data, (np.ndarray, torch.Tensor)) or hasattr(data, "columns")
        if is_matrix and stream is not True:
            nbytes = int(np.prod(data.shape)) * self._weights.element_size()
            big = self.device.type == "cuda" and nbytes > torch.cuda.mem_get_info(self.device)[0] // 2
            if stream is False or not big:
                return self._data(data)
        return ChunkSource(data, self.input_len, self.device, self.dtype, stream_rows)

    def _chunks(self, data: Any) -> Iterator[torch.Tensor]:
        if isinstance(data, ChunkSource):
            yield from data
        elif isinstance(data, torch.Tensor) and data.device == self.device and data.dtype == self.dtype and data.ndim == 2:
            yield data
        else:
            yield self._data(data)

    # ------------------------------------------------------------------ queries
    def activate(self, x: Any) -> np.ndarray:
        """Activation-distance of sample x to every neuron, (x, y)."""
        X = as_sample(x, self.input_len, self.device, self.dtype)
        return self._distance.distances(X, self._flat)[0].reshape(self.x, self.y).cpu().numpy()

    def winner(self, x: Any) -> tuple[int, int]:
        """(i, j) of the BMU of sample x under ``activation_distance`` (ties → lowest flat index)."""
        flat = int(self.bmu_indices(as_sample(x, self.input_len, self.device, self.dtype))[0])
        return divmod(flat, self.y)

    def bmu_indices(self, data: Any) -> torch.Tensor:
        """Flat BMU index (i·y + j) of every sample under ``activation_distance``: LongTensor (N,) on ``device``."""
        return self._activation_bmus(data if isinstance(data, ChunkSource) else self._data(data))

    def _activation_bmus(self, source: Union[torch.Tensor, ChunkSource]) -> torch.Tensor:
        """bmu_indices of validated data: a matrix on the device or a ChunkSource."""
        with self._matmul_precision():
            found = [bmu_search.best_matching_units(c, self._flat, self._distance, self.chunk_bytes) for c in self._chunks(source)]
        return found[0] if len(found) == 1 else torch.cat(found)

    def winners(self, data: Any) -> np.ndarray:
        """(i, j) of every sample's BMU: int64 array (N, 2)."""
        flat = self.bmu_indices(data).cpu().numpy()
        return np.stack(np.divmod(flat, self.y), axis=1)

    def quantization(self, data: Any) -> np.ndarray:
        """The euclidean BMU's weight vector for every sample: (N, D)."""
        X = self._data(data)
        with self._matmul_precision():
            idx = bmu_search.best_matching_units(X, self._flat, ActivationDistance("euclidean"), self.chunk_bytes)
        return self._flat[idx].cpu().numpy()

    def quantization_error(self, data: Any) -> float:
        """Mean euclidean distance from each sample to its (euclidean) BMU: (1/N) Σ_n ‖x_n − w_{c_n}‖₂."""
        with self._matmul_precision():
            return euclidean_evaluation(self._chunks(data), self._flat, self._neighbors, self.chunk_bytes, two_best=False).quantization_error

    def topographic_error(self, data: Any) -> float:
        """Share of samples whose two best (euclidean) units are not adjacent on the map.

        Adjacent: rectangular grid distance ≤ 1.42 (diagonals count), hexagonal coordinate distance 1; minimum image
        on periodic maps. NaN (with a warning) on a 1 × 1 map.
        """
        if self.n_neurons == 1:
            warnings.warn("The topographic error is not defined for a 1-by-1 map.", stacklevel=2)
            return float("nan")
        with self._matmul_precision():
            return euclidean_evaluation(self._chunks(data), self._flat, self._neighbors, self.chunk_bytes).topographic_error

    def evaluate(self, data: Any) -> SOMEvaluation:
        """BMUs, quantization error and topographic error of ``data`` in one pass: what ``bmu_indices``,
        ``quantization_error`` and ``topographic_error`` return, from one two-best search per chunk.

        ``data``: an (N, D) matrix (validated and moved to the device once) or a ChunkSource. QE and TE always use
        the euclidean distance; when ``activation_distance`` is not euclidean the BMUs come from a second search
        under it (two passes instead of one). TE is NaN, with a warning, on a 1 × 1 map.
        """
        source = data if isinstance(data, ChunkSource) else self._data(data)
        two_best = self.n_neurons > 1
        if not two_best:
            warnings.warn("The topographic error is not defined for a 1-by-1 map.", stacklevel=2)
        with self._matmul_precision():
            result = euclidean_evaluation(self._chunks(source), self._flat, self._neighbors, self.chunk_bytes, two_best)
        if self._distance.is_euclidean:
            return result
        return replace(result, bmu=self._activation_bmus(source))

    def distance_map(self, scaling: str = "sum") -> np.ndarray:
        """U-matrix (x, y): per neuron the sum (or mean) of euclidean distances to its true neighbours (8 on
        rectangular, 6 on hexagonal maps, wrapping on periodic maps), divided by the maximum."""
        if scaling not in ("sum", "mean"):
            raise ValueError(f'scaling should be either "sum" or "mean" ("{scaling}" not valid)')
        W = self._flat
        valid = self._neighbors >= 0  # [M, K]
        neighbor_weights = W[self._neighbors.clamp_min(0)]  # [M, K, D]
        gaps = (neighbor_weights - W[:, None, :]).norm(dim=2) * valid
        um = gaps.sum(1)
        if scaling == "mean":
            um = um / valid.sum(1).clamp_min(1)
        um = um.reshape(self.x, self.y)
        peak = um.max()
        return (um / peak if float(peak) > 0 else um).cpu().numpy()

    def activation_response(self, data: Any) -> np.ndarray:
        """How many samples each neuron wins: float array (x, y)."""
        counts = torch.bincount(self.bmu_indices(data), minlength=self.n_neurons)
        return counts.reshape(self.x, self.y).to(torch.float64).cpu().numpy()

    def win_map(self, data: Any, return_indices: bool = False) -> defaultdict:
        """{(i, j): [samples (or their indices) won by neuron (i, j)]}, in data order."""
        X = self._data(data)
        rows = X.cpu().numpy()
        winmap: defaultdict = defaultdict(list)
        for n, (i, j) in enumerate(self.winners(X)):
            winmap[(int(i), int(j))].append(n if return_indices else rows[n])
        return winmap

    def labels_map(self, data: Any, labels: Sequence[Any]) -> defaultdict:
        """{(i, j): Counter of the labels of the samples won by neuron (i, j)}."""
        X = self._data(data)
        if len(labels) != X.shape[0]:
            raise ValueError(f"data and labels must have the same length; got {X.shape[0]} rows and {len(labels)} labels")
        winmap: defaultdict = defaultdict(list)
        for (i, j), label in zip(self.winners(X), labels):
            winmap[(int(i), int(j))].append(label)
        return defaultdict(list, {position: Counter(found) for position, found in winmap.items()})

    def get_euclidean_coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates (xx, yy) of every neuron, each (x, y) (MiniSom's layout)."""
        return self.grid.xx.copy(), self.grid.yy.copy()

    def convert_map_to_euclidean(self, xy: Any) -> tuple[Any, Any]:
        """Euclidean coordinates of map position(s) ``xy`` = (i, j) (ints or index arrays)."""
        return self.grid.xx[xy], self.grid.yy[xy]

    # ------------------------------------------------------------------ persistence
    def hyperparameters(self) -> dict[str, Any]:
        """Constructor arguments as plain Python values (callables cannot be saved)."""
        params = dict(x=self.x, y=self.y, input_len=self.input_len, sigma=self.sigma, learning_rate=self.learning_rate,
                      decay_function=self.decay_function, neighborhood_function=self.neighborhood_function,
                      topology=self.topology, activation_distance=self.activation_distance, random_seed=self.random_seed,
                      sigma_decay_function=self.sigma_decay_function, periodic=self.periodic,
                      dtype=str(self.dtype).replace("torch.", ""), chunk_bytes=self.chunk_bytes, allow_tf32=self.allow_tf32)
        for name, value in params.items():
            if callable(value):
                raise ValueError(f"cannot save a SOM whose {name} is a callable ({value!r}); use a named option")
        return params

    def state_dict(self) -> dict[str, Any]:
        """Weights, hyperparameters and the RandomState, as tensors and plain values (``weights_only``-loadable)."""
        kind, keys, pos, has_gauss, cached = self._rng.get_state()
        return {"format": FILE_FORMAT, "hyperparameters": self.hyperparameters(), "weights": self._weights.detach().cpu().clone(),
                "rng": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                        "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}

    def save(self, path: Union[str, Path]) -> Path:
        """Write the model to one file atomically (temporary file, then rename). Returns the path."""
        from .persistence import save_state
        return save_state(self.state_dict(), path)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: DeviceSpec = None) -> "SOM":
        """Rebuild a SOM from :meth:`state_dict` output on ``device`` (None → "auto")."""
        if state.get("format") != FILE_FORMAT:
            raise ValueError(f"not a somtorch SOM state (format {state.get('format')!r}, expected {FILE_FORMAT!r})")
        params = dict(state["hyperparameters"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            som = cls(**params, device="auto" if device is None else device)
        som.set_weights(state["weights"])
        rng = state["rng"]
        som._rng.set_state((rng["kind"], rng["keys"].numpy().astype(np.uint32), rng["pos"], rng["has_gauss"], rng["cached_gaussian"]))
        return som

    @classmethod
    def load(cls, path: Union[str, Path], device: DeviceSpec = None) -> "SOM":
        """Load a model saved with :meth:`save` (``torch.load(weights_only=True)``) onto ``device``.

        Raises FileNotFoundError for a missing file, ValueError ``<path> is not a somtorch model (...)`` for any file
        that is not a saved SOM (foreign, damaged, or missing keys), and RuntimeError for an unavailable device.
        """
        from .persistence import broken_part, load_state, not_a_model
        resolve_device(device)  # an unavailable device is reported as such, not as a broken file
        state = load_state(path)
        try:
            return cls.from_state_dict(state, device)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise not_a_model(path, broken_part(error)) from None

    def __repr__(self) -> str:
        return (f"SOM(x={self.x}, y={self.y}, input_len={self.input_len}, sigma={self.sigma}, learning_rate={self.learning_rate}, "
                f"neighborhood_function={self.neighborhood_function!r}, topology={self.topology!r}, periodic={self.periodic}, "
                f"device={str(self.device)!r}, dtype={self.dtype})")


def _progress_disabled(verbose: Optional[bool]) -> Optional[bool]:
    """tqdm's ``disable``: verbose=True always shows the bar, False hides it, None shows it only on a terminal."""
    return None if verbose is None else not verbose


def _check_iterations(num_iteration: int) -> None:
    if isinstance(num_iteration, bool) or not isinstance(num_iteration, (int, np.integer)) or num_iteration < 1:
        raise ValueError(f"num_iteration must be an integer ≥ 1; got {num_iteration!r}")
