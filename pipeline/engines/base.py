"""The engine interface the segmenter's columnar fit runs on, and ``make_engine`` (the ``engine`` config section).

An engine provides the three stages whose cost grows with the input: the pre-pass (row count and latest date),
the cleaning + customer-aggregation pass (per shard, merged in input order by ``combine_shards``), and batch-map
training. Everything between and after them (features, initialisation, clustering, outputs) is the same code on
every engine, so a distributed run gives the single-process result (see the engines' modules for how close).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from typing import Any, Optional, Protocol

import torch

from pipeline.segmentation.streaming import CleaningSettings, DroppedSink, StreamedCustomers
from pipeline.sources.transactions import TransactionSource
from somtorch import SOM

logger = logging.getLogger(__name__)

ENGINES = ("local", "dask", "torch")


class Engine(Protocol):
    """``name``; ``distributed`` (only the batch map can then be trained); ``is_writer`` (whether this process
    writes the run's outputs); ``row_parts`` (result and dropped rows are Parquet datasets of part files)."""

    name: str
    distributed: bool
    is_writer: bool
    row_parts: bool

    def summarize(self, source: TransactionSource) -> tuple[int, Optional[date]]:
        """(rows of the whole input, latest parseable transactionDate or None)."""

    def stream(self, source: TransactionSource, settings: CleaningSettings,
               dropped_sink: Optional[DroppedSink]) -> StreamedCustomers:
        """Clean and aggregate every row of ``source``; dropped rows go to ``dropped_sink`` (or into the summary)."""

    def train_batch(self, som: SOM, data: torch.Tensor, epochs: int) -> None:
        """Train ``som`` in place for ``epochs`` batch-map epochs on ``data`` (N, D), the SOM's units."""


def make_engine(section: Optional[Mapping[str, Any]], *, device: str = "cpu") -> Engine:
    """The engine of an ``engine`` config section (``name`` and that engine's options; None → local).
    ``device``: the SOM's device (a torch engine's backend follows it). A Dask engine's ``dropped_dir`` (where its
    workers write the dropped rows' part files) is set by the caller before ``stream``."""
    section = dict(section or {})
    name = section.pop("name", "local")
    if name not in ENGINES:
        raise ValueError(f"engine.name={name!r} is not supported; valid: {list(ENGINES)}")
    if name == "local":
        from pipeline.engines.local import LocalEngine
        return LocalEngine(**_options(section, LocalEngine.OPTIONS))
    if name == "dask":
        from pipeline.engines.dask_engine import DaskEngine
        return DaskEngine(**_options(section, DaskEngine.OPTIONS))
    from pipeline.engines.torch_engine import TorchEngine
    return TorchEngine(device=device, **_options(section, TorchEngine.OPTIONS))


def _options(section: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """The options of ``section`` that the engine reads (``known``; the others belong to other engines: ignored)."""
    return {key: value for key, value in section.items() if key in known and value is not None}
