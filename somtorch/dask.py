"""Dask driver of the batch map: the data is a Dask array or DataFrame, one task per row partition.

Epoch t of T, with the partitions X_1 … X_P of the data and the current weights W (M, D):

    on the workers:  (S_p, c_p) = partial_stats(X_p; W)          (somtorch.batch: S_p (M, D), c_p (M,) int64)
    merge:           S = Σ_p S_p, c = Σ_p c_p                     (partition order, eight at a time: a fixed tree)
    on the client:   W ← apply_update(S, c; σ_t), σ_t = SOM.batch_sigma(t, T)

so the weights equal ``SOM.train_batch`` on the concatenated rows: to ~1e-16 relative per epoch with
``accumulate="float64"`` (only the summation order differs), bit for bit with ``accumulate="exact"``. The weights
travel to the workers once per epoch (scattered to all of them); only M·(D + 1) numbers per partition come back.
Without ``persist`` the graph re-reads its source every epoch, so data larger than the cluster's memory works.

The workers search BMUs like the SOM (same dtype, activation distance, chunk_bytes) on their CPU, or on their GPU
when the SOM is on CUDA and the worker has one. The data is validated there, per partition (NaN/inf, values too
large for the dtype), and errors name the partition (rows are counted within it).

Online training (``train_random``/``train_sequential``) updates W after every sample, so it cannot be split into
partitions: only the batch map is distributed.

Needs ``dask[dataframe,distributed]``; ``import somtorch`` does not import this module.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterator, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

try:
    import dask
    import dask.array as da
    import dask.dataframe as dd
    from dask.delayed import Delayed
    from distributed import Client, LocalCluster, default_client
except ImportError as error:  # pragma: no cover - exercised only without dask
    raise ImportError("somtorch.dask needs Dask: pip install 'dask[dataframe,distributed]'") from error

from somtorch import bmu as bmu_search
from somtorch._inputs import check_matrix, matmul_precision, to_host_matrix
from somtorch.batch import BatchStatistics, check_accumulation, partial_stats
from somtorch.distances import ActivationDistance, DistanceSpec
from somtorch.evaluation import SOMEvaluation, euclidean_sums
from somtorch.initialization import pca_plane
from somtorch.som import PCA_CHUNK_BYTES, SOM, TRAINING_MODES

logger = logging.getLogger(__name__)

MERGE_FAN_IN = 8  # partial results summed per merge task, left to right


@dataclass(frozen=True)
class PartitionKernel:
    """What a worker needs to treat a partition as the SOM would: validation, dtype and BMU search settings.

    Shipped once per call; the weights travel separately, once per epoch.
    """

    input_len: int
    dtype: torch.dtype
    activation_distance: DistanceSpec
    chunk_bytes: int
    som_device: str
    allow_tf32: bool

    @classmethod
    def of(cls, som: SOM) -> "PartitionKernel":
        return cls(som.input_len, som.dtype, som.activation_distance, som.chunk_bytes, str(som.device), som.allow_tf32)

    @property
    def device(self) -> torch.device:
        """The worker's device when the SOM is on CUDA: the SOM's GPU if the worker sees it, else the worker's own
        default GPU (e.g. one GPU per worker process), else its CPU. A CPU SOM computes on the workers' CPUs."""
        wanted = torch.device(self.som_device)
        if wanted.type != "cuda" or not torch.cuda.is_available():
            return torch.device("cpu")
        return wanted if wanted.index is not None and wanted.index < torch.cuda.device_count() else torch.device("cuda")

    def matrix(self, block: Any, index: int) -> torch.Tensor:
        """Partition ``index`` (NumPy block or pandas frame, (rows, D)) validated, in the SOM's dtype, on ``device``.

        The conversion is the SOM's own (``as_matrix``), so every value is rounded as in a single process."""
        name = f"partition {index}"
        host = to_host_matrix(block, name)
        if host.ndim == 2 and host.shape[0] == 0 and host.shape[1] == self.input_len:
            return torch.empty((0, self.input_len), dtype=self.dtype, device=self.device)  # an empty partition adds nothing
        check_matrix(host, self.input_len, name, dtype=self.dtype)
        if isinstance(host, np.ndarray):
            host = torch.from_numpy(host if host.flags.writeable else host.copy())  # pandas 3 hands out read-only arrays
        return host.to(device=self.device, dtype=self.dtype)

    def weights(self, weights: np.ndarray) -> torch.Tensor:
        """The flat weights (M, D) on the worker's device in the SOM's dtype."""
        return torch.tensor(weights, dtype=self.dtype, device=self.device)  # a copy: scattered arrays may be read-only

    def distance(self) -> ActivationDistance:
        return ActivationDistance(self.activation_distance)

    def precision(self) -> ContextManager[None]:
        """TF32 CUDA products only where the SOM allows them (as ``SOM._matmul_precision``)."""
        return matmul_precision(self.allow_tf32)


