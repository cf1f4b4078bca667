"""The Dask engine: the input read as a Dask dataframe, cleaned and aggregated partition by partition on a cluster.

    files (CSV / CSV.gz / Parquet, a glob, a list, a dataset folder) or an in-memory frame
      └─► dask dataframe (``dd.read_csv(dtype=str)`` / ``dd.read_parquet``), partitions in input order
            ├─ pass 1, per partition: rows + latest transactionDate     → row_id offsets, CleaningSettings
            └─ pass 2, per partition: ``clean_shard`` (the local engine's function) on the partition's rows,
               dropped rows written by the worker to ``dropped_dir/part-NNNNN.parquet``
                 └─► ShardPass per partition ─► ``combine_shards`` in partition order on the client
    SOM (batch map only): ``somtorch.dask.train_batch`` over the units as a Dask array

The CSV reader is pandas' (``dtype=str``): the texts it reads as missing are those the local engine's reader
treats as missing (it follows pandas), so both engines see the same cells. The client holds the merged customer
aggregates and 16 bytes per kept row (row_id, customer id), as the local engine does; the rows themselves, and the
dropped rows, stay on the workers. ``dropped_dir`` must be reachable by every worker (a shared file system on a
multi-machine cluster).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import polars as pl
import torch

from pipeline.outputs.writers import PART_NAME, write_table
from pipeline.segmentation.streaming import CleaningSettings, DroppedSink, ShardPass, StreamedCustomers, clean_shard, combine_shards
from pipeline.sources.chunks import number_rows, polars_from_pandas, scan_bigbazaar_summary
from pipeline.sources.loading import BIGBAZAAR_COLUMNS, BIGBAZAAR_DTYPES, PARQUET_SUFFIXES, ROW_ID, require_columns
from pipeline.sources.transactions import TransactionSource, merge_summaries
from somtorch import SOM

logger = logging.getLogger(__name__)

DEFAULT_BLOCKSIZE = "64MB"  # bytes of CSV per partition (gzip files are one partition each: not splittable)


@dataclass
class DaskEngine:
    """Run the columnar fit's heavy stages on a Dask cluster (see the module docstring).

    ``address``: an existing scheduler (``tcp://host:8786``); None starts a ``LocalCluster`` of ``n_workers``
    workers × ``threads_per_worker`` threads (``processes``: separate worker processes) with ``memory_limit`` each.
    ``blocksize``: CSV bytes per partition; ``partitions``: partitions of an in-memory frame (default: one per
    worker thread; also the blocks of the units the SOM trains on); ``accumulate``: the batch map's sums (``float64``
    or ``exact``, see ``somtorch.batch``). A partition is cleaned ``source.chunk_rows`` rows at a time.
    """

    OPTIONS = ("address", "n_workers", "threads_per_worker", "processes", "memory_limit", "blocksize", "partitions",
               "accumulate")
    name, distributed, is_writer, row_parts = "dask", True, True, True

    dropped_dir: Optional[Path] = None
    address: Optional[str] = None
    n_workers: int = 2
    threads_per_worker: int = 1
    processes: bool = True
    memory_limit: str = "auto"
    blocksize: str = DEFAULT_BLOCKSIZE
    partitions: Optional[int] = None
    accumulate: str = "float64"
    _client: Any = field(default=None, init=False, repr=False)
    _cluster: Any = field(default=None, init=False, repr=False)
    _offsets: Optional[list[int]] = field(default=None, init=False, repr=False)

    def client(self) -> Any:
        """The distributed client: connected to ``address``, or to a LocalCluster started on first use."""
        if self._client is None:
            from distributed import Client, LocalCluster

            if self.address:
                self._client = Client(self.address)
                logger.info("dask engine: connected to %s", self.address)
            else:
                self._cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=self.threads_per_worker,
                                             processes=self.processes, memory_limit=self.memory_limit,
                                             dashboard_address=":0")
                self._client = Client(self._cluster)
                logger.info("dask engine: LocalCluster of %d workers × %d threads (%s), dashboard %s", self.n_workers,
                            self.threads_per_worker, "processes" if self.processes else "threads",
                            self._client.dashboard_link)
        return self._client

    def close(self) -> None:
        """Close the client and the LocalCluster this engine started (an existing cluster keeps running)."""
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def summarize(self, source: TransactionSource) -> tuple[int, Optional[date]]:
        """Pass 1: rows and latest date per partition (the row_id offsets of pass 2), merged."""
        import dask

        parts = self._partitions(source)
        summaries = dask.compute(*[dask.delayed(_partition_summary)(part, source.table is None) for part in parts])
        sizes = [n for n, _ in summaries]
        self._offsets = list(np.cumsum([0, *sizes[:-1]]))
        logger.info("dask engine: %d partitions, %d rows", len(parts), sum(sizes))
        return merge_summaries(summaries)

    def stream(self, source: TransactionSource, settings: CleaningSettings,
               dropped_sink: Optional[DroppedSink]) -> StreamedCustomers:
        """Pass 2: ``clean_shard`` per partition on the workers, merged in partition order on the client. Dropped
        rows are written by the workers into ``dropped_dir`` (``dropped_sink`` is not used: it lives here)."""
        import dask

        if self.dropped_dir is None:
            raise ValueError("the dask engine needs dropped_dir, the folder its workers write dropped rows into")
        if self._offsets is None:
            self.summarize(source)
        parts = self._partitions(source)
        if len(parts) != len(self._offsets):
            raise RuntimeError("the input's partitions changed between the two passes")
        tasks = [dask.delayed(_clean_partition)(part, index, offset, settings, source.table is None,
                                                source.chunk_rows, str(self.dropped_dir))
                 for index, (part, offset) in enumerate(zip(parts, self._offsets))]
        passes = list(dask.compute(*tasks))
        return combine_shards(passes, settings, keep_dropped=False, name=source.name)

    def train_batch(self, som: SOM, data: torch.Tensor, epochs: int) -> None:
        """``epochs`` batch-map epochs with ``somtorch.dask.train_batch`` over ``data`` split in row blocks."""
        import dask.array as da
        from somtorch.dask import train_batch

        units = data.cpu().numpy()
        rows = max(1, -(-len(units) // self._n_blocks))
        train_batch(som, da.from_array(units, chunks=(rows, units.shape[1])), epochs, client=self.client(),
                    accumulate=self.accumulate, verbose=None)

    @property
    def _n_blocks(self) -> int:
        """Blocks an in-memory table or the units are cut into: ``partitions``, else one per worker thread."""
        return max(1, self.partitions or self.n_workers * self.threads_per_worker)

    def _partitions(self, source: TransactionSource) -> list[Any]:
        """The input as a list of delayed pandas partitions, in input order."""
        self.client()
        frame = self._dataframe(source)
        return list(frame.to_delayed())

    def _dataframe(self, source: TransactionSource) -> Any:
        import dask.dataframe as dd

        if source.table is not None:
            table = source.table.to_pandas() if isinstance(source.table, pl.DataFrame) else source.table
            return dd.from_pandas(table.reset_index(drop=True), npartitions=self._n_blocks,
                                  sort=False)
        paths = [str(path) for path in source.paths]
        parquet = [path.lower().endswith(PARQUET_SUFFIXES) for path in paths]
        if all(parquet):
            return dd.read_parquet(paths)
        if any(parquet):
            raise ValueError("an input mixes CSV and Parquet files; give files of one format")
        gzipped = any(path.lower().endswith(".gz") for path in paths)
        return dd.read_csv(paths, dtype=str, blocksize=None if gzipped else self.blocksize,
                           compression="gzip" if gzipped else None)


def _partition_chunk(part: pd.DataFrame, from_files: bool, first_row_id: int = 0) -> pl.DataFrame:
    """A partition as the chunks the local engine reads: ``row_id`` first (input positions from ``first_row_id``,
    or the input's own row_id column), every CSV column as text; a Parquet file's text columns as text, its numbers
    typed."""
    frame = part.reset_index(drop=True)
    require_columns(frame, BIGBAZAAR_COLUMNS, what="Big Bazaar transactions")
    chunk = polars_from_pandas(frame)
    if from_files:
        chunk = chunk.with_columns(pl.col(name).cast(pl.Utf8) for name in BIGBAZAAR_DTYPES if name in chunk.columns)
    return number_rows(chunk, first_row_id)


def _partition_summary(part: pd.DataFrame, from_files: bool) -> tuple[int, Optional[date]]:
    """(rows, latest parseable transactionDate) of one partition (runs on a worker)."""
    return scan_bigbazaar_summary(_partition_chunk(part, from_files).drop(ROW_ID))


def _clean_partition(part: pd.DataFrame, index: int, first_row_id: int, settings: CleaningSettings, from_files: bool,
                     chunk_rows: int, dropped_dir: str) -> ShardPass:
    """Clean one partition (runs on a worker); its dropped rows are written to ``dropped_dir/part-<index>.parquet``
    (a column that is all-missing in the partition as text, the type it has in the other parts)."""
    chunk = _partition_chunk(part, from_files, first_row_id)
    dropped_parts: list[pl.DataFrame] = []
    shard = clean_shard((chunk.slice(start, chunk_rows) for start in range(0, max(chunk.height, 1), chunk_rows)),
                        settings, dropped_parts.append)
    dropped = pl.concat(dropped_parts, how="vertical_relaxed") if dropped_parts else pl.DataFrame()
    if dropped.width:
        dropped = dropped.with_columns(pl.col(pl.Null).cast(pl.Utf8))
    write_table(dropped, Path(dropped_dir) / PART_NAME.format(index), fmt="parquet")
    return shard
