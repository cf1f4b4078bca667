"""The single-process engine: the input is read in chunks by this process, the SOM trains here."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Optional

import torch

from pipeline.segmentation.streaming import CleaningSettings, DroppedSink, StreamedCustomers, clean_shard, combine_shards
from pipeline.sources.transactions import TransactionSource
from somtorch import SOM


@dataclass
class LocalEngine:
    """Every stage in this process: the input is one shard (see ``pipeline.engines.base.Engine``). ``accumulate``:
    the batch map's sums, ``float64`` or ``exact`` (``somtorch.batch``), the reference of a distributed run."""

    OPTIONS = ("accumulate",)
    name, distributed, is_writer, row_parts = "local", False, True, False

    accumulate: str = "float64"

    def summarize(self, source: TransactionSource) -> tuple[int, Optional[date]]:
        return source.bigbazaar_summary()

    def stream(self, source: TransactionSource, settings: CleaningSettings,
               dropped_sink: Optional[DroppedSink]) -> StreamedCustomers:
        shard = clean_shard(source.chunks(), settings, dropped_sink)
        return combine_shards([shard], settings, keep_dropped=dropped_sink is None, name=source.name)

    def train_batch(self, som: SOM, data: torch.Tensor, epochs: int) -> None:
        som.train_batch(data, epochs, verbose=None, accumulate=self.accumulate)