# ---------------------------------------------------------------------------------------------- public API
def train_batch(som: SOM, data: Any, num_epochs: int, *, client: Optional[Client] = None, accumulate: str = "float64",
                persist: bool = False, verbose: bool = False) -> SOM:
    """Kohonen's batch map for ``num_epochs`` epochs on a Dask array (N, D) or a DataFrame of D numeric columns.

    Per epoch: σ_t = som.batch_sigma(t, T); every partition's (S_p, c_p) on the workers under the current weights;
    S = Σ_p S_p, c = Σ_p c_p in partition order; ``som.apply_update`` on the client. The result equals
    ``som.train_batch`` on all rows (float64 SOM: ≤ 1e-12 relative; ``accumulate="exact"``: bit-identical).

    client: a ``distributed.Client``; None → the default client, else a temporary in-process LocalCluster.
    persist: keep the partitions in the workers' memory across epochs (else the source is re-read each epoch).
    Returns ``som``, trained in place.
    """
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, (int, np.integer)) or num_epochs < 1:
        raise ValueError(f"num_epochs must be an integer ≥ 1; got {num_epochs!r}")
    check_accumulation(accumulate)
    with _client_for(client) as active:
        collection = _as_collection(data, som.input_len)
        if persist:  # the persisted collection holds the futures of its partitions: keep it referenced until the end
            collection = active.persist(collection)
        partitions = _partitions_of(collection)
        kernel = _broadcast(active, PartitionKernel.of(som))
        stats_of = dask.delayed(_partition_stats, pure=True)
        progress = tqdm(range(num_epochs), desc="train batch (dask)", unit="epoch", disable=not verbose)
        for epoch in progress:
            started = time.perf_counter()
            weights = _broadcast(active, _flat_weights(som))
            parts = [stats_of(block, kernel, weights, index, accumulate) for index, block in enumerate(partitions)]
            sums, counts = _merged_in_order(active, parts, _add_stats)
            if not counts.sum():
                raise ValueError("data has no rows: every partition is empty")
            som.apply_update(BatchStatistics(torch.from_numpy(sums), torch.from_numpy(counts)), som.batch_sigma(epoch, num_epochs))
            logger.debug("epoch %d/%d: %d partitions, %d rows, %.3f s", epoch + 1, num_epochs, len(partitions),
                         int(counts.sum()), time.perf_counter() - started)
        progress.close()
    return som


def train(som: SOM, data: Any, num_iteration: int, mode: str = "batch", **options: Any) -> SOM:
    """``SOM.train`` on Dask data: only ``mode="batch"`` (:func:`train_batch`) can run on partitions."""
    if mode not in TRAINING_MODES:
        raise ValueError(f"mode={mode!r} is not supported; choose one of {list(TRAINING_MODES)}")
    if mode != "batch":
        raise ValueError(f"mode={mode!r} is online training: it updates the weights after every sample, in order, so "
                         "it cannot be split across Dask partitions; use mode='batch', or SOM.train on one process")
    return train_batch(som, data, num_iteration, **options)


