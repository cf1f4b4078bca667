"""The batch map over several processes with torch.distributed: every rank holds a shard of the rows.

Epoch t of T, on every rank r with shard X_r, starting from rank 0's weights W (broadcast once):

    S_r, c_r = partial_stats(X_r; W)                 (M, D) float64 or exact limbs (2, M, D) int64, (M,) int64
    S, c     = all_reduce(SUM) over the ranks        M·(D + 1) numbers per epoch, whatever the number of rows
    W        ← apply_update(S, c, σ_t),  σ_t = sigma_decay(σ, t, T)

so every rank ends with the same weights, those of ``SOM.train_batch`` on the shards concatenated in rank order:
to ~1e-16 relative with float64 sums (the order of the sums changes), bit for bit with ``accumulate="exact"``
(integer sums are associative). Only the batch map is distributed: an online update depends on the previous
sample's, so online training stays in one process.

Launch with torchrun / srun / Ray Train / Spark TorchDistributor (each process then calls
:func:`init_process_group`), or start the group yourself. Without a process group every function runs as a world
of one process, i.e. it equals the SOM's own method. Collectives use the group's timeout (60 s by default here,
never torch's 30 minutes), so a rank that dies makes the others fail instead of waiting.
"""
from __future__ import annotations

import logging
import os
import warnings
import zlib
from datetime import timedelta
from typing import Any, Callable, Iterator, Optional, TypeVar, Union

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .batch import ACCUMULATIONS, BatchStatistics, check_accumulation
from .evaluation import SOMEvaluation
from .initialization import pca_plane
from .som import SOM
from .streaming import ChunkSource

