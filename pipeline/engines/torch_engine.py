"""The torch.distributed engine: ``train.py`` launched by torchrun (or srun, Ray Train, Spark's TorchDistributor)
as N processes ("ranks"), each reading its share of the input.

    rank r: its files (a contiguous block of the input's files, in order) or its block of an in-memory frame's rows
      ├─ summary (rows, latest date) ── all_gather ──► row_id offsets, CleaningSettings (every rank the same)
      ├─ ``clean_shard`` (the local engine's function) ── all_gather ──► ``combine_shards`` in rank order
      └─ SOM (batch map only): ``somtorch.distributed.train_batch`` on rank r's block of the units
           (per epoch one all-reduce of the per-neuron sums and counts; every rank ends with the same weights)

Every rank holds the merged customer aggregates and the units. Only rank 0 (``is_writer``) writes the outputs: it
gathers every rank's kept rows (16 bytes each: row_id, customer id) and dropped rows; the other ranks keep none. The process group's timeout (``timeout_s``) bounds how
long a rank waits in a collective for a rank that died; torchrun itself stops the other ranks as soon as one exits
with an error.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Iterator, Optional

import polars as pl
import torch
import torch.distributed as dist

from pipeline.segmentation.streaming import (
    CleaningSettings,
    DroppedSink,
    StreamedCustomers,
    clean_shard,
    combine_shards,
    without_rows,
)
from pipeline.sources.transactions import TransactionSource, merge_summaries
from somtorch import SOM
from somtorch import distributed as som_distributed

logger = logging.getLogger(__name__)


@dataclass
class TorchEngine:
    """Run the columnar fit's heavy stages on the ranks of a torch.distributed group (see the module docstring).

    The default process group is started from the launcher's environment (RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT) unless one exists; ValueError when the process was not launched by torchrun or alike.
    ``device``: the SOM's device (gloo on CPU, NCCL on CUDA, one GPU per rank by LOCAL_RANK); ``timeout_s``: the
    collectives' timeout; ``accumulate``: the batch map's sums (``float64`` or ``exact``).
    """

    OPTIONS = ("timeout_s", "accumulate")
    name, distributed, row_parts = "torch", True, False

    device: str = "cpu"
    timeout_s: float = 60.0
    accumulate: str = "float64"
    rank: int = field(default=0, init=False)
    world_size: int = field(default=1, init=False)
    _offset: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        cuda = str(self.device).startswith("cuda") or (self.device == "auto" and torch.cuda.is_available())
        if not dist.is_initialized() and not som_distributed.init_process_group(
                "cuda" if cuda else "cpu", timeout_s=float(self.timeout_s)):
            raise ValueError(
                "engine=torch needs a torch.distributed launch (WORLD_SIZE is not set): run "
                "`torchrun --standalone --nproc-per-node=N train.py engine=torch som.mode=batch ...`"
            )
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        logger.info("torch engine: rank %d of %d (%s)", self.rank, self.world_size, dist.get_backend())

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def summarize(self, source: TransactionSource) -> tuple[int, Optional[date]]:
        """Every rank's (rows, latest date) of its share, gathered: this rank's row_id offset and the input's
        summary."""
        share = self._share(source)
        mine = share.bigbazaar_summary() if share is not None else (0, None)
        summaries: list = [None] * self.world_size
        dist.all_gather_object(summaries, mine)
        self._offset = sum(n for n, _ in summaries[: self.rank])
        if source.table is None and len(source.paths) < self.world_size and self.rank == 0:
            logger.warning("%d input files for %d ranks: ranks beyond the files read nothing (split the input into at "
                           "least as many files as ranks)", len(source.paths), self.world_size)
        return merge_summaries(summaries)

    def stream(self, source: TransactionSource, settings: CleaningSettings,
               dropped_sink: Optional[DroppedSink]) -> StreamedCustomers:
        """``clean_shard`` of this rank's share; every rank's totals all-gathered and merged in rank order, the kept
        and dropped rows gathered to rank 0 only, which hands the dropped rows to ``dropped_sink``."""
        shard = clean_shard(self._chunks(source), settings)
        passes: list = [None] * self.world_size
        dist.all_gather_object(passes, without_rows(shard))  # the customers' totals: every rank needs them
        rows: list | None = [None] * self.world_size if self.is_writer else None
        dist.gather_object((shard.row_ids, shard.customer_ids, shard.dropped), rows, dst=0)  # rank 0 writes the rows
        if rows is not None:
            passes = [replace(each, row_ids=ids, customer_ids=customers, dropped=dropped)
                      for each, (ids, customers, dropped) in zip(passes, rows)]
        if dropped_sink is not None and self.is_writer:
            for each in passes:
                if each.dropped is not None:
                    dropped_sink(each.dropped)
        return combine_shards(passes, settings, keep_dropped=dropped_sink is None, name=source.name)

    def train_batch(self, som: SOM, data: torch.Tensor, epochs: int) -> None:
        """``epochs`` batch-map epochs, this rank training on its block of the units (all ranks hold them all)."""
        shard = data[som_distributed.shard_bounds(len(data), self.rank, self.world_size)]
        som_distributed.train_batch(som, shard, epochs, accumulate=self.accumulate, verbose=None)

    def _share(self, source: TransactionSource) -> Optional[TransactionSource]:
        """This rank's part of the input: a block of its files, or a block of an in-memory frame's rows; None when
        the block is empty."""
        bounds = som_distributed.shard_bounds(len(source.paths) if source.table is None else len(source.table),
                                              self.rank, self.world_size)
        if bounds.stop == bounds.start:
            return None
        if source.table is not None:
            return TransactionSource(table=source.table[bounds.start:bounds.stop], chunk_rows=source.chunk_rows)
        return TransactionSource(paths=source.paths[bounds], chunk_rows=source.chunk_rows)

    def _chunks(self, source: TransactionSource) -> Iterator[pl.DataFrame]:
        """This rank's chunks, ``row_id`` numbered in the whole input (an input's own row_id is kept)."""
        share = self._share(source)
        if share is not None:
            yield from share.chunks(first_row_id=self._offset)