def random_weights_init(som: SOM, data: Any, *, client: Optional[Client] = None) -> None:
    """``som.random_weights_init`` on all rows: neuron k (row-major) takes row picks_k of the concatenated data,
    picks = som's RandomState.randint(N, size=M) (the same draw, so the same weights bit for bit)."""
    with _client_for(client) as active:
        partitions = _partitions_of(_as_collection(data, som.input_len))
        kernel = _broadcast(active, PartitionKernel.of(som))
        rows_of = dask.delayed(_partition_rows, pure=True)
        lengths = np.array(active.compute([rows_of(block, kernel, k) for k, block in enumerate(partitions)], sync=True), dtype=np.int64)
        total = int(lengths.sum())
        if total == 0:
            raise ValueError("data has no rows: every partition is empty")
        picks = som._rng.randint(total, size=som.n_neurons)  # the SOM's generator, advanced as in one process
        starts = np.cumsum(lengths) - lengths
        owner = np.searchsorted(starts, picks, side="right") - 1  # partition of each pick (empty ones never own)
        take_of = dask.delayed(_partition_take, pure=True)
        wanted = np.unique(owner)
        taken = active.compute([take_of(partitions[p], kernel, int(p), picks[owner == p] - starts[p]) for p in wanted], sync=True)
        weights = np.empty((som.n_neurons, som.input_len), dtype=taken[0].dtype)
        for p, rows in zip(wanted, taken):
            weights[owner == p] = rows
    som.set_weights(weights.reshape(som.x, som.y, som.input_len))


def pca_weights_init(som: SOM, data: Any, *, client: Optional[Client] = None) -> None:
    """``som.pca_weights_init`` on all rows: W[i, j] = mean + c1_i·pc1 + c2_j·pc2 from the (N−1)-normalised
    covariance, merged from per-partition float64 moments (n_p, mean_p, C_p = Σ (x − mean_p)ᵀ(x − mean_p)):

        n = n_a + n_b,  δ = mean_b − mean_a,  mean = mean_a + δ·n_b/n,  C = C_a + C_b + δδᵀ·n_a·n_b/n.
    """
    if som.input_len == 1:
        raise ValueError("The data needs at least 2 features for pca initialization")
    if som.x == 1 or som.y == 1:
        warnings.warn("PCA initialization inappropriate:One of the dimensions of the map is 1.", stacklevel=2)
    with _client_for(client) as active:
        partitions = _partitions_of(_as_collection(data, som.input_len))
        kernel = _broadcast(active, PartitionKernel.of(som))
        moments_of = dask.delayed(_partition_moments, pure=True)
        parts = [moments_of(block, kernel, index) for index, block in enumerate(partitions)]
        n, mean, cross = _merged_in_order(active, parts, _add_moments)
    if n < 2:
        raise ValueError("pca_weights_init needs at least 2 samples")
    som.set_weights(pca_plane(mean, cross / (n - 1), som.x, som.y))


def bmu_indices(som: SOM, data: Any) -> da.Array:
    """Lazy flat BMU index (i·y + j) of every row under ``activation_distance`` and the weights at call time:
    int64 Dask array (N,), one block per partition (block sizes unknown for a DataFrame)."""
    collection = _as_collection(data, som.input_len)
    sizes = collection.chunks[0] if isinstance(collection, da.Array) else (math.nan,) * collection.npartitions
    kernel = dask.delayed(PartitionKernel.of(som), pure=True)
    weights = dask.delayed(_flat_weights(som), pure=True)  # one graph key, shared by every block's task
    bmus_of = dask.delayed(_partition_bmus, pure=True)
    blocks = [da.from_delayed(bmus_of(block, kernel, weights, index), shape=(size,), dtype=np.int64)
              for index, (block, size) in enumerate(zip(_partitions_of(collection), sizes))]
    return da.concatenate(blocks)


def evaluate(som: SOM, data: Any, *, client: Optional[Client] = None) -> SOMEvaluation:
    """``som.evaluate`` on all rows: QE = Σ_p Σ ‖x − w_c‖ / N and TE = Σ_p #non-adjacent(c, c′) / N from
    per-partition sums (euclidean two-best search), and the BMUs under ``activation_distance`` (on som's device).

    The BMUs (N int64) come back to the client; :func:`bmu_indices` keeps them lazy, in the cluster."""
    two_best = som.n_neurons > 1
    if not two_best:
        warnings.warn("The topographic error is not defined for a 1-by-1 map.", stacklevel=2)
    with _client_for(client) as active:
        partitions = _partitions_of(_as_collection(data, som.input_len))
        kernel = _broadcast(active, PartitionKernel.of(som))
        weights = _broadcast(active, _flat_weights(som))
        neighbors = _broadcast(active, np.asarray(som.grid.neighbors, dtype=np.int64))
        quality_of = dask.delayed(_partition_quality, pure=True)
        parts = active.compute([quality_of(block, kernel, weights, neighbors, index, two_best)
                                for index, block in enumerate(partitions)], sync=True)
    n = sum(part[3] for part in parts)
    if n == 0:
        raise ValueError("data has no rows: the quantization and topographic errors need at least one sample")
    distance_sum = math.fsum(part[1] for part in parts)
    errors = sum(part[2] for part in parts)
    bmu = torch.from_numpy(np.concatenate([part[0] for part in parts])).to(som.device)
    return SOMEvaluation(bmu, distance_sum / n, errors / n if two_best else math.nan, n)