logger = logging.getLogger(__name__)

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
DISTRIBUTED_MODES = ("batch",)
ONLINE_MODES = ("random", "sequential")
# (rank, world size) variables of the launchers, in the order they are read
LAUNCHER_VARIABLES = (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS"))
LOCAL_RANK_VARIABLES = ("LOCAL_RANK", "SLURM_LOCALID")


# ---------------------------------------------------------------------------------------------- process group
def backend_for(device: Union[str, torch.device]) -> str:
    """The collective backend of a device: ``"gloo"`` for the CPU, ``"nccl"`` for CUDA (``"auto"``: CUDA if present)."""
    if isinstance(device, str) and device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a valid device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if kind not in BACKENDS:
        raise ValueError(f"device={device!r} has no distributed backend here; choose one of {sorted(BACKENDS)}")
    return BACKENDS[kind]


def init_process_group(device: Union[str, torch.device] = "cpu", *, timeout_s: float = 60.0, init_method: Optional[str] = None,
                       rank: Optional[int] = None, world_size: Optional[int] = None) -> bool:
    """Start the default process group of a launched process; True when there is a group, False when it runs alone.

    Without ``init_method`` the group is found from the launcher's environment (``env://``): RANK and WORLD_SIZE
    (torchrun, Ray, Spark) or SLURM_PROCID and SLURM_NTASKS (srun), with MASTER_ADDR and MASTER_PORT. When the world
    size is absent or 1, no group is started and False is returned. ``init_method`` (``file://…``, ``tcp://…``)
    needs ``rank`` and ``world_size``, given or from that environment. The backend follows ``device``
    (:func:`backend_for`); on CUDA without an index, the process uses the GPU of its LOCAL_RANK (SLURM_LOCALID).
    Every collective of the group waits at most ``timeout_s`` seconds. A group that already exists (e.g. set up by
    Ray Train) is kept and True is returned.
    """
    if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise ValueError(f"timeout_s must be a number of seconds > 0; got {timeout_s!r}")
    backend = backend_for(device)
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed (torch.distributed.is_available() is False)")
    if dist.is_initialized():
        logger.info("a process group already exists (rank %d of %d); keeping it", dist.get_rank(), dist.get_world_size())
        return True
    env_rank, env_world = _launcher_rank_and_world()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    if init_method is None and (world_size is None or world_size == 1):
        logger.debug("no world size > 1 in the environment: running as a single process")
        return False
    if rank is None or world_size is None:
        raise ValueError(f"init_method={init_method!r} needs rank and world_size (got rank={rank!r}, world_size="
                         f"{world_size!r}); pass them or set RANK and WORLD_SIZE")
    if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
        raise ValueError(f"rank must be an integer in [0, world_size) and world_size ≥ 1; got rank={rank!r}, "
                         f"world_size={world_size!r}")
    if init_method is None:
        missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
        if missing:
            raise ValueError(f"world size {world_size} is set but {missing} are not: set MASTER_ADDR and MASTER_PORT "
                             "(torchrun does), or pass init_method")
        init_method = "env://"
    if backend == "nccl":
        _select_local_gpu(device)
    dist.init_process_group(backend, init_method=init_method, timeout=timedelta(seconds=float(timeout_s)),
                            rank=rank, world_size=world_size)
    logger.info("process group started: rank %d of %d, backend %s, timeout %.0f s", rank, world_size, backend, timeout_s)
    return True


def _launcher_rank_and_world() -> tuple[Optional[int], Optional[int]]:
    """(rank, world size) from the first launcher whose variables are set; ValueError when only one of a pair is."""
    for rank_name, world_name in LAUNCHER_VARIABLES:
        rank, world = os.environ.get(rank_name), os.environ.get(world_name)
        if rank is None and world is None:
            continue
        if rank is None or world is None:
            present, absent = (rank_name, world_name) if world is None else (world_name, rank_name)
            raise ValueError(f"{present} is set but {absent} is not: the launcher's environment is half set")
        try:
            return int(rank), int(world)
        except ValueError:
            raise ValueError(f"{rank_name}={rank!r} and {world_name}={world!r} must be integers") from None
    return None, None


def _select_local_gpu(device: Union[str, torch.device]) -> None:
    """On ``cuda`` without an index, make this process's GPU the one of its local rank (one GPU per rank)."""
    if torch.device(device).index is not None:
        return
    for name in LOCAL_RANK_VARIABLES:
        if os.environ.get(name) is not None:
            torch.cuda.set_device(int(os.environ[name]))
            return


def shard_bounds(n_rows: int, rank: int, world_size: int) -> slice:
    """The rows of ``rank``: contiguous, in rank order, sizes differing by at most one (the first n mod w ranks get
    ⌈n/w⌉ rows, the others ⌊n/w⌋)."""
    for name, value, low in (("n_rows", n_rows, 0), ("world_size", world_size, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer ≥ {low}; got {value!r}")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in [0, {world_size}); got {rank!r}")
    base, extra = divmod(int(n_rows), int(world_size))
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


# ---------------------------------------------------------------------------------------------- training
def train(som: SOM, shard: Any, num_iteration: int, mode: str = "batch", *, group: Optional["dist.ProcessGroup"] = None,
          accumulate: str = "float64", verbose: Optional[bool] = False) -> SOM:
    """Distributed training in ``mode``: only ``"batch"`` (:func:`train_batch`) can be distributed."""
    if mode in ONLINE_MODES:
        raise ValueError(f"mode={mode!r} cannot be distributed: an online update depends on the weights left by the "
                         "previous sample, so the steps cannot be split over ranks; use mode='batch' here, or train "
                         "online in one process (SOM.train)")
    if mode not in DISTRIBUTED_MODES:
        raise ValueError(f"mode={mode!r} is not supported; choose one of {list(DISTRIBUTED_MODES)}")
    return train_batch(som, shard, num_iteration, group=group, accumulate=accumulate, verbose=verbose)


def train_batch(som: SOM, shard: Any, num_epochs: int, *, group: Optional["dist.ProcessGroup"] = None, accumulate: str = "float64",
                verbose: Optional[bool] = False) -> SOM:
    """``num_epochs`` epochs of the batch map over the shards of all ranks (module docstring); returns ``som``.

    Every rank of ``group`` (default: the default group; none: one process) calls it with its shard: a matrix,
    a list of chunks or a ChunkSource, what ``SOM.train_batch`` takes; an empty (0, D) matrix is allowed. The SOMs
    must have the same map and options on every rank; rank 0's weights are broadcast first. All ranks end with the
    same weights. A shard that fails validation on one rank raises on every rank, before any epoch.
    ``verbose``: a tqdm bar on rank 0 only (None: only on a terminal).
    """
    _check_positive(num_epochs, "num_epochs")
    check_accumulation(accumulate)
    world = _World(group, som.device)
    local_shard = world.run("reading its shard", lambda: _Shard(som, shard, count_rows=False))
    world.agree(som, local_shard.rows, num_epochs=num_epochs, accumulate=ACCUMULATIONS.index(accumulate))
    world.broadcast_weights(som)
    disable = True if world.rank != 0 else (None if verbose is None else not verbose)
    for epoch in tqdm(range(num_epochs), desc="train batch (distributed)", unit="epoch", disable=disable):
        stats = world.run(f"computing the statistics of epoch {epoch}", lambda: local_shard.stats(som, accumulate))
        world.all_reduce(stats.sums)
        world.all_reduce(stats.counts)
        som.apply_update(stats, som.batch_sigma(epoch, num_epochs))
    logger.info("rank %d: %d distributed batch epochs done (%d rank(s))", world.rank, num_epochs, world.size)
    return som


# ---------------------------------------------------------------------------------------------- initialisation
def random_weights_init(som: SOM, shard: Any, group: Optional["dist.ProcessGroup"] = None) -> None:
    """The weights of ``som.random_weights_init(all_rows)`` on the shards concatenated in rank order, bit for bit.

    Every rank draws ``randint(N_total, size=M)`` from its SOM's RandomState (MiniSom's draw, so the RandomStates
    stay in step); rank 0's picks are used. Each rank writes the picked rows it owns into an (M, D) buffer of zeros,
    and the buffers' bit patterns are summed as integers, which copies every value exactly.
    """
    world = _World(group, som.device)
    local_shard = world.run("reading its shard", lambda: _Shard(som, shard, count_rows=True))
    sizes = world.agree(som, local_shard.rows)
    total = int(sizes.sum())
    if total == 0:
        raise ValueError("random_weights_init needs at least 1 sample; every shard is empty")
    picks = torch.as_tensor(som._rng.randint(total, size=som.n_neurons), dtype=torch.int64, device=som.device)
    world.broadcast(picks)
    offset = int(sizes[: world.rank].sum())
    chosen = world.run("copying the picked rows", lambda: local_shard.picked_rows(som, picks, offset))  # [M, D]
    world.all_reduce(chosen.view(torch.int64 if som.dtype == torch.float64 else torch.int32))
    som.set_weights(chosen.reshape(som.x, som.y, som.input_len))


def pca_weights_init(som: SOM, shard: Any, group: Optional["dist.ProcessGroup"] = None) -> None:
    """The weights of ``som.pca_weights_init(all_rows)`` on the shards concatenated in rank order (to ~1e-15).

    mean = Σ_r Σ_{n∈r} x_n / N, then C = Σ_r Σ_{n∈r} (x_n − mean)ᵀ(x_n − mean) / (N − 1) in float64, both all-reduced,
    then :func:`somtorch.initialization.pca_plane` (the rows are first cast to the SOM's dtype, as in one process).
    """
    if som.input_len == 1:
        raise ValueError("The data needs at least 2 features for pca initialization")
    world = _World(group, som.device)
    local_shard = world.run("reading its shard", lambda: _Shard(som, shard, count_rows=True))
    total = int(world.agree(som, local_shard.rows).sum())
    if total < 2:
        raise ValueError(f"pca_weights_init needs at least 2 samples; the shards hold {total}")
    if som.x == 1 or som.y == 1:
        warnings.warn("PCA initialization inappropriate:One of the dimensions of the map is 1.", stacklevel=2)
    mean = world.run("summing its rows", lambda: local_shard.float64_sum(som))
    world.all_reduce(mean)
    mean /= total
    cross = world.run("summing its cross-products", lambda: local_shard.centred_cross_products(som, mean))  # [D, D]
    world.all_reduce(cross)
    weights = pca_plane(mean.cpu().numpy(), (cross / (total - 1)).cpu().numpy(), som.x, som.y)
    som.set_weights(weights)


# ---------------------------------------------------------------------------------------------- evaluation
def evaluate(som: SOM, shard: Any, group: Optional["dist.ProcessGroup"] = None) -> SOMEvaluation:
    """``SOM.evaluate`` over the shards of all ranks: ``bmu`` holds the local shard's BMUs (its rows, in order);
    ``quantization_error`` and ``topographic_error`` are over all ranks' rows, ``n`` their total.

    QE = Σ_r Σ_{n∈r} ‖x_n − w_{c_n}‖ / N and TE = Σ_r #non-adjacent_r / N, from each rank's sums all-reduced in
    float64 (equal to one process to ~1e-15). TE is NaN on a 1 × 1 map.
    """
    world = _World(group, som.device)
    local_shard = world.run("reading its shard", lambda: _Shard(som, shard, count_rows=False))
    world.agree(som, local_shard.rows)
    bmu, totals = world.run("evaluating its shard", lambda: local_shard.evaluation_totals(som))
    world.all_reduce(totals)
    n = int(totals[0])
    if n == 0:
        raise ValueError("data has no rows: the quantization and topographic errors need at least one sample")
    if som.n_neurons == 1:
        warnings.warn("The topographic error is not defined for a 1-by-1 map.", stacklevel=2)
    topographic = float("nan") if som.n_neurons == 1 else float(totals[2]) / n
    return SOMEvaluation(bmu, float(totals[1]) / n, topographic, n)


# ---------------------------------------------------------------------------------------------- helpers
Result = TypeVar("Result")


class _World:
    """The ranks of one group, or a world of one process when no group exists (every collective is then a no-op).

    Local work runs through :meth:`run`: before the next collective the ranks exchange one failure flag each, so an
    error on one rank (bad rows, a failing data source) stops every rank at once, with that rank's error message,
    instead of leaving the others waiting in the collective."""

    def __init__(self, group: Optional["dist.ProcessGroup"], device: torch.device) -> None:
        self.active = dist.is_available() and dist.is_initialized()
        if group is not None and not self.active:
            raise RuntimeError("a group was given but torch.distributed is not initialised; call init_process_group first")
        self.group, self.device = group, device
        self.rank, self.size = (dist.get_rank(group), dist.get_world_size(group)) if self.active else (0, 1)
        if self.active and dist.get_backend(group) == "nccl" and device.type != "cuda":
            raise ValueError(f"the process group uses nccl, which needs CUDA tensors, but the SOM is on {device}; "
                             "move it with som.to('cuda') or start a gloo group (init_process_group(device='cpu'))")

    def run(self, stage: str, work: Callable[[], Result]) -> Result:
        """``work()`` on this rank, then raise on every rank if it failed on any: its own error on a failed rank, a
        RuntimeError quoting the first failed rank's error on the others."""
        try:
            result, error = work(), None
        except Exception as failure:  # raised again below, once every rank knows
            result, error = None, failure
        self._settle(stage, error)
        return result  # type: ignore[return-value]

    def _settle(self, stage: str, error: Optional[Exception]) -> None:
        failed = [self.rank] if error is not None else []
        if self.active:
            flags = torch.zeros(self.size, dtype=torch.int64, device=self.device)
            flags[self.rank] = int(error is not None)
            dist.all_reduce(flags, op=dist.ReduceOp.SUM, group=self.group)
            failed = flags.nonzero().flatten().tolist()
        if not failed:
            return
        message = [None if error is None else f"{type(error).__name__}: {error}"]
        if self.active:
            dist.broadcast_object_list(message, group=self.group, device=self.device, group_src=failed[0])
        if error is not None:
            raise error
        raise RuntimeError(f"rank {failed[0]} failed while {stage}: {message[0]} (failed ranks: {failed}); "
                           f"rank {self.rank} stops too")

    def all_reduce(self, tensor: torch.Tensor) -> None:
        """Sum ``tensor`` over the ranks, in place."""
        if self.active:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.group)

    def broadcast(self, tensor: torch.Tensor) -> None:
        """Replace ``tensor`` by the one of the group's rank 0, in place."""
        if self.active:
            dist.broadcast(tensor, group=self.group, group_src=0)

    def broadcast_weights(self, som: SOM) -> None:
        weights = som.weights.contiguous().clone()
        self.broadcast(weights)
        som.weights.copy_(weights)

    def agree(self, som: SOM, rows: int, **settings: int) -> torch.Tensor:
        """One all_gather of (map size, features, the SOM's options, settings, shard rows): ValueError on every rank
        when the ranks disagree. Returns the shard sizes in rank order, int64 (world size,) on the CPU (−1 where not counted)."""
        facts = [som.x, som.y, som.input_len, _options_fingerprint(som), *settings.values(), rows]
        mine = torch.tensor(facts, dtype=torch.int64, device=self.device)
        gathered = [torch.empty_like(mine) for _ in range(self.size)]
        if self.active:
            dist.all_gather(gathered, mine, group=self.group)
        else:
            gathered = [mine]
        table = torch.stack(gathered).cpu()  # [world, settings + 5]
        for column, name in enumerate(["x", "y", "input_len", "the SOM's options", *settings]):
            values = table[:, column].tolist()
            if len(set(values)) > 1:
                raise ValueError(f"the ranks disagree on {name}: {values} in rank order; every rank must build the "
                                 "same SOM and pass the same settings")
        return table[:, -1]


class _Shard:
    """A rank's validated rows: ``source`` (a device matrix or a ChunkSource, None when empty) and ``rows`` (−1 when
    not counted)."""

    def __init__(self, som: SOM, shard: Any, count_rows: bool) -> None:
        self.source: Union[torch.Tensor, ChunkSource, None] = None
        self.rows = -1
        shape = getattr(shard, "shape", None)
        if shape is not None and len(shape) >= 1 and shape[0] == 0:
            if len(shape) != 2 or shape[1] != som.input_len:
                raise ValueError(f"an empty shard must have shape (0, {som.input_len}); got {tuple(shape)}")
            self.rows = 0
            return
        self.source = som._batch_source(shard, None, None)  # as SOM.train_batch: to the device once, or streamed
        if isinstance(self.source, torch.Tensor):
            self.rows = self.source.shape[0]
        elif count_rows:
            self.rows = sum(chunk.shape[0] for chunk in self.source)

    def stats(self, som: SOM, accumulate: str) -> BatchStatistics:
        """S and c of the local rows under the SOM's current weights (zeros for an empty shard)."""
        if self.source is None:
            return BatchStatistics.zeros(som.n_neurons, som.input_len, accumulate=accumulate, device=som.device)
        return som.partial_stats(self.source, accumulate=accumulate)

    def picked_rows(self, som: SOM, picks: torch.Tensor, offset: int) -> torch.Tensor:
        """(M, D) in the SOM's dtype: row ``picks[k] − offset`` of this shard where this shard holds it, else 0."""
        chosen = torch.zeros(som.n_neurons, som.input_len, dtype=som.dtype, device=som.device)
        for chunk in self.chunks():
            local = picks - offset
            owned = ((local >= 0) & (local < chunk.shape[0])).nonzero().flatten()
            chosen[owned] = chunk[local[owned]]
            offset += chunk.shape[0]
        return chosen

    def float64_sum(self, som: SOM) -> torch.Tensor:
        """Σ_n x_n over the local rows in float64, (D,)."""
        total = torch.zeros(som.input_len, dtype=torch.float64, device=som.device)
        for chunk in self.chunks():
            total += chunk.to(torch.float64).sum(0)
        return total

    def centred_cross_products(self, som: SOM, mean: torch.Tensor) -> torch.Tensor:
        """Σ_n (x_n − mean)ᵀ(x_n − mean) over the local rows in float64, (D, D)."""
        cross = torch.zeros(som.input_len, som.input_len, dtype=torch.float64, device=som.device)
        for chunk in self.chunks():
            centred = chunk.to(torch.float64) - mean
            cross += centred.T @ centred
        return cross

    def evaluation_totals(self, som: SOM) -> tuple[torch.Tensor, torch.Tensor]:
        """The local BMUs (n,) and float64 (rows, Σ‖x − w_c‖, non-adjacent pairs) from ``SOM.evaluate``; the sums
        come back exactly from its means (QE·n to 1 ulp, TE·n rounded to the integer count)."""
        totals = torch.zeros(3, dtype=torch.float64, device=som.device)
        if self.source is None:
            return torch.empty(0, dtype=torch.int64, device=som.device), totals
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the 1 × 1 warning comes once from evaluate(), on every rank alike
            local = som.evaluate(self.source)
        non_adjacent = 0.0 if som.n_neurons == 1 else round(local.topographic_error * local.n)
        totals += torch.tensor([local.n, local.quantization_error * local.n, non_adjacent], dtype=torch.float64,
                               device=som.device)
        return local.bmu, totals

    def chunks(self) -> Iterator[torch.Tensor]:
        """The rows as (rows, D) tensors on the SOM's device, in order."""
        if isinstance(self.source, torch.Tensor):
            yield self.source
        elif self.source is not None:
            yield from self.source


def _options_fingerprint(som: SOM) -> int:
    """CRC-32 of the options that shape a batch epoch (σ, its decay, neighbourhood, topology, distance, dtype);
    the random seed is left out: the initial weights come from rank 0."""
    def named(option: Any) -> str:
        return (getattr(option, "__qualname__", None) or repr(option)) if callable(option) else repr(option)

    options = (som.sigma.hex(), named(som.sigma_decay_function), som.neighborhood_function, som.topology, som.periodic,
               named(som.activation_distance), str(som.dtype))
    return zlib.crc32(repr(options).encode())


def _check_positive(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer ≥ 1; got {value!r}")
