"""The columnar data path: clean a Big Bazaar source chunk by chunk and merge per-customer aggregates.

One pass over the input, in chunks (``TransactionSource.chunks``):

    chunk ──► BigBazaarCleaner.clean ──► kept rows ──► BigBazaarCustomerAggregates.update  (merged by customer)
                                     └─► dropped rows ──► dropped_sink (a file writer) or kept in memory

Memory grows with the customers (their aggregates) and with 16 bytes per kept row (its row_id and customer id, for
result.csv), never with the width of the input. A pre-pass (``TransactionSource.bigbazaar_summary``) gives the row
count and the latest transaction date that the cleaning rules need before the first chunk.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
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
from pipeline.sources.transactions import TransactionSource

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


def resolve_age_reference(source: TransactionSource, age_reference_date: Optional[str]) -> tuple[int, date]:
    """(rows in the source, the Age reference day): the given day, else the latest parseable transactionDate."""
    n_rows, latest = source.bigbazaar_summary()
    if n_rows == 0:
        raise ValueError(f"{source.name} has no data rows")
    if age_reference_date is not None:
        return n_rows, pd.Timestamp(age_reference_date).date()
    if latest is None:
        raise ValueError("no parseable transactionDate for a default Age reference date; pass age_reference_date")
    return n_rows, latest


def stream_bigbazaar_customers(
    source: TransactionSource,
    *,
    age_reference: date,
    n_rows: int,
    age_range: Optional[tuple[float, float]],
    dropped_sink: Optional[DroppedSink] = None,
) -> StreamedCustomers:
    """Clean every chunk of ``source`` and merge its customers' aggregates (see the module docstring).

    ``dropped_sink`` receives each chunk's dropped rows; without one they are kept and returned in the summary.
    Raises ValueError when a column is mostly unparseable over the whole input (a wrong file).
    """
    cleaner = BigBazaarCleaner(age_reference_date=age_reference, n_rows_total=n_rows, age_range=age_range)
    aggregates = BigBazaarCustomerAggregates()
    reasons: Counter[str] = Counter()
    row_ids, customer_ids, kept_dropped = [], [], []
    n_input, latest = 0, None
    for chunk in tqdm(source.chunks(), desc="clean + aggregate", unit="chunk", disable=None, leave=False):
        clean, dropped = cleaner.clean(chunk)
        n_input += chunk.height
        if dropped.height:
            reasons.update(dict(dropped.get_column(REASON).value_counts().iter_rows()))
        if dropped_sink is not None:
            dropped_sink(dropped)  # also when empty: a file writer learns the columns from the first chunk
        elif dropped.height:
            kept_dropped.append(dropped)
        if clean.height:
            aggregates.update(clean)
            row_ids.append(clean.get_column(ROW_ID).to_numpy())
            customer_ids.append(clean.get_column("customerID").to_numpy())
            chunk_latest = clean.get_column("transactionDate").max()
            latest = chunk_latest if latest is None else max(latest, chunk_latest)
    cleaner.check_parseable()
    n_kept = int(sum(len(ids) for ids in row_ids))
    dropped_frame = None
    if dropped_sink is None:
        dropped_frame = (pl.concat(kept_dropped, how="vertical_relaxed").to_pandas() if kept_dropped
                         else pd.DataFrame(columns=[ROW_ID, "customerID", REASON]))
    summary = CleaningSummary(n_input=n_input, n_kept=n_kept, reason_counts=dict(reasons.most_common()),
                              dropped=dropped_frame)
    logger.info("cleaned %d rows of %s: %d kept, %d dropped", n_input, source.name, n_kept, summary.n_dropped)
    return StreamedCustomers(
        cleaning=summary,
        row_ids=np.concatenate(row_ids).astype(np.int64, copy=False) if row_ids else np.empty(0, np.int64),
        customer_ids=np.concatenate(customer_ids) if customer_ids else np.empty(0, np.int64),
        aggregates=aggregates,
        latest_kept_day=None if latest is None else pd.Timestamp(latest),
    )