# ---------------------------------------------------------------------------------------------- client side
@contextmanager
def _client_for(client: Optional[Client]) -> Iterator[Client]:
    """The given client; else the default one; else a temporary in-process LocalCluster, closed on exit."""
    if client is None:
        try:
            client = default_client()
        except ValueError:  # no client has been started in this process
            client = None
        else:
            logger.info("Dask: using the default client %s", client)
    else:
        logger.info("Dask: using the given client %s", client)
    if client is not None:
        yield client
        return
    with LocalCluster(processes=False, dashboard_address=":0") as cluster, Client(cluster) as temporary:
        logger.info("Dask: no client given or running; a temporary in-process cluster for this call: %s", cluster)
        yield temporary


def _as_collection(data: Any, input_len: int) -> Any:
    """``data`` checked: a Dask array (N, D), its columns rechunked to one block, or a DataFrame of D numeric columns."""
    if isinstance(data, da.Array):
        if data.ndim != 2:
            raise ValueError(f"data must be a 2-D Dask array (n_samples, {input_len}); got shape {data.shape}")
        if data.shape[1] != input_len:
            raise ValueError(f"data has {data.shape[1]} features per row, but the SOM expects input_len={input_len}")
        if data.dtype.kind not in "biuf":
            raise TypeError(f"data must be numeric; the Dask array has dtype {data.dtype}")
        return data if data.numblocks[1] == 1 else data.rechunk({1: -1})
    if isinstance(data, dd.DataFrame):
        if len(data.columns) != input_len:
            raise ValueError(f"data has {len(data.columns)} columns, but the SOM expects input_len={input_len}")
        non_numeric = [str(name) for name in data.select_dtypes(exclude=["number", "bool"]).columns]
        if non_numeric:
            raise TypeError(f"data has non-numeric columns {non_numeric}; encode them as numbers first")
        return data
    raise TypeError(f"data must be a dask.array.Array (N, D) or a dask.dataframe.DataFrame of D numeric columns; "
                    f"got {type(data).__name__} (use SOM.train_batch for in-memory data)")


def _partitions_of(collection: Any) -> list[Delayed]:
    """One delayed block per row partition, in row order."""
    delayed_blocks = collection.to_delayed()
    return list(delayed_blocks.ravel()) if isinstance(collection, da.Array) else list(delayed_blocks)


def _broadcast(client: Client, value: Any) -> Any:
    """``value`` copied to every worker once: a Future. Under a fresh key (``hash=False``): a content-hashed key
    shared with an earlier call can be released by that call's clean-up while this one still needs it."""
    return client.scatter(value, broadcast=True, hash=False)


def _flat_weights(som: SOM) -> np.ndarray:
    return som.get_weights().reshape(som.n_neurons, som.input_len)


def _merged_in_order(client: Client, parts: Sequence[Delayed], add: Callable[[Any, Any], Any]) -> Any:
    """Σ parts in a fixed order: consecutive groups of MERGE_FAN_IN summed left to right on the workers until at most
    MERGE_FAN_IN remain, those gathered and summed left to right here (one round trip fewer for few partitions)."""
    merge = dask.delayed(_sum_left_to_right, pure=True)
    level = list(parts)
    while len(level) > MERGE_FAN_IN:
        level = [merge(add, *level[start:start + MERGE_FAN_IN]) for start in range(0, len(level), MERGE_FAN_IN)]
    return _sum_left_to_right(add, *client.compute(level, sync=True))


# ---------------------------------------------------------------------------------------------- worker side
def _sum_left_to_right(add: Callable[[Any, Any], Any], *parts: Any) -> Any:
    total = parts[0]
    for part in parts[1:]:
        total = add(total, part)
    return total


