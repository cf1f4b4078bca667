"""The columnar data path: clean a Big Bazaar input shard by shard, chunk by chunk, and merge per-customer aggregates.

One pass over each shard of the input (one shard in one process; a Dask partition or a rank's files elsewhere):

    chunk ──► BigBazaarCleaner.clean ──► kept rows ──► BigBazaarCustomerAggregates.update  (merged by customer)
                                     └─► dropped rows ──► dropped_sink (a file writer) or kept in the ShardPass

``clean_shard`` gives a picklable ``ShardPass``; ``combine_shards`` merges the shards' passes in input order
(aggregates, reason counts, parse counters, rows). Memory grows with the customers (their aggregates) and with 16
bytes per kept row (its row_id and customer id, for result.csv), never with the width of the input. A pre-pass
(``TransactionSource.bigbazaar_summary``, or the engines' per-shard summaries) gives the row count and the latest
transaction date that the cleaning rules need before the first chunk (``CleaningSettings``).
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Optional

import numpy as np
import pandas as pd
import polars as pl
from tqdm.auto import tqdm

from pipeline.features.customer_aggregates import BigBazaarCustomerAggregates
from pipeline.sources.bigbazaar_columnar import BigBazaarCleaner
from pipeline.sources.cleaning import REASON, CleanResult
from pipeline.sources.loading import ROW_ID

logger = logging.getLogger(__name__)

DroppedSink = Callable[[pl.DataFrame], None]


@dataclass(frozen=True)
class CleaningSummary:
    """What cleaning did to one input: ``n_input`` rows, ``n_kept`` of them kept, the dropped rows per reason, and
    the dropped rows themselves (``row_id``, id, ``reason``, raw values), or None when they were streamed to a
    sink. Invariant: n_input = n_kept + n_dropped."""

    n_input: int
    n_kept: int
    reason_counts: dict[str, int]
    dropped: Optional[pd.DataFrame]

    def __post_init__(self) -> None:
        if self.n_input != self.n_kept + self.n_dropped:
            raise RuntimeError(
                f"row accounting broken: {self.n_input} rows in != {self.n_kept} kept + {self.n_dropped} dropped"
            )

    @property
    def n_dropped(self) -> int:
        return int(sum(self.reason_counts.values()))

    @classmethod
    def of(cls, result: CleanResult) -> CleaningSummary:
        """The summary of an in-memory cleaning (``pipeline.sources.cleaning``)."""
        return cls(n_input=result.n_input, n_kept=len(result.clean), reason_counts=result.reason_counts(),
                   dropped=result.dropped)


@dataclass(frozen=True)
class StreamedCustomers:
    """The outcome of one pass: cleaning summary, kept rows' ``row_ids`` and ``customer_ids`` (input order), the
    merged per-customer aggregates, and the latest day among the kept rows (the customer features' default
    reference date)."""

    cleaning: CleaningSummary
    row_ids: np.ndarray
    customer_ids: np.ndarray
    aggregates: BigBazaarCustomerAggregates
    latest_kept_day: Optional[pd.Timestamp]


def resolve_age_reference(summary: tuple[int, Optional[date]], age_reference_date: Optional[str], name: str) -> date:
    """The Age reference day of an input with ``summary`` (rows, latest parseable transactionDate): the given day,
    else that latest date. ValueError for an input without rows, or without any parseable date."""
    n_rows, latest = summary
    if n_rows == 0:
        raise ValueError(f"{name} has no data rows")
    if age_reference_date is not None:
        return pd.Timestamp(age_reference_date).date()
    if latest is None:
        raise ValueError("no parseable transactionDate for a default Age reference date; pass age_reference_date")
    return latest


@dataclass(frozen=True)
class CleaningSettings:
    """What cleaning one Big Bazaar input needs before its first chunk: the Age reference day, the rows of the whole
    input (the "too large to sum" limit) and the plausible ages (None: every age). Picklable, for workers."""

    age_reference: date
    n_rows: int
    age_range: Optional[tuple[float, float]]

    def cleaner(self) -> BigBazaarCleaner:
        return BigBazaarCleaner(age_reference_date=self.age_reference, n_rows_total=self.n_rows,
                                age_range=self.age_range)


@dataclass
class ShardPass:
    """The outcome of cleaning one shard of an input (a file, a Dask partition, a rank's files): picklable, and
    merged with the other shards' in input order by ``combine_shards``.

    ``dropped`` holds the shard's dropped rows, or None when they went to a sink (or were written by a worker).
    ``n_kept`` counts the kept rows also where ``row_ids`` and ``customer_ids`` were left out (``without_rows``).
    """

    n_input: int
    n_kept: int
    reasons: Counter
    parse_counters: dict
    aggregates: BigBazaarCustomerAggregates
    row_ids: np.ndarray
    customer_ids: np.ndarray
    latest: Optional[date]
    dropped: Optional[pl.DataFrame]


def without_rows(shard: ShardPass) -> ShardPass:
    """``shard`` without its row arrays and dropped rows: what a process that writes no row output needs."""
    empty = np.empty(0, np.int64)
    return replace(shard, row_ids=empty, customer_ids=empty, dropped=None)


def clean_shard(chunks: Iterable[pl.DataFrame], settings: CleaningSettings,
                dropped_sink: Optional[DroppedSink] = None) -> ShardPass:
    """Clean every chunk of one shard and aggregate its customers (``row_id`` already global in the chunks).

    ``dropped_sink`` receives each chunk's dropped rows (also empty ones: a file writer learns the columns from
    the first chunk); without one they are kept in ``ShardPass.dropped``.
    """
    cleaner = settings.cleaner()
    aggregates = BigBazaarCustomerAggregates()
    reasons: Counter[str] = Counter()
    row_ids, customer_ids, kept_dropped = [], [], []
    n_input, latest = 0, None
    for chunk in tqdm(chunks, desc="clean + aggregate", unit="chunk", disable=None, leave=False):
        clean, dropped = cleaner.clean(chunk)
        n_input += chunk.height
        if dropped.height:
            reasons.update(dict(dropped.get_column(REASON).value_counts().iter_rows()))
        if dropped_sink is not None:
            dropped_sink(dropped)
        elif dropped.height:
            kept_dropped.append(dropped)
        if clean.height:
            aggregates.update(clean)
            row_ids.append(clean.get_column(ROW_ID).to_numpy())
            customer_ids.append(clean.get_column("customerID").to_numpy())
            chunk_latest = clean.get_column("transactionDate").max()
            latest = chunk_latest if latest is None else max(latest, chunk_latest)
    return ShardPass(
        n_input=n_input, n_kept=int(sum(len(ids) for ids in row_ids)), reasons=reasons, parse_counters=cleaner.counters_, aggregates=aggregates,
        row_ids=np.concatenate(row_ids).astype(np.int64, copy=False) if row_ids else np.empty(0, np.int64),
        customer_ids=np.concatenate(customer_ids) if customer_ids else np.empty(0, np.int64), latest=latest,
        dropped=None if dropped_sink is not None else (pl.concat(kept_dropped, how="vertical_relaxed") if kept_dropped else None),
    )


def combine_shards(passes: Sequence[ShardPass], settings: CleaningSettings, *, keep_dropped: bool,
                   name: str) -> StreamedCustomers:
    """Merge the shards' passes in input order: aggregates, reason counts, parse counters (then the "mostly
    unparseable" check over the whole input: ValueError), rows. ``keep_dropped``: put the shards' dropped rows
    into the summary (they were not streamed to a sink)."""
    checker = settings.cleaner()
    aggregates = BigBazaarCustomerAggregates()
    reasons: Counter[str] = Counter()
    latest = None
    for shard in passes:
        checker.merge_counters(shard.parse_counters)
        aggregates.merge(shard.aggregates)
        reasons.update(shard.reasons)
        if shard.latest is not None:
            latest = shard.latest if latest is None else max(latest, shard.latest)
    checker.check_parseable()
    n_input = sum(shard.n_input for shard in passes)
    n_kept = sum(shard.n_kept for shard in passes)
    dropped_frame = None
    if keep_dropped:
        frames = [shard.dropped for shard in passes if shard.dropped is not None]
        dropped_frame = (pl.concat(frames, how="vertical_relaxed").to_pandas() if frames
                         else pd.DataFrame(columns=[ROW_ID, "customerID", REASON]))
    summary = CleaningSummary(n_input=n_input, n_kept=n_kept, reason_counts=dict(reasons.most_common()),
                              dropped=dropped_frame)
    logger.info("cleaned %d rows of %s: %d kept, %d dropped", n_input, name, n_kept, summary.n_dropped)
    return StreamedCustomers(
        cleaning=summary,
        row_ids=np.concatenate([shard.row_ids for shard in passes]) if passes else np.empty(0, np.int64),
        customer_ids=np.concatenate([shard.customer_ids for shard in passes]) if passes else np.empty(0, np.int64),
        aggregates=aggregates,
        latest_kept_day=None if latest is None else pd.Timestamp(latest),
    )