def _partition_stats(block: Any, kernel: PartitionKernel, weights: np.ndarray, index: int, accumulate: str) -> tuple[np.ndarray, np.ndarray]:
    """(S_p, c_p) of partition ``index`` under ``weights`` (M, D): NumPy float64 (M, D) or int64 limbs (2, M, D), int64 (M,)."""
    X = kernel.matrix(block, index)
    with kernel.precision():
        try:
            stats = partial_stats([X], kernel.weights(weights), kernel.distance(), chunk_bytes=kernel.chunk_bytes, accumulate=accumulate)
        except ValueError as error:  # e.g. values beyond the exact fixed-point range
            raise ValueError(f"partition {index}: {error}") from None
    return stats.sums.cpu().numpy(), stats.counts.cpu().numpy()


def _add_stats(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return a[0] + b[0], a[1] + b[1]


def _partition_rows(block: Any, kernel: PartitionKernel, index: int) -> int:
    """Rows of partition ``index``, after validating it."""
    return int(kernel.matrix(block, index).shape[0])


def _partition_take(block: Any, kernel: PartitionKernel, index: int, positions: np.ndarray) -> np.ndarray:
    """Rows ``positions`` of partition ``index`` in the SOM's dtype, (len(positions), D)."""
    return kernel.matrix(block, index)[torch.tensor(positions)].cpu().numpy()


def _partition_moments(block: Any, kernel: PartitionKernel, index: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(n_p, mean_p (D,), C_p (D, D)) in float64 of the partition's values in the SOM's dtype, in chunks of
    PCA_CHUNK_BYTES (as ``SOM.pca_weights_init``)."""
    X = kernel.matrix(block, index)
    n, dim = X.shape
    rows = max(1, PCA_CHUNK_BYTES // (8 * dim))
    mean = torch.zeros(dim, dtype=torch.float64, device=X.device)
    for part in bmu_search.iter_chunks(n, rows):
        mean += X[part].to(torch.float64).sum(0)
    mean /= max(n, 1)
    cross = torch.zeros(dim, dim, dtype=torch.float64, device=X.device)
    for part in bmu_search.iter_chunks(n, rows):
        centred = X[part].to(torch.float64) - mean
        cross += centred.T @ centred
    return n, mean.cpu().numpy(), cross.cpu().numpy()


def _add_moments(a: tuple[int, np.ndarray, np.ndarray], b: tuple[int, np.ndarray, np.ndarray]) -> tuple[int, np.ndarray, np.ndarray]:
    """Chan's merge of two (n, mean, centred cross-products) moments; an empty side is the identity."""
    (n_a, mean_a, cross_a), (n_b, mean_b, cross_b) = a, b
    if n_a == 0 or n_b == 0:
        return b if n_a == 0 else a
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), cross_a + cross_b + np.outer(delta, delta) * (n_a * n_b / n)


def _partition_bmus(block: Any, kernel: PartitionKernel, weights: np.ndarray, index: int) -> np.ndarray:
    """Flat BMU of every row of partition ``index`` under the SOM's activation distance: int64 (rows,)."""
    X = kernel.matrix(block, index)
    with kernel.precision():
        return bmu_search.best_matching_units(X, kernel.weights(weights), kernel.distance(), kernel.chunk_bytes).cpu().numpy()


def _partition_quality(block: Any, kernel: PartitionKernel, weights: np.ndarray, neighbors: np.ndarray, index: int,
                       two_best: bool) -> tuple[np.ndarray, float, int, int]:
    """(BMUs under the activation distance, Σ ‖x − w_c‖ (float64), #non-adjacent best pairs, rows) of a partition,
    with c, c′ the euclidean best and second-best units (as :func:`somtorch.evaluation.euclidean_evaluation`)."""
    X = kernel.matrix(block, index)
    W = kernel.weights(weights)
    with kernel.precision():
        sums = euclidean_sums([X], W, torch.tensor(neighbors, device=W.device), kernel.chunk_bytes, two_best)
        bmu, distance = sums.bmu, kernel.distance()
        if not distance.is_euclidean:
            bmu = bmu_search.best_matching_units(X, W, distance, kernel.chunk_bytes)
    return bmu.cpu().numpy(), sums.distance_sum, sums.non_adjacent, sums.n
